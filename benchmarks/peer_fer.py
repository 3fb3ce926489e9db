"""Published peers side by side: the `fer` package (mini-Xception trained on adult FER2013, TensorFlow) and `PyEmotion`
(a 4-conv PyTorch CNN trained on FER2013's seven classes, weights inside its wheel) against babyface bundles on the
same test images, scored by babyface's own metric code (accuracy and macro-F1 with 95% stratified bootstrap
intervals, per-class recall; 3-way decisions over happy, neutral and sad).

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/peer_fer.py --prepared /work/data \\
        [--babyface runs/infant/ensemble ...] [--limit 50] [--out benchmarks/results/peer_fer]

Neither peer is ever a babyface dependency: each lives in its own virtual environment (--venv, --pyemotion-venv, created
on first use with the steps in PEERS) and runs in a subprocess (benchmarks/peer_fer_worker.py,
benchmarks/peer_pyemotion_worker.py; --peer chooses which). PyEmotion classifies the box as it is (no margin, as its
own MTCNN path does); its ``whole`` is the whole image. Framings:
``faces``: babyface's MTCNN (facenet-pytorch, on RGB, minimum score 0.9) finds the largest face; fer classifies
its raw box with its own 10-pixel offsets and padding, babyface with ``Classifier.predict_faces`` (same detector,
its 20% margin); no face found → the whole image (counted). ``whole``: the whole image is the face box (fer still
adds its 10-pixel frame). ``bare`` (fer only): the whole image straight into fer's model, offsets 0, i.e. grey
and resized to 64×64 as its FER2013 training images were; babyface's ``whole`` is already that.
Test sets are NAME=PATH[:LABELMAP.yaml] folders of class folders; classes a label map sends to null, and classes
other than happy, neutral and sad, are dropped.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from peer_fer_worker import CLASSES, HEADER

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().with_name("peer_fer_worker.py")
FER_VERSION = "25.10.3"
# What the peer venv needs, found by trial (each step is run with the venv's python -m pip):
#  - tensorflow-cpu: fer's model runs on TF (2.21.0 is what was tested); fer's declared facenet-pytorch/torch,
#    moviepy, ffmpeg-python, matplotlib, pandas and tqdm are not needed for images with given face boxes;
#  - opencv-python-headless<5: OpenCV 5 has no cv2.CascadeClassifier, which FER() builds even when unused;
#  - setuptools<81: fer imports pkg_resources;
#  - fer itself with --no-deps (its requirements would pull torch via facenet-pytorch).
PEER_INSTALL = (
    ("install", "tensorflow-cpu==2.21.0", "opencv-python-headless<5", "setuptools<81", "requests", "pillow"),
    ("install", "--no-deps", f"fer=={FER_VERSION}"),
)
PEER_CHECK = "from fer.fer import FER; import fer; print(fer.__version__)"
PYEMOTION_VERSION = "1.0.0"
# PyEmotion's declared opencv-python, facenet-pytorch, art, termcolor, progress and pytest serve its webcam demo; the
# worker imports only its networks.py and reads the weights in its wheel, so torch, numpy and Pillow are enough.
PYEMOTION_INSTALL = (
    ("install", "torch==2.14.1", "numpy", "pillow"),
    ("install", "--no-deps", f"PyEmotion=={PYEMOTION_VERSION}"),
)
PYEMOTION_CHECK = ("import importlib.metadata as m, importlib.util as u; assert u.find_spec('PyEmotion'); "
                   "print(m.version('PyEmotion'))")
READY_MARK = ".babyface-peer-ready"
FRAMINGS = ("faces", "whole", "bare")
FER_ONLY = ("bare",)


@dataclass(frozen=True)
class Peer:
    """A published model: how its venv is made and checked, and the worker its venv's python runs."""

    name: str
    install: tuple
    check: str
    worker: str
    framings: tuple[str, ...]


PEERS = {
    "fer": Peer("fer", PEER_INSTALL, PEER_CHECK, "peer_fer_worker.py", FRAMINGS),
    "pyemotion": Peer("pyemotion", PYEMOTION_INSTALL, PYEMOTION_CHECK, "peer_pyemotion_worker.py", ("faces", "whole")),
}
THUMBS_MAP = {"laughing": "happy", "crying": "sad", "angry": None, "sleeping": None}


@dataclass
class TestSetSpec:
    """A named folder of class folders and how its class names map to happy/neutral/sad (None: dropped)."""

    name: str
    path: Path
    label_map: dict[str, str | None] = field(default_factory=dict)
    hint: str = ""  # how to make the folder when it is missing


