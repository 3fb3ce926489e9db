"""Evaluation of a trained bundle on a test set: metrics, confusion matrix, predictions, a grid of examples."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from babyface.bundle import load_bundle
from babyface.bundle.single import Bundle
from babyface.config import EvalConfig, data_sources, save_yaml
from babyface.data.duplicates import signatures
from babyface.data.framing import (
    FramedImages,
    Framing,
    bundle_framing,
    decode_framed,
    found_text,
    load_framed,
    warn_if_framing_differs,
)
from babyface.data.images import display_path
from babyface.data.leakage import check_leakage, file_signatures
from babyface.data.scan import scan_class_folders, scan_dataset
from babyface.data.sources import load_label_map, scan_sources
from babyface.engine import logits_with_tta, predict_logits, resolve_device
from babyface.errors import DataError
from babyface.evaluation.metrics import classification_metrics, interval_text
from babyface.evaluation.plots import plot_confusion_matrix, plot_prediction_grid, plot_reliability_diagram, select_grid_samples
from babyface.evaluation.subgroups import analyse_subgroups
from babyface.inference.calibration import calibrated_probabilities, calibration_summary, ece_from_bins, reliability_bins
from babyface.io import prepare_output_dir, write_csv, write_json

log = logging.getLogger("babyface")
GRID_TILE_SIZE = 160


@dataclass
class TestSet:
    """Test files with labels in the bundle's class order, and where they came from."""

    paths: list[Path]
    labels: list[int]
    source: str
    root: Path  # file names in outputs are relative to it
    sources: list[str] = field(default_factory=list)  # per file, when several datasets are combined

    @property
    def name(self) -> str:
        return " + ".join(dict.fromkeys(self.sources)) if any(self.sources) else self.root.name


def resolve_test_set(config: EvalConfig, bundle: Bundle) -> TestSet:
    """The test images of DATA (and every --data), with the label map the run was trained with unless
    --label-map is given; several sources are combined as training combined them."""
    recorded = bundle.meta.get("data", {})
    paths = data_sources(config) or recorded.get("sources", [])
    if not paths:
        raise DataError("evaluate needs DATA (or --data A --data B); this run records no data sources")
    label_map = load_label_map(config.label_map) if config.label_map else recorded.get("label_map") or None
    if len(paths) == 1 and not label_map:
        return resolve_single_test_set(paths[0], bundle)
    training = bundle.meta.get("training", {})
    trained_on = {str(Path(p).resolve()) for p in recorded.get("sources", [])}
    # the sources the run was trained on are split as training split them; other data is all test data
    same_sources = {str(Path(p).resolve()) for p in paths} == trained_on
    test_fraction = training.get("data_options", {}).get("test_fraction", 0.15) if same_sources else None
    scan = scan_sources(paths, label_map, test_fraction, training.get("seed", 0))
    test = _to_bundle_labels(scan.classes, scan.test.samples, bundle, f"test images of {', '.join(map(str, paths))}", scan.root)
    test.sources = [s.source for s in scan.test.samples]
    return test


def resolve_single_test_set(data: str | Path, bundle: Bundle) -> TestSet:
    """DATA/test for the BabyFace layout; for one folder of classes, the held-out split recorded by training
    when DATA is the training folder, else every image in it. Classes are matched to the model's by name."""
    root = Path(data)
    if root.is_dir() and (root / "train").is_dir() and (root / "test").is_dir():
        split = scan_dataset(root).test
        return _to_bundle_labels(split.classes, split.samples, bundle, f"{display_path(root)}/test", root)
    split = scan_class_folders(root) if root.is_dir() else scan_dataset(root).train
    recorded = _recorded_test_files(bundle, root)
    samples = split.samples
    source = display_path(root)
    if recorded is not None:
        samples = [s for s in samples if s.path.relative_to(root).as_posix() in recorded]
        source += " (test split held out at training)"
    return _to_bundle_labels(split.classes, samples, bundle, source, root)


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


