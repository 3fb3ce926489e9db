"""Group-aware splitting: `babyface data split` writes a new BabyFace layout in which every group
(an infant, a clip, a cluster of near-duplicates) sits whole in one split."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Sequence

from babyface.config import SplitConfig
from babyface.data.audit import list_dataset_files
from babyface.data.duplicates import cluster_ids, describe_files, duplicate_clusters
from babyface.data.framing import copy_framing_file
from babyface.data.images import display_path
from babyface.data.manifest import read_manifest_column
from babyface.data.splits import group_stratified_split
from babyface.errors import BabyfaceError, DataError
from babyface.io import prepare_output_dir, write_csv

log = logging.getLogger("babyface")
NEAR_DUPLICATES = "near-duplicates"


def resolve_groups(root: Path, files: Sequence[str], paths: Sequence[Path], group_by: str, manifest: str,
                   progress: bool = True) -> list[str]:
    """A group name per file: its manifest value, its near-duplicate cluster, or (no grouping) the file itself.
    Files without a group (missing from the manifest, unreadable) stand alone."""
    if not group_by:
        if manifest:
            raise BabyfaceError("--manifest needs --group-by COLUMN: the manifest column that holds each file's group")
        return list(files)
    if group_by == NEAR_DUPLICATES:
        described = describe_files(paths, progress=progress, desc="near-duplicates")
        _, grouped = duplicate_clusters(described)
        by_row = cluster_ids(len(described.kept), grouped)
        groups = list(files)
        for row, index in enumerate(described.kept):
            groups[index] = by_row[row]
        return groups
    if not manifest:
        raise BabyfaceError(f"--group-by {group_by}: give --manifest CSV holding that column, or use --group-by {NEAR_DUPLICATES}")
    values = read_manifest_column(manifest, group_by, root).values
    ungrouped = [f for f in files if not values.get(f)]
    if ungrouped:
        log.warning("%d file(s) have no %s in %s (first: %s); each stands alone", len(ungrouped), group_by, display_path(manifest), ungrouped[0])
    return [f"{group_by}={values[f]}" if values.get(f) else f for f in files]


def split_dataset(config: SplitConfig) -> dict:
    """Write OUT/train, OUT/test (and OUT/val) as links (or copies) of DATA's images, plus OUT/splits.csv (and DATA's
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
    write_csv(out / "splits.csv", ["file", "split", "label", "group", "source"], rows)
    copy_framing_file(root, out)  # a split of `data crop` output is still face crops
    counts = Counter((split, item.label) for split, item in zip(assigned, listed))
    return {"out": str(out), "groups": len(set(groups)), "counts": {f"{s}/{c}": n for (s, c), n in sorted(counts.items())}}


def _target_path(folder: Path, source: Path) -> Path:
    """OUT/<split>/<class>/<name>; a name already taken (two source splits held one) gets a numbered suffix."""
    target = folder / source.name
    number = 2
    while target.exists():
        target = folder / f"{source.stem}_{number}{source.suffix}"
        number += 1
    return target


def link_or_copy(source: Path, target: Path, copy: bool = False) -> None:
    """A hard link of ``source`` at ``target`` (a copy across file systems or with ``copy``), folders made."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if not copy:
            try:
                os.link(source, target)
                return
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
        shutil.copy2(source, target)
    except OSError as exc:
        raise DataError(f"{display_path(target)}: cannot write ({exc.strerror}); choose a writable OUT with free space") from None
