"""The face detectors side by side: milliseconds per 640×480 frame (1 and 2 threads) and how many infant faces
each finds, on whole-scene photos and on faces pasted small on a 640×480 canvas.

    python benchmarks/face_detectors.py --data ../shared/data [--limit 0] [--sheet-dir /tmp/sheets]

Run it alone. Detectors run at babyface's settings (photos shrunk to 640 px for MTCNN and Haar; BlazeFace sees a
128-px copy of any image). Columns:
- ms/frame: median time of one 640×480 frame made from the scene photos, at 1 and 2 threads (torch and OpenCV; the
  BlazeFace session always uses one thread, its work is too small to share).
- scenes, web: share of infant-cry-scenes and infant-web images with a face found (every image shows one).
- pasted: share of infant-web faces pasted at about 120 px on a 640×480 canvas that are found where they were
  pasted (the centre of the largest box inside the pasted square).
- agree: share of the images where both this detector and MTCNN find a face whose largest boxes overlap by
  IoU ≥ 0.5, after each detector's box alignment (its ``alignment``, babyface.faces.registry; raw: before it).
Also prints the medians that the alignments hold, measured on the raw boxes; --sheet-dir writes a contact
sheet of each detector's largest crop per scene, to judge by eye how many are really faces.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from babyface.config import DETECT_MAX_SIDE
from babyface.data.images import is_image_file, load_rgb
from babyface.faces import registry
from babyface.faces.detectors import FaceBox, detect_faces

FRAME = (640, 480)
PASTED_SIDE = 120


def image_files(folder: Path, limit: int) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if is_image_file(p))
    return files[:: max(1, len(files) // limit)][:limit] if limit else files


def as_frame(rgb: np.ndarray) -> np.ndarray:
    """The photo scaled to 480 px high and centred on a 640×480 grey frame, as a webcam would show it."""
    height, width = rgb.shape[:2]
    scale = min(FRAME[1] / height, FRAME[0] / width)
    small = cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    frame = np.full((FRAME[1], FRAME[0], 3), 127, np.uint8)
    top, left = (FRAME[1] - small.shape[0]) // 2, (FRAME[0] - small.shape[1]) // 2
    frame[top:top + small.shape[0], left:left + small.shape[1]] = small
    return frame


def pasted(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A face crop shrunk to PASTED_SIDE and pasted somewhere on a smooth, noisy 640×480 background; and where."""
    colours = rng.integers(60, 200, (6, 8, 3), dtype=np.uint8)
    background = np.asarray(Image.fromarray(colours).resize(FRAME, Image.Resampling.BICUBIC)) + rng.normal(0, 6, (FRAME[1], FRAME[0], 3))
    frame = np.clip(background, 0, 255).astype(np.uint8)
    left, top = int(rng.integers(0, FRAME[0] - PASTED_SIDE)), int(rng.integers(0, FRAME[1] - PASTED_SIDE))
    frame[top:top + PASTED_SIDE, left:left + PASTED_SIDE] = cv2.resize(rgb, (PASTED_SIDE, PASTED_SIDE), interpolation=cv2.INTER_AREA)
    return frame, (left, top, left + PASTED_SIDE, top + PASTED_SIDE)


def largest(rgb: np.ndarray, detector: str) -> FaceBox | None:
    return next(iter(detect_faces(rgb, detector, max_side=DETECT_MAX_SIDE)), None)


def ms_per_frame(frames: list[np.ndarray], detector: str, threads: int) -> float:
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    largest(frames[0], detector)  # load the model before timing
    times = []
    for frame in frames:
        started = time.perf_counter()
        largest(frame, detector)
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1000


def inside(box: FaceBox | None, where: tuple[int, int, int, int]) -> bool:
    if box is None:
        return False
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    return where[0] <= cx <= where[2] and where[1] <= cy <= where[3]


def agreement(found: list[FaceBox | None], reference: list[FaceBox | None]) -> float:
    both = [(a, b) for a, b in zip(found, reference) if a is not None and b is not None]
    return float(np.mean([a.iou(b) >= 0.5 for a, b in both])) if both else float("nan")


def agreement_text(found: dict[str, list[FaceBox | None]], reference: dict[str, list[FaceBox | None]]) -> str:
    return f"{agreement(found['scenes'], reference['scenes']):.1%}, {agreement(found['web'], reference['web']):.1%}"


def aligned(box: FaceBox | None, alignment: tuple[float, float, float] | None) -> FaceBox | None:
    return box.reshaped(*alignment) if box is not None and alignment else box