def _to_bundle_labels(classes: list[str], samples, bundle: Bundle, source: str, root: Path) -> TestSet:
    unknown = [c for c in classes if c not in bundle.classes]
    if unknown:
        raise DataError(f"{source}: classes {unknown} are not among the model's classes {bundle.classes}; rename or remove those folders")
    if not samples:
        raise DataError(f"{source}: no test images found")
    index = {name: i for i, name in enumerate(bundle.classes)}
    return TestSet([s.path for s in samples], [index[classes[s.label]] for s in samples], source, root)


def evaluate_run(config: EvalConfig) -> dict:
    """Evaluate the bundle in ``config.run`` on ``config.data``; writes metrics, plots and predictions to ``config.out``."""
    device = resolve_device(config.device)
    bundle = load_bundle(config.run, device)
    test = resolve_test_set(config, bundle)
    if config.by:
        _metadata_path(config)  # fail before the slow part when the CSV is missing
    elif config.metadata:
        raise DataError(f"--metadata {config.metadata}: say which column(s) to group by with --by COLUMN[,COLUMN]")
    out = prepare_output_dir(config.out or Path(config.run) / "evaluation", overwrite=config.overwrite)
    save_yaml(config, out / "eval_config.yaml")
    framing = Framing.from_config(config)
    warn_if_framing_differs(bundle.meta, framing, config.run)
    framed = decode_framed(test.paths, test.labels, bundle.image_size, framing, strict=config.strict, progress=config.progress,
                           desc="decode test")
    decoded = framed.decoded
    if len(decoded) == 0:
        raise DataError(f"{test.source}: none of the test images could be decoded")
    if config.leakage_check:
        _check_leakage_against_training(framed, bundle, test.root, config)
    # with --tta the logits are V×N×C, one slice per view; the probabilities are the views' mean
    logits = logits_with_tta(lambda images: predict_logits(bundle.model, images, bundle.mean, bundle.std, device, config.batch_size),
                             decoded.images, config.tta)
    probs = calibrated_probabilities(logits, bundle.temperature).numpy()
    pred = probs.argmax(1)
    true = decoded.labels.numpy()
    name = bundle.meta["arch"]["name"]
    metrics = classification_metrics(true, pred, bundle.classes, n_resamples=config.bootstrap, seed=config.seed)
    metrics.update(model=name, run=display_path(config.run), data=test.source, skipped=len(decoded.skipped),
                   data_root=display_path(test.root.resolve()), tta=config.tta,
                   framing={**framing.record(), "no_face": framed.no_face, "trained_on": bundle_framing(bundle.meta)})
    metrics["calibration"] = calibration_summary(logits, decoded.labels, bundle.temperature)
    metrics["ece"] = metrics["calibration"]["ece_after"]
    if any(test.sources):
        metrics["per_source"] = per_source_metrics(decoded.paths, test, true, pred, bundle.classes, config)
    write_json(out / "metrics.json", metrics)
    write_json(out / "confusion_matrix.json", {"classes": bundle.classes, "matrix": metrics["confusion_matrix"]})
    files = [_shown_path(p, test.root) for p in decoded.paths]
    _write_predictions(out / "predictions.csv", files, true, pred, probs, bundle.classes, framed.face_found)
    if config.by:
        metrics["subgroups"] = analyse_subgroups(files, true, pred, bundle.classes, _metadata_path(config), config.by,
                                                 metrics, config.bootstrap, config.seed)
        write_json(out / "subgroups.json", metrics["subgroups"])
    title = f"{name} on {test.name}: macro-F1 {interval_text(metrics['macro_f1'], metrics.get('macro_f1_ci'))}"
    plot_confusion_matrix(np.array(metrics["confusion_matrix"]), bundle.classes, out / "confusion_matrix.png", title=title)
    _plot_reliability(out / "reliability_diagram.png", logits, true, bundle.temperature, f"{name} on {test.name}")
    _plot_grid(out / "predictions_grid.png", framed, true, pred, probs, bundle.classes, config)
    metrics["out"] = str(out)
    log.info("%s on %s: accuracy %.4f, macro-F1 %.4f; results in %s", name, test.source, metrics["accuracy"], metrics["macro_f1"], out)
    return metrics


