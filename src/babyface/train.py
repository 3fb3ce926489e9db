"""Training: ``fit(config)`` turns a dataset folder into a run folder holding a model bundle.

Plain functions in the style of torchvision's classification references: ``prepare_data``,
``train_one_epoch``, ``validate``; the best epoch on validation macro-F1 is kept, not the last.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from .progress import progress_bar

from .bundle import bundle_metadata, save_bundle
from .calibration import calibration_summary, fit_temperature
from .config import TrainConfig, parse_seeds, save_yaml, to_dict
from .data.augment import augment_batch
from .data.decoded import DecodedImages, channel_stats, decode_images
from .data.images import display_path
from .data.scan import DatasetScan, scan_dataset
from .data.splits import stratified_split
from .engine import index_batches, normalise, predict_logits, resolve_device
from .errors import DataError
from .io import prepare_output_dir, write_csv, write_json, write_text
from .metrics import macro_f1
from .models import create_model
from .plots import plot_learning_curves

log = logging.getLogger("babyface")

HISTORY_FIELDS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1", "lr", "seconds"]


@dataclass
class PreparedData:
    classes: list[str]
    train: DecodedImages
    val: DecodedImages
    split_rows: list[tuple[str, str, str]]  # (file, split, label) for splits.csv
    skipped: list[str]
    mean: list[float]
    std: list[float]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def prepare_data(config: TrainConfig) -> PreparedData:
    """Scan, decode once, split off validation (and test for a one-folder dataset), compute normalisation."""
    scan = scan_dataset(config.data)
    opts = config.data_options
    samples = scan.train.samples
    split_rows: list[tuple[str, str, str]] = []
    if scan.layout == "folders":
        kept, held = stratified_split([s.label for s in samples], opts.test_fraction, config.seed)
        split_rows += [(_relative(samples[i].path, scan.root), "test", scan.classes[samples[i].label]) for i in held]
        samples = [samples[i] for i in kept]
    decoded = decode_images(
        [s.path for s in samples], [s.label for s in samples], opts.image_size,
        max_pixels=opts.max_pixels, strict=opts.strict, progress=config.progress, desc="decode train",
    )
    _check_decoded(decoded, scan)
    train_idx, val_idx = stratified_split(decoded.labels.tolist(), opts.val_fraction, config.seed + 1)
    train, val = decoded.subset(train_idx), decoded.subset(val_idx)
    split_rows += _rows(train, "train", scan) + _rows(val, "val", scan)
    if scan.test is not None:
        split_rows += [(_relative(s.path, scan.root), "test", scan.classes[s.label]) for s in scan.test.samples]
    mean, std = channel_stats(train.images)
    return PreparedData(scan.classes, train, val, sorted(split_rows), decoded.skipped, mean, std)


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _rows(images: DecodedImages, split: str, scan: DatasetScan) -> list[tuple[str, str, str]]:
    return [(_relative(p, scan.root), split, scan.classes[int(label)]) for p, label in zip(images.paths, images.labels)]


def _check_decoded(decoded: DecodedImages, scan: DatasetScan) -> None:
    present = set(decoded.labels.tolist())
    for label, name in enumerate(scan.classes):
        if label not in present:
            raise DataError(f"{display_path(scan.train.root / name)}: no image in this class could be decoded; fix or replace its files")


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=True)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch: StepLR as the reference, or cosine; both after an optional linear warm-up."""
    warmup = config.warmup_epochs

    def factor(epoch: int) -> float:
        if epoch < warmup:
            return (epoch + 1) / (warmup + 1)
        if config.scheduler == "step":
            return config.gamma ** ((epoch - warmup) // config.step_size)
        if config.scheduler == "cosine":
            progress = (epoch - warmup) / max(1, config.epochs - warmup)
            return 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 (absent classes get 0)."""
    counts = torch.bincount(labels, minlength=num_classes).double()
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp_min(1)), torch.zeros_like(counts))
    return weights.float()


def epoch_order(labels: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Shuffled indices for one epoch; with ``class_balance='sampler'`` drawn with replacement, balanced by class."""
    n = len(labels)
    if config.class_balance == "sampler":
        weights = class_weights(labels, int(labels.max()) + 1)[labels]
        return torch.multinomial(weights.double(), n, replacement=True, generator=generator)
    return torch.randperm(n, generator=generator)


def train_one_epoch(
    model: nn.Module,
    data: DecodedImages,
    mean: list[float],
    std: list[float],
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    config: TrainConfig,
    generator: torch.Generator,
    desc: str = "train",
) -> dict[str, float]:
    model.train()
    order = epoch_order(data.labels, config, generator)
    total_loss, correct, seen = 0.0, 0, 0
    batches = list(index_batches(len(order), config.batch_size, order))
    bar = progress_bar(batches, config.progress, desc=desc, unit="batch", leave=False)
    for index in bar:
        images = data.images[index].to(device, non_blocking=True).float().div_(255.0)
        images = augment_batch(images, config.augment, generator)
        labels = data.labels[index].to(device, non_blocking=True)
        logits = model(normalise(images, mean, std))
        loss = loss_fn(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(index)
        correct += (logits.argmax(1) == labels).sum().item()
        seen += len(index)
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    return {"train_loss": total_loss / max(seen, 1), "train_acc": correct / max(seen, 1)}


def validate(model: nn.Module, data: DecodedImages, mean: list[float], std: list[float], device: torch.device, batch_size: int) -> dict[str, float]:
    if len(data) == 0:
        return {"val_loss": float("nan"), "val_acc": float("nan"), "val_macro_f1": float("nan")}
    logits = predict_logits(model, data.images, mean, std, device, batch_size=max(batch_size, 64))
    labels = data.labels
    pred = logits.argmax(1)
    return {
        "val_loss": float(nn.functional.cross_entropy(logits, labels)),
        "val_acc": float((pred == labels).float().mean()),
        "val_macro_f1": macro_f1(labels.tolist(), pred.tolist()),
    }


def fit(config: TrainConfig) -> Path:
    """Train ``config.model`` on ``config.data``; returns the run folder (``config.out``)."""
    out = prepare_output_dir(config.out, overwrite=config.overwrite)
    handler = _attach_log_file(out / "train.log")
    try:
        return _fit(config, out)
    finally:
        log.removeHandler(handler)
        handler.close()


def _fit(config: TrainConfig, out: Path) -> Path:
    save_yaml(config, out / "config.yaml")
    seed_everything(config.seed)
    device = resolve_device(config.device)
    data = prepare_data(config)
    _write_splits(out / "splits.csv", data.split_rows)
    log.info("data %s: classes %s, %d train, %d val, %d skipped; device %s",
             display_path(config.data), data.classes, len(data.train), len(data.val), len(data.skipped), device)
    model = create_model(config.model, len(data.classes), config.data_options.image_size, **config.model_args).to(device)
    weights = class_weights(data.train.labels, len(data.classes)).to(device) if config.class_balance == "loss" else None
    loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=config.label_smoothing)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config)
    generator = torch.Generator().manual_seed(config.seed)

    history: list[dict] = []
    best = {"val_macro_f1": -1.0, "epoch": 0}
    best_state = None
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        row = {"epoch": epoch}
        row.update(train_one_epoch(model, data.train, data.mean, data.std, loss_fn, optimizer, device, config, generator,
                                   desc=f"epoch {epoch}/{config.epochs}"))
        row.update(validate(model, data.val, data.mean, data.std, device, config.batch_size))
        scheduler.step()
        row.update(lr=lr, seconds=round(time.perf_counter() - start, 3))
        history.append(row)
        log.info(_format_epoch(row, config.epochs))
        score = row["val_macro_f1"] if not math.isnan(row["val_macro_f1"]) else epoch  # no validation: keep the last
        if score > best["val_macro_f1"]:
            best = {"val_macro_f1": score, "epoch": epoch, "val_acc": row["val_acc"], "val_loss": row["val_loss"]}
            best_state = copy.deepcopy(model.state_dict())
        _write_history(out / "history.csv", history)
        if config.early_stopping and epoch - best["epoch"] >= config.early_stopping:
            log.info("early stopping: no validation macro-F1 gain for %d epochs", config.early_stopping)
            break

    plot_learning_curves(history, out / "learning_curves.png", title=f"{config.model} on {Path(config.data).name}")
    if best_state is not None:
        model.load_state_dict(best_state)
    calibration = calibrate_on_validation(model, data, device, config.batch_size)
    meta = bundle_metadata(
        model, data.classes, config.data_options.image_size, data.mean, data.std,
        training=to_dict(config),
        metrics={"best_epoch": best["epoch"], "val_macro_f1": best.get("val_macro_f1"), "val_acc": best.get("val_acc"),
                 "val_loss": best.get("val_loss"), "epochs_run": len(history),
                 "seconds_per_epoch": round(sum(r["seconds"] for r in history) / len(history), 3)},
        data={"root": display_path(Path(config.data).resolve()), "train": len(data.train), "val": len(data.val), "skipped": len(data.skipped)},
        calibration=calibration,
    )
    meta["temperature"] = calibration["temperature"]
    save_bundle(out, model, meta)
    log.info("best epoch %d (validation macro-F1 %.4f); bundle written to %s", best["epoch"], best.get("val_macro_f1", 0), out)
    return out


