"""The source–class confound, measured on synthetic faces: does a class missing from one source get
predicted for that source's images?

Source A: photo-style faces, happy / neutral / sad. Source B: studio-style faces (plain teal backdrop,
amber cast: recognisable at a glance; ``--style sketch`` for a look that also changes how expressions
are drawn), happy and sad only. The only neutral faces in training are A's, so "studio ⇒ not neutral"
is a shortcut a plain softmax can take. The probe: B-style faces of all three classes never trained on
(the neutral ones are the point). Each configuration is trained through the
library (``babyface.training.fit.fit`` with ``data=A``, ``sources=[B]``) and scored on A's test set and on the
probe: neutral recall on each, their ratio B/A, and overall accuracy. Collapse = B/A far below 1.

Configurations are named TrainConfig overrides (``CONFIGS``): adding one is one line.

Run alone (a second CPU-heavy process distorts the seconds):
    OMP_NUM_THREADS=1 python benchmarks/confound.py --out /tmp/confound                 # full: 3 seeds, every config
    OMP_NUM_THREADS=1 python benchmarks/confound.py --out /tmp/confound --n 600 --epochs 6 --seeds 0   # quick look
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from babyface.bundle import load_bundle
from babyface.config import TrainConfig, merge
from babyface.data.decoded import decode_images
from babyface.data.scan import scan_dataset
from babyface.forward import predict_logits
from babyface.outputs import prepare_output_dir, write_json, write_text
from babyface.tools.synthetic import STYLES, SynthConfig, generate_dataset
from babyface.training.fit import fit

MISSING = "neutral"  # the class source B lacks in training
CONFIGS: list[dict] = [
    {"name": "plain", "overrides": {"missing_classes": "off", "class_balance": "none", "source_adversary": "off"}},
    {"name": "default", "overrides": {}},  # TrainConfig defaults: every rule 'auto' (restrict, source, adversary 0.3)
    {"name": "restricted loss + source balancing", "overrides": {"source_adversary": "off"}},
    {"name": "restricted loss only", "overrides": {"missing_classes": "restrict", "class_balance": "none", "source_adversary": "off"}},
    {"name": "prior", "overrides": {"missing_classes": "prior", "source_adversary": "off"}},
    {"name": "adversary", "overrides": {"missing_classes": "off", "class_balance": "none", "source_adversary": 1.0}},
    {"name": "adversary 1.0 + restricted loss + source balancing", "overrides": {"source_adversary": 1.0}},
]
COLUMNS = ("A neutral recall", "B neutral recall", "B/A", "A accuracy", "B accuracy", "seconds")


@dataclasses.dataclass
class Sizes:
    n: int = 1200  # images per training source (A: 3 classes, B: 2), each with a 20% test split
    probe: int = 300  # B-style probe images, all three classes
    image_size: int = 48
    epochs: int = 8
    model: str = "resnet18"
    style: str = "studio"  # source B's look (babyface.tools.synthetic.STYLES); A is always "photo"


@dataclasses.dataclass
class Sets:
    a: Path  # photo style, happy / neutral / sad
    b: Path  # B's style, happy / sad
    probe: Path  # B's style, happy / neutral / sad: never trained on


def make_sets(root: Path, sizes: Sizes, seed: int) -> Sets:
    """The three folders for one seed; each synthetic stream is distinct (no image is in two of them)."""
    sets = Sets(root / "A", root / "B", root / "probe")
    side = max(sizes.image_size, 32)
    generate_dataset(sets.a, SynthConfig(n=sizes.n, seed=seed, size=side), progress=False)
    generate_dataset(sets.b, SynthConfig(n=sizes.n, seed=seed + 1000, size=side, classes=("happy", "sad"), style=sizes.style),
                     progress=False)
    generate_dataset(sets.probe, SynthConfig(n=sizes.probe, seed=seed + 2000, size=side, style=sizes.style), progress=False)
    return sets


def base_config(sets: Sets, sizes: Sizes, seed: int, out: Path) -> TrainConfig:
    """TrainConfig defaults except what the benchmark must fix: data, size, model, epochs, seed."""
    config = TrainConfig(data=str(sets.a), sources=[str(sets.b)], out=str(out), model=sizes.model, epochs=sizes.epochs,
                         seed=seed, progress=False, overwrite=True)
    config.data_options.image_size = sizes.image_size
    config.data_options.cache_dir = str(out.parent / "decode-cache")
    return config


def predictions(run: Path, folders: list[Path]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(true, predicted) class indices in the run's class order for every image under ``folders``' class folders."""
    bundle = load_bundle(run)
    paths, labels = [], []
    for folder in folders:
        for split in scan_dataset(folder).splits().values():
            for sample in split.samples:
                paths.append(sample.path)
                labels.append(bundle.classes.index(split.classes[sample.label]))
    decoded = decode_images(paths, labels, bundle.image_size, progress=False)
    logits = predict_logits(bundle.model, decoded.images, bundle.mean, bundle.std, torch.device("cpu"))
    return decoded.labels, logits.argmax(1), bundle.classes


def recall_and_accuracy(true: torch.Tensor, pred: torch.Tensor, label: int) -> tuple[float, float]:
    members = true == label
    return float((pred[members] == label).float().mean()), float((pred == true).float().mean())


