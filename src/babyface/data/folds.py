"""Cross-validation folds over every image of the DATA sources, and fixed splits read from a file.

``plan_folds`` gives each image a fold: k group-stratified folds (no group in two folds, classes spread as evenly as
the groups allow) or one fold per source (``loso``: leave one source out). Fold k's training is told which images are
its test set through a split file (``file,split``), which ``apply_split_file`` turns into the scan training uses.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from babyface.data.images import display_path
from babyface.data.manifest import read_manifest_column
from babyface.data.scan import DatasetScan, Sample, SplitScan
from babyface.data.splits import group_stratified_folds
from babyface.errors import DataError

log = logging.getLogger("babyface")

LOSO = "loso"
SPLITS = ("train", "val", "test")


def all_samples(scan: DatasetScan) -> list[Sample]:
    """Every image of a scan, whatever split its folders put it in."""
    return [sample for split in scan.splits().values() for sample in split.samples]


def relative_file(sample: Sample, root: Path) -> str:
    return sample.path.relative_to(root).as_posix()


# ---------------------------------------------------------------- folds


@dataclass(frozen=True)
class FoldRow:
    file: str  # relative to the plan's root, '/'-separated
    label: str
    group: str
    source: str
    fold: int  # 1 … number of folds; 0: trained on in every fold (a source --hold-out does not name)


@dataclass
class FoldPlan:
    root: Path
    classes: list[str]
    rows: list[FoldRow]
    held_out: list[str]  # per fold: what it tests ("part 3 of the groups", or "source NAME", the source left out)

    @property
    def count(self) -> int:
        return len(self.held_out)

    def split_rows(self, fold: int) -> list[tuple[str, str]]:
        """(file, split) of every image for fold ``fold``'s training: its own images are test, the others train."""
        return [(row.file, "test" if row.fold == fold else "train") for row in self.rows]


def parse_folds(folds: str) -> int | str:
    """'5' → 5, 'loso' → 'loso'; anything else is a one-line error."""
    text = str(folds).strip().lower()
    if text == LOSO:
        return LOSO
    if text.isdigit() and int(text) >= 2:
        return int(text)
    raise DataError(f"--folds {folds!r}: give a number of folds of at least 2 (e.g. 5), or loso (leave one source out)")


def plan_folds(scan: DatasetScan, groups: Sequence[str], folds: str, seed: int, group_by: str = "",
               where: str = "DATA", hold_out: Sequence[str] = ()) -> FoldPlan:
    """The fold of every image of ``scan`` (``groups``: one per image of :func:`all_samples`, in that order).
    ``where`` (the manifest or DATA) names the file to fix in errors. Refuses what cannot be cross-validated: fewer
    groups than folds, a class found in one group only (the fold testing it would train without it), ``loso`` with
    one source or with a source that alone holds a class; warns when a class is in fewer groups than folds.
    ``hold_out`` (``loso`` only): the folds' sources, 'A+B' held out together; the sources it does not name are in
    every fold's training (fold 0)."""
    samples = all_samples(scan)
    if len(groups) != len(samples):
        raise ValueError(f"{len(groups)} groups for {len(samples)} images")
    labels = [sample.label for sample in samples]
    sources = [sample.source or "" for sample in samples]
    k = parse_folds(folds)
    if k == LOSO:
        names = list(dict.fromkeys(sources))
        folds_of_sources = held_out_sources(hold_out, names, sources) if hold_out else [[name] for name in names]
        _check_sources(folds_of_sources, sources, labels, scan.classes)
        fold_by_source = {name: i + 1 for i, members in enumerate(folds_of_sources) for name in members}
        fold_of = [fold_by_source.get(source, 0) - 1 for source in sources]  # -1: trained on in every fold
        held_out = [f"source {'+'.join(members)}" for members in folds_of_sources]
    else:
        _check_groups(k, groups, labels, scan.classes, group_by, where)
        fold_of = group_stratified_folds(labels, groups, k, seed)
        held_out = [f"part {i + 1} of the {'groups' if group_by else 'images'}" for i in range(k)]
    rows = [FoldRow(relative_file(sample, scan.root), scan.classes[sample.label], group, source, fold + 1)
            for sample, group, source, fold in zip(samples, groups, sources, fold_of)]
    return FoldPlan(scan.root, list(scan.classes), rows, held_out)


