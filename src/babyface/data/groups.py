"""Which images belong together (one infant, one clip, a cluster of near-duplicates): a group name per file, for
group-aware splits, grouped validation and intervals that resample whole groups."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from babyface.data.duplicates import cluster_ids, describe_files, duplicate_clusters
from babyface.data.images import display_path
from babyface.data.manifest import read_manifest_column
from babyface.errors import BabyfaceError

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
