"""Time to accuracy: the reference recipe against babyface's fast recipe, trained in one run on the same data.

reference       the reference project's recipe: ResNet-18 at 64×64, Adam 1e-3, StepLR(15, 0.3), batch 20, 23 epochs
                (babyface train's defaults with --model resnet18), computed as the reference did: fp32, NCHW
reference bf16  the same recipe with bf16 autocast and the layout babyface measures faster: the fair baseline, trained
                only where the CPU computes bf16 natively (elsewhere it would be emulated and only slower)
fast            --recipe fast (src/babyface/recipes/fast.yaml), --precision auto
fast fp32       with --parity: the fast recipe again in fp32, same seed

Both train through babyface's own loop (``training.fit.fit`` with a TrainConfig) on FER2013-hsn, 3 classes: its
train/ and val/ pooled for training (no validation split, so every training second is training), its test/ as the
test set. After every epoch the model is scored on the test set, outside the timed training; the clock is the
training loop's own (``history.csv`` seconds) and the process CPU seconds of the same epochs.

--parity also trains the fast recipe in fp32 and prints McNemar's test between each bf16 run and its fp32 twin (same
seed), and how often each bf16-trained model's bf16 inference makes the decision its fp32 inference makes.

--fast-models N trains the fast recipe N times (seeds 0..N-1) and adds the ensemble of them (softmax averaged) as
one point at the sum of their training seconds: several fast models against one slow model at a like CPU time.

Writes to --out: time_to_accuracy.png (test accuracy against training seconds, with the reference's final accuracy
as a line), time_to_accuracy.md (the table printed at the end), curves.csv (one row per recipe and epoch) and runs/
(the two run folders: their weights derive from FER2013, never commit them). Hardware use: the CPU's fp32 peak is
measured as a large matmul on the same threads, each model's training GFLOP/s as 3 × forward FLOPs × images/s.

Run alone (a second CPU-heavy process distorts every number); about 2 hours on all the data on 1 thread:
    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/time_to_accuracy.py --out benchmarks/results/tta
    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/time_to_accuracy.py --max-per-class 300 --epochs 3 \\
        --out benchmarks/results/tta-quick                                  # a quick look, a few minutes
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from babyface.config import TrainConfig, from_dict, with_recipe  # noqa: E402
from babyface.data.cache import load_decoded  # noqa: E402
from babyface.data.decoded import DecodedImages  # noqa: E402
from babyface.data.scan import scan_dataset  # noqa: E402
from babyface.evaluation.compare import mcnemar  # noqa: E402
from babyface.forward import predict_logits, tta_views  # noqa: E402
from babyface.hardware import Precision, choose_precision, describe_hardware  # noqa: E402
from babyface.models import model_info  # noqa: E402
from babyface.training.fit import fit  # noqa: E402
from babyface.training.prepare import PreparedData  # noqa: E402

REFERENCE_EPOCHS = TrainConfig().epochs
RECIPES = {"reference": {"model": "resnet18", "precision": "fp32", "channels_last": "off"},
           "reference bf16": {"model": "resnet18", "precision": "bf16", "channels_last": "auto"},
           "fast": {"recipe": "fast"},
           "fast fp32": {"recipe": "fast", "precision": "fp32"}}
COLOURS = {"reference": "#1f77b4", "reference bf16": "#17becf", "fast": "#d62728", "fast fp32": "#ff9896"}
PEAK_SIDE = 2048  # the matmul that measures the CPU's fp32 peak: 2 × 2048³ FLOPs


@dataclass
class Curve:
    """One recipe's test accuracy after each epoch against its cumulative training seconds."""

    name: str
    config: TrainConfig
    tta: str = "none"
    train_images: int = 0
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    members: int = 1  # > 1: an ensemble, one point after all its members' training
    trained_epochs: int = 0
    probabilities: torch.Tensor | None = None  # the test set's softmax after the last epoch
    labels: torch.Tensor | None = None
    precision: str = "fp32"  # the number format training computed in
    inference_agreement: float | None = None  # bf16-trained: share of test decisions its bf16 inference shares with fp32

    @property
    def label(self) -> str:
        name = f"{self.name} ×{self.members} ensemble" if self.members > 1 else self.name
        return f"{name} (flip TTA)" if self.tta == "flip" else name

    @property
    def final(self) -> float:
        return self.accuracy[-1]

    def seconds_to_reach(self, target: float) -> tuple[float, float] | None:
        """(wall, CPU) training seconds of the first epoch whose test accuracy is at least ``target``; None if none."""
        for wall, cpu, accuracy in zip(self.seconds, self.cpu_seconds, self.accuracy):
            if accuracy >= target:
                return wall, cpu
        return None

    def images_per_second(self) -> float:
        return self.train_images * self.trained_epochs / self.seconds[-1]


