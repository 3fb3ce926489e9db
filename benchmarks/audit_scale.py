"""How fast `babyface data audit` is: seconds per stage, total and peak memory at a few dataset sizes.

Images are cheap random scenes (smoothed noise, 128×128 JPEG) in 3 classes, a tenth of them rotated,
flipped or grayscale copies of another. Generating them is not timed; with ``--cache DIR`` they are written
once to ``DIR/n<N>-seed<S>/`` and reused by later runs (delete the folder to regenerate).

    python benchmarks/audit_scale.py                          # 2,000 and 20,000 images, in a temporary folder
    python benchmarks/audit_scale.py --images 2000            # one size
    python benchmarks/audit_scale.py --full --cache /data/bench   # adds 100,000 (~2 GB of disk), kept for reruns

Stages: ``list`` (scan the folders), ``describe`` (decode, hash, signatures), ``pairs`` (exact and
near-duplicate pairs, clusters, their classification and the statistics). Peak memory is the process's
maximum resident set so far (sizes run in increasing order, so each row's figure is that size's peak).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps
from scipy.ndimage import gaussian_filter

from babyface.data.duplicates import describe_files
from babyface.data.scan import list_dataset_files
from babyface.tools.audit import AuditConfig, audit_described

CLASSES = ("happy", "neutral", "sad")
STAGES = ("list", "describe", "pairs")
COMPLETE = "complete.json"


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


def cached_dataset(cache: Path, n: int, seed: int) -> tuple[Path, float]:
    """The generated folder for (n, seed) under ``cache``, made unless a completed one is there; (folder, seconds)."""
    folder = cache / f"n{n}-seed{seed}"
    if (folder / COMPLETE).is_file():
        return folder, 0.0
    start = time.perf_counter()
    make_dataset(folder, n, seed)
    (folder / COMPLETE).write_text(json.dumps({"images": n, "seed": seed}))
    return folder, time.perf_counter() - start


@contextmanager
def timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    seconds[stage] = time.perf_counter() - start


def audit_stages(data: Path) -> tuple[dict[str, float], int]:
    """Seconds per stage of the audit (the steps of `audit_dataset`) and the number of duplicate clusters."""
    config = AuditConfig(data=str(data), progress=False)
    seconds: dict[str, float] = {}
    with timed(seconds, "list"):
        root, listed, paths = list_dataset_files(data)
    with timed(seconds, "describe"):
        described = describe_files(paths, progress=False, desc="audit")
    with timed(seconds, "pairs"):
        report = audit_described(config, root, listed, described)
    return seconds, len(report.clusters)


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", "--sizes", dest="sizes", type=int, nargs="+", default=[2000, 20000],
                        help="dataset sizes (default: 2000 20000)")
    parser.add_argument("--full", action="store_true", help="also 100,000 images")
    parser.add_argument("--cache", type=Path, help="keep generated images in this folder and reuse them")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = sorted(set(args.sizes + ([100_000] if args.full else [])))
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp)
        print(f"{'images':>8} {'generate s':>10} " + " ".join(f"{s + ' s':>10}" for s in STAGES)
              + f" {'audit s':>9} {'images/s':>9} {'peak MB':>8} {'clusters':>9}", flush=True)
        for n in sizes:
            data, generated = cached_dataset(cache, n, args.seed)
            seconds, found = audit_stages(data)
            total = sum(seconds.values())
            print(f"{n:>8} {generated:>10.1f} " + " ".join(f"{seconds[s]:>10.1f}" for s in STAGES)
                  + f" {total:>9.1f} {n / total:>9.0f} {peak_memory_mb():>8.0f} {found:>9}", flush=True)


if __name__ == "__main__":
    main()
