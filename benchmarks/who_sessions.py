"""The infant-vs-adult model on infants it never saw, and the infant's face coded in sessions made of real faces.

    PYTHONPATH=src .venv/bin/python benchmarks/who_sessions.py --cry data/cry --emotion-run runs/infant \\
        --out benchmarks/results/who

1. For each infant source in turn (the UTKFace infants, the crying crops, infant-web) the infant-vs-adult model is
   trained as `train --adults fer2013-hsn,fer2013-other` trains it (babyface.training.who: the recipe's network, labels
   by source age, contrast equalised) on FER2013 and the *other* infant sources, and scored on every face of the
   held-out infant source against FER2013's held-out test faces: AUC, and recall of each at 0.5.
2. Sessions composed from real held-out faces: a UTKFace infant face (none of whose source was trained on) and a
   FER2013 test face of an adult, both moving, the infant's photo changing on a known timeline (happy, neutral, sad
   photos of infants; away = no infant face), coded by `babyface code` with an emotion run (--emotion-run, whose
   bundle is copied) given the held-out-UTKFace fold's infant-vs-adult model. Reported: the share of coded epochs
   whose coded face is the infant's (the coded box's centre inside the infant's box), of the infant's visible epochs
   coded, and of the away epochs left uncodable.

--max-per-class caps FER2013's images per class (budget; 0 = all). Run alone. The run folders hold weights trained on
the shared data: never commit them.
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from babyface.config import TrainConfig, from_dict, with_recipe  # noqa: E402
from babyface.data.images import is_image_file  # noqa: E402
from babyface.faces.framing import Framing  # noqa: E402
from babyface.hardware import describe_hardware  # noqa: E402
from babyface.inference.classifier import Classifier  # noqa: E402
from babyface.run import RunFolder  # noqa: E402
from babyface.training.fit import fit  # noqa: E402
from babyface.training.who import who_config  # noqa: E402

FER = ("fer2013-hsn", "fer2013-other")
ADULTS = ",".join(FER)


def held_out_sources(shared: Path, cry: Path) -> dict[str, list[Path]]:
    return {"utk": [shared / "utk-infant-faces", shared / "utk-infant-smile"], "cry": [cry], "infant-web": [shared / "infant-web"]}


def images_under(folders: list[Path]) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*") if p.is_file() and is_image_file(p))


def train_who(shared: Path, infants: list[Path], out: Path, max_per_class: int, epochs: int) -> Path:
    if (out / "model.json").is_file():
        return out
    values = with_recipe({"recipe": "infant", "data": str(shared / FER[0]),
                          "sources": [str(shared / FER[1]), *map(str, infants)], "seeds": "", "out": str(out),
                          "who_epochs": epochs, "progress": False,
                          "data_options": {"adults": ADULTS, "max_per_class": max_per_class}})
    config = from_dict(TrainConfig, values, where="who_sessions")
    return fit(who_config(config, out))


def fer_test_faces(run: Path) -> list[Path]:
    """FER2013's test faces of a run (held out of its training)."""
    manifest = RunFolder(run).split_manifest()
    return [manifest.root / row.file for row in manifest.files("test") if row.source == "fer2013"]


def score_who(run: Path, infants: list[Path], adults: list[Path]) -> dict:
    from sklearn.metrics import roc_auc_score

    model = Classifier(run, framing=Framing("whole"))
    preds, _ = model.predict_files(infants + adults)
    infant = np.array([p.probabilities["infant"] for p in preds])
    truth = np.array([1] * len(infants) + [0] * len(adults))[: len(infant)]
    return {"infants": int(truth.sum()), "adults": int((1 - truth).sum()), "auc": round(float(roc_auc_score(truth, infant)), 4),
            "infant_recall": round(float((infant[truth == 1] >= 0.5).mean()), 4),
            "adult_recall": round(float((infant[truth == 0] < 0.5).mean()), 4)}


# --------------------------------------------------------------------------- composed sessions

CODE_OF = {"happy": "positive", "neutral": "neutral", "sad": "negative"}


def face_square(path: Path, side: int) -> np.ndarray:
    from PIL import Image

    image = Image.open(path).convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
    return np.asarray(image)[:, :, ::-1]


def compose_session(path: Path, infants: dict[str, list[Path]], adult: Path, seconds: int, rng: random.Random,
                    fps: int = 30, size: tuple[int, int] = (640, 480)) -> list[tuple[int, int, str, tuple[int, int, int, int] | None]]:
    """An MP4: a real infant face (photos by expression, changing every 2-5 s, away at times) and a real adult face,
    both drifting. Returns per 1-s epoch (start, end, true code, the infant's box in the epoch's middle or None)."""
    import cv2

    segments, t = [], 0
    while t < seconds:
        length = min(rng.randint(2, 5), seconds - t)
        code = rng.choice(["positive", "neutral", "negative", "positive", "neutral", "uncodable"])
        label = {v: k for k, v in CODE_OF.items()}.get(code)
        segments.append((t, t + length, code, face_square(rng.choice(infants[label]), 190) if label else None))
        t += length
    adult_face = face_square(adult, 150)
    width, height = size
    epochs = []
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    try:
        for index in range(seconds * fps):
            now = index / fps
            _, _, code, face = next(s for s in segments if s[0] <= now < s[1])
            frame = np.full((height, width, 3), (168, 178, 186), np.uint8)
            ix, iy = int(60 + 60 * np.sin(now / 1.9)), int(170 + 40 * np.sin(now / 1.3))
            ax, ay = int(430 + 30 * np.sin(now / 2.3)), int(40 + 30 * np.sin(now / 1.7))
            frame[ay:ay + 150, ax:ax + 150] = adult_face
            if face is not None:
                frame[iy:iy + 190, ix:ix + 190] = face
            if index % fps == fps // 2:
                epochs.append((int(now), int(now) + 1, code, (ix, iy, ix + 190, iy + 190) if face is not None else None))
            writer.write(frame)
    finally:
        writer.release()
    return epochs