@dataclass
class TestImages:
    spec: TestSetSpec
    files: list[Path]
    truths: list[str]
    dropped: dict[str, int]  # class folder → images left out


# --------------------------------------------------------------------------- test sets


def parse_set(text: str) -> TestSetSpec:
    """NAME=PATH or NAME=PATH:LABELMAP.yaml (the map: 'folder_class: happy|neutral|sad|null')."""
    from babyface.data.sources import load_label_map
    from babyface.errors import DataError

    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise DataError(f"--set {text!r}: write NAME=PATH or NAME=PATH:LABELMAP.yaml")
    path, colon, label_map = rest.rpartition(":")
    if not colon or not label_map.endswith((".yaml", ".yml")):
        return TestSetSpec(name, Path(rest))
    return TestSetSpec(name, Path(path), load_label_map(label_map))


def default_sets(shared: Path, prepared: Path) -> list[TestSetSpec]:
    return [
        TestSetSpec("fer2013-test", shared / "fer2013-hsn" / "test"),
        TestSetSpec("infant-web-unseen", prepared / "iw" / "test",
                    hint="babyface data split ../shared/data/infant-web data/iw --test 0.25 --val 0 --group-by identity_group "
                         "--manifest ../shared/data/infant-web/manifest.csv --seed 0"),
        TestSetSpec("utk-heldout", prepared / "utk" / "test"),
        TestSetSpec("thumbs-crop", prepared / "thumbs-crop", dict(THUMBS_MAP),
                    hint=f"babyface data crop ../shared/data/infant-thumbs {prepared / 'thumbs-crop'}"),
    ]


def mapped_class(folder: str, label_map: dict[str, str | None]) -> str | None:
    target = label_map.get(folder, folder)
    return target if target in CLASSES else None


