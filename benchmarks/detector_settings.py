"""Face detector settings side by side on whole-scene photos: share of images with a face, agreement of the
largest face with the first setting's (IoU ≥ 0.5), and milliseconds per image, all in one process.

    OMP_NUM_THREADS=1 python benchmarks/detector_settings.py ../shared/data/infant-cry-scenes --settings 640:0 320:0 640:0.1

A setting is DETECT_SIZE:MIN_FACE (detect_faces' ``max_side`` and ``min_face``). With a manifest.csv that has an
``in_unique`` column, one representative per group of near-copies is used.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch

from babyface.data.images import is_image_file, load_rgb
from babyface.faces.detectors import FaceBox, detect_faces


def scene_files(folder: Path, limit: int) -> list[Path]:
    manifest = folder / "manifest.csv"
    rows = list(csv.DictReader(manifest.open())) if manifest.is_file() else []
    if rows and "in_unique" in rows[0]:
        files = sorted(folder / row["file"] for row in rows if row["in_unique"] == "1")
    else:
        files = sorted(p for p in folder.rglob("*") if is_image_file(p))
    return files[:: max(1, len(files) // limit)][:limit] if limit else files


def parse_setting(text: str) -> tuple[int, float]:
    size, _, min_face = text.partition(":")
    return int(size), float(min_face or 0)


def largest_faces(images: list[np.ndarray], size: int, min_face: float, min_score: float) -> tuple[list[FaceBox | None], float]:
    started = time.perf_counter()
    found = [next(iter(detect_faces(rgb, "mtcnn", min_score, max_side=size, min_face=min_face)), None) for rgb in images]
    return found, (time.perf_counter() - started) / len(images) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--settings", nargs="+", default=["640:0", "320:0", "0:0.1"], help="DETECT_SIZE:MIN_FACE, the first is the reference")
    parser.add_argument("--limit", type=int, default=0, help="use about this many images (0: all)")
    parser.add_argument("--min-score", type=float, default=0.9)
    args = parser.parse_args()
    torch.set_num_threads(1)
    images = [np.asarray(load_rgb(path)) for path in scene_files(args.folder, args.limit)]
    largest_faces(images[:2], 640, 0.0, args.min_score)  # warm-up
    reference = None
    print(f"{len(images)} images; agreement: largest face overlaps the first setting's (IoU >= 0.5)")
    print(f"{'setting':<10} {'with face':>9} {'agreement':>9} {'ms/img':>7}")
    for setting in args.settings:
        faces, ms = largest_faces(images, *parse_setting(setting), args.min_score)
        reference = reference or faces
        agree = np.mean([(a is None and b is None) or (a is not None and b is not None and a.iou(b) >= 0.5) for a, b in zip(faces, reference)])
        print(f"{setting:<10} {np.mean([f is not None for f in faces]):>9.1%} {agree:>9.1%} {ms:>7.1f}", flush=True)


if __name__ == "__main__":
    main()