def inside(box: tuple[float, float, float, float], point: tuple[float, float], slack: int = 30) -> bool:
    return box[0] - slack <= point[0] <= box[2] + slack and box[1] - slack <= point[1] <= box[3] + slack


def session_scores(coded: Path, truth: dict[str, list]) -> dict:
    right = coded_visible = visible = away = away_uncodable = coded_epochs = 0
    for video, epochs in truth.items():
        with open(coded / Path(video).stem / "codes.csv", newline="") as handle:
            codes = list(csv.DictReader(handle))
        for row, (_, _, code, box) in zip(codes, epochs):
            is_coded = row["code"] != "uncodable"
            if box is None:
                away += 1
                away_uncodable += not is_coded
                continue
            visible += 1
            coded_visible += is_coded
            if is_coded:
                coded_epochs += 1
                centre = ((float(row["left"]) + float(row["right"])) / 2, (float(row["top"]) + float(row["bottom"])) / 2)
                right += inside(box, centre)
    return {"coded_epochs": coded_epochs, "infant_coded": round(right / max(coded_epochs, 1), 4),
            "visible_coded": round(coded_visible / max(visible, 1), 4), "away_uncodable": round(away_uncodable / max(away, 1), 4),
            "visible": visible, "away": away}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--cry", type=Path, required=True, help="the crying-infant face crops (babyface data crop)")
    parser.add_argument("--emotion-run", type=Path, required=True, help="an emotion run for the composed sessions")
    parser.add_argument("--max-per-class", type=int, default=1500, help="FER2013 images per class (0 = all)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs of each infant-vs-adult model")
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "who")
    args = parser.parse_args()
    print(describe_hardware(), flush=True)
    sources = held_out_sources(args.shared_data, args.cry)
    lines = [f"CPU: {describe_hardware()}", "", f"FER2013 at most {args.max_per_class or 'all'} per class, {args.epochs} epochs",
             "", "| held-out infants | infants | adults (FER2013 test) | AUC | infant recall | adult recall | train s |",
             "|---|---|---|---|---|---|---|"]
    runs = {}
    for name, held in sources.items():
        others = [p for other, folders in sources.items() if other != name for p in folders]
        started = time.perf_counter()
        runs[name] = train_who(args.shared_data, others, args.out / f"who-{name}", args.max_per_class, args.epochs)
        seconds = time.perf_counter() - started
        score = score_who(runs[name], images_under(held), fer_test_faces(runs[name]))
        lines.append(f"| {name} | {score['infants']} | {score['adults']} | {score['auc']:.4f} | {score['infant_recall']:.3f} "
                     f"| {score['adult_recall']:.3f} | {seconds:.0f} |")
        print(lines[-1], flush=True)
    rng = random.Random(0)
    utk = sources["utk"]
    infants = {label: images_under([folder / label for folder in utk if (folder / label).is_dir()]) for label in CODE_OF}
    adults = fer_test_faces(runs["utk"])
    run = args.out / "session-run"
    if run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True)
    for name in ("model.json", "model.safetensors"):
        shutil.copy2(args.emotion_run / name, run / name)
    shutil.copytree(runs["utk"], run / "who", ignore=shutil.ignore_patterns("checkpoint.pt"))
    videos = args.out / "sessions"
    videos.mkdir(exist_ok=True)
    truth = {}
    for number in range(1, args.sessions + 1):
        video = videos / f"composed_{number:02d}.mp4"
        truth[video.name] = compose_session(video, infants, rng.choice(adults), args.seconds, rng)
    lines += ["", f"{args.sessions} composed sessions of {args.seconds} s (held-out UTKFace infants, FER2013 test adults):", "",
              "| --face | infant's face among coded epochs | infant-in-view epochs coded | infant-away epochs uncodable |",
              "|---|---|---|---|"]
    for face in ("infant", "largest"):
        coded = args.out / f"coded-{face}"
        subprocess.run([sys.executable, "-m", "babyface", "code", str(run), str(videos), "--face", face, "--out", str(coded),
                        "--overwrite", "--no-progress"], check=True)
        scores = session_scores(coded, truth)
        lines.append(f"| {face} | {scores['infant_coded']:.1%} of {scores['coded_epochs']} | {scores['visible_coded']:.1%} "
                     f"of {scores['visible']} | {scores['away_uncodable']:.1%} of {scores['away']} |")
        print(lines[-1], flush=True)
    (args.out / "who_sessions.md").write_text("\n".join(lines) + "\n")
    print(f"table: {args.out / 'who_sessions.md'}")


if __name__ == "__main__":
    main()
