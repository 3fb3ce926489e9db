"""Compare the face detectors on a folder of whole-scene photos: share of images with a face, seconds per
image, and a contact sheet of the largest crop per image to judge by eye how many are really faces.

    python benchmarks/face_detectors.py ../shared/data/infant-cry-scenes --limit 80 --sheet-dir /tmp/sheets
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from PIL import Image

from babyface.data.faces import DETECTORS, detect_faces
from babyface.data.images import is_image_file, load_rgb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--limit", type=int, default=80, help="every k-th image so that about this many are used")
    parser.add_argument("--min-score", type=float, default=0.0)
    parser.add_argument("--sheet-dir", type=Path)
    args = parser.parse_args()
    files = sorted(p for p in args.folder.rglob("*") if is_image_file(p))
    files = files[:: max(1, len(files) // args.limit)][: args.limit]
    print(f"{'detector':<8} {'images':>6} {'with face':>10} {'faces/img':>9} {'s/img':>6}")
    for detector in DETECTORS:
        crops, found, total = [], 0, 0
        start = time.perf_counter()
        for path in files:
            image = load_rgb(path)
            boxes = detect_faces(image, detector=detector, min_score=args.min_score)
            found += bool(boxes)
            total += len(boxes)
            if boxes:
                crops.append(image.crop(boxes[0].square(0.2, *image.size)).resize((96, 96)))
        seconds = (time.perf_counter() - start) / len(files)
        print(f"{detector:<8} {len(files):>6} {found / len(files):>10.1%} {total / len(files):>9.2f} {seconds:>6.2f}")
        if args.sheet_dir and crops:
            args.sheet_dir.mkdir(parents=True, exist_ok=True)
            columns = 10
            sheet = Image.new("RGB", (columns * 96, -(-len(crops) // columns) * 96), "white")
            for n, crop in enumerate(crops):
                sheet.paste(crop, ((n % columns) * 96, (n // columns) * 96))
            sheet.save(args.sheet_dir / f"{detector}.png")


if __name__ == "__main__":
    main()
