"""Does aligning faces by the eyes pay? Writes eye-levelled copies of image folders for training and testing.

    PYTHONPATH=src python benchmarks/eye_alignment.py SRC OUT [SRC OUT ...] [--min-angle 3] [--max-angle 45]

Each image's eyes are found with BlazeFace's keypoints (babyface.faces.blazeface.eyes) and the image is rotated about
their midpoint so that the line between them is level; the size and framing stay as they were (corners the rotation
uncovers are filled with the image's mean colour). Images with no face found, or tilted less than --min-angle or more
than --max-angle degrees (a profile, or a wrong detection), are copied as they are. The folder layout (train/test/
class) is kept, so `babyface train` and `evaluate` run on OUT as on SRC; per folder it prints how many images were
rotated and the spread of their angles, and writes OUT/alignment.csv (file, angle, rotated).
"""

from __future__ import annotations

import argparse
import math
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from babyface.data.images import is_image_file, load_rgb
from babyface.faces.blazeface import eyes
from babyface.outputs import write_csv


def eye_angle(rgb: np.ndarray) -> tuple[float, tuple[float, float]] | None:
    """Degrees the eye line is turned clockwise (image y points down) and the eyes' midpoint; None without a face."""
    found = eyes(rgb)
    if found is None:
        return None
    (rx, ry), (lx, ly) = found
    return math.degrees(math.atan2(ly - ry, lx - rx)), ((rx + lx) / 2, (ry + ly) / 2)


def level(image: Image.Image, angle: float, centre: tuple[float, float]) -> Image.Image:
    fill = tuple(int(v) for v in np.asarray(image).reshape(-1, 3).mean(0))
    return image.rotate(angle, resample=Image.BILINEAR, center=centre, fillcolor=fill)


def align_folder(src: Path, out: Path, min_angle: float, max_angle: float) -> dict:
    rows, angles = [], []
    for path in sorted(p for p in src.rglob("*") if p.is_file() and is_image_file(p)):
        target = out / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        image = load_rgb(path)
        found = eye_angle(np.asarray(image))
        rotate = found is not None and min_angle <= abs(found[0]) <= max_angle
        if rotate:
            level(image, found[0], found[1]).save(target.with_suffix(".png"))
            angles.append(found[0])
        else:
            shutil.copy2(path, target)
        rows.append([path.relative_to(src).as_posix(), "" if found is None else f"{found[0]:.2f}", int(rotate)])
    write_csv(out / "alignment.csv", ["file", "angle", "rotated"], rows)
    spread = np.abs(angles) if angles else np.zeros(1)
    return {"images": len(rows), "no_face": sum(r[1] == "" for r in rows), "rotated": len(angles),
            "median_abs_angle": float(np.median(spread)), "p90_abs_angle": float(np.percentile(spread, 90))}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", help="SRC OUT, repeated: a folder to align and where its copy goes")
    parser.add_argument("--min-angle", type=float, default=3.0, help="degrees under which an image is left as it is")
    parser.add_argument("--max-angle", type=float, default=45.0, help="degrees over which a detection is not trusted")
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        parser.error("give SRC OUT in pairs")
    print(f"{'folder':<40}{'images':>8}{'no face':>9}{'rotated':>9}{'median |angle|':>16}{'p90 |angle|':>13}")
    for src, out in zip(args.pairs[::2], args.pairs[1::2]):
        r = align_folder(Path(src), Path(out), args.min_angle, args.max_angle)
        print(f"{src:<40}{r['images']:>8}{r['no_face']:>9}{r['rotated']:>9}{r['median_abs_angle']:>16.1f}{r['p90_abs_angle']:>13.1f}")


if __name__ == "__main__":
    main()
