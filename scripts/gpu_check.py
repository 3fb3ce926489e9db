"""GPU check: short trainings on CUDA in every number format and layout babyface can choose there, against the CPU.

For the CNN and ResNet-18: CUDA with --precision auto (bf16 where the GPU has it) and --channels-last auto (the timed
probe), bf16 and fp32 with each layout forced, fp16 with its gradient scaler (the path auto takes on GPUs without bf16,
forced here by hiding bf16 support), and the CPU in fp32. Each trained model is then evaluated on the CPU in fp32, to
show that what was trained on the GPU in mixed precision loads and predicts anywhere. Prints the hardware, the
choices auto made and a table of training images/s, the speed-up over the CPU and test accuracy.
Run with `bash scripts/gpu_check.sh` on a machine with an NVIDIA GPU (about 3 minutes).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path
from unittest import mock

import torch

from babyface.config import EvalConfig, TrainConfig
from babyface.evaluation.evaluate import evaluate_run
from babyface.hardware import describe_hardware
from babyface.tools.synthetic import SynthConfig, generate_dataset
from babyface.training.fit import fit

VARIANTS = {  # name: (device, precision, channels_last)
    "cuda auto": ("cuda", "auto", "auto"),
    "cuda bf16 channels-last": ("cuda", "bf16", "on"),
    "cuda bf16 NCHW": ("cuda", "bf16", "off"),
    "cuda fp16 + grad scaler": ("cuda", "fp16", "auto"),
    "cuda fp32": ("cuda", "fp32", "off"),
    "cpu fp32": ("cpu", "fp32", "off"),
}


def images_per_second(run: Path, train_images: int) -> float:
    """Mean over the epochs after the first (which pays for CUDA start-up and autotuning)."""
    with open(run / "history.csv", newline="") as handle:
        seconds = [float(row["seconds"]) for row in csv.DictReader(handle)]
    timed = seconds[1:] or seconds
    return train_images * len(timed) / sum(timed)


def train(data: Path, out: Path, model: str, variant: str, epochs: int, batch_size: int) -> dict:
    device, precision, layout = VARIANTS[variant]
    config = TrainConfig(data=str(data), out=str(out), model=model, epochs=epochs, batch_size=batch_size, device=device,
                         precision="auto" if precision == "fp16" else precision, channels_last=layout, progress=False)
    if precision == "fp16":
        with mock.patch.object(torch.cuda, "is_bf16_supported", lambda *a, **k: False):
            run = fit(config)
    else:
        run = fit(config)
    meta = json.loads((run / "model.json").read_text())
    metrics = evaluate_run(EvalConfig(run=str(run), device="cpu", precision="fp32", framing="whole", bootstrap=0,
                                      progress=False, out=str(out / "cpu-evaluation")))
    return {"images_s": images_per_second(run, meta["data"]["train"]), "compute": meta["compute"],
            "accuracy": metrics["accuracy"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1800)
    parser.add_argument("--gpu-epochs", type=int, default=4)
    parser.add_argument("--cpu-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to check (run this on a machine with an NVIDIA GPU)")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate_dataset(data, SynthConfig(n=args.n), progress=False)
        rows = {(model, variant): train(data, Path(tmp) / f"{model}-{variant.replace(' ', '_')}", model, variant,
                                        args.cpu_epochs if variant.startswith("cpu") else args.gpu_epochs, args.batch_size)
                for model in ("cnn", "resnet18") for variant in VARIANTS}
    print(f"\n{describe_hardware(torch.device('cuda'))}\nbatch {args.batch_size}; test accuracy: each model evaluated on the "
          "CPU in fp32 after training")
    print("| model | variant | chosen | images/s | vs CPU fp32 | test accuracy |\n|---|---|---|---|---|---|")
    for (model, variant), row in rows.items():
        compute = row["compute"]
        chosen = f"{compute['precision']}, {'channels-last' if compute['channels_last'] else 'NCHW'}"
        speed_up = row["images_s"] / rows[model, "cpu fp32"]["images_s"]
        print(f"| {model} | {variant} | {chosen} | {row['images_s']:,.0f} | {speed_up:.1f}× | {row['accuracy']:.3f} |")
    for model in ("cnn", "resnet18"):
        auto = rows[model, "cuda auto"]["compute"]
        print(f"{model}, cuda auto: {auto['precision_reason']}; {auto['layout_reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