def measure_peak_gflops(seconds: float = 3.0) -> float:
    """fp32 GFLOP/s of the fastest of repeated PEAK_SIDE² matmuls on the current thread count."""
    a, b = torch.randn(PEAK_SIDE, PEAK_SIDE), torch.randn(PEAK_SIDE, PEAK_SIDE)
    torch.mm(a, b)
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * PEAK_SIDE**3 / best / 1e9


def write_split_file(data: Path, path: Path) -> Path:
    """train/ and val/ → train, test/ → test: the whole training split, no validation."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "split"])
        for folder, split in (("train", "train"), ("val", "train"), ("test", "test")):
            for image in sorted((data / folder).glob("*/*")):
                writer.writerow([image.relative_to(data).as_posix(), split])
    return path


def recipe_config(name: str, args: argparse.Namespace, split_file: Path, seed: int = 0) -> TrainConfig:
    """The TrainConfig of recipe ``name`` on the benchmark's data, its epochs scaled by --epochs / 23."""
    config = from_dict(TrainConfig, with_recipe(dict(RECIPES[name])))
    config.epochs = scaled_epochs(config.epochs, args.epochs)
    folder = name if seed == 0 else f"{name}-seed{seed}"
    config.data, config.out, config.overwrite, config.progress, config.seeds, config.seed = (
        str(args.data), str(args.out / "runs" / folder), True, False, "", seed)
    options = config.data_options
    options.split_file, options.val_fraction, options.max_per_class = str(split_file), 0.0, args.max_per_class
    return config


def scaled_epochs(epochs: int, reference_epochs: int | None) -> int:
    """``epochs`` times reference_epochs / 23, at least 1; unchanged without --epochs."""
    if reference_epochs is None:
        return epochs
    return max(1, round(epochs * reference_epochs / REFERENCE_EPOCHS))


def decode_test_split(config: TrainConfig) -> DecodedImages:
    """The test split decoded as training decodes (same size, same cache)."""
    samples = scan_dataset(config.data).test.samples
    labels = [s.label for s in samples]
    return load_decoded([s.path for s in samples], labels, config.data_options, False, "decode test").in_memory()


def test_probabilities(model: nn.Module, test: DecodedImages, data: PreparedData, tta: str = "none",
                       precision: Precision = Precision("fp32")) -> torch.Tensor:
    """N×C softmax of the test set; with ``tta`` flip the mean over each image and its mirror (as evaluate --tta flip)."""
    views = tta_views(test.images, tta)
    return sum(predict_logits(model, view, data.mean, data.std, torch.device("cpu"), batch_size=256,
                              precision=precision).softmax(1)
               for view in views) / len(views)


def accuracy(probabilities: torch.Tensor, labels: torch.Tensor) -> float:
    return float((probabilities.argmax(1) == labels).float().mean())


def ensemble_of(members: list[Curve]) -> Curve:
    """One point: the members' averaged final softmax, after the sum of their training seconds (trained one by one)."""
    first = members[0]
    return Curve(first.name, first.config, first.tta, first.train_images, [sum(m.seconds[-1] for m in members)],
                 [sum(m.cpu_seconds[-1] for m in members)],
                 [accuracy(sum(m.probabilities for m in members) / len(members), first.labels)], len(members),
                 sum(m.trained_epochs for m in members))


def train_and_score(curves: list[Curve]) -> list[Curve]:
    """Train the config the ``curves`` share with fit, scoring the test set after every epoch once per curve's TTA."""
    config = curves[0].config
    test = decode_test_split(config)
    for curve in curves:
        curve.precision = choose_precision(config.precision, torch.device("cpu"), warn=False).name

    def on_epoch(model: nn.Module, row: dict, data: PreparedData) -> None:
        for curve in curves:
            curve.train_images = len(data.train)
            curve.seconds.append((curve.seconds[-1] if curve.seconds else 0.0) + row["seconds"])
            curve.cpu_seconds.append((curve.cpu_seconds[-1] if curve.cpu_seconds else 0.0) + row["cpu_seconds"])
            curve.trained_epochs, curve.labels = curve.trained_epochs + 1, test.labels
            curve.probabilities = test_probabilities(model, test, data, curve.tta)
            curve.accuracy.append(accuracy(curve.probabilities, test.labels))
            if curve.precision == "bf16" and row["epoch"] == config.epochs:
                in_bf16 = test_probabilities(model, test, data, curve.tta, Precision("bf16"))
                curve.inference_agreement = float((in_bf16.argmax(1) == curve.probabilities.argmax(1)).float().mean())
        scores = ", ".join(f"{c.label} {c.accuracy[-1]:.4f}" for c in curves)
        print(f"epoch {row['epoch']}/{config.epochs}: test accuracy {scores} after {curves[0].seconds[-1]:.0f} s of training",
              flush=True)

    fit(config, on_epoch=on_epoch)
    return curves