def _check_groups(k: int, groups: Sequence[str], labels: Sequence[int], classes: Sequence[str], group_by: str,
                  where: str) -> None:
    by = f"{group_by} groups" if group_by else "images (no --group-by)"
    distinct = len(set(groups))
    if distinct < k:
        raise DataError(f"{where}: {distinct} {by} for --folds {k}, and each fold must test at least one whole group; "
                        f"use --folds {max(distinct, 2)} or fewer{', or a finer --group-by' if group_by else ''}")
    groups_of: dict[int, set[str]] = defaultdict(set)
    for label, group in zip(labels, groups):
        groups_of[label].add(group)
    for label, names in sorted(groups_of.items()):
        if len(names) == 1:
            raise DataError(f"{where}: every '{classes[label]}' image is in one group ({next(iter(names))}), so the fold "
                            f"that tests it would train without any '{classes[label]}'; add '{classes[label]}' images of "
                            f"other groups, or drop the class with --label-map ({classes[label]}: null)")
        if len(names) < k:
            log.warning("WARNING: class '%s' is in only %d %s: %d of the %d folds test none of it (the pooled "
                        "out-of-fold results still count every image)", classes[label], len(names), by, k - len(names), k)


MIN_HELD_OUT = 10  # images: a held-out source with fewer measures nothing


def held_out_sources(hold_out: Sequence[str], names: list[str], sources: Sequence[str]) -> list[list[str]]:
    """--hold-out A+B --hold-out C as the sources of each fold, checked against the sources' ``names``; a fold of
    fewer than MIN_HELD_OUT images is skipped with one line."""
    folds, seen = [], set()
    size = Counter(sources)
    for entry in hold_out:
        members = [part.strip() for part in str(entry).split("+") if part.strip()]
        unknown = [m for m in members if m not in names]
        if unknown or not members:
            raise DataError(f"--hold-out {entry!r}: no source is named {', '.join(unknown) or 'that'}; the sources are "
                            f"{', '.join(names)} (a folder's name, numbered when two are alike)")
        twice = [m for m in members if m in seen]
        if twice:
            raise DataError(f"--hold-out: source {twice[0]} is named twice; hold each source out in one fold only")
        seen.update(members)
        count = sum(size[m] for m in members)
        if count < MIN_HELD_OUT:
            log.warning("--hold-out %s: %d image(s), too few to measure anything (at least %d); skipped, its images "
                        "are trained on in every fold", "+".join(members), count, MIN_HELD_OUT)
            continue
        folds.append(members)
    if not folds:
        raise DataError("--hold-out: no source is left to hold out; name sources of at least "
                        f"{MIN_HELD_OUT} images")
    return folds


def _check_sources(folds: list[list[str]], sources: Sequence[str], labels: Sequence[int], classes: Sequence[str]) -> None:
    if len(set(sources)) < 2:
        raise DataError("--folds loso (leave one source out) needs two or more sources: give them as DATA --data B "
                        "[--data C ...], or use --folds K")
    present = Counter((source, label) for source, label in zip(sources, labels))
    for members in folds:
        others = {label for (source, label) in present if source not in members}
        missing = [classes[label] for label in sorted({label for (_, label) in present} - others)]
        if missing:
            raise DataError(f"--folds loso: only source {'+'.join(members)} has {', '.join(missing)} images, so the "
                            f"model that leaves it out could not learn {'them' if len(missing) > 1 else 'it'}; add a "
                            f"source with {', '.join(missing)}, or drop the class with --label-map")


# ---------------------------------------------------------------- fixed splits from a file


def apply_split_file(scan: DatasetScan, split_file: str | os.PathLike) -> DatasetScan:
    """``scan`` with every image placed in the split that ``split_file`` (columns ``file`` relative to the scan's root,
    and ``split``: train, val or test) names; images it does not list are left out (counted in the log)."""
    where = display_path(split_file)
    wanted = read_manifest_column(split_file, "split", scan.root, flag="--split-file",
                                  needs="a 'split' column (train, val or test)").values
    unknown = sorted({split for split in wanted.values() if split not in SPLITS})
    if unknown:
        raise DataError(f"{where}: split {unknown[0]!r} is not one of {', '.join(SPLITS)}; fix the 'split' column")
    placed: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    left_out = 0
    for sample in all_samples(scan):
        split = wanted.get(relative_file(sample, scan.root))
        if split:
            placed[split].append(sample)
        else:
            left_out += 1
    if left_out:
        log.info("%d image(s) of %s are not listed in %s: left out", left_out, display_path(scan.root), where)
    if not placed["train"]:
        raise DataError(f"{where}: no image of {display_path(scan.root)} is marked train; list files relative to "
                        f"{display_path(scan.root)} with split train, val or test")

    def split_scan(name: str) -> SplitScan:
        return SplitScan(scan.root, scan.classes, sorted(placed[name], key=lambda s: s.path))

    return DatasetScan(scan.root, "babyface", scan.classes, split_scan("train"), split_scan("test"),
                       split_scan("val") if placed["val"] else None)
