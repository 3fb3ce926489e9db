"""Several datasets in one label space: ``--data A --data B --label-map map.yaml``.

A label map renames or merges classes (``laughing: happy``) and drops them (``sleeping: null``).
Each source keeps its own test split (its test/ folder, or a stratified held-out share of a one-folder
dataset), every sample remembers its source, and the result is one BabyFace-style scan whose root is
the sources' common folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

from babyface.config import load_yaml
from babyface.data.images import display_path
from babyface.data.scan import DatasetScan, Sample, SplitScan, scan_dataset
from babyface.data.splits import stratified_split
from babyface.errors import DataError

LabelMap = Mapping[str, "str | None"]


def load_label_map(path: str | os.PathLike) -> dict[str, str | None]:
    """A YAML mapping of class folder name → model class name, or null to drop that class."""
    data = load_yaml(path, "label map", "--label-map", DataError)
    if not all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in data.items()):
        raise DataError(f"{display_path(path)}: a label map is a YAML mapping 'folder_class: model_class' (or null to drop)")
    return data


def scan_sources(paths: Sequence[str | os.PathLike], label_map: LabelMap | None, test_fraction: float | None, seed: int,
                 check_map: bool = True) -> DatasetScan:
    """One scan over all ``paths``; a single source without a label map is returned exactly as scanned.

    ``test_fraction=None`` makes every image of a one-folder source a test image (evaluating on data
    that was never trained on); ``0`` holds out nothing: test/ folders are trained on too (the final fit). ``check_map=False`` accepts a map naming classes these sources lack (the map a run
    was trained with, applied to a test set that has only some of its folders)."""
    if len(paths) == 1 and not label_map:
        scan = scan_dataset(paths[0])
        return _test_trained_on(scan) if test_fraction == 0 and scan.test is not None else scan
    label_map = dict(label_map or {})
    scans = [scan_dataset(p, min_classes=1) for p in paths]  # a one-class source is fine: classes are counted over all
    if check_map:
        _check_label_map(label_map, scans)
    classes = sorted({_mapped(c, label_map) for scan in scans for c in scan.classes} - {None})
    if len(classes) < 2:
        raise DataError(f"the label map leaves {len(classes)} class ({', '.join(classes) or 'none'}); at least 2 are needed")
    _check_no_overlap(scans)
    # absolute but not resolved: sample paths stay as the user wrote them (links included), only anchored
    root = Path(os.path.commonpath([os.path.abspath(s.root) for s in scans]))
    names = _source_names(scans)
    train, test = [], []
    for name, scan in zip(names, scans):
        held_in, held_out = _source_splits(scan, test_fraction, seed)
        train += _relabel(held_in, scan.classes, classes, label_map, name)
        test += _relabel(held_out, scan.classes, classes, label_map, name)
    return DatasetScan(root, "sources", classes, SplitScan(root, classes, train), SplitScan(root, classes, test))


def _mapped(name: str, label_map: LabelMap) -> str | None:
    return label_map.get(name, name)


def _check_label_map(label_map: LabelMap, scans: Sequence[DatasetScan]) -> None:
    known = {c for scan in scans for c in scan.classes}
    unknown = sorted(set(label_map) - known)
    if unknown:
        raise DataError(f"--label-map names class(es) {', '.join(unknown)} that no source has; the sources' classes are {', '.join(sorted(known))}")


def _check_no_overlap(scans: Sequence[DatasetScan]) -> None:
    seen: dict[Path, Path] = {}
    for scan in scans:
        for split in scan.splits().values():
            for sample in split.samples:
                real = sample.path.resolve()
                if real in seen and seen[real] != scan.root:
                    raise DataError(f"{display_path(sample.path)} is in two sources ({display_path(seen[real])} and "
                                    f"{display_path(scan.root)}); give each folder once")
                seen[real] = scan.root


def _source_names(scans: Sequence[DatasetScan]) -> list[str]:
    """Short unique names: the folder names, numbered when two are alike. Folders named STEM-A, STEM-B, ... that share
    no class are one dataset kept in several folders (FER2013's seven classes as fer2013-hsn and fer2013-other) and
    are one source, STEM: its classes are then all covered, so none of its images is trained as if a class were
    missing from it."""
    folders = [scan.root.resolve().name for scan in scans]
    stems = [name.rsplit("-", 1)[0] if "-" in name.strip("-") else "" for name in folders]
    names: list[str] = []
    for folder, stem in zip(folders, stems):
        parts = [scan for scan, other in zip(scans, stems) if stem and other == stem]
        if len(parts) > 1 and _no_shared_class(parts):
            names.append(stem)
        else:
            names.append(folder if folder not in names else f"{folder}-{len(names)}")
    return names


def _no_shared_class(scans: Sequence[DatasetScan]) -> bool:
    classes = [c for scan in scans for c in scan.classes]
    return len(classes) == len(set(classes))


def _source_splits(scan: DatasetScan, test_fraction: float | None, seed: int) -> tuple[list[Sample], list[Sample]]:
    """(train + val samples, test samples) of one source; a one-folder source holds out a stratified share."""
    if scan.layout == "folders" and test_fraction is None:
        return [], scan.train.samples
    if scan.layout == "folders":
        samples = scan.train.samples
        kept, held = stratified_split([s.label for s in samples], test_fraction, seed)
        return [samples[i] for i in kept], [samples[i] for i in held]
    train = scan.train.samples + (scan.val.samples if scan.val is not None else [])
    if test_fraction == 0:
        return train + scan.test.samples, []
    return train, scan.test.samples


def _test_trained_on(scan: DatasetScan) -> DatasetScan:
    """A BabyFace layout whose test/ images are training images too (--test-fraction 0)."""
    samples = scan.train.samples + scan.test.samples
    return DatasetScan(scan.root, scan.layout, scan.classes, SplitScan(scan.root, scan.classes, samples),
                       SplitScan(scan.root, scan.classes, []), scan.val)


def _relabel(samples: Sequence[Sample], old: list[str], new: list[str], label_map: LabelMap, source: str) -> list[Sample]:
    index = {name: i for i, name in enumerate(new)}
    out = []
    for sample in samples:
        target = _mapped(old[sample.label], label_map)
        if target is not None:
            out.append(Sample(Path(os.path.abspath(sample.path)), index[target], source))
    return out


AGE_CLASSES = ["adult", "infant"]


def label_by_age(scan: DatasetScan, adults: str) -> DatasetScan:
    """Every image labelled by who is in it: ``adult`` for the sources named in ``adults`` (a source's name, or the
    name of one of its folders, e.g. fer2013-hsn of the source fer2013), ``infant`` for the others."""
    names = [n.strip() for n in adults.split(",") if n.strip()]
    sources = sorted({s.source for split in scan.splits().values() for s in split.samples})
    if not names or len(sources) < 2 or "" in sources:
        raise DataError("labels by age need several sources (--data) and --adults naming the adult ones, e.g. "
                        "--adults fer2013-hsn,fer2013-other")
    adult = {source for source in sources for name in names if name == source or name.startswith(f"{source}-")}
    unknown = [n for n in names if not any(n == s or n.startswith(f"{s}-") for s in sources)]
    if unknown or adult == set(sources):
        raise DataError(f"--adults {adults}: " + (f"no source is named {', '.join(unknown)}" if unknown else
                        "every source would be adults, leaving no infants") + f"; the sources are {', '.join(sources)}")

    def relabelled(split: SplitScan | None) -> SplitScan | None:
        if split is None:
            return None
        samples = [Sample(s.path, AGE_CLASSES.index("adult" if s.source in adult else "infant"), s.source) for s in split.samples]
        return SplitScan(split.root, list(AGE_CLASSES), samples, split.ignored)

    return DatasetScan(scan.root, scan.layout, list(AGE_CLASSES), relabelled(scan.train), relabelled(scan.test),  # type: ignore[arg-type]
                       relabelled(scan.val))

