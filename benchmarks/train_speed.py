"""Training epoch time: babyface's pipeline against the reference's per-image pipeline, side by side.

naive     PIL open + torchvision transforms at full resolution in ``__getitem__``, DataLoader with
          num_workers=0, batch 20: what the reference project does (``babyface.data.naive``).
babyface  every image decoded once (JPEG draft mode) to 64×64 uint8 in memory, whole batches augmented
          as tensors with the same family and ranges (flip, rotation 15°, shear 10, scale 0.8–1.2,
          colour jitter 0.2, plus grayscale 0.2).

Run alone (a second CPU-heavy process distorts every number):
    python benchmarks/train_speed.py                      # 1,800 generated 400×400 JPEGs, both models
    python benchmarks/train_speed.py --n 600 --epochs 1   # a quicker look
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from babyface.config import TrainConfig
from babyface.data.decoded import channel_stats, decode_images
from babyface.data.naive import NaiveFolder, naive_epoch
from babyface.data.scan import scan_dataset
from babyface.data.synthetic import SynthConfig, generate_dataset
from babyface.models import create_model
from babyface.train import build_optimizer, train_one_epoch


def make_frames(root: Path, n: int) -> Path:
    """Synthetic faces rendered at 400×400, like frames cut from video."""
    generate_dataset(root, SynthConfig(n=n, size=400, seed=0), progress=False)
    return root


def run(data: Path, models: list[str], epochs: int, batch_size: int) -> list[dict]:
    samples = scan_dataset(data).train.samples
    start = time.perf_counter()
    decoded = decode_images([s.path for s in samples], [s.label for s in samples], 64, progress=False)
    decode_seconds = time.perf_counter() - start
    mean, std = channel_stats(decoded.images)
    config = TrainConfig(batch_size=batch_size, progress=False)
    rows = []
    for name in models:
        torch.manual_seed(0)
        model = create_model(name, 3, 64)
        optimizer = build_optimizer(model, config)
        loader = DataLoader(NaiveFolder(samples, mean, std), batch_size=batch_size, shuffle=True, num_workers=0)
        naive = min(naive_epoch(model, loader, optimizer) for _ in range(epochs))
        generator = torch.Generator().manual_seed(0)
        fast = []
        for _ in range(epochs):
            t = time.perf_counter()
            train_one_epoch(model, decoded, mean, std, nn.CrossEntropyLoss(), optimizer, torch.device("cpu"), config, generator)
            fast.append(time.perf_counter() - t)
        rows.append({"model": name, "images": len(samples), "naive_s": naive, "babyface_s": min(fast), "decode_once_s": decode_seconds})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1800, help="generated images (80%% are the training split timed here)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per pipeline; the fastest is reported")
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--models", default="cnn,resnet18")
    parser.add_argument("--data", help="an existing dataset instead of generated 400×400 frames")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else make_frames(Path(tmp) / "frames", args.n)
        rows = run(data, args.models.split(","), args.epochs, args.batch_size)
    print(f"\n{torch.get_num_threads()} threads, batch {args.batch_size}, best of {args.epochs} epoch(s)\n")
    print("| model | train images | naive epoch (s) | babyface epoch (s) | speed-up | naive img/s | babyface img/s | one-off decode (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['images']} | {r['naive_s']:.1f} | {r['babyface_s']:.1f} | {r['naive_s'] / r['babyface_s']:.2f}× | "
              f"{r['images'] / r['naive_s']:.0f} | {r['images'] / r['babyface_s']:.0f} | {r['decode_once_s']:.1f} |")


if __name__ == "__main__":
    main()