def every_kth(items: list, limit: int) -> list:
    """About ``limit`` items spread over the whole (class-sorted) list, so that a quick run still sees every class."""
    if not limit or limit >= len(items):
        return items
    return [items[i * len(items) // limit] for i in range(limit)]


def load_test_images(spec: TestSetSpec, limit: int = 0) -> TestImages:
    from babyface.data.scan import scan_class_folders

    split = scan_class_folders(spec.path, min_classes=1)  # a set of crying infants only is a test set too
    kept, dropped = [], {}
    for sample in split.samples:
        folder = split.classes[sample.label]
        truth = mapped_class(folder, spec.label_map)
        if truth is None:
            dropped[folder] = dropped.get(folder, 0) + 1
        else:
            kept.append((sample.path, truth))
    kept = every_kth(kept, limit)
    return TestImages(spec, [Path(os.path.abspath(p)) for p, _ in kept], [t for _, t in kept], dropped)


def available_sets(specs: list[TestSetSpec], limit: int) -> list[TestImages]:
    found = []
    for spec in specs:
        if not spec.path.is_dir():
            print(f"skip {spec.name}: {spec.path} not found" + (f" (make it: {spec.hint})" if spec.hint else ""))
            continue
        images = load_test_images(spec, limit)
        found.append(images)
        counts = {c: images.truths.count(c) for c in CLASSES if c in images.truths}
        print(f"{spec.name}: {len(images.files)} images {counts}" + (f", dropped {images.dropped}" if images.dropped else ""))
    return found


# --------------------------------------------------------------------------- the peer venv


def peer_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_peer_venv(venv: Path, peer: Peer = PEERS["fer"]) -> str:
    """Create the peer's venv once (reused when its ready mark is there); returns the peer's version."""
    python = peer_python(venv)
    if not (venv / READY_MARK).is_file():
        print(f"creating the {peer.name} peer venv {venv} (a few minutes) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        for step in peer.install:
            subprocess.run([str(python), "-m", "pip", *step], check=True)
    version = subprocess.run([str(python), "-c", peer.check], check=True, capture_output=True, text=True).stdout.strip()
    (venv / READY_MARK).write_text(version + "\n")
    return version


def thread_env(threads: int) -> dict[str, str]:
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
    return {**os.environ, **{name: str(threads) for name in names}, "TF_CPP_MIN_LOG_LEVEL": "2"}


def run_fer(venv: Path, pairs: list[tuple[Path, Path]], threads: int, fer_model: str, peer: Peer = PEERS["fer"]) -> None:
    """One worker process for every (jobs, predictions) pair: the framework and the model load once."""
    command = [str(peer_python(venv)), str(WORKER.with_name(peer.worker)), "--threads", str(threads)]
    command += ["--fer-model", fer_model] if peer.name == "fer" else []
    command += [str(p) for pair in pairs for p in pair]
    # the peer's own environment only: babyface's PYTHONPATH must not leak into it
    env = {k: v for k, v in thread_env(threads).items() if k != "PYTHONPATH"}
    subprocess.run(command, check=True, env=env)


# --------------------------------------------------------------------------- faces


def largest_face_box(rgb: np.ndarray):
    """The largest face babyface's default detector finds (as ``Classifier.predict_faces`` looks), or None."""
    from babyface.config import DETECT_MAX_SIDE
    from babyface.faces.detectors import detect_faces

    return next(iter(detect_faces(rgb, "mtcnn", max_side=DETECT_MAX_SIDE)), None)


def box_columns(face) -> list:
    """face_found, x, y, w, h for a fer job (integer pixels, as fer's own MTCNN path rounds them)."""
    if face is None:
        return [0, "", "", "", ""]
    x, y = int(face.left), int(face.top)
    return [1, x, y, int(face.right) - x, int(face.bottom) - y]


def write_fer_jobs(images: TestImages, framings: list[str], out: Path) -> dict[str, Path]:
    """jobs-SET-FRAMING.csv: the largest MTCNN face per image (faces), no box: the whole image (whole, bare)."""
    from babyface.data.images import load_rgb
    from babyface.outputs import write_csv

    header = ["file", "truth", "face_found", "x", "y", "w", "h", "offset"]
    pairs = list(zip(images.files, images.truths))
    rows = {"whole": [[str(p), t, "", "", "", "", "", ""] for p, t in pairs],
            "bare": [[str(p), t, "", "", "", "", "", 0] for p, t in pairs]}
    if "faces" in framings:
        rows["faces"] = []
        for number, (path, truth) in enumerate(pairs, 1):
            rows["faces"].append([str(path), truth, *box_columns(largest_face_box(np.asarray(load_rgb(path)))), ""])
            report_progress(f"MTCNN {images.spec.name}", number, len(pairs))
    jobs = {f: out / f"jobs-{images.spec.name}-{f}.csv" for f in framings}
    for framing, path in jobs.items():
        write_csv(path, header, rows[framing])
    return jobs


def report_progress(what: str, number: int, total: int, every: int = 250) -> None:
    if number % every == 0 or number == total:
        print(f"  {what}: {number}/{total}", flush=True)


# --------------------------------------------------------------------------- babyface bundles


def prediction_row(file: str, truth: str, probabilities: dict[str, float], face_found) -> list:
    """A predictions-CSV row; the decision is the argmax over happy/neutral/sad among the model's classes."""
    scores = {c: probabilities[c] for c in CLASSES if c in probabilities}
    pred = max(scores, key=scores.get)
    return [file, truth, pred, *(f"{scores[c]:.6f}" if c in scores else "" for c in CLASSES), face_found, pred]


def babyface_predictions(classifier, images: TestImages, framing: str) -> list[list]:
    """babyface's predictions as ``babyface predict`` makes them: ``faces`` = the default face square (the whole
    image where no face is found), ``whole`` = ``--framing whole``."""
    from babyface.errors import DataError
    from babyface.faces.framing import Framing

    mode = "face" if framing == "faces" else "whole"
    predictions, skipped = classifier.predict_files(images.files, framing=Framing(mode=mode))
    if skipped:
        raise DataError(f"{images.spec.name}: could not decode {skipped[:3]}; fix or remove those files")
    return [prediction_row(str(p), t, pr.probabilities, "" if mode == "whole" else int(bool(pr.face_found)))
            for p, t, pr in zip(images.files, images.truths, predictions)]


# --------------------------------------------------------------------------- scoring and the table


def read_predictions(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def score_predictions(rows: list[dict], n_resamples: int = 1000, seed: int = 0) -> dict:
    """babyface's metrics (as `babyface evaluate` computes them) over happy/neutral/sad, plus faces found."""
    from babyface.metrics import classification_metrics

    index = {name: i for i, name in enumerate(CLASSES)}
    metrics = classification_metrics([index[r["truth"]] for r in rows], [index[r["pred"]] for r in rows], CLASSES,
                                     n_resamples=n_resamples, seed=seed)
    found = [r["face_found"] for r in rows if r["face_found"] != ""]
    metrics["faces_found"] = sum(int(f) for f in found) if found else None
    return metrics


def recall_text(metrics: dict) -> str:
    """'h 0.91 · n 0.32 · s –': recall per class, '–' for a class the set does not have."""
    parts = []
    for name in CLASSES:
        row = metrics["per_class"][name]
        parts.append(f"{name[0]} {row['recall']:.2f}" if row["support"] else f"{name[0]} –")
    return " · ".join(parts)


def table_markdown(results: list[dict], set_names: list[str]) -> str:
    """One row per (model, framing); per test set: accuracy [95% CI], macro-F1 [95% CI], recall per class."""
    from babyface.metrics import interval_text

    header = ["model", "framing"] + [f"{name} {what}" for name in set_names for what in ("acc [95% CI]", "macro-F1 [95% CI]", "recall")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (model, framing), by_set in group_rows(results).items():
        cells = [model, framing]
        for name in set_names:
            m = by_set.get(name)
            cells += ["n/a"] * 3 if m is None else [interval_text(m["accuracy"], m.get("accuracy_ci")),
                                                    interval_text(m["macro_f1"], m.get("macro_f1_ci")), recall_text(m)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def faces_found_line(results: list[dict]) -> str:
    counts = {r["set"]: f"{r['metrics']['faces_found']}/{r['metrics']['n']}" for r in results
              if r["framing"] == "faces" and r["metrics"]["faces_found"] is not None}
    return "MTCNN found a face in " + ", ".join(f"{name} {c}" for name, c in counts.items()) + " (else the whole image)." if counts else ""


def group_rows(results: list[dict]) -> dict[tuple[str, str], dict[str, dict]]:
    grouped: dict[tuple[str, str], dict[str, dict]] = {}
    for r in results:
        grouped.setdefault((r["model"], r["framing"]), {})[r["set"]] = r["metrics"]
    return grouped


def report_markdown(results: list[dict], sets: list[TestImages], settings: dict) -> str:
    sizes = ", ".join(f"{s.spec.name} ({len(s.files)})" for s in sets)
    lines = [
        "# Published peers and babyface on the same images",
        "",
        f"Test sets: {sizes}. 3-way decisions (argmax over happy, neutral, sad); accuracy and macro-F1 (over the classes "
        "a set has) with 95% stratified bootstrap intervals (1000 resamples), recall per class h/n/s.",
        "",
        table_markdown(results, [s.spec.name for s in sets]),
        "",
        *([faces_found_line(results), ""] if faces_found_line(results) else []),
        ("".join(f"{name} {v}" + (f" ({settings['fer_model']} model)" if name == "fer" else "") + ", "
                 for name, v in settings.get("peer_versions", {}).items()) or "no peer run, ")
        + f"threads {settings['threads']}"
        + (f", at most {settings['limit']} images per set" if settings["limit"] else "") + ".",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=PATH[:LABELMAP.yaml]",
                        help="a test set: a folder of class folders, optionally with a label map (repeatable; replaces the default four)")
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data",
                        help="folder of the shared real data (default: ../shared/data beside the repo); holds fer2013-hsn/test")
    parser.add_argument("--prepared", type=Path, default=REPO / "data",
                        help="folder of prepared splits: iw/test, utk/test, thumbs-crop (default: data/ in the repo)")
    parser.add_argument("--babyface", action="append", default=[], metavar="RUN",
                        help="a babyface run/bundle folder to score on the same images (repeatable)")
    parser.add_argument("--venv", type=Path, default=Path.home() / ".cache" / "babyface" / "peer-fer-venv",
                        help="the peer's own virtual environment, created on first use (never babyface's venv)")
    parser.add_argument("--pyemotion-venv", type=Path, default=Path.home() / ".cache" / "babyface" / "peer-pyemotion-venv",
                        help="PyEmotion's own virtual environment, created on first use (never babyface's venv)")
    parser.add_argument("--peer", dest="peers", action="append", choices=sorted(PEERS), default=[],
                        help="a published peer to run (repeatable); default: fer and pyemotion")
    parser.add_argument("--no-fer", action="store_true", help="score only the --babyface runs (no peer venv needed)")
    parser.add_argument("--fer-model", choices=("tflite", "keras"), default="tflite",
                        help="fer's quantized TFLite model (what FER() uses by default) or its full-precision Keras model")
    parser.add_argument("--framing", choices=FRAMINGS, action="append", default=[],
                        help="faces (largest MTCNN face), whole (whole image as the face box) and/or bare "
                             "(whole image straight into fer's model, no 10-pixel frame; fer only); default: all three")
    parser.add_argument("--tta", choices=("none", "flip"), default="none",
                        help="test-time augmentation of the babyface runs (flip: each image and its mirror averaged)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many images per set, spread over its classes (0: all)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch, TensorFlow and TFLite")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "peer_fer",
                        help="output folder: predictions CSVs, peer_fer.json, peer_fer.md")
    parser.add_argument("--overwrite", action="store_true", help="replace the results in a non-empty --out")
    return parser.parse_args(argv)


def predictions_path(out: Path, model: str, framing: str, set_name: str) -> Path:
    return out / f"pred-{model}-{framing}-{set_name}.csv"


def peer_predictions(args, peer: Peer, sets: list[TestImages], framings: list[str], out: Path) -> str:
    venv = args.venv if peer.name == "fer" else args.pyemotion_venv
    version = ensure_peer_venv(venv, peer)
    framings = [f for f in framings if f in peer.framings]
    pairs = []
    for images in sets:
        jobs = write_fer_jobs(images, framings, out)
        pairs += [(jobs[f], predictions_path(out, peer.name, f, images.spec.name)) for f in framings]
    run_fer(venv, pairs, args.threads, args.fer_model, peer)
    return version


def babyface_runs(args, sets: list[TestImages], framings: list[str], out: Path) -> list[str]:
    from babyface.inference.classifier import Classifier
    from babyface.outputs import write_csv

    names = []
    for run in args.babyface:
        name = run_name(Path(run), names)
        classifier = Classifier(run, device="cpu", backend="torch", tta=args.tta)
        for images in sets:
            for framing in [f for f in framings if f not in FER_ONLY]:
                write_csv(predictions_path(out, name, framing, images.spec.name), HEADER, babyface_predictions(classifier, images, framing))
        names.append(name)
    return names


def run_name(run: Path, taken: list[str]) -> str:
    """The run folder's name, with its parent's when two runs share it (e.g. two 'ensemble' folders)."""
    folder = run.resolve()
    return folder.name if folder.name not in taken + list(PEERS) else f"{folder.parent.name}-{folder.name}"


def score_all(out: Path, models: list[str], framings: list[str], sets: list[TestImages]) -> list[dict]:
    """Every predictions CSV there is: fer-only framings have none for babyface runs."""
    paths = {(m, f, s.spec.name): predictions_path(out, m, f, s.spec.name) for m in models for f in framings for s in sets}
    return [{"model": m, "framing": f, "set": s, "metrics": score_predictions(read_predictions(path))}
            for (m, f, s), path in paths.items() if path.is_file()]


def main(argv=None) -> None:
    from babyface.outputs import prepare_output_dir, write_json, write_text

    args = parse_args(argv)
    torch_threads(args.threads)
    framings = args.framing or list(FRAMINGS)
    specs = [parse_set(s) for s in args.sets] or default_sets(args.shared_data, args.prepared)
    sets = available_sets(specs, args.limit)
    if not sets:
        sys.exit("no test set found; give --shared-data / --prepared or --set NAME=PATH")
    out = prepare_output_dir(args.out, overwrite=args.overwrite)
    started = time.perf_counter()
    models, versions = [], {}
    for name in [] if args.no_fer else (args.peers or list(PEERS)):
        versions[name] = peer_predictions(args, PEERS[name], sets, framings, out)
        models.append(name)
    models += babyface_runs(args, sets, framings, out)
    results = score_all(out, models, framings, sets)
    settings = {"fer_version": versions.get("fer"), "peer_versions": versions, "fer_model": args.fer_model, "threads": args.threads, "limit": args.limit,
                "framings": framings, "babyface_runs": args.babyface, "babyface_tta": args.tta, "seconds": round(time.perf_counter() - started, 1)}
    report = report_markdown(results, sets, settings)
    write_json(out / "peer_fer.json", {"settings": settings, "peer_install": {n: [list(s) for s in PEERS[n].install] for n in versions},
                                       "sets": [set_summary(s) for s in sets], "results": results})
    write_text(out / "peer_fer.md", report)
    print(report)


def set_summary(images: TestImages) -> dict:
    spec = asdict(images.spec)
    spec["path"] = str(images.spec.path)
    return {**spec, "n": len(images.files), "counts": {c: images.truths.count(c) for c in CLASSES}, "dropped": images.dropped}


def torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
