"""GPU check: short trainings with bf16 autocast and channels_last on CUDA against the same on CPU.

Prints training images/s for the CNN and ResNet-18 and the speed-up of CUDA over this machine's CPU.
Run with `bash scripts/gpu_check.sh` on a machine with an NVIDIA GPU (about 2 minutes).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import torch

from babyface.config import TrainConfig
from babyface.data.synthetic import SynthConfig, generate_dataset
from babyface.training.fit import fit


def images_per_second(run: Path, train_images: int) -> float:
    """Mean over the epochs after the first (which pays for CUDA start-up and autotuning)."""
    with open(run / "history.csv", newline="") as handle:
        seconds = [float(row["seconds"]) for row in csv.DictReader(handle)]
    timed = seconds[1:] or seconds
    return train_images * len(timed) / sum(timed)


def train(data: Path, out: Path, model: str, device: str, epochs: int, batch_size: int) -> float:
    cuda = device == "cuda"
    config = TrainConfig(data=str(data), out=str(out), model=model, epochs=epochs, batch_size=batch_size, device=device,
                         precision="bf16" if cuda else "fp32", channels_last=cuda, progress=False)
    run = fit(config)
    train_images = json.loads((run / "model.json").read_text())["data"]["train"]
    return images_per_second(run, train_images)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1800)
    parser.add_argument("--gpu-epochs", type=int, default=6)
    parser.add_argument("--cpu-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=20)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to check (run this on a machine with an NVIDIA GPU)")
        return 1
    name = torch.cuda.get_device_name(0)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate_dataset(data, SynthConfig(n=args.n), progress=False)
        rows = []
        for model in ("cnn", "resnet18"):
            gpu = train(data, Path(tmp) / f"{model}-cuda", model, "cuda", args.gpu_epochs, args.batch_size)
            cpu = train(data, Path(tmp) / f"{model}-cpu", model, "cpu", args.cpu_epochs, args.batch_size)
            rows.append((model, gpu, cpu))
    print(f"\nGPU: {name}; torch {torch.__version__}; batch {args.batch_size}; CUDA bf16 autocast + channels_last vs CPU fp32 "
          f"({torch.get_num_threads()} threads)")
    print("| model | CUDA images/s | CPU images/s | speed-up |\n|---|---|---|---|")
    for model, gpu, cpu in rows:
        print(f"| {model} | {gpu:,.0f} | {cpu:,.0f} | {gpu / cpu:.1f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