def hardware_line(peak: float) -> str:
    return f"{describe_hardware(torch.device('cpu'))}; measured fp32 peak {peak:.0f} GFLOP/s"


def model_cost(config: TrainConfig) -> dict:
    size = config.data_options.image_size
    return model_info(config.model, 3, size, **config.model_args)


def format_table(curves: dict[str, Curve], peak: float) -> str:
    """The markdown table: time to the reference's final accuracy, final accuracy, ratio, cost and hardware use."""
    target = curves["reference"].final
    baselines = [curves[name] for name in ("reference", "reference bf16") if name in curves]
    lines = [f"Target: the reference's final test accuracy (fp32), {target:.4f}.", hardware_line(peak), "",
             "| recipe | precision | model | input | epochs | train images | final test acc | s to target (wall / CPU) "
             + "".join(f"| time to target vs {b.name} " for b in baselines)
             + "| training s (wall / CPU) | vs reference | FLOPs/image | params | images/s | training GFLOP/s | share of peak |",
             "|---|---|---|---|---|---|---|---|" + "---|" * len(baselines) + "---|---|---|---|---|---|---|"]
    lines += [table_row(curve, target, baselines, peak) for curve in curves.values()]
    return "\n".join(lines)


def table_row(curve: Curve, target: float, baselines: list[Curve], peak: float) -> str:
    cost = model_cost(curve.config)
    rate = curve.images_per_second()
    achieved = 3 * cost["flops"] * rate / 1e9
    reached = curve.seconds_to_reach(target)
    when = f"{reached[0]:.0f} / {reached[1]:.0f}" if reached else "not reached"
    ratios = ""
    for baseline in baselines:
        base = baseline.seconds_to_reach(target) or (baseline.seconds[-1], baseline.cpu_seconds[-1])
        ratios += f"| {reached[0] / base[0]:.3f}× " if reached else "| – "
    size = curve.config.data_options.image_size
    return (f"| {curve.label} | {curve.precision} | {curve.config.model} | {size}×{size} | {curve.trained_epochs} "
            f"| {curve.train_images} | {curve.final:.4f} | {when} {ratios}| {curve.seconds[-1]:.0f} / {curve.cpu_seconds[-1]:.0f} "
            f"| {curve.seconds[-1] / baselines[0].seconds[-1]:.3f}× | {cost['flops'] / 1e6:.1f} M "
            f"| {cost['params'] / 1e6:.3f} M | {rate:.0f} | {achieved:.1f} | {achieved / peak:.1%} |")


def parity_table(curves: dict[str, Curve]) -> str:
    """Each bf16 run against its fp32 twin (same recipe and seed): McNemar on the test set, and how often the bf16
    model's bf16 inference decides as its fp32 inference."""
    pairs = [(curves[a], curves[b]) for a, b in (("reference bf16", "reference"), ("fast", "fast fp32"))
             if a in curves and b in curves and curves[a].precision == "bf16"]
    if not pairs:
        return ""
    lines = ["| bf16 run | fp32 run | test acc bf16 / fp32 | only bf16 right | only fp32 right | McNemar p "
             "| bf16 inference decides as fp32 inference |", "|---|---|---|---|---|---|---|"]
    for low, full in pairs:
        test = mcnemar(correct(low), correct(full))
        lines.append(f"| {low.label} | {full.label} | {low.final:.4f} / {full.final:.4f} | {test['only_a_right']} "
                     f"| {test['only_b_right']} | {test['p_value']:.2f} | {low.inference_agreement:.2%} |")
    return "\n".join(lines)


def correct(curve: Curve) -> list[bool]:
    return (curve.probabilities.argmax(1) == curve.labels).tolist()


