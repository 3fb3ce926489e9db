"""Metrics per subgroup (skin tone, grayscale, ethnicity, …) from a metadata CSV with a ``file`` column.

Rows are matched to test images by path relative to the dataset root, or by file name when that name is
unique in the CSV. Every group gets accuracy and macro-F1 with 95% intervals, its support, confusion matrix
and gap to the overall figure; groups under SMALL_GROUP images are flagged (their numbers are noise).
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Sequence

import numpy as np

from babyface.data.images import display_path
from babyface.errors import DataError
from babyface.metrics import classification_metrics, interval_text, quoted_interval

SMALL_GROUP = 30
MISSING = "(no metadata)"


def parse_columns(by: str) -> list[str]:
    columns = [c.strip() for c in by.split(",") if c.strip()]
    if not columns:
        raise DataError(f"--by {by!r}: name at least one metadata column, e.g. --by skin_tone,grayscale")
    return columns


def load_metadata(path: str | Path, columns: Sequence[str]) -> list[dict[str, str]]:
    """Rows of the CSV; it must have a ``file`` column and every column in ``columns``."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows, header = list(reader), reader.fieldnames or []
    except FileNotFoundError:
        raise DataError(f"{display_path(path)}: metadata file not found; check the --metadata path") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{display_path(path)}: cannot read the metadata CSV ({exc}); save it as UTF-8 CSV") from None
    missing = [c for c in ("file", *columns) if c not in header]
    if missing:
        raise DataError(f"{display_path(path)}: no column {', '.join(missing)}; its columns are {', '.join(header)} "
                        "(the CSV needs 'file' plus the --by columns)")
    return rows


def match_rows(files: Sequence[str], rows: Sequence[dict[str, str]]) -> list[dict[str, str] | None]:
    """The metadata row of each file: same relative path, else same file name when only one row has it."""
    by_path = {PurePosixPath(r["file"].replace("\\", "/")).as_posix(): r for r in rows}
    names = Counter(PurePosixPath(key).name for key in by_path)
    by_name = {PurePosixPath(key).name: r for key, r in by_path.items() if names[PurePosixPath(key).name] == 1}
    return [by_path.get(f) or by_name.get(PurePosixPath(f).name) for f in files]


def group_metrics(true: np.ndarray, pred: np.ndarray, classes: Sequence[str], overall: dict,
                  n_resamples: int, seed: int, identities: Sequence[str] | None = None) -> dict:
    """One subgroup's scores with intervals, support, confusion matrix and gap to the overall scores; with
    ``identities`` (the --group-by group of each image) also the group-level intervals, which are then quoted."""
    m = classification_metrics(true, pred, classes, n_resamples=n_resamples, seed=seed, groups=identities)
    result = {"n": m["n"], "small": m["n"] < SMALL_GROUP}
    for key in ("accuracy", "macro_f1"):
        result.update({key: m[key], f"{key}_ci": quoted_interval(m, key), f"{key}_gap": m[key] - overall[key]})
    if identities is not None:
        result.update(n_groups=m["n_groups"], image_level_ci={key: m.get(f"{key}_ci") for key in ("accuracy", "macro_f1")})
    result.update(confusion_matrix=m["confusion_matrix"], support={c: r["support"] for c, r in m["per_class"].items()},
                  recall={c: r["recall"] for c, r in m["per_class"].items() if r["support"]},
                  recall_ci={c: r["recall_ci"] for c, r in m["per_class"].items() if r["support"] and "recall_ci" in r})
    return result


def analyse_subgroups(files: Sequence[str], true: np.ndarray, pred: np.ndarray, classes: Sequence[str],
                      metadata: str | Path, by: str, overall: dict, n_resamples: int = 1000, seed: int = 0,
                      identities: Sequence[str] | None = None) -> dict:
    """Per column in ``by``, per value: :func:`group_metrics`. Images without a metadata row form MISSING. With
    ``identities`` (evaluate --group-by) each subgroup's intervals resample whole groups, and ``n_groups`` counts them."""
    columns = parse_columns(by)
    matched = match_rows(files, load_metadata(metadata, columns))
    if not any(matched):
        raise DataError(f"{display_path(metadata)}: none of its 'file' entries matches a test image; give paths relative "
                        f"to the dataset root (e.g. {files[0]}) or unique file names")
    result = {"metadata": display_path(metadata), "matched": sum(r is not None for r in matched),
              "unmatched": sum(r is None for r in matched), "small_group": SMALL_GROUP, "columns": {},
              "intervals": "groups resampled" if identities is not None else "images resampled"}
    named = np.asarray(identities) if identities is not None else None
    for column in columns:
        values = np.array([MISSING if r is None else (r[column] or MISSING) for r in matched])
        result["columns"][column] = {
            value: group_metrics(true[values == value], pred[values == value], classes, overall, n_resamples, seed,
                                 None if named is None else named[values == value].tolist())
            for value in sorted(set(values.tolist()))
        }
    return result


def format_subgroups(result: dict) -> str:
    """A plain-text table per column: n, accuracy and macro-F1 with intervals, gaps; small groups marked '*'."""
    lines = [f"subgroups ({result['matched']} test images matched in {result['metadata']}"
             + (f", {result['unmatched']} without a row" if result["unmatched"] else "")
             + ("; 95% intervals resample whole --group-by groups" if result.get("intervals") == "groups resampled" else "")
             + ")"]
    for column, groups in result["columns"].items():
        width = max(len(column), *(len(g) for g in groups)) + 2
        classes = list(next(iter(groups.values()))["support"])
        lines += ["", f"{column:<{width}}{'n':>6}  {'accuracy [95% CI]':<24}{'gap':>7}  {'macro-F1 [95% CI]':<24}{'gap':>7}"
                      f"  recall {' / '.join(classes)} (n)"]
        for value, g in groups.items():
            recall = " / ".join(f"{g['recall'][c]:.2f} ({g['support'][c]})" if c in g.get("recall", {}) else "—" for c in classes)
            lines.append(f"{value:<{width}}{g['n']:>6}  {interval_text(g['accuracy'], g['accuracy_ci']):<24}"
                         f"{g['accuracy_gap']:>+7.3f}  {interval_text(g['macro_f1'], g['macro_f1_ci']):<24}"
                         f"{g['macro_f1_gap']:>+7.3f}  {recall}{'  *' if g['small'] else ''}")
    if any(g["small"] for groups in result["columns"].values() for g in groups.values()):
        lines.append(f"* fewer than {result['small_group']} images: too few to trust the figures")
    return "\n".join(lines)
