"""Evaluation of a trained bundle on a test set: metrics, confusion matrix, predictions, a grid of examples."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .bundle import Bundle, load_bundle
from .config import EvalConfig, save_yaml
from .data.decoded import DecodedImages, decode_images
from .data.duplicates import signatures
from .data.images import display_path, load_resized
from .data.leakage import check_leakage, file_signatures
from .data.scan import scan_class_folders, scan_dataset
from .engine import predict_logits, resolve_device
from .errors import DataError
from .io import prepare_output_dir, write_csv, write_json
from .metrics import classification_metrics
from .plots import plot_confusion_matrix, plot_prediction_grid, select_grid_samples

log = logging.getLogger("babyface")
GRID_TILE_SIZE = 160


@dataclass
class TestSet:
    """Test files with labels in the bundle's class order, and where they came from."""

    paths: list[Path]
    labels: list[int]
    source: str


def resolve_test_set(data: str | Path, bundle: Bundle) -> TestSet:
    """DATA/test for the BabyFace layout; for one folder of classes, the held-out split recorded by training
    when DATA is the training folder, else every image in it. Classes are matched to the model's by name."""
    root = Path(data)
    if root.is_dir() and (root / "train").is_dir() and (root / "test").is_dir():
        split = scan_dataset(root).test
        return _to_bundle_labels(split.classes, split.samples, bundle, f"{display_path(root)}/test")
    split = scan_class_folders(root) if root.is_dir() else scan_dataset(root).train
    recorded = _recorded_test_files(bundle, root)
    samples = split.samples
    source = display_path(root)
    if recorded is not None:
        samples = [s for s in samples if s.path.relative_to(root).as_posix() in recorded]
        source += " (test split held out at training)"
    return _to_bundle_labels(split.classes, samples, bundle, source)


def _recorded_test_files(bundle: Bundle, root: Path) -> set[str] | None:
    rows = _recorded_splits(bundle, root)
    return None if rows is None else {row["file"] for row in rows if row["split"] == "test"}


def _recorded_splits(bundle: Bundle, root: Path) -> list[dict] | None:
    """The rows of the run's splits.csv when ``root`` is the folder it was trained on, else None."""
    trained_on = bundle.meta.get("data", {}).get("root")
    splits = bundle.path / "splits.csv"
    if not trained_on or Path(trained_on) != root.resolve() or not splits.is_file():
        return None
    with open(splits, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        return list(csv.DictReader(handle))


def _to_bundle_labels(classes: list[str], samples, bundle: Bundle, source: str) -> TestSet:
    unknown = [c for c in classes if c not in bundle.classes]
    if unknown:
        raise DataError(f"{source}: classes {unknown} are not among the model's classes {bundle.classes}; rename or remove those folders")
    if not samples:
        raise DataError(f"{source}: no test images found")
    index = {name: i for i, name in enumerate(bundle.classes)}
    return TestSet([s.path for s in samples], [index[classes[s.label]] for s in samples], source)


def evaluate_run(config: EvalConfig) -> dict:
    """Evaluate the bundle in ``config.run`` on ``config.data``; writes metrics, plots and predictions to ``config.out``."""
    device = resolve_device(config.device)
    bundle = load_bundle(config.run, device)
    test = resolve_test_set(config.data, bundle)
    out = prepare_output_dir(config.out or Path(config.run) / "evaluation", overwrite=config.overwrite)
    save_yaml(config, out / "eval_config.yaml")
    decoded = decode_images(test.paths, test.labels, bundle.image_size, strict=config.strict, progress=config.progress, desc="decode test")
    if len(decoded) == 0:
        raise DataError(f"{test.source}: none of the test images could be decoded")
    if config.leakage_check:
        _check_leakage_against_training(decoded, bundle, Path(config.data), config)
    logits = predict_logits(bundle.model, decoded.images, bundle.mean, bundle.std, device, config.batch_size)
    probs = torch.softmax(logits / bundle.temperature, dim=1).numpy()
    pred = probs.argmax(1)
    true = decoded.labels.numpy()
    metrics = classification_metrics(true, pred, bundle.classes)
    metrics.update(model=bundle.meta["arch"]["name"], run=display_path(config.run), data=test.source, skipped=len(decoded.skipped))
    write_json(out / "metrics.json", metrics)
    write_json(out / "confusion_matrix.json", {"classes": bundle.classes, "matrix": metrics["confusion_matrix"]})
    _write_predictions(out / "predictions.csv", decoded, true, pred, probs, bundle.classes, Path(config.data))
    title = f"{bundle.meta['arch']['name']} on {Path(config.data).name} (macro-F1 {metrics['macro_f1']:.3f})"
    plot_confusion_matrix(np.array(metrics["confusion_matrix"]), bundle.classes, out / "confusion_matrix.png", title=title)
    _plot_grid(out / "predictions_grid.png", decoded, true, pred, probs, bundle.classes, config)
    metrics["out"] = str(out)
    log.info("%s on %s: accuracy %.4f, macro-F1 %.4f; results in %s", bundle.meta["arch"]["name"], test.source,
             metrics["accuracy"], metrics["macro_f1"], out)
    return metrics


def training_files(bundle: Bundle, data: Path) -> list[Path]:
    """The images the bundle was trained (and validated) on, where they can be known: DATA/train and DATA/val of
    a BabyFace layout, else the train/val rows of the run's splits.csv when DATA is the folder it was trained on."""
    if (data / "train").is_dir() and (data / "test").is_dir():
        scan = scan_dataset(data)
        return [s.path for split in (scan.train, scan.val) if split is not None for s in split.samples]
    return [data / row["file"] for row in _recorded_splits(bundle, data) or [] if row["split"] in ("train", "val")]


def _check_leakage_against_training(decoded: DecodedImages, bundle: Bundle, data: Path, config: EvalConfig) -> None:
    train_paths = training_files(bundle, data)
    if not train_paths:
        log.info("leakage check skipped: the training images of %s are not known here", display_path(config.run))
        return
    train, kept = file_signatures(train_paths, progress=config.progress)
    check_leakage(train, kept, signatures(decoded.images.numpy()), decoded.paths, data, strict=config.strict)


def _write_predictions(path: Path, decoded: DecodedImages, true, pred, probs, classes: list[str], root: Path) -> None:
    rows = []
    for file, t, p, prob in zip(decoded.paths, true, pred, probs):
        shown = file.relative_to(root).as_posix() if file.is_relative_to(root) else display_path(file)
        rows.append([shown, classes[t], classes[p], *(f"{v:.6f}" for v in prob)])
    write_csv(path, ["file", "true", "predicted", *(f"p_{c}" for c in classes)], rows)


def _plot_grid(path: Path, decoded: DecodedImages, true, pred, probs, classes: list[str], config: EvalConfig) -> None:
    confidence = probs.max(1)
    chosen = select_grid_samples(true.tolist(), pred.tolist(), confidence.tolist(), n=config.grid_size, seed=config.seed)
    # decoded again at a size a person can see; the model itself saw the small version
    images = [load_resized(decoded.paths[i], GRID_TILE_SIZE) for i in chosen]
    plot_prediction_grid(
        images, [classes[true[i]] for i in chosen], [classes[pred[i]] for i in chosen],
        [float(confidence[i]) for i in chosen], path, title="Test images: truth vs prediction (mistakes in red)",
    )