def plot_curves(curves: dict[str, Curve], path: Path, subtitle: str) -> Path:
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    for curve in curves.values():
        label = (f"{curve.label}: {curve.config.model}, {curve.config.data_options.image_size} px, "
                 f"{curve.trained_epochs} epochs, {curve.precision}")
        ax.plot(curve.seconds, curve.accuracy, marker="*" if curve.members > 1 else "o",
                markersize=12 if curve.members > 1 else 3, color=COLOURS.get(curve.name, "#7f7f7f"), label=label,
                linestyle="--" if curve.tta == "flip" else "-", fillstyle="none" if curve.tta == "flip" else "full")
    target = curves["reference"].final
    ax.axhline(target, color="#555555", linestyle="--", linewidth=1, label=f"reference's final accuracy ({target:.3f})")
    ax.set_xlabel("training seconds (wall clock, test scoring excluded)")
    ax.set_ylabel(f"test accuracy ({Path(curves['reference'].config.data).name})")
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    images = curves["reference"].train_images
    ax.set_title(f"Time to accuracy, {images:,} training images\n{subtitle}", fontsize=10)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_curves_csv(curves: dict[str, Curve], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["recipe", "epoch", "train_seconds", "cpu_seconds", "test_accuracy"])
        for curve in curves.values():
            for epoch, row in enumerate(zip(curve.seconds, curve.cpu_seconds, curve.accuracy), start=1):
                writer.writerow([curve.label, epoch, f"{row[0]:.3f}", f"{row[1]:.3f}", f"{row[2]:.4f}"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fer2013-hsn"),
                        help="a BabyFace layout with train/, val/ and test/ (default: FER2013-hsn)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/time_to_accuracy"),
                        help="folder for the PNG, the table, curves.csv and the two run folders")
    parser.add_argument("--max-per-class", type=int, default=0,
                        help="train on at most this many images per class (0 = all), for a quick version")
    parser.add_argument("--epochs", type=int, default=None,
                        help="train the reference this many epochs instead of 23 and the fast recipe the same share of "
                             "its own, for a quick version (default: both recipes as they are)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training and the peak measurement")
    parser.add_argument("--tta", choices=["none", "flip"], default="none",
                        help="flip: the fast recipe is also scored with test-time flip (each test image and its mirror, as "
                             "'babyface evaluate --tta flip'), a second row; the reference is always scored as it is")
    parser.add_argument("--fast-models", type=int, default=1,
                        help="train the fast recipe this many times (seeds 0, 1, ...) and add a row for the ensemble of "
                             "them (their softmax averaged) at the sum of their training seconds: several fast models "
                             "against one slow one at a like CPU time")
    parser.add_argument("--baselines", default="auto",
                        help="reference rows, comma-separated: fp32 (the reference as it computed), bf16 (its recipe in "
                             "bf16 autocast, the fair baseline); auto = fp32, and bf16 where the CPU computes bf16 "
                             "natively")
    parser.add_argument("--parity", action="store_true",
                        help="also train the fast recipe in fp32 (same seed) and print McNemar's test of each bf16 run "
                             "against its fp32 twin, and bf16-vs-fp32 inference agreement")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of every recipe's training (the fast models of --fast-models take SEED, SEED+1, ...)")
    parser.add_argument("--peak-seconds", type=float, default=3.0,
                        help="seconds spent measuring the CPU's fp32 matmul peak (the fastest matmul counts)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    """Train both recipes, write the PNG, the table and curves.csv to --out; returns the table."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    peak = measure_peak_gflops(args.peak_seconds)
    split_file = write_split_file(args.data, args.out / "split.csv")
    curves = {name: train_and_score([Curve(name, recipe_config(name, args, split_file, args.seed))])[0]
              for name in baseline_names(args.baselines)}
    scorings = ["none", "flip"] if args.tta == "flip" else ["none"]
    members = [train_and_score([Curve("fast", recipe_config("fast", args, split_file, seed), tta) for tta in scorings])
               for seed in range(args.seed, args.seed + args.fast_models)]
    for scoring in range(len(scorings)):
        curves[members[0][scoring].label] = members[0][scoring]
        if args.fast_models > 1:
            ensemble = ensemble_of([models[scoring] for models in members])
            curves[ensemble.label] = ensemble
    if args.parity:
        curves["fast fp32"] = train_and_score([Curve("fast fp32", recipe_config("fast fp32", args, split_file, args.seed))])[0]
    table = format_table(curves, peak)
    parity = parity_table(curves)
    table += f"\n\nbf16 against fp32, same seeds, {len(curves['reference'].labels)} test images:\n\n{parity}" if parity else ""
    (args.out / "time_to_accuracy.md").write_text(table + "\n")
    write_curves_csv(curves, args.out / "curves.csv")
    plot_curves(curves, args.out / "time_to_accuracy.png", hardware_line(peak))
    print("\n" + table)
    return table


def baseline_names(text: str) -> list[str]:
    """'auto' → the fp32 reference, and the bf16 one where the CPU computes bf16 natively; else the listed ones."""
    if text == "auto":
        native = choose_precision("auto", torch.device("cpu"), warn=False).name == "bf16"
        return ["reference", "reference bf16"] if native else ["reference"]
    names = {"fp32": "reference", "bf16": "reference bf16"}
    chosen = [names[part] for part in text.split(",") if part in names]
    if "reference" not in chosen:
        raise SystemExit("--baselines must include fp32: the target is the reference's fp32 accuracy")
    return chosen


if __name__ == "__main__":
    main()
