"""Training speed: babyface's pipeline against the reference's per-image pipeline, and both against the
bare training step, side by side in one run.

naive     PIL open + torchvision transforms at full resolution in ``__getitem__``, DataLoader with
          num_workers=0, batch 20: what the reference project does (``naive_pipeline``).
babyface  every image decoded once (JPEG draft mode) to 64×64 uint8, whole batches augmented as tensors
          with the same family and ranges (``train_one_epoch``).
bare      the training step alone on random tensors already in memory: the ceiling for any pipeline;
          fp32, fp32 + channels_last, bf16 autocast (NCHW and channels_last), and with ``--compile`` torch.compile.
auto      babyface's epoch again with ``--precision auto --channels-last auto`` as ``train`` resolves them here.

The CPU, its bf16/VNNI/AMX flags and torch's capability are printed above the tables.

Image sets: 400×400 JPEG frames (like video) and 48×48 JPEGs (like FER2013), generated; ``--data DIR``
adds a real dataset (e.g. ../shared/data/infant-web). Whether both pipelines train equally well is
checked by tests/test_pipeline_parity.py (3 seeds).

Run alone (a second CPU-heavy process distorts every number):
    python benchmarks/train_speed.py                       # both models, both generated sets
    python benchmarks/train_speed.py --n 600 --epochs 1    # a quicker look
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
from babyface.data.scan import scan_dataset
from babyface.hardware import describe_hardware
from babyface.models import create_model
from babyface.tools.synthetic import SynthConfig, generate_dataset
from babyface.training.compute import choose_compute
from babyface.training.fit import train_one_epoch
from babyface.training.objective import Objective
from babyface.training.prepare import PreparedData
from babyface.training.trainer import Trainer, build_optimizer
from naive_pipeline import NaiveFolder, naive_epoch

SIZE = 64


def make_set(root: Path, n: int, side: int) -> Path:
    """Synthetic faces saved at ``side``×``side`` JPEG."""
    generate_dataset(root, SynthConfig(n=n, size=side, seed=0), progress=False)
    return root


def pipeline_epochs(data: Path, name: str, epochs: int, batch_size: int) -> dict:
    """Best-of-``epochs`` seconds per epoch of each pipeline, each on a fresh model with the same seed."""
    samples = scan_dataset(data).train.samples
    start = time.perf_counter()
    decoded = decode_images([s.path for s in samples], [s.label for s in samples], SIZE, progress=False)
    decode_seconds = time.perf_counter() - start
    mean, std = channel_stats(decoded.images)
    config = TrainConfig(batch_size=batch_size, progress=False)
    model, optimizer = fresh(name, config)
    loader = DataLoader(NaiveFolder(samples, mean, std), batch_size=batch_size, shuffle=True, num_workers=0)
    naive = min(naive_epoch(model, loader, optimizer) for _ in range(epochs))
    fast = babyface_epochs(name, decoded, mean, std, config, epochs, auto=False)
    auto = babyface_epochs(name, decoded, mean, std, config, epochs, auto=True)
    return {"images": len(samples), "naive_s": naive, "babyface_s": fast["seconds"], "auto_s": auto["seconds"],
            "auto": auto["compute"], "decode_s": decode_seconds}


def babyface_epochs(name: str, decoded, mean, std, config: TrainConfig, epochs: int, auto: bool) -> dict:
    """Best-of-``epochs`` seconds of babyface's epoch, fp32 NCHW or as --precision/--channels-last auto choose."""
    model, optimizer = fresh(name, config)
    compute = choose_compute(config.replace(precision="auto" if auto else "fp32", channels_last="auto" if auto else "off"),
                             model, torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    trainer = Trainer(config, PreparedData.bare(decoded, mean, std), model, Objective.plain(decoded), optimizer, generator,
                      torch.device("cpu"), compute=compute)
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        train_one_epoch(trainer)
        times.append(time.perf_counter() - t)
    chosen = f"{compute.precision.name}{', channels-last' if compute.channels_last else ''}"
    return {"seconds": min(times), "compute": chosen}


def fresh(name: str, config: TrainConfig) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = create_model(name, 3, SIZE)
    return model, build_optimizer(model, config)


def bare_step(name: str, batch_size: int, variant: str, seconds: float) -> float:
    """Training images/s of the step alone (random inputs in memory), after warm-up."""
    model, optimizer = fresh(name, TrainConfig())
    model.train()
    x, y = torch.randn(batch_size, 3, SIZE, SIZE), torch.randint(0, 3, (batch_size,))
    if variant not in ("fp32", "bf16"):
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    step_model = torch.compile(model) if variant == "compile" else model

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant.startswith("bf16")):
            loss = nn.functional.cross_entropy(step_model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        count += 1
    return count * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1800, help="generated images per set (80%% are the training split timed here)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per pipeline; the fastest is reported")
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--models", default="cnn,resnet18")
    parser.add_argument("--data", help="also time this dataset (BabyFace layout)")
    parser.add_argument("--step-seconds", type=float, default=8.0, help="time spent on each bare-step variant")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (includes no compile time)")
    args = parser.parse_args()
    models = args.models.split(",")
    variants = ["fp32", "fp32+cl", "bf16", "bf16+cl"] + (["compile"] if args.compile else [])
    bare = {(m, v): bare_step(m, args.batch_size, v, args.step_seconds) for m in models for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        sets = {"400×400 frames": make_set(Path(tmp) / "frames", args.n, 400), "48×48 faces": make_set(Path(tmp) / "small", args.n, 48)}
        if args.data:
            sets[Path(args.data).name] = Path(args.data)
        rows = [(s, m, pipeline_epochs(path, m, args.epochs, args.batch_size)) for s, path in sets.items() for m in models]
    print(f"\n{describe_hardware(torch.device('cpu'))}")
    print(f"{torch.get_num_threads()} threads, batch {args.batch_size}, {SIZE}×{SIZE} training size, best of {args.epochs} epoch(s)\n")
    print("| model | " + " | ".join(f"bare step {v} (img/s)" for v in variants) + " |")
    print("|---|" + "---|" * len(variants))
    for m in models:
        print(f"| {m} | " + " | ".join(f"{bare[m, v]:.0f}" for v in variants) + " |")
    print("\n| images | model | train images | naive epoch (s) | babyface epoch fp32 (s) | speed-up | naive img/s | babyface img/s "
          "| babyface / bare fp32 step | babyface epoch auto (s) | auto chose | auto vs fp32 | one-off decode (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s, m, r in rows:
        fast_rate = r["images"] / r["babyface_s"]
        print(f"| {s} | {m} | {r['images']} | {r['naive_s']:.1f} | {r['babyface_s']:.1f} | {r['naive_s'] / r['babyface_s']:.2f}× | "
              f"{r['images'] / r['naive_s']:.0f} | {fast_rate:.0f} | {fast_rate / bare[m, 'fp32']:.0%} | {r['auto_s']:.1f} | "
              f"{r['auto']} | {r['babyface_s'] / r['auto_s']:.2f}× | {r['decode_s']:.1f} |")


if __name__ == "__main__":
    main()