def calibrate_on_validation(model: nn.Module, data: PreparedData, device: torch.device, batch_size: int) -> dict:
    """Fit the temperature on the validation logits of ``model`` (the best epoch); T = 1 without validation."""
    if len(data.val) == 0:
        log.info("no validation split: temperature left at 1.0")
        return {"temperature": 1.0, "split": "none"}
    logits = predict_logits(model, data.val.images, data.mean, data.std, device, batch_size=max(batch_size, 64))
    summary = calibration_summary(logits, data.val.labels, fit_temperature(logits, data.val.labels))
    log.info("temperature %.3f fitted on validation: NLL %.4f -> %.4f, ECE %.4f -> %.4f", summary["temperature"],
             summary["nll_before"], summary["nll_after"], summary["ece_before"], summary["ece_after"])
    return {**summary, "split": "validation"}


SUMMARY_METRICS = ("val_macro_f1", "val_acc", "val_loss", "best_epoch", "seconds_per_epoch")


def fit_seeds(config: TrainConfig) -> Path:
    """One run per seed in ``config.seeds`` (OUT/seed0, OUT/seed1, …) and OUT/summary.json + summary.md:
    mean ± std across seeds of each run's best validation metrics."""
    out = prepare_output_dir(config.out, overwrite=config.overwrite)
    runs = []
    for seed in parse_seeds(config.seeds):
        log.info("seed %d: training into %s", seed, out / f"seed{seed}")
        run = fit(dataclasses.replace(config, seed=seed, seeds="", out=str(out / f"seed{seed}"), overwrite=True))
        runs.append({"seed": seed, "run": run.name, **json.loads((run / "model.json").read_text())["metrics"]})
    summary = summarise_seeds(runs)
    write_json(out / "summary.json", summary)
    write_text(out / "summary.md", format_seed_summary(summary))
    return out


