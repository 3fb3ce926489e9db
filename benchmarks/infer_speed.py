"""Inference speed (and int8/bf16 accuracy) of PyTorch eager fp32 and bf16 vs onnxruntime fp32 and int8, side by side.

    python benchmarks/infer_speed.py                                  # cnn and resnet18, random weights, speed only
    python benchmarks/infer_speed.py --run runs/cnn --data data/synth  # a trained run: speed + test accuracy of each

Batch-1 latency (median and p99 over --repeats calls) and batch-64 throughput, all through the same backends that
``babyface predict`` uses; with a trained run, also each backend's agreement with PyTorch fp32's decisions. The CPU
and its bf16/VNNI/AMX flags are printed above the table. Random-weight models are calibrated for int8 on a small synthetic set. Pin the thread count
(--threads, default: torch's, i.e. OMP_NUM_THREADS) and keep the machine otherwise idle for comparable numbers.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from babyface.bundle import read_metadata
from babyface.bundle.single import META_FILE, WEIGHTS_FILE, bundle_metadata, save_bundle
from babyface.config import ExportConfig
from babyface.data.decoded import decode_images
from babyface.data.scan import scan_dataset
from babyface.hardware import describe_hardware
from babyface.inference.backends import OnnxBackend, TorchBackend
from babyface.inference.export import ParityError, export_run
from babyface.models import create_model
from babyface.run import RunFolder
from babyface.tools.synthetic import SynthConfig, generate_dataset

CLASSES = ["happy", "neutral", "sad"]


def latency_ms(backend, image: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Median and 99th percentile of single-image calls, after a warm-up."""
    for _ in range(max(10, repeats // 10)):
        backend.logits(image, 1)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        backend.logits(image, 1)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))]


def throughput(backend, batch: torch.Tensor, seconds: float = 3.0) -> float:
    backend.logits(batch, len(batch))
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        backend.logits(batch, len(batch))
        done += len(batch)
    return done / (time.perf_counter() - start)


def random_run(arch: str, size: int, folder: Path) -> Path:
    torch.manual_seed(0)
    model = create_model(arch, len(CLASSES), size).eval()
    save_bundle(folder, model, bundle_metadata(model, CLASSES, size, [0.5, 0.45, 0.4], [0.25, 0.25, 0.25]))
    return folder


def test_accuracy(backend, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((backend.logits(images, 64).argmax(1) == labels).float().mean())


def test_set(data: str, size: int, run: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """DATA/test, or for a folder of class folders the test images the run held out (its splits.csv)."""
    split = scan_dataset(data).test
    if split is not None:
        paths, labels = [s.path for s in split.samples], [s.label for s in split.samples]
    else:
        manifest = RunFolder(run).split_manifest()
        if manifest is None or not manifest.files("test"):
            raise SystemExit(f"{data} has no test/ split and {run} no held-out test images in its splits.csv")
        classes = read_metadata(run).classes
        rows = manifest.files("test")
        paths, labels = [manifest.root / r.file for r in rows], [classes.index(r.label) for r in rows]
    decoded = decode_images(paths, labels, size, progress=False)
    return decoded.images, decoded.labels


def benchmark_run(name: str, run: Path, calibration: str, args: argparse.Namespace, test: tuple | None) -> list[dict]:
    export_run(ExportConfig(run=str(run), out=str(run / "bench.onnx"), overwrite=True, parity_images=16))
    backends = {"torch eager fp32": TorchBackend(run, torch.device("cpu"), "fp32"),
                "torch eager bf16": TorchBackend(run, torch.device("cpu"), "bf16"),
                "onnxruntime fp32": OnnxBackend(run, run / "bench.onnx")}
    try:
        export_run(ExportConfig(run=str(run), out=str(run / "bench.int8.onnx"), int8=True, calibration=calibration,
                                calibration_images=args.calibration_images, overwrite=True, parity_images=16))
        backends["onnxruntime int8"] = OnnxBackend(run, run / "bench.int8.onnx")
    except ParityError as exc:
        print(f"{name}: int8 left out: {exc}")
    size = backends["torch eager fp32"].bundle.image_size
    generator = torch.Generator().manual_seed(0)
    batch = torch.randint(0, 256, (args.batch, 3, size, size), dtype=torch.uint8, generator=generator)
    reference = backends["torch eager fp32"].logits(test[0], 64).argmax(1) if test else None
    rows = []
    for label, backend in backends.items():
        median, p99 = latency_ms(backend, batch[:1], args.repeats)
        rows.append({"model": name, "backend": label, "median_ms": median, "p99_ms": p99,
                     "images_per_s": throughput(backend, batch, args.seconds),
                     "accuracy": test_accuracy(backend, *test) if test else None,
                     "agreement": float((backend.logits(test[0], 64).argmax(1) == reference).float().mean()) if test else None})
    return rows


def format_table(rows: list[dict], batch: int) -> str:
    header = (f"| model | backend | batch-1 median ms | batch-1 p99 ms | batch-{batch} images/s | test accuracy "
              "| decisions as fp32 |")
    lines = [header, "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        accuracy = "–" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        agreement = "–" if r["agreement"] is None else f"{r['agreement']:.1%}"
        lines.append(f"| {r['model']} | {r['backend']} | {r['median_ms']:.3f} | {r['p99_ms']:.3f} | {r['images_per_s']:,.0f} "
                     f"| {accuracy} | {agreement} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="cnn,resnet18", help="random-weight models to time (ignored with --run)")
    parser.add_argument("--run", action="append", default=[], help="trained run folder (repeatable); needs --data")
    parser.add_argument("--data", help="dataset of the runs: DATA/train calibrates int8, DATA/test measures accuracy")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=300, help="timed batch-1 calls per backend")
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent on batch throughput per backend")
    parser.add_argument("--calibration-images", type=int, default=200)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    if args.run and not args.data:
        parser.error("--run needs --data (its DATA/train calibrates int8, DATA/test measures accuracy)")
    torch.set_num_threads(args.threads)  # onnxruntime sessions follow torch's thread count
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.run:
            for run in args.run:
                work = Path(tmp) / Path(run).name
                copy_bundle(Path(run), work)
                rows += benchmark_run(Path(run).name, work, args.data, args, test_set(args.data, args.size, Path(run)))
        else:
            calibration = Path(tmp) / "synth"
            generate_dataset(calibration, SynthConfig(n=120, size=args.size, seed=0), progress=False)
            for arch in args.models.split(","):
                rows += benchmark_run(f"{arch} (random weights)", random_run(arch, args.size, Path(tmp) / arch), str(calibration), args, None)
    print(f"\n{describe_hardware(torch.device('cpu'))}\n{args.threads} thread(s), {args.size}×{args.size}, {len(CLASSES)} classes\n")
    print(format_table(rows, args.batch))


def copy_bundle(run: Path, work: Path) -> None:
    """The run's bundle only, so that the benchmark's ONNX files never land in the run folder."""
    work.mkdir(parents=True)
    for name in (WEIGHTS_FILE, META_FILE):
        (work / name).write_bytes((run / name).read_bytes())


if __name__ == "__main__":
    main()