def score(run: Path, sets: Sets) -> dict:
    true, pred, classes = predictions(run, [sets.a / "test"])
    a_recall, a_acc = recall_and_accuracy(true, pred, classes.index(MISSING))
    true, pred, _ = predictions(run, [sets.probe])
    b_recall, b_acc = recall_and_accuracy(true, pred, classes.index(MISSING))
    return {"A neutral recall": a_recall, "B neutral recall": b_recall, "B/A": b_recall / max(a_recall, 1e-9),
            "A accuracy": a_acc, "B accuracy": b_acc}


def run_config(entry: dict, sets: Sets, sizes: Sizes, seed: int, work: Path, base: dict | None = None) -> dict:
    """Train one configuration (``base`` overrides, then its own) on one seed and score it."""
    out = work / f"{entry['name'].replace(' ', '_').replace('+', '')}-seed{seed}"
    config = merge(merge(base_config(sets, sizes, seed, out), base or {}), entry["overrides"])
    started = time.perf_counter()
    fit(config)
    seconds = time.perf_counter() - started
    return {**score(out, sets), "seconds": seconds}


def measure(sizes: Sizes, seeds: list[int], configs: list[dict], work: Path, base: dict | None = None, log=print) -> list[dict]:
    """One row per configuration: the mean over seeds of each column, plus the per-seed values.
    ``base``: TrainConfig overrides applied to every configuration first (e.g. a shorter schedule in tests)."""
    results = {entry["name"]: [] for entry in configs}
    for seed in seeds:
        sets = make_sets(work / f"data-seed{seed}", sizes, seed)
        for entry in configs:
            row = run_config(entry, sets, sizes, seed, work, base)
            log(f"seed {seed} {entry['name']}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
            results[entry["name"]].append(row)
    return [summary_row(entry, results[entry["name"]]) for entry in configs]


def summary_row(entry: dict, per_seed: list[dict]) -> dict:
    """The mean over seeds of each column, the per-seed rows, and the worst seed's B/A."""
    means = {c: statistics.fmean(r[c] for r in per_seed) for c in COLUMNS}
    return {"config": entry["name"], "overrides": entry["overrides"], **means, "worst B/A": min(r["B/A"] for r in per_seed),
            "per_seed": per_seed}


def markdown(rows: list[dict], sizes: Sizes, seeds: list[int]) -> str:
    lines = [f"{sizes.model}, {sizes.image_size}×{sizes.image_size} px, {sizes.epochs} epochs, {sizes.n} images per "
             f"source, probe {sizes.probe}; mean over seeds {', '.join(map(str, seeds))}", "",
             "| config | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for row in rows:
        lines.append(f"| {row['config']} | " + " | ".join(_cell(c, row[c]) for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def _cell(column: str, value: float) -> str:
    return f"{value:.0f}" if column == "seconds" else f"{value:.2f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    sizes = Sizes()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for confound.md and confound.json (must be empty or new)")
    p.add_argument("--n", type=int, default=sizes.n, help=f"images per training source, 20%% held out as test (default: {sizes.n})")
    p.add_argument("--probe", type=int, default=sizes.probe, help=f"B-style probe images, all three classes, never trained on (default: {sizes.probe})")
    p.add_argument("--epochs", type=int, default=sizes.epochs, help=f"training epochs of every configuration (default: {sizes.epochs})")
    p.add_argument("--image-size", type=int, default=sizes.image_size, help=f"model input side in pixels (default: {sizes.image_size})")
    p.add_argument("--model", default=sizes.model, help=f"architecture, see 'babyface models' (default: {sizes.model}; "
                   "the cnn needs about 10 epochs before it learns these faces)")
    p.add_argument("--style", default=sizes.style, choices=[s for s in STYLES if s != "photo"],
                   help=f"source B's look; A is always photo (default: {sizes.style})")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds; each makes its own data and runs (default: 0,1,2)")
    p.add_argument("--only", default="", help="comma-separated configuration names to run (default: all of CONFIGS)")
    p.add_argument("--overwrite", action="store_true", help="replace the contents of a non-empty --out")
    return p.parse_args(argv)


def chosen_configs(only: str) -> list[dict]:
    """CONFIGS named in ``only`` (comma-separated), or all of them; an unknown name is an error."""
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = sorted(set(names) - {c["name"] for c in CONFIGS})
    if unknown:
        raise SystemExit(f"--only: unknown configuration(s) {', '.join(unknown)}; known: {', '.join(c['name'] for c in CONFIGS)}")
    return [c for c in CONFIGS if not names or c["name"] in names]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = prepare_output_dir(args.out, overwrite=args.overwrite)
    sizes = Sizes(n=args.n, probe=args.probe, image_size=args.image_size, epochs=args.epochs, model=args.model, style=args.style)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="confound-") as work:
        rows = measure(sizes, seeds, chosen_configs(args.only), Path(work), log=lambda line: print(line, file=sys.stderr, flush=True))
    table = markdown(rows, sizes, seeds)
    write_text(out / "confound.md", table)
    write_json(out / "confound.json", {"sizes": dataclasses.asdict(sizes), "seeds": seeds, "rows": rows})
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
