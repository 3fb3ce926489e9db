"""How decoding, the decode cache, memory and epoch time grow with the dataset: 2k, 20k and 100k images.

Generates babyface's synthetic faces once (small files: 64×64 JPEG by default), then for each size, in a
fresh process (so that peak memory is that size's own) and with a fresh cache folder:

  decode + build   first run: hash, decode, write the cache file (files already in the OS page cache)
  warm load        second run: hash every file, verify the cache file's checksum, decode nothing
  cache file       bytes on disk (data + index)
  in memory        resident anonymous memory added by holding every image as one uint8 tensor, and its
                   ratio to the raw bytes N×3×S×S (goal ≤ 1.2)
  epoch            the CNN (batch 20, augmentation on) over --batches random batches, extrapolated to one
                   epoch over all N images (N / batch × seconds per batch): held in memory, and streamed
                   from the memory-mapped cache file (what --cache-mem below the data's size does; the file
                   is in the OS page cache here, a cold disk would be slower)
  peak RSS         the process's maximum resident memory (ru_maxrss), and before any image was read
                   (Python, torch and babyface imported: the baseline)

Run alone on a quiet machine (other processes distort every number):
    python benchmarks/memory_scale.py                              # 2,000, 20,000 and 100,000 images
    python benchmarks/memory_scale.py --sizes 200,400 --batches 5  # a quick check that it runs
    python benchmarks/memory_scale.py --work /big/disk/scale       # keep the generated images for a rerun
100,000 generated faces take about 1.5 GB of disk (images + cache) and a while to generate.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from babyface.config import DataConfig, TrainConfig
from babyface.data.cache import load_decoded
from babyface.data.scan import scan_dataset
from babyface.models import create_model
from babyface.tools.synthetic import SynthConfig, generate_dataset
from babyface.training.fit import train_one_epoch
from babyface.training.objective import Objective
from babyface.training.prepare import PreparedData
from babyface.training.trainer import Trainer, build_optimizer

MB = 2**20


def generate(root: Path, largest: int, file_size: int) -> float:
    """Enough synthetic faces for ``largest`` training images (80% of those generated are training images)."""
    if (root / "train").is_dir():
        return 0.0
    start = time.perf_counter()
    generate_dataset(root, SynthConfig(n=math.ceil(largest / 0.8) + 60, seed=0, size=file_size, test_fraction=0.2), progress=True)
    return time.perf_counter() - start


def first_samples(root: Path, n: int) -> tuple[list[Path], list[int]]:
    """The first ``n`` training images by generation index, so every class is represented at every size."""
    samples = sorted(scan_dataset(root).train.samples, key=lambda s: int(re.sub(r"\D", "", s.path.stem) or 0))[:n]
    if len(samples) < n:
        raise SystemExit(f"{root}: only {len(samples)} training images; remove the folder to regenerate")
    return [s.path for s in samples], [s.label for s in samples]


def rss_anon() -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"RssAnon:\s+(\d+) kB", status).group(1)) * 1024


def epoch_seconds(data, n_images: int, batches: int, batch_size: int, model_name: str, image_size: int) -> float:
    """Seconds of one epoch over ``n_images``, extrapolated from ``batches`` random batches of ``data``."""
    generator = torch.Generator().manual_seed(0)
    picked = torch.randperm(len(data), generator=generator)[:batches * batch_size].tolist()
    subset = data.subset(picked)
    torch.manual_seed(0)
    model = create_model(model_name, 3, image_size)
    config = TrainConfig(batch_size=batch_size, progress=False)
    optimizer = build_optimizer(model, config)

    def one_epoch(images) -> None:
        data = PreparedData.bare(images, [0.5] * 3, [0.25] * 3)
        train_one_epoch(Trainer(config, data, model, Objective.plain(images), optimizer, generator, torch.device("cpu")))

    one_epoch(data.subset(picked[:batch_size * 2]))  # warm-up
    start = time.perf_counter()
    one_epoch(subset)
    per_batch = (time.perf_counter() - start) / math.ceil(len(picked) / batch_size)
    return per_batch * math.ceil(n_images / batch_size)


def measure(root: Path, n: int, cache_dir: Path, args: argparse.Namespace) -> dict:
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    paths, labels = first_samples(root, n)
    opts = DataConfig(image_size=args.image_size, cache_dir=str(cache_dir))
    start = time.perf_counter()
    load_decoded(paths, labels, opts, False, "decode")
    build = time.perf_counter() - start
    start = time.perf_counter()
    streamed = load_decoded(paths, labels, opts, False, "decode")
    warm = time.perf_counter() - start
    before = rss_anon()
    held = streamed.in_memory()
    in_memory = rss_anon() - before
    raw = n * 3 * args.image_size ** 2
    return {
        "images": n, "raw_mb": raw / MB, "build_s": build, "warm_s": warm,
        "cache_mb": sum(p.stat().st_size for p in cache_dir.iterdir()) / MB,
        "memory_mb": in_memory / MB, "ratio": in_memory / raw,
        "epoch_memory_s": epoch_seconds(held, n, args.batches, args.batch_size, args.model, args.image_size),
        "epoch_streamed_s": epoch_seconds(streamed, n, args.batches, args.batch_size, args.model, args.image_size),
        "start_rss_mb": baseline, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_in_fresh_process(root: Path, n: int, work: Path, argv: list[str]) -> dict:
    cache_dir = work / f"cache-{n}"
    command = [sys.executable, __file__, *argv, "--worker", str(n), "--data", str(root), "--cache-dir", str(cache_dir)]
    result = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"\n{torch.get_num_threads()} threads; {args.image_size}×{args.image_size} uint8; {args.model}, batch {args.batch_size}, "
          f"epochs extrapolated from {args.batches} random batches\n")
    print("| images | raw MB | decode + build cache (s) | warm load (s) | cache file MB | in memory MB | in memory / raw | "
          "epoch in memory (s) | epoch streamed (s) | peak RSS MB (baseline) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['images']:,} | {r['raw_mb']:.0f} | {r['build_s']:.1f} | {r['warm_s']:.1f} | {r['cache_mb']:.0f} | {r['memory_mb']:.0f} | "
              f"{r['ratio']:.2f} | {r['epoch_memory_s']:.1f} | {r['epoch_streamed_s']:.1f} | {r['peak_rss_mb']:.0f} ({r['start_rss_mb']:.0f}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,20000,100000", help="comma-separated image counts")
    parser.add_argument("--image-size", type=int, default=64, help="training size the images are decoded to")
    parser.add_argument("--file-size", type=int, default=64, help="side of the generated JPEG files")
    parser.add_argument("--batches", type=int, default=30, help="batches timed per epoch estimate")
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--work", help="folder for the generated images and caches (kept); default a temporary one")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(Path(args.data), args.worker, Path(args.cache_dir), args)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    shared = ["--image-size", str(args.image_size), "--batches", str(args.batches), "--batch-size", str(args.batch_size), "--model", args.model]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        root = work / f"faces-{args.file_size}px"
        seconds = generate(root, max(sizes), args.file_size)
        if seconds:
            print(f"generated {math.ceil(max(sizes) / 0.8) + 60:,} faces in {seconds:.0f} s")
        for n in sizes:
            for stale in (work / f"cache-{n}").glob("*"):
                stale.unlink()
        print_table([run_in_fresh_process(root, n, work, shared) for n in sizes], args)


if __name__ == "__main__":
    main()
