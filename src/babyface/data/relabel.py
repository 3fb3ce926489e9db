"""Labels from a file instead of the class folders: ``--relabel CSV [--min-votes N]``.

The CSV has a ``file`` column and either a ``label`` column or annotators' vote counts in FER+'s columns (neutral,
happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, nf). With votes, a file's label is the class
with the most votes, kept when it has at least ``--min-votes`` of them and is not tied, 'unknown' or 'not a face'.
FER+'s names become babyface's (happiness → happy, sadness → sad, anger → angry); contempt has no FER2013 folder and
is dropped. A listed file whose label is missing, dropped or not one of the data's classes is left out (counted in the
log); files the CSV does not list keep their folder's label, so one CSV of FER2013's votes can relabel FER2013 among
infant sources it does not cover.

``file`` may be relative to the folder holding every source (as FER+'s labels.csv is to shared/data), to the CSV's
folder or to its parent: the base under which its files exist is used.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from babyface.data.images import display_path
from babyface.data.scan import DatasetScan, Sample, SplitScan
from babyface.errors import DataError

log = logging.getLogger("babyface")

FERPLUS_CLASSES = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
                   "anger": "angry", "disgust": "disgust", "fear": "fear", "contempt": None}
FERPLUS_NO_LABEL = ("unknown", "nf")
FERPLUS_COLUMNS = (*FERPLUS_CLASSES, *FERPLUS_NO_LABEL)


@dataclass(frozen=True)
class Relabelling:
    """Each listed file's new label (None: left out), keyed by its resolved path."""

    labels: dict[Path, str | None]
    source: str  # the CSV, for messages


def vote_label(votes: dict[str, int], min_votes: int) -> str | None:
    """The class with the most votes (babyface's name), or None: tied, unknown/not-a-face, contempt, or fewer than
    ``min_votes`` votes."""
    ranked = sorted(votes.items(), key=lambda item: item[1], reverse=True)
    if not ranked or ranked[0][1] <= 0 or ranked[0][1] < min_votes:
        return None
    if len(ranked) > 1 and ranked[1][1] == ranked[0][1]:
        return None
    return FERPLUS_CLASSES.get(ranked[0][0])


def read_relabelling(path: str | os.PathLike, root: Path, min_votes: int = 0) -> Relabelling:
    """Read ``path`` (see the module's docstring); ``root`` is the folder holding every source."""
    where = display_path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            rows = list(reader)
    except FileNotFoundError:
        raise DataError(f"{where}: not found; check the --relabel path") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{where}: cannot read the labels CSV ({str(exc).splitlines()[0]}); fix or re-export it") from None
    votes = all(column in header for column in FERPLUS_COLUMNS)
    if "file" not in header or not (votes or "label" in header):
        raise DataError(f"{where}: needs a 'file' column and a 'label' column or FER+'s vote columns "
                        f"({', '.join(FERPLUS_COLUMNS)}); its columns are {', '.join(header) or 'none'}")
    base = _base_folder(Path(path), root, [row["file"] for row in rows], where)
    labels: dict[Path, str | None] = {}
    for number, row in enumerate(rows, start=2):
        file = (base / row["file"].replace("\\", "/")).resolve()
        labels[file] = vote_label(_votes(row, where, number), min_votes) if votes else (row["label"].strip() or None)
    return Relabelling(labels, where)


def _votes(row: dict[str, str], where: str, number: int) -> dict[str, int]:
    try:
        return {column: int(float(row[column] or 0)) for column in FERPLUS_COLUMNS}
    except ValueError:
        raise DataError(f"{where}: line {number} has a vote count that is not a number; fix that row") from None


def _base_folder(csv_path: Path, root: Path, files: list[str], where: str) -> Path:
    """The folder the CSV's files are relative to: the sources' common folder, the CSV's folder or its parent,
    whichever holds the most of a sample of them."""
    candidates = list(dict.fromkeys([root, csv_path.parent, csv_path.parent.parent]))
    sample = files[:: max(1, len(files) // 200)][:200]
    found = [sum((base / f).is_file() for f in sample) for base in candidates]
    if not sample or max(found) == 0:
        raise DataError(f"{where}: none of its files is found relative to {' or '.join(display_path(c) for c in candidates)}; "
                        "write 'file' relative to the folder that holds the DATA sources")
    return candidates[found.index(max(found))]


def apply_relabelling(scan: DatasetScan, relabelling: Relabelling) -> DatasetScan:
    """``scan`` with every listed file's label replaced (left out when it has none among the scan's classes)."""
    index = {name: i for i, name in enumerate(scan.classes)}
    dropped: Counter[str] = Counter()
    changed = matched = 0

    def relabelled(split: SplitScan | None) -> SplitScan | None:
        nonlocal changed, matched
        if split is None:
            return None
        kept = []
        for sample in split.samples:
            path = sample.path.resolve()
            if path not in relabelling.labels:
                kept.append(sample)
                continue
            matched += 1
            target = relabelling.labels[path]
            if target not in index:
                dropped[target or "no label"] += 1
                continue
            changed += index[target] != sample.label
            kept.append(Sample(sample.path, index[target], sample.source))
        return SplitScan(split.root, split.classes, kept, split.ignored)

    result = DatasetScan(scan.root, scan.layout, scan.classes, relabelled(scan.train), relabelled(scan.test),
                         relabelled(scan.val))
    if not matched:
        raise DataError(f"{relabelling.source}: lists none of the images of {display_path(scan.root)}; check that its "
                        "'file' column names these images")
    log.info("--relabel %s: %d image(s) change class, %d left out (%s)", relabelling.source, changed,
             sum(dropped.values()), ", ".join(f"{name} {n}" for name, n in dropped.most_common()) or "none")
    return result


def relabel_scan(scan: DatasetScan, path: str | os.PathLike, min_votes: int = 0) -> DatasetScan:
    """``--relabel CSV --min-votes N`` applied to ``scan``."""
    return apply_relabelling(scan, read_relabelling(path, scan.root, min_votes))
