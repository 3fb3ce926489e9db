"""How fast `babyface data audit` is: images / seconds / images per second at a few dataset sizes.

Images are cheap random scenes (smoothed noise, 128×128 JPEG) in 3 classes, a tenth of them rotated,
flipped or grayscale copies of another, written to a temporary folder; only the audit itself is timed.

    python benchmarks/audit_scale.py                  # 2,000 and 20,000 images
    python benchmarks/audit_scale.py --sizes 2000     # one size
    python benchmarks/audit_scale.py --full           # adds 100,000 (needs ~2 GB of disk and some minutes)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from scipy.ndimage import gaussian_filter

from babyface.data.audit import AuditConfig, audit_dataset

CLASSES = ("happy", "neutral", "sad")


def random_scene(rng: np.random.Generator, size: int = 128) -> Image.Image:
    noise = rng.random((size // 4, size // 4, 3)).astype(np.float32)
    smooth = gaussian_filter(noise, sigma=(1.5, 1.5, 0))
    smooth = (smooth - smooth.min()) / max(float(np.ptp(smooth)), 1e-6) * 255
    return Image.fromarray(smooth.astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)


def make_dataset(root: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    originals: list[Image.Image] = []
    for i in range(n):
        if originals and rng.random() < 0.1:
            image = originals[int(rng.integers(len(originals)))].rotate(float(rng.uniform(-15, 15)))
            image = ImageOps.mirror(image) if rng.random() < 0.5 else image.convert("L")
        else:
            image = random_scene(rng)
            if len(originals) < 1000:
                originals.append(image)
        folder = root / CLASSES[i % 3]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i:06d}.jpg", quality=85)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--full", action="store_true", help="also 100,000 images")
    args = parser.parse_args()
    sizes = args.sizes + ([100_000] if args.full else [])
    print(f"{'images':>8} {'seconds':>9} {'images/s':>9} {'clusters':>9}")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            make_dataset(Path(tmp), n)
            start = time.perf_counter()
            report = audit_dataset(AuditConfig(data=tmp, progress=False))
            seconds = time.perf_counter() - start
        print(f"{n:>8} {seconds:>9.1f} {n / seconds:>9.0f} {len(report.clusters):>9}")


if __name__ == "__main__":
    main()