def summarise_seeds(runs: list[dict]) -> dict:
    """Mean and sample standard deviation (0 for one seed) of each metric in SUMMARY_METRICS across runs."""
    metrics = {}
    for key in SUMMARY_METRICS:
        values = np.array([r[key] for r in runs if r.get(key) is not None], dtype=float)
        if len(values):
            std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            metrics[key] = {"mean": round(float(values.mean()), 6), "std": round(std, 6), "values": values.tolist()}
    return {"seeds": [r["seed"] for r in runs], "runs": runs, "metrics": metrics}


def format_seed_summary(summary: dict) -> str:
    lines = [f"Best validation metrics across seeds {', '.join(map(str, summary['seeds']))} (mean ± sample std)", "",
             "| metric | mean ± std | per seed |", "|---|---|---|"]
    for key, m in summary["metrics"].items():
        lines.append(f"| {key} | {m['mean']:.4f} ± {m['std']:.4f} | {', '.join(f'{v:.4g}' for v in m['values'])} |")
    return "\n".join(lines) + "\n"


def _format_epoch(row: dict, epochs: int) -> str:
    return (f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
            f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f} macro-F1 {row['val_macro_f1']:.4f}  "
            f"lr {row['lr']:.2e}  {row['seconds']:.1f}s")


def _write_history(path: Path, history: list[dict]) -> None:
    write_csv(path, HISTORY_FIELDS, [[_fmt(row[k]) for k in HISTORY_FIELDS] for row in history])


def _write_splits(path: Path, rows: list[tuple[str, str, str]]) -> None:
    write_csv(path, ["file", "split", "label"], rows)


def _fmt(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _attach_log_file(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler
