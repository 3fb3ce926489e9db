"""Training data, prepared once: scanned, decoded (through the cache), split, checked for leakage, normalised.

``prepare_data(config)`` returns everything the loop and the bundle need (label map, source folders, framing
included, so that nothing is read again later) and the rows of the run's split manifest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babyface.config import TrainConfig, data_sources
from babyface.data.cache import load_decoded
from babyface.data.decoded import DecodedImages, channel_stats, fit_memory_budget
from babyface.data.duplicates import Signatures, signatures
from babyface.data.folds import apply_split_file
from babyface.data.groups import resolve_groups
from babyface.data.images import display_path
from babyface.data.leakage import check_leakage, file_signatures
from babyface.data.relabel import relabel_scan
from babyface.data.scan import DatasetScan, Sample
from babyface.data.sources import label_by_age, load_label_map, scan_sources
from babyface.data.splits import group_stratified_split, limit_per_class, stratified_split
from babyface.errors import DataError
from babyface.faces.framing import WHOLE, training_framing
from babyface.run import SplitRow

log = logging.getLogger("babyface")


@dataclass
class PreparedData:
    classes: list[str]
    train: DecodedImages
    val: DecodedImages
    split_rows: list[SplitRow]  # every image's split, for the run's split manifest (splits.csv)
    skipped: list[str]
    mean: list[float]
    std: list[float]
    sources: dict[Path, str] = field(default_factory=dict)  # image path -> source name (several --data)
    root: Path = Path(".")  # the split manifest's files are relative to it
    decisions: list[str] = field(default_factory=list)  # the classes decisions are taken over ([] = all of them)
    label_map: dict[str, str | None] = field(default_factory=dict)  # --label-map as read ({} without one)
    source_folders: list[Path] = field(default_factory=list)  # the dataset folders: --data, then every --sources
    framing: dict[str, Any] = field(default_factory=lambda: dict(WHOLE))  # how the images are framed (model.json's)

    @property
    def decision_index(self) -> list[int] | None:
        return [self.classes.index(c) for c in self.decisions] if self.decisions else None

    @classmethod
    def bare(cls, train: DecodedImages, mean: list[float], std: list[float]) -> PreparedData:
        """``train`` alone, its classes numbered, no validation images: for a bare training loop (benchmarks, tests)."""
        classes = [str(c) for c in range(int(train.labels.max()) + 1)]
        return cls(classes, train, train.subset([]), [], [], mean, std)


def prepare_data(config: TrainConfig, normalisation: tuple[list[float], list[float]] | None = None) -> PreparedData:
    """Scan, decode once (through the decode cache), split off validation (and test for a one-folder dataset) unless
    --split-file fixes the splits, hold the images in memory or stream them (--cache-mem), compute normalisation
    unless ``normalisation`` (mean, std) is given: the input scale an --init run's first layer expects."""
    opts = config.data_options
    label_map = load_label_map(opts.label_map) if opts.label_map else None
    folders = data_sources(config)
    scan = scan_sources(folders, label_map, opts.test_fraction, config.seed)
    if opts.test_fraction == 0:
        log.info("--test-fraction 0: no test images held out (test/ folders are trained on too); every image but the "
                 "validation share is learned from, so measure this model on data it never saw")
    if opts.relabel:
        scan = relabel_scan(scan, opts.relabel, opts.min_votes)
    if opts.label_by == "age":
        scan = label_by_age(scan, opts.adults)
    if opts.split_file:
        scan = apply_split_file(scan, opts.split_file)
    samples = scan.train.samples
    split_rows: list[SplitRow] = []
    if scan.layout == "folders":
        kept, held = stratified_split([s.label for s in samples], opts.test_fraction, config.seed)
        split_rows += [_row(samples[i], "test", scan) for i in held]
        samples = [samples[i] for i in kept]
    samples = [samples[i] for i in limit_per_class([(s.source, s.label) for s in samples], opts.max_per_class, config.seed)]
    decoded = load_decoded([s.path for s in samples], [s.label for s in samples], opts, config.progress, "decode train")
    _check_decoded(decoded, scan)
    if opts.leakage_check:
        test_paths = [s.path for s in scan.test.samples] if scan.test is not None else [scan.root / row.file for row in split_rows]
        _check_train_test_leakage(decoded, test_paths, scan.root, config)
    sources = {s.path: s.source for split in (scan.train, scan.val, scan.test) if split is not None for s in split.samples if s.source}
    train, val = fit_memory_budget(_validation_split(decoded, scan, config, sources), opts.cache_mem)
    split_rows += _rows(train, "train", scan, sources) + _rows(val, "val", scan, sources)
    if scan.test is not None:
        split_rows += [_row(s, "test", scan) for s in scan.test.samples]
    mean, std = normalisation or channel_stats(train.images, gray=config.color == "gray")
    return PreparedData(scan.classes, train, val, split_rows, decoded.skipped, mean, std, sources, scan.root,
                        decision_classes(config.decide_over, scan.classes), label_map or {}, [Path(f) for f in folders],
                        training_framing(opts.framing, folders, opts.face_margin))


def decision_classes(wanted: list[str], classes: list[str]) -> list[str]:
    """``--decide-over`` among the data's classes, in the model's order; [] when decisions are over all of them."""
    chosen = [c for c in classes if c in wanted]
    if wanted and len(chosen) < 2:  # e.g. the infant recipe's happy,neutral,sad on folders named laughing and crying
        log.warning("--decide-over %s: the data has %d of these classes (its classes: %s), so decisions are over all "
                    "of them", ",".join(wanted), len(chosen), ", ".join(classes))
        return []
    if len(chosen) < len(wanted):
        log.info("--decide-over: %s not in the data, left out", ", ".join(c for c in wanted if c not in classes))
    return chosen if len(chosen) < len(classes) else []


def _validation_split(decoded: DecodedImages, scan: DatasetScan, config: TrainConfig,
                      sources: dict[Path, str]) -> tuple[DecodedImages, DecodedImages]:
    """DATA/val when it exists; else a share of train stratified by source and class (a small infant source gives
    its share, not whatever whole groups happen to fill a class's quota), keeping --group-by groups whole."""
    opts = config.data_options
    if scan.val is not None:
        val = load_decoded([s.path for s in scan.val.samples], [s.label for s in scan.val.samples], opts, config.progress, "decode val")
        return decoded, val
    labels = _strata(decoded, sources)
    if opts.group_by:
        files = [_relative(p, scan.root) for p in decoded.paths]
        groups = resolve_groups(scan.root, files, decoded.paths, opts.group_by, opts.manifest, config.progress)
        assigned = group_stratified_split(labels, groups, {"val": opts.val_fraction}, config.seed + 1)
        return (decoded.subset([i for i, s in enumerate(assigned) if s == "train"]),
                decoded.subset([i for i, s in enumerate(assigned) if s == "val"]))
    train_idx, val_idx = stratified_split(labels, opts.val_fraction, config.seed + 1)
    return decoded.subset(train_idx), decoded.subset(val_idx)


def _strata(decoded: DecodedImages, sources: dict[Path, str]) -> list[int]:
    """One code per (source, class) pair of each image."""
    keys = [(sources.get(p, ""), int(label)) for p, label in zip(decoded.paths, decoded.labels)]
    codes = {key: i for i, key in enumerate(sorted(set(keys)))}
    return [codes[key] for key in keys]


def _check_train_test_leakage(decoded: DecodedImages, test_paths: list[Path], root: Path, config: TrainConfig) -> None:
    if not test_paths:
        return
    test, kept = file_signatures(test_paths, progress=config.progress)
    train = Signatures.concat([signatures(chunk.numpy()) for chunk in decoded.images.split(2048)])
    check_leakage(train, decoded.paths, test, kept, root, strict=config.data_options.strict)


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _row(sample: Sample, split: str, scan: DatasetScan) -> SplitRow:
    return SplitRow(_relative(sample.path, scan.root), split, scan.classes[sample.label], sample.source or "")


def _rows(images: DecodedImages, split: str, scan: DatasetScan, sources: dict[Path, str]) -> list[SplitRow]:
    return [SplitRow(_relative(p, scan.root), split, scan.classes[int(label)], sources.get(p, ""))
            for p, label in zip(images.paths, images.labels)]


def _check_decoded(decoded: DecodedImages, scan: DatasetScan) -> None:
    present = set(decoded.labels.tolist())
    for label, name in enumerate(scan.classes):
        if label not in present:
            raise DataError(f"{display_path(scan.train.root / name)}: no image in this class could be decoded; fix or replace its files")


