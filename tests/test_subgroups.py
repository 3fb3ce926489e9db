"""Subgroup metrics from a metadata CSV."""

from __future__ import annotations

import numpy as np
import pytest

from babyface.errors import DataError
from babyface.evaluation.subgroups import MISSING, analyse_subgroups, format_subgroups, match_rows

CLASSES = ["happy", "neutral", "sad"]


def write_metadata(path, rows, header=("file", "tone")):
    path.write_text(",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows))
    return path


def test_rows_match_by_relative_path_then_by_unique_name():
    rows = [{"file": "test/happy/a.jpg"}, {"file": "test/sad/b.jpg"}, {"file": "train/happy/b.jpg"}, {"file": "x/c.jpg"}]
    matched = match_rows(["test/happy/a.jpg", "happy/a.jpg", "sad/b.jpg", "elsewhere/c.jpg", "d.jpg"], rows)
    assert matched[0] is rows[0] and matched[1] is rows[0]
    assert matched[2] is None  # b.jpg is ambiguous: two rows carry that name
    assert matched[3] is rows[3] and matched[4] is None


def test_group_metrics_equal_hand_computed_ones(tmp_path):
    files = [f"f{i}.jpg" for i in range(8)]
    tones = ["light"] * 4 + ["dark"] * 3 + [None]
    metadata = write_metadata(tmp_path / "m.csv", [(f, t) for f, t in zip(files, tones) if t])
    true = np.array([0, 1, 2, 0, 0, 1, 2, 1])
    pred = np.array([0, 1, 2, 1, 2, 2, 2, 1])
    overall = {"accuracy": 5 / 8, "macro_f1": 0.5}
    result = analyse_subgroups(files, true, pred, CLASSES, metadata, "tone", overall, n_resamples=200)
    light, dark, missing = (result["columns"]["tone"][k] for k in ("light", "dark", MISSING))
    assert light["n"] == 4 and light["accuracy"] == pytest.approx(3 / 4)
    # light: happy P=1 R=1/2 F1=2/3; neutral P=1/2 R=1 F1=2/3; sad P=R=F1=1
    assert light["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert light["accuracy_gap"] == pytest.approx(3 / 4 - 5 / 8)
    assert light["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    # dark: all three predicted sad → accuracy 1/3; F1 happy 0, neutral 0, sad (P 1/3, R 1) 1/2
    assert dark["accuracy"] == pytest.approx(1 / 3) and dark["macro_f1"] == pytest.approx((0 + 0 + 1 / 2) / 3)
    assert dark["small"] and missing["n"] == 1 and result["unmatched"] == 1
    assert dark["accuracy_ci"][0] <= dark["accuracy"] <= dark["accuracy_ci"][1]
    assert light["recall"] == {"happy": 0.5, "neutral": 1.0, "sad": 1.0} and missing["recall"] == {"neutral": 1.0}
    table = format_subgroups(result)
    assert "light" in table and "+0.125" in table and "fewer than 30" in table
    assert "recall happy / neutral / sad (n)" in table and "0.50 (2) / 1.00 (1) / 1.00 (1)" in table
    assert "— / 1.00 (1) / —" in table  # the image without metadata is one neutral face


def test_missing_column_and_unmatched_files_are_clear_errors(tmp_path):
    metadata = write_metadata(tmp_path / "m.csv", [("a.jpg", "x")])
    true = pred = np.array([0])
    with pytest.raises(DataError, match="no column ethnicity"):
        analyse_subgroups(["a.jpg"], true, pred, CLASSES, metadata, "ethnicity", {"accuracy": 1, "macro_f1": 1})
    with pytest.raises(DataError, match="matches a test image"):
        analyse_subgroups(["zzz.jpg"], true, pred, CLASSES, metadata, "tone", {"accuracy": 1, "macro_f1": 1})
