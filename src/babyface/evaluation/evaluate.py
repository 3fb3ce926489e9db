"""Evaluation of a trained bundle on a test set: metrics, confusion matrix, predictions, a grid of examples."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from babyface.config import EvalConfig, data_sources, save_yaml
from babyface.data.duplicates import signatures
from babyface.data.groups import resolve_groups
from babyface.data.images import display_path
from babyface.data.leakage import check_leakage, file_signatures
from babyface.data.scan import scan_class_folders, scan_dataset
from babyface.data.sources import load_label_map, scan_sources
from babyface.errors import DataError
from babyface.evaluation.affect import affect_aucs
from babyface.evaluation.subgroups import analyse_subgroups
from babyface.faces.framing import (
    FramedImages,
    Framing,
    bundle_framing,
    decode_framed,
    found_text,
    load_framed,
    warn_if_framing_differs,
)
from babyface.inference.calibration import calibrated_probabilities, calibration_summary, ece_from_bins, reliability_bins
from babyface.inference.classifier import Classifier
from babyface.metrics import classification_metrics, interval_text, quoted_interval
from babyface.outputs import prepare_output_dir, write_json
from babyface.plots import plot_confusion_matrix, plot_prediction_grid, plot_reliability_diagram, select_grid_samples
from babyface.run import (
    SPLITS_FILE,
    EvaluationFiles,
    EvaluationMetrics,
    ModelMeta,
    PredictionRow,
    RunFolder,
    read_split_manifest,
    write_predictions,
)

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
    own_split: bool = False  # the test split the run held out at training (its split manifest's test rows)

    @property
    def name(self) -> str:
        return " + ".join(dict.fromkeys(self.sources)) if any(self.sources) else self.root.name


def resolve_test_set(config: EvalConfig, meta: ModelMeta, run: Path) -> TestSet:
    """The run's own test split, read from its split manifest, when DATA is not given or is what the run was trained
    on; otherwise every test image of the other data (DATA/test of a BabyFace layout, else every image), combined
    with the label map the run was trained with unless --label-map is given."""
    recorded = meta.data.sources
    paths = data_sources(config) or recorded
    if not paths:
        raise DataError("evaluate needs DATA (or --data A --data B); this run records no data sources")
    if not config.label_map and _resolved(paths) == _resolved(recorded):
        return manifest_test_set(run, meta)
    label_map = load_label_map(config.label_map) if config.label_map else meta.data.label_map or None
    if len(paths) == 1 and not label_map:
        return other_test_set(Path(paths[0]), meta)
    scan = scan_sources(paths, label_map, None, 0, check_map=bool(config.label_map))
    test = _to_model_labels(scan.classes, scan.test.samples, meta, f"test images of {', '.join(map(str, paths))}", scan.root)
    test.sources = [s.source for s in scan.test.samples]
    return test


def _resolved(paths) -> set[str]:
    return {str(Path(p).resolve()) for p in paths}


def manifest_test_set(run: Path, meta: ModelMeta) -> TestSet:
    """The test rows of the split manifest that training wrote (RUN/splits.csv)."""
    root = Path(meta.data.root or run)
    manifest = read_split_manifest(RunFolder(run).splits, root)
    if manifest is None:
        raise DataError(f"{display_path(run)}: no {SPLITS_FILE}, so its test split is unknown; give the test DATA to evaluate on")
    rows = manifest.files("test")
    source = f"{display_path(root)} (test split held out at training)"
    unknown = sorted({row.label for row in rows} - set(meta.classes))
    if unknown:
        raise DataError(f"{RunFolder(run).splits}: labels {unknown} are not among the model's classes {meta.classes}; the manifest is damaged")
    rows = [row for row, keep in zip(rows, _decided([row.label for row in rows], meta, source)) if keep]
    if not rows:
        final = " (it was trained with --test-fraction 0, on every image)" if meta.data.test == 0 else ""
        raise DataError(f"{source}: no test images in {RunFolder(run).splits}{final}; give test DATA it never saw to "
                        "evaluate on")
    index = {name: i for i, name in enumerate(meta.decides_over)}
    several = len(meta.data.sources) > 1
    return TestSet([root / row.file for row in rows], [index[row.label] for row in rows], source, root,
                   [row.source for row in rows] if several else [], own_split=True)


def other_test_set(root: Path, meta: ModelMeta) -> TestSet:
    """DATA/test of a BabyFace layout, else every image of a folder of class folders; classes matched by name. One class
    is a test set too (crying infants only): the model decides over its own classes either way."""
    if root.is_dir() and (root / "train").is_dir() and (root / "test").is_dir():
        split = scan_dataset(root, min_classes=1).test
        return _to_model_labels(split.classes, split.samples, meta, f"{display_path(root)}/test", root)
    split = scan_class_folders(root, min_classes=1) if root.is_dir() else scan_dataset(root, min_classes=1).train
    return _to_model_labels(split.classes, split.samples, meta, display_path(root), root)


def _to_model_labels(classes: list[str], samples, meta: ModelMeta, source: str, root: Path) -> TestSet:
    unknown = [c for c in classes if c not in meta.classes]
    if unknown:
        raise DataError(f"{source}: classes {unknown} are not among the model's classes {meta.classes}; rename or remove those folders")
    samples = [s for s, keep in zip(samples, _decided([classes[s.label] for s in samples], meta, source)) if keep]
    if not samples:
        raise DataError(f"{source}: no test images found" + (f" of the classes decisions are over ({', '.join(meta.decides_over)})"
                                                             if meta.decision_classes else ""))
    index = {name: i for i, name in enumerate(meta.decides_over)}
    return TestSet([s.path for s in samples], [index[classes[s.label]] for s in samples], source, root)


def _decided(labels: list[str], meta: ModelMeta, source: str) -> list[bool]:
    """Which test labels are among the classes decisions are taken over; the others are left out, and said so."""
    keep = [label in meta.decides_over for label in labels]
    left_out = sorted({label for label, k in zip(labels, keep) if not k})
    if left_out and any(keep):  # with nothing left the caller fails, saying so in one line
        log.warning("%s: %d test image(s) of %s left out: the model learned those classes but decides over %s only",
                    source, keep.count(False), ", ".join(left_out), ", ".join(meta.decides_over))
    return keep


def evaluate_run(config: EvalConfig) -> dict:
    """Evaluate the bundle in ``config.run`` on ``config.data``; writes metrics, plots and predictions to ``config.out``."""
    classifier = Classifier(config.run, device=config.device, batch_size=config.batch_size, tta=config.tta,
                            backend=config.backend, onnx_file=config.onnx, framing=Framing.from_config(config),
                            precision=config.precision)
    meta, run = classifier.meta, Path(config.run)
    test = resolve_test_set(config, meta, run)
    if config.by:
        _metadata_path(config)  # fail before the slow part when the CSV is missing
    elif config.metadata:
        raise DataError(f"--metadata {config.metadata}: say which column(s) to group by with --by COLUMN[,COLUMN]")
    grouping = group_test_images(config, meta, test)  # before the slow part: a bad manifest fails early
    out = prepare_output_dir(config.out or RunFolder(run).evaluation, overwrite=config.overwrite)
    save_yaml(config, out / EvaluationFiles.CONFIG)
    framing = classifier.framing
    warn_if_framing_differs(meta, framing, config.run)
    framed = decode_framed(test.paths, test.labels, classifier.image_size, framing, strict=config.strict, progress=config.progress,
                           desc="decode test")
    decoded = framed.decoded
    if len(decoded) == 0:
        raise DataError(f"{test.source}: none of the test images could be decoded")
    if config.leakage_check:
        _check_leakage_against_training(framed, run, meta, test.root, config)
    logits = classifier.view_logits(decoded.images)  # V×N×C with --tta: one slice per view
    probs = classifier.calibrate(logits).numpy()
    pred = probs.argmax(1)
    true = decoded.labels.numpy()
    classes, name, temperature = classifier.classes, meta.arch.name, classifier.temperature
    groups = grouping.of(decoded.paths)
    metrics = classification_metrics(true, pred, classes, n_resamples=config.bootstrap, seed=config.seed, groups=groups,
                                     group_by=grouping.by)
    if groups is not None and config.bootstrap:
        metrics["group_ci"] = {**metrics["group_ci"], **grouping.record()}
        if metrics["n_groups"] < 2:
            log.warning("WARNING: every test image is in one %s group: no group-level interval can be computed; the "
                        "test set says nothing about other groups", grouping.by)
    metrics.update(model=name, run=display_path(config.run), data=test.source, skipped=len(decoded.skipped),
                   data_root=display_path(test.root.resolve()), tta=config.tta, backend=classifier.backend.name,
                   precision=classifier.backend.precision,
                   framing={**framing.record(), "no_face": framed.no_face, "trained_on": bundle_framing(meta)})
    metrics["affect_auc"] = affect_aucs(true, probs, classes, config.bootstrap, config.seed, groups)
    metrics["calibration"] = calibration_summary(logits, decoded.labels, temperature)
    metrics["ece"] = metrics["calibration"]["ece_after"]
    if any(test.sources):
        metrics["per_source"] = per_source_metrics(decoded.paths, test, true, probs, classes, config, groups, grouping.by)
    record = EvaluationMetrics.model_validate(metrics)  # before the figures: what metrics.json will hold
    write_json(out / EvaluationFiles.CONFUSION_JSON, {"classes": classes, "matrix": metrics["confusion_matrix"]})
    files = [_shown_path(p, test.root) for p in decoded.paths]
    write_predictions(out / EvaluationFiles.PREDICTIONS, classes, prediction_rows(files, true, pred, probs, classes,
                                                                                   framed.face_found, groups), groups is not None)
    if config.by:
        metrics["subgroups"] = analyse_subgroups(files, true, pred, classes, _metadata_path(config), config.by,
                                                 metrics, config.bootstrap, config.seed, groups)
        write_json(out / EvaluationFiles.SUBGROUPS, metrics["subgroups"])
    title = f"{name} on {test.name}: macro-F1 {interval_text(record.macro_f1, quoted_interval(record, 'macro_f1'))}"
    plot_confusion_matrix(np.array(record.confusion_matrix), classes, out / EvaluationFiles.CONFUSION_PNG, title=title)
    _plot_reliability(out / EvaluationFiles.RELIABILITY_PNG, logits, true, temperature, f"{name} on {test.name}")
    _plot_grid(out / EvaluationFiles.GRID_PNG, framed, true, pred, probs, classes, config)
    write_json(out / EvaluationFiles.METRICS, record.to_json())  # last: it marks the evaluation complete
    metrics["out"] = str(out)
    log.info("%s on %s: accuracy %.4f, macro-F1 %.4f; results in %s", name, test.source, metrics["accuracy"], metrics["macro_f1"], out)
    return metrics


def training_files(run: Path, meta: ModelMeta, data: Path) -> list[Path]:
    """The images the run was trained (and validated) on, where they can be known: the train/val rows of its split
    manifest when ``data`` is what it was trained on, else DATA/train and DATA/val of a BabyFace layout."""
    manifest = read_split_manifest(RunFolder(run).splits, Path(meta.data.root or run))
    if manifest is not None and data.resolve() == manifest.root.resolve():
        return manifest.paths("train", "val")
    if (data / "train").is_dir() and (data / "test").is_dir():
        scan = scan_dataset(data, min_classes=1)
        return [s.path for split in (scan.train, scan.val) if split is not None for s in split.samples]
    return []


def _check_leakage_against_training(framed: FramedImages, run: Path, meta: ModelMeta, data: Path, config: EvalConfig) -> None:
    train_paths = training_files(run, meta, data)
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


def per_source_metrics(paths: list[Path], test: TestSet, true, probs, classes: list[str], config: EvalConfig,
                       groups: list[str] | None = None, group_by: str = "") -> dict:
    """Accuracy, macro-F1 (with intervals, group-level ones too when ``groups`` are known), the affect AUCs and the
    rest for each source's share of the test images."""
    source_of = dict(zip(test.paths, test.sources))
    sources = np.array([source_of[p] for p in paths])
    named = np.asarray(groups) if groups is not None else None
    result = {}
    for name in dict.fromkeys(sources.tolist()):
        mine = sources == name
        its_groups = None if named is None else named[mine].tolist()
        result[name] = classification_metrics(true[mine], probs[mine].argmax(1), classes, n_resamples=config.bootstrap,
                                              seed=config.seed, group_by=group_by, groups=its_groups)
        result[name]["affect_auc"] = affect_aucs(true[mine], probs[mine], classes, config.bootstrap, config.seed, its_groups)
    return result


