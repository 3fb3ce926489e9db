"""Leakage guard for `train` and `evaluate`: test images that are near-duplicates of training images."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from babyface.data.duplicates import Signatures, cross_pairs, describe_files
from babyface.data.images import display_path
from babyface.errors import DataError

log = logging.getLogger("babyface")


def file_signatures(paths: Sequence[Path], progress: bool = True) -> tuple[Signatures, list[Path]]:
    """Signatures of the files that decode, and those files (undecodable ones are reported elsewhere)."""
    described = describe_files(paths, progress=progress, desc="leakage check")
    return described.signatures, [paths[i] for i in described.kept]


def check_leakage(train: Signatures, train_paths: Sequence[Path], test: Signatures, test_paths: Sequence[Path],
                  root: Path, strict: bool = False) -> int:
    """Log a warning naming the count and one example when test images copy training images; with ``strict``
    raise DataError instead. Returns the number of test images involved."""
    pairs = cross_pairs(test, train)
    leaked = len({p.first for p in pairs})
    if not leaked:
        return 0
    best = max(pairs, key=lambda p: p.score)
    example = f"{_shown(test_paths[best.first], root)} ≈ {_shown(train_paths[best.second], root)}, score {best.score:.2f}"
    message = (f"{leaked} of {len(test_paths)} test image(s) are near-duplicates of training images (e.g. {example}); "
               "test scores will be inflated: split by group ('babyface data split --group-by ...')")
    if strict:
        raise DataError(f"{message}; stopped by --strict (--no-leakage-check skips this check)")
    log.warning("WARNING: LEAKAGE: %s", message)
    return leaked


def _shown(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else display_path(path)
