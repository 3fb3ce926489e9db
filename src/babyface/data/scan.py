"""Find classes and image files: the BabyFace layout (train/ and test/) or one folder of class folders."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from babyface.data.images import display_path, is_image_file
from babyface.errors import DataError
from babyface.run import check_class_name

LAYOUT_HELP = (
    "expected DATA/train/<class>/*.jpg and DATA/test/<class>/*.jpg (the BabyFace layout) "
    "or DATA/<class>/*.jpg; see README section 'Getting the BabyFace data', or run 'babyface synth DATA'"
)


@dataclass
class Sample:
    path: Path
    label: int
    source: str = ""  # the dataset it came from, when several are combined


@dataclass
class SplitScan:
    root: Path
    classes: list[str]
    samples: list[Sample]
    ignored: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts = {name: 0 for name in self.classes}
        for sample in self.samples:
            counts[self.classes[sample.label]] += 1
        return counts


@dataclass
class DatasetScan:
    root: Path
    layout: str  # "babyface" (train/ + test/) or "folders" (one folder of class folders)
    classes: list[str]
    train: SplitScan
    test: SplitScan | None
    val: SplitScan | None = None  # DATA/val/<class>/ beside train/ and test/, e.g. from 'babyface data split'

    def splits(self) -> dict[str, SplitScan]:
        """Every split by name; a one-folder dataset is the single split 'all'."""
        if self.layout == "folders":
            return {"all": self.train}
        named = {"train": self.train, "val": self.val, "test": self.test}
        return {name: split for name, split in named.items() if split is not None}


def scan_dataset(root: str | os.PathLike, min_classes: int = 2) -> DatasetScan:
    """Scan DATA; raises DataError (one line) for every layout problem the user must fix. ``min_classes=1``
    accepts a single class folder (one of several sources: the classes are counted over all of them)."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{display_path(root)}: folder not found; {LAYOUT_HELP}")
    if not root.is_dir():
        raise DataError(f"{display_path(root)}: not a folder; {LAYOUT_HELP}")
    if (root / "train").is_dir() and (root / "test").is_dir():
        train = scan_class_folders(root / "train", min_classes=min_classes)
        test = scan_class_folders(root / "test", expected_classes=train.classes, min_classes=min_classes)
        val = scan_class_folders(root / "val", expected_classes=train.classes, min_classes=min_classes) if (root / "val").is_dir() else None
        return DatasetScan(root, "babyface", train.classes, train, test, val)
    if (root / "train").is_dir() != (root / "test").is_dir():
        present, missing = ("train", "test") if (root / "train").is_dir() else ("test", "train")
        raise DataError(f"{display_path(root)}: has {present}/ but no {missing}/; add {missing}/<class>/ folders or use DATA/<class>/ directly")
    split = scan_class_folders(root, min_classes=min_classes)
    return DatasetScan(root, "folders", split.classes, split, None)


def scan_class_folders(root: Path, expected_classes: list[str] | None = None, min_classes: int = 2) -> SplitScan:
    """Classes are the sorted sub-folder names; images are found recursively inside each (links to folders are not followed)."""
    class_dirs = sorted(p for p in _list_dir(root) if p.is_dir() and not p.name.startswith("."))
    stray = sorted(display_path(p) for p in _list_dir(root) if not p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{display_path(root)}: no class folders found; {LAYOUT_HELP}")
    classes = [p.name for p in class_dirs]
    for class_dir in class_dirs:
        try:
            check_class_name(class_dir.name)
        except ValueError as exc:
            raise DataError(f"{display_path(class_dir)}: class folder {exc} (every prediction prints it); rename the folder") from None
    if len(classes) < min_classes:
        raise DataError(f"{display_path(root)}: only one class folder ({classes[0]}); at least 2 classes are needed")
    if expected_classes is not None and classes != expected_classes:
        raise DataError(
            f"{display_path(root)}: classes {classes} do not match train classes {expected_classes}; "
            "give test/ the same class folders as train/"
        )
    samples: list[Sample] = []
    ignored = list(stray)
    for label, class_dir in enumerate(class_dirs):
        files, skipped = _find_images(class_dir)
        if not files:
            raise DataError(f"{display_path(class_dir)}: class folder has no images; add images or remove the folder")
        samples.extend(Sample(path, label) for path in files)
        ignored.extend(skipped)
    return SplitScan(root, classes, samples, ignored)


def _list_dir(root: Path) -> list[Path]:
    try:
        return list(root.iterdir())
    except OSError as exc:
        raise DataError(f"{display_path(root)}: cannot list folder ({exc.strerror}); check its permissions") from None


def _find_images(class_dir: Path) -> tuple[list[Path], list[str]]:
    files: list[Path] = []
    ignored: list[str] = []
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith("."):
                continue
            if is_image_file(path):
                files.append(path)
            else:
                ignored.append(display_path(path))
    return files, ignored


@dataclass
class DatasetFile:
    """One image of a dataset as audit, data split and data crop list it."""

    file: str  # relative to DATA, '/'-separated
    split: str  # train / val / test, or 'all' for one folder of class folders
    label: str


def list_dataset_files(data: str | os.PathLike, min_classes: int = 2) -> tuple[Path, list[DatasetFile], list[Path]]:
    """Every image of DATA with its split and class: (root, files, absolute paths)."""
    scan = scan_dataset(data, min_classes=min_classes)
    files, paths = [], []
    for split_name, split in scan.splits().items():
        for sample in split.samples:
            files.append(DatasetFile(sample.path.relative_to(scan.root).as_posix(), split_name, split.classes[sample.label]))
            paths.append(sample.path)
    return scan.root, files, paths
