"""Group-aware splitting: `babyface data split` writes a new BabyFace layout in which every group
(an infant, a clip, a cluster of near-duplicates) sits whole in one split."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from babyface.config import SplitConfig
from babyface.data.groups import resolve_groups
from babyface.data.layout import link_or_copy
from babyface.data.scan import list_dataset_files
from babyface.data.splits import group_stratified_split
from babyface.faces.framing import copy_framing_file
from babyface.outputs import prepare_output_dir, write_csv

log = logging.getLogger("babyface")

LAYOUT_FILE = "layout.csv"  # every image of OUT: file, split, label, group, source (its file in DATA)
OLD_LAYOUT_FILE = "splits.csv"  # what earlier versions called it, a name a run's split manifest has too
LAYOUT_COLUMNS = ["file", "split", "label", "group", "source"]


def layout_file(folder: str | Path) -> Path | None:
    """The layout.csv ``data split`` wrote into ``folder`` (or the splits.csv earlier versions wrote), None if neither."""
    for name in (LAYOUT_FILE, OLD_LAYOUT_FILE):
        path = Path(folder) / name
        if path.is_file():
            return path
    return None


def split_dataset(config: SplitConfig) -> dict:
    """Write OUT/train, OUT/test (and OUT/val) as links (or copies) of DATA's images, plus OUT/layout.csv (and DATA's
    framing.json, when ``data crop`` wrote DATA)."""
    root, listed, paths = list_dataset_files(config.data, min_classes=1)  # one class (crying infants) splits too
    files = [f.file for f in listed]
    groups = resolve_groups(root, files, paths, config.group_by, config.manifest, config.progress)
    classes = sorted({f.label for f in listed})
    labels = [classes.index(f.label) for f in listed]
    assigned = group_stratified_split(labels, groups, {"test": config.test, "val": config.val}, config.seed)
    out = prepare_output_dir(config.out)
    rows = []
    for item, source, split, group in zip(listed, paths, assigned, groups):
        target = _target_path(out / split / item.label, source)
        link_or_copy(source, target, config.copy_files)
        rows.append((target.relative_to(out).as_posix(), split, item.label, group, item.file))
    layout = write_csv(out / LAYOUT_FILE, LAYOUT_COLUMNS, rows)
    copy_framing_file(root, out)  # a split of `data crop` output is still face crops
    counts = Counter((split, item.label) for split, item in zip(assigned, listed))
    return {"out": str(out), "layout": str(layout), "groups": len(set(groups)),
            "counts": {f"{s}/{c}": n for (s, c), n in sorted(counts.items())}}


def _target_path(folder: Path, source: Path) -> Path:
    """OUT/<split>/<class>/<name>; a name already taken (two source splits held one) gets a numbered suffix."""
    target = folder / source.name
    number = 2
    while target.exists():
        target = folder / f"{source.stem}_{number}{source.suffix}"
        number += 1
    return target
