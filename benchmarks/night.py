"""Night: infrared-like footage. What a dark, grey, noisy night-camera image costs the face detector, the CNN and the
face measures, and whether contrast normalisation before them wins it back.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/night.py \\
        [--sets NAME=PATH ...] [--scenes /work/shared/data/infant-cry-scenes] [--run /work/exp/runs/final] \\
        [--limit N] [--out benchmarks/results/night]

Conditions, applied to each image before anything sees it (transforms below, numpy and OpenCV, seeded per file):
- ``day``: the image as it is; ``gray``: its luminance (BT.601) in all three channels;
- ``ir``: a synthetic night style (``IR``): grayscale, contrast ×0.5 around the image's mean, gamma 1.6 (darker), a
  Gaussian blur of sigma 1 px (optics), Gaussian sensor noise of sigma 12 grey levels, then 8-bit rounding;
  ``ir-strong`` (``IR_STRONG``): contrast ×0.35, gamma 2.2, blur 1.5 px, noise 20;
- the fixes, run on the night image before detection, measuring and the CNN (one image feeds all three), in the
  order written: ``+clahe`` (``clahe``: OpenCV's CLAHE on the luminance, clip limit 2, 8×8 tiles), ``+stretch``
  (``stretch``: the 1st–99th percentile of the luminance stretched to 0–255) and ``+denoise`` (``denoise``: a
  Gaussian blur of 1.5 px, added because contrast normalisation alone amplifies the sensor noise);
  ``day+clahe`` and ``day+denoise`` check that a fix does no harm by day.
This is a proxy, not real infrared: active-IR cameras light the scene with their own near-infrared lamp, so faces
are often not dark, and skin, eyes and hair reflect NIR differently from visible light; here only the loss of colour,
contrast, light and sharpness and the sensor noise are simulated. The noise is added at the image's own resolution,
so the 640-px infant-web and cry crops average it away more than the 200-px utk crops when they are shrunk.

Measured per condition:
- face detector recall (BlazeFace, ``babyface.faces.detectors.detect_faces`` at its own threshold) on
  infant-cry-scenes (every image shows a face: recall = share with at least one face found) and on the test crops;
- the CNN (classified whole, as the bundle was trained; flip TTA) on the test crops: accuracy and macro-F1 with 95%
  stratified bootstrap intervals (babyface's metric code), recall per class;
- the measures (largest BlazeFace face, the whole image when none; faces the landmark model skips are left out and
  counted): ``smile`` happy vs rest over all sets pooled, ``brow_lower`` and ``frown`` sad vs neutral on utkf, with
  the CNN's AUC on the same faces in the JSON (``face_measures.py``'s code).
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import face_measures as fm
from babyface.data.images import luminance_of
from babyface.data.night import DENOISE_SIGMA, STRETCH_PERCENTILES, for_detection, stretch_contrast

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SCENES = Path("/work/shared/data/infant-cry-scenes")
RESAMPLES = 2000


@dataclass(frozen=True)
class NightStyle:
    contrast: float  # the spread around the mean is multiplied by this
    gamma: float  # > 1 darkens
    blur: float  # Gaussian sigma, pixels (0: none)
    noise: float  # Gaussian sensor noise sigma, grey levels


IR = NightStyle(contrast=0.5, gamma=1.6, blur=1.0, noise=12.0)
IR_STRONG = NightStyle(contrast=0.35, gamma=2.2, blur=1.5, noise=20.0)
CONDITIONS = ("day", "gray", "ir", "ir+clahe", "ir+stretch", "ir+denoise", "ir+denoise+clahe", "ir-strong", "ir-strong+clahe",
              "ir-strong+stretch", "ir-strong+denoise", "ir-strong+denoise+clahe", "day+clahe", "day+denoise",
              "ir+night", "ir-strong+night", "gray+night", "day+night")
CLAHE_CLIP, CLAHE_TILES = 2.0, 8


# --------------------------------------------------------------------------- the transforms


def luminance(rgb: np.ndarray) -> np.ndarray:
    """H×W float32 BT.601 luminance (0..255) of an H×W×3 uint8 RGB image."""
    return luminance_of(rgb)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """The image's luminance in all three channels (H×W×3 uint8)."""
    gray = np.clip(np.rint(luminance(rgb)), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def night(rgb: np.ndarray, rng: np.random.Generator, style: NightStyle = IR) -> np.ndarray:
    """A night-camera version of an H×W×3 uint8 RGB image, H×W×3 uint8 with three equal channels: grayscale, contrast
    ``style.contrast`` around the mean, gamma ``style.gamma``, blur ``style.blur``, sensor noise ``style.noise``
    (drawn from ``rng``: the same generator state gives the same image)."""
    import cv2

    gray = luminance(rgb)
    gray = gray.mean() + style.contrast * (gray - gray.mean())
    gray = 255.0 * (np.clip(gray, 0, 255) / 255.0) ** style.gamma
    if style.blur > 0:
        gray = cv2.GaussianBlur(gray, (0, 0), style.blur)
    gray = gray + rng.normal(0.0, style.noise, gray.shape)
    out = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    return np.repeat(out[..., None], 3, axis=2)


def clahe(rgb: np.ndarray, clip_limit: float = CLAHE_CLIP, tiles: int = CLAHE_TILES) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of the luminance (OpenCV): on the one channel of a grey image,
    on L of CIELAB for a colour one; H×W×3 uint8 in, the same out."""
    import cv2

    equaliser = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles, tiles))
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return np.repeat(equaliser.apply(np.ascontiguousarray(rgb[..., 0]))[..., None], 3, axis=2)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    lab[..., 0] = equaliser.apply(np.ascontiguousarray(lab[..., 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


stretch, denoise = stretch_contrast, for_detection  # babyface's own, as predict and watch apply them at night


def night_mode(rgb: np.ndarray) -> np.ndarray:
    """No change to the image itself: ``night`` is babyface's night mode (``babyface.data.night``, what predict and
    watch do with ``--night on``, and with ``auto`` on grey frames), which detects on ``denoise`` of the image and
    classifies ``stretch`` of it; ``run_condition`` and ``detector_recall`` apply those two where they belong."""
    return rgb


FIXES = {"clahe": clahe, "stretch": stretch, "denoise": denoise, "night": night_mode}


def file_rng(seed: int, name: str) -> np.random.Generator:
    """A generator of its own per file (and seed), so an image's noise does not depend on --limit or on order."""
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def condition_image(rgb: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    """``rgb`` under a condition: BASE[+FIX...], the fixes (``FIXES``) applied in order to the base image."""
    base, *fixes = condition.split("+")
    image = {"day": lambda: rgb, "gray": lambda: to_gray(rgb), "ir": lambda: night(rgb, rng, IR),
             "ir-strong": lambda: night(rgb, rng, IR_STRONG)}[base]()
    for fix in fixes:
        image = FIXES[fix](image)
    return image


# --------------------------------------------------------------------------- one condition


def is_night_mode(condition: str) -> bool:
    return condition.endswith("+night")


def scene_files(folder: Path, limit: int) -> list[Path]:
    from babyface.data.images import is_image_file

    files = sorted(p for p in folder.rglob("*") if is_image_file(p))
    return fm.every_kth(files, limit)


def detector_recall(files: list[Path], condition: str, seed: int) -> tuple[int, int]:
    from babyface.data.images import load_rgb
    from babyface.faces.detectors import detect_faces

    found = 0
    for path in files:
        rgb = condition_image(np.asarray(load_rgb(path)), condition, file_rng(seed, path.name))
        found += bool(detect_faces(denoise(rgb) if is_night_mode(condition) else rgb, fm.DETECTOR))
    return found, len(files)


def run_condition(condition: str, images: list[fm.Image], scenes: list[Path], classifier, seed: int,
                  n_resamples: int) -> dict:
    """Detector recall, the CNN's scores and the measures' AUCs under ``condition``."""
    from PIL import Image as PilImage

    from babyface.data.images import load_rgb, resize_square
    from babyface.metrics import classification_metrics

    started = time.perf_counter()
    crops, faces = [], []
    for image in images:
        rgb = condition_image(np.asarray(load_rgb(image.file)), condition, file_rng(seed, image.file.name))
        face = fm.Image(image.set, image.file, image.truth, image.group)
        night = is_night_mode(condition)
        face.detected, face.skipped, face.measures = fm.measure_face(rgb, denoise(rgb) if night else None)
        faces.append(face)
        crop = resize_square(PilImage.fromarray(rgb), classifier.image_size)
        crops.append(stretch(crop) if night else crop)
    probs = classifier.classify_crops(crops).numpy()
    for face, row in zip(faces, probs):
        face.probs = fm.probability_rows(classifier, row)
    y = [fm.CLASSES.index(f.truth) for f in faces]
    pred = [int(f.probs.argmax()) for f in faces]
    cnn = classification_metrics(y, pred, list(fm.CLASSES), n_resamples=n_resamples, seed=seed)
    scene_found, scene_n = detector_recall(scenes, condition, seed) if scenes else (0, 0)
    aucs = [fm.score_comparison(c, faces, n_resamples, seed) for c in night_comparisons(faces)]
    return {"condition": condition, "scenes_found": scene_found, "scenes": scene_n,
            "crops_found": sum(f.detected for f in faces), "crops": len(faces),
            "measured": sum(f.measures is not None for f in faces),
            "cnn": {k: cnn[k] for k in ("n", "accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci")}
            | {"recall": {c: cnn["per_class"][c]["recall"] for c in fm.CLASSES if cnn["per_class"][c]["support"]}},
            "aucs": aucs, "seconds": round(time.perf_counter() - started, 1)}


def night_comparisons(faces: list[fm.Image]) -> list[fm.Comparison]:
    names = sorted({f.set for f in faces}, key=[f.set for f in faces].index)
    out = []
    for comp in fm.comparisons(names, faces):
        if comp.name == "positive_vs_rest" and comp.pool == "all sets pooled":
            out.append(fm.Comparison(comp.name, comp.pool, comp.sets, comp.positive, comp.negative, ("smile",), comp.cnn))
        elif comp.name == "negative_vs_neutral" and comp.pool == "utkf":
            out.append(fm.Comparison(comp.name, comp.pool, comp.sets, comp.positive, comp.negative, ("brow_lower", "frown"), comp.cnn))
    return out


def whole_file_accuracy(classifier, framing, images: list[fm.Image]) -> float:
    predictions, _ = classifier.predict_files([i.file for i in images], framing=framing)
    rows = [fm.probability_rows(classifier, p.probabilities) for p in predictions]
    return float(np.mean([fm.CLASSES[int(r.argmax())] == i.truth for r, i in zip(rows, images)]))


# --------------------------------------------------------------------------- the table


def auc_cell(result: dict, comparison: str, score: str) -> str:
    for r in result["aucs"]:
        if r["comparison"] == comparison and score in r["scores"]:
            s = r["scores"][score]
            return f"{fm.ci_text(s['auc'], s['ci_image'])} ({s['positives']}+{s['negatives']})"
    return "n/a"


def share(found: int, total: int) -> str:
    return f"{found / total:.1%} ({found}/{total})" if total else "n/a"


def table(results: list[dict]) -> str:
    lines = ["| condition | detector recall: scenes | detector recall: test crops | faces measured | CNN accuracy [95% CI] | "
             "CNN macro-F1 [95% CI] | CNN recall h · n · s | `smile` AUC happy vs rest, pooled (n) | "
             "`brow_lower` AUC sad vs neutral, utkf (n) | `frown` AUC sad vs neutral, utkf (n) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["cnn"]
        recall = " · ".join(f"{c['recall'][k]:.2f}" if k in c["recall"] else "–" for k in fm.CLASSES)
        lines.append(f"| {r['condition']} | {share(r['scenes_found'], r['scenes'])} | {share(r['crops_found'], r['crops'])} | "
                     f"{r['measured']}/{r['crops']} | {fm.ci_text(c['accuracy'], c['accuracy_ci'])} | "
                     f"{fm.ci_text(c['macro_f1'], c['macro_f1_ci'])} | {recall} | {auc_cell(r, 'positive_vs_rest', 'smile')} | "
                     f"{auc_cell(r, 'negative_vs_neutral', 'brow_lower')} | {auc_cell(r, 'negative_vs_neutral', 'frown')} |")
    return "\n".join(lines)


def headline(result: dict) -> dict[str, float]:
    """The numbers the fix is judged on."""
    values = {"scene recall": result["scenes_found"] / result["scenes"] if result["scenes"] else float("nan"),
              "crop recall": result["crops_found"] / result["crops"], "measured": result["measured"] / result["crops"],
              "CNN accuracy": result["cnn"]["accuracy"], "CNN macro-F1": result["cnn"]["macro_f1"]}
    for r in result["aucs"]:
        for name, s in r["scores"].items():
            values[f"{name} AUC ({r['pool']})"] = s["auc"]
    return values


def fix_lines(results: list[dict]) -> list[str]:
    """For each fix, its change against the night image it was applied to."""
    by = {r["condition"]: headline(r) for r in results}
    lines = []
    for condition in by:
        base, sep, _ = condition.partition("+")
        if sep and base in by:
            changes = ", ".join(f"{k} {by[condition][k] - by[base][k]:+.3f}" for k in by[base] if k in by[condition])
            lines.append(f"- `{condition}` − `{base}`: {changes}")
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=Path, default=DEFAULT_SCENES,
                        help="whole-scene photos that all show a face, for detector recall (default: infant-cry-scenes)")
    parser.add_argument("--condition", dest="conditions", action="append", choices=CONDITIONS, default=[],
                        help="a condition to run (repeatable; default: all)")
    fm.add_common_arguments(parser, REPO / "benchmarks" / "results" / "night")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    import torch

    from babyface.faces.framing import describe
    from babyface.hardware import describe_hardware

    args = parse_args(argv)
    started = time.perf_counter()
    sets = fm.parse_sets(args.sets) if args.sets else dict(fm.DEFAULT_SETS)
    images, _ = fm.load_images(sets, args.limit)
    scenes = scene_files(args.scenes, args.limit) if args.scenes.is_dir() else []
    if not scenes:
        print(f"no scenes at {args.scenes}: detector recall on scenes left out")
    classifier = fm.open_classifier(args.run)
    framing = fm.bundle_framing(classifier)
    if framing.mode != "whole":
        raise SystemExit(f"{args.run}: trained on {describe(framing.record())}; this benchmark classifies whole images")
    print(f"{classifier}; classified whole, as model.json records its training framing")
    parity = whole_file_accuracy(classifier, framing, images)
    results = []
    for condition in args.conditions or CONDITIONS:
        results.append(run_condition(condition, images, scenes, classifier, args.seed, args.resamples))
        r = results[-1]
        print(f"  {condition}: {r['seconds']:.0f} s, CNN accuracy {r['cnn']['accuracy']:.3f}, scenes {share(r['scenes_found'], r['scenes'])}", flush=True)
    elapsed = time.perf_counter() - started
    names = sorted({i.set for i in images}, key=[i.set for i in images].index)
    report = [
        "## Night: infrared-like images", "",
        describe_hardware(torch.device("cpu")), "",
        f"Test crops: {', '.join(f'{n} ({sum(i.set == n for i in images)})' for n in names)}; scenes: {args.scenes.name} "
        f"({len(scenes)}). ir = {IR}; ir-strong = {IR_STRONG}; CLAHE clip {CLAHE_CLIP}, {CLAHE_TILES}×{CLAHE_TILES} tiles; "
        f"stretch {STRETCH_PERCENTILES[0]:g}–{STRETCH_PERCENTILES[1]:g} percentiles; denoise Gaussian {DENOISE_SIGMA:g} px. Intervals: 95% stratified bootstrap, "
        f"{args.resamples} resamples, seed {args.seed}; AUC n = positives+negatives measured.", "",
        table(results), "",
        f"The CNN by day through `Classifier.predict_files` (JPEG draft decoding, as `babyface evaluate` reads files): accuracy "
        f"{parity:.3f}; the table decodes every image in full first, to transform it.", "",
        "Each fix against the night image it was applied to:", "",
        *fix_lines(results), "",
        f"{len(images)} test crops and {len(scenes)} scenes × {len(results)} conditions in {elapsed:.0f} s"
        + (f", at most {args.limit} per set" if args.limit else "") + ".",
    ]
    text = "\n".join(report) + "\n"
    print("\n" + text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "night.md").write_text(text, encoding="utf-8")
    summary = {"settings": {"run": str(args.run), "sets": {n: str(sets[n]) for n in names}, "scenes": str(args.scenes),
                            "limit": args.limit, "resamples": args.resamples, "seed": args.seed, "ir": asdict(IR),
                            "ir_strong": asdict(IR_STRONG), "clahe": {"clip_limit": CLAHE_CLIP, "tiles": CLAHE_TILES},
                            "stretch_percentiles": list(STRETCH_PERCENTILES), "denoise_sigma": DENOISE_SIGMA,
                            "cnn_day_accuracy_predict_files": parity, "classifier": repr(classifier),
                            "hardware": describe_hardware(torch.device("cpu")), "seconds": round(elapsed, 1)},
               "conditions": results}
    (args.out / "night.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out / 'night.json'} and {args.out / 'night.md'}")


if __name__ == "__main__":
    main()