def training_files(bundle: Bundle, data: Path) -> list[Path]:
    """The images the bundle was trained (and validated) on, where they can be known: DATA/train and DATA/val of
    a BabyFace layout, else the train/val rows of the run's splits.csv when DATA is the folder it was trained on."""
    if (data / "train").is_dir() and (data / "test").is_dir():
        scan = scan_dataset(data)
        return [s.path for split in (scan.train, scan.val) if split is not None for s in split.samples]
    return [data / row["file"] for row in _recorded_splits(bundle, data) or [] if row["split"] in ("train", "val")]


def _check_leakage_against_training(framed: FramedImages, bundle: Bundle, data: Path, config: EvalConfig) -> None:
    train_paths = training_files(bundle, data)
    if not train_paths:
        log.info("leakage check skipped: the training images of %s are not known here", display_path(config.run))
        return
    train, kept = file_signatures(train_paths, progress=config.progress)
    decoded = framed.decoded
    if any(box is not None for box in framed.boxes):  # training files are compared as files, not as face crops
        test, test_paths = file_signatures(decoded.paths, progress=config.progress)
    else:
        test, test_paths = signatures(decoded.images.numpy()), decoded.paths
    check_leakage(train, kept, test, test_paths, data, strict=config.strict)


def _plot_reliability(path: Path, logits: torch.Tensor, true: np.ndarray, temperature: float, title: str) -> None:
    panels = []
    for label, t in (("before scaling (T = 1)", 1.0), (f"after scaling (T = {temperature:.2f})", temperature)):
        bins = reliability_bins(calibrated_probabilities(logits, t).numpy(), true)
        panels.append((label, bins, ece_from_bins(bins)))
    plot_reliability_diagram(panels, path, title=f"Calibration of {title}")


def per_source_metrics(paths: list[Path], test: TestSet, true, pred, classes: list[str], config: EvalConfig) -> dict:
    """Accuracy, macro-F1 (with intervals) and the rest for each source's share of the test images."""
    source_of = dict(zip(test.paths, test.sources))
    sources = np.array([source_of[p] for p in paths])
    return {name: classification_metrics(true[sources == name], pred[sources == name], classes,
                                         n_resamples=config.bootstrap, seed=config.seed)
            for name in dict.fromkeys(sources.tolist())}


def _shown_path(file: Path, root: Path) -> str:
    """Relative to the dataset root (as metadata CSVs name files) when inside it."""
    return file.relative_to(root).as_posix() if file.is_relative_to(root) else display_path(file)


def _metadata_path(config: EvalConfig) -> Path:
    """--metadata, or DATA/metadata.csv (as ``babyface synth`` writes) when it is not given."""
    if config.metadata:
        return Path(config.metadata)
    default = Path(data_sources(config)[0] if data_sources(config) else ".") / "metadata.csv"
    if not default.is_file():
        raise DataError(f"--by {config.by}: no --metadata CSV given and no {display_path(default)}; pass --metadata FILE.csv")
    return default


def _write_predictions(path: Path, files: list[str], true, pred, probs, classes: list[str], face_found: list[bool | None]) -> None:
    rows = [[file, classes[t], classes[p], *(f"{v:.6f}" for v in prob), found_text(found)]
            for file, t, p, prob, found in zip(files, true, pred, probs, face_found)]
    write_csv(path, ["file", "true", "predicted", *(f"p_{c}" for c in classes), "face_found"], rows)


def _plot_grid(path: Path, framed: FramedImages, true, pred, probs, classes: list[str], config: EvalConfig) -> None:
    confidence = probs.max(1)
    chosen = select_grid_samples(true.tolist(), pred.tolist(), confidence.tolist(), n=config.grid_size, seed=config.seed)
    # what the model saw (the face square, or the whole image), decoded again at a size a person can see
    images = [load_framed(framed.decoded.paths[i], framed.boxes[i], GRID_TILE_SIZE) for i in chosen]
    plot_prediction_grid(
        images, [classes[true[i]] for i in chosen], [classes[pred[i]] for i in chosen],
        [float(confidence[i]) for i in chosen], path, title="Test images: truth vs prediction (mistakes in red)",
    )