@dataclass
class Grouping:
    """Which group each test image belongs to, for the group-level intervals; ``by`` empty: groups unknown."""

    by: str = ""
    manifest: str = ""
    origin: str = ""  # "--group-by", or "training" when the run's own --group-by was reused
    groups: dict[Path, str] = field(default_factory=dict)

    def of(self, paths: list[Path]) -> list[str] | None:
        return [self.groups[p] for p in paths] if self.by else None

    def record(self) -> dict:
        return {"group_by": self.by, "manifest": display_path(self.manifest) if self.manifest else "", "from": self.origin}


def group_test_images(config: EvalConfig, meta: ModelMeta, test: TestSet) -> Grouping:
    """The group of every test image: by --group-by (a --manifest column, or near-duplicate clusters); on the run's own
    test split without --group-by, by the grouping the run was trained with; ``none``: no groups."""
    group_by, manifest, origin = config.group_by, config.manifest, "--group-by"
    if group_by == "none":
        return Grouping()
    if not group_by and not manifest and test.own_split:
        options = meta.training_config().data_options
        group_by, manifest, origin = options.group_by, options.manifest, "training"
        if manifest and not Path(manifest).is_file():
            log.warning("WARNING: the run was trained with --group-by %s --manifest %s, which is not found from here; "
                        "pass --group-by and --manifest to get group-level intervals", group_by, manifest)
            return Grouping()
        if group_by:
            log.info("groups: --group-by %s%s, as at training (--group-by none: no groups)", group_by,
                     f" --manifest {manifest}" if manifest else "")
    if not group_by:
        if manifest:
            raise DataError(f"--manifest {manifest}: say which of its columns holds each image's group with --group-by COLUMN")
        return Grouping()
    files = [_shown_path(p, test.root) for p in test.paths]
    names = resolve_groups(test.root, files, test.paths, group_by, manifest, config.progress)
    return Grouping(group_by, manifest, origin, dict(zip(test.paths, names)))


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


def prediction_rows(files: list[str], true, pred, probs, classes: list[str], face_found: list[bool | None],
                    groups: list[str] | None = None) -> list[PredictionRow]:
    """One row of predictions.csv per image."""
    return [PredictionRow(file, classes[t], classes[p], {c: float(v) for c, v in zip(classes, prob)}, found_text(found), group)
            for file, t, p, prob, found, group in zip(files, true, pred, probs, face_found, groups or [""] * len(files))]


def _plot_grid(path: Path, framed: FramedImages, true, pred, probs, classes: list[str], config: EvalConfig) -> None:
    confidence = probs.max(1)
    chosen = select_grid_samples(true.tolist(), pred.tolist(), confidence.tolist(), n=config.grid_size, seed=config.seed)
    # what the model saw (the face square, or the whole image), decoded again at a size a person can see
    images = [load_framed(framed.decoded.paths[i], framed.boxes[i], GRID_TILE_SIZE) for i in chosen]
    plot_prediction_grid(
        images, [classes[true[i]] for i in chosen], [classes[pred[i]] for i in chosen],
        [float(confidence[i]) for i in chosen], path, title="Test images: truth vs prediction (mistakes in red)",
    )