def box_shape(found: list[FaceBox | None], reference: list[FaceBox | None]) -> tuple[float, float, float]:
    """Medians of MTCNN's width and height over the detector's, and of the centre shift over its height."""
    rows = [((b.right - b.left) / (a.right - a.left), (b.bottom - b.top) / (a.bottom - a.top),
             ((b.top + b.bottom) - (a.top + a.bottom)) / 2 / (a.bottom - a.top))
            for a, b in zip(found, reference) if a is not None and b is not None and a.iou(b) > 0]
    return tuple(np.median(rows, axis=0)) if rows else (float("nan"),) * 3


def write_sheet(path: Path, scenes: list[np.ndarray], boxes: list[FaceBox | None]) -> None:
    crops = [Image.fromarray(rgb).crop(box.square(0.2, rgb.shape[1], rgb.shape[0])).resize((96, 96))
             for rgb, box in zip(scenes, boxes) if box is not None]
    columns = 12
    sheet = Image.new("RGB", (96 * columns, 96 * max(1, -(-len(crops) // columns))), "white")
    for i, crop in enumerate(crops):
        sheet.paste(crop, (96 * (i % columns), 96 * (i // columns)))
    sheet.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder holding infant-cry-scenes/ and infant-web/")
    parser.add_argument("--limit", type=int, default=0, help="use about this many images of each set (0 = all)")
    parser.add_argument("--frames", type=int, default=60, help="640×480 frames timed per detector and thread count")
    parser.add_argument("--detectors", default=",".join(registry.detector_names()))
    parser.add_argument("--sheet-dir", type=Path, help="write one contact sheet of scene crops per detector here")
    args = parser.parse_args()
    detectors = args.detectors.split(",")
    scenes = [np.asarray(load_rgb(p)) for p in image_files(args.data / "infant-cry-scenes", args.limit)]
    web = [np.asarray(load_rgb(p)) for p in image_files(args.data / "infant-web", args.limit)]
    rng = np.random.default_rng(0)
    pastes = [pasted(rgb, rng) for rgb in web]
    frames = [as_frame(rgb) for rgb in scenes[:: max(1, len(scenes) // args.frames)][: args.frames]]
    classes = {d: type(registry.get_detector(d)) for d in detectors}
    alignment = {d: cls.alignment for d, cls in classes.items() if cls.alignment is not None}
    for cls in classes.values():
        cls.alignment = None  # detect raw boxes, to measure the alignment itself
    raw = {d: {"scenes": [largest(x, d) for x in scenes], "web": [largest(x, d) for x in web],
               "pasted": [largest(frame, d) for frame, _ in pastes]} for d in detectors}
    found = {d: {k: [aligned(b, alignment.get(d)) for b in v] for k, v in sets.items()} for d, sets in raw.items()}
    for d, cls in classes.items():
        cls.alignment = alignment.get(d)
    reference = found.get("mtcnn")
    print(f"{len(scenes)} infant-cry-scenes, {len(web)} infant-web images ({len(pastes)} pasted at {PASTED_SIDE} px on "
          f"640×480), {len(frames)} timed 640×480 frames; {torch.get_num_threads()} torch threads available\n")
    print("| detector | ms/frame, 1 thread | ms/frame, 2 threads | scenes | web | pasted | agree with MTCNN (scenes, web) | raw |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for d in detectors:
        one, two = ms_per_frame(frames, d, 1), ms_per_frame(frames, d, 2)
        share = {k: np.mean([b is not None for b in v]) for k, v in found[d].items()}
        hits = np.mean([inside(b, where) for b, (_, where) in zip(found[d]["pasted"], pastes)])
        agree, before = (agreement_text(found[d], reference), agreement_text(raw[d], reference)) if reference and d != "mtcnn" else ("", "")
        print(f"| {d} | {one:.1f} | {two:.1f} | {share['scenes']:.1%} | {share['web']:.1%} | {hits:.1%} | {agree} | {before} |")
    if reference:
        for d in detectors:
            if d != "mtcnn":
                w, h, dy = box_shape(raw[d]["scenes"] + raw[d]["web"], reference["scenes"] + reference["web"])
                print(f"{d}: MTCNN's box is {w:.2f}× as wide, {h:.2f}× as tall, centre {dy:+.2f} of the height lower")
    if args.sheet_dir:
        args.sheet_dir.mkdir(parents=True, exist_ok=True)
        for d in detectors:
            write_sheet(args.sheet_dir / f"{d}.jpg", scenes, found[d]["scenes"])


if __name__ == "__main__":
    main()
