"""--test-fraction 0: the model to keep learns from every image but the validation share, and says so."""

from __future__ import annotations

import json

from babyface.data.sources import scan_sources
from babyface.evaluation.report import final_fit_lines
from babyface.run import DataRecord
from tests.e2e.conftest import read_csv, run_cli


def test_test_fraction_zero_trains_on_test_folders_too(tiny_data, tmp_path):
    held = scan_sources([tiny_data], None, 0.15, 0)
    every = scan_sources([tiny_data], None, 0, 0)
    assert len(every.train.samples) == len(held.train.samples) + len(held.test.samples) and not every.test.samples
    out = tmp_path / "final"
    run_cli("train", tiny_data, "--epochs", "1", "--test-fraction", "0", "--out", out, "--no-progress", "--seed", "2")
    splits = {row["split"] for row in read_csv(out / "splits.csv")}
    assert splits == {"train", "val"}
    assert json.loads((out / "model.json").read_text())["data"]["test"] == 0
    refused = run_cli("evaluate", out, "--no-progress", check=False)
    assert refused.returncode != 0 and "trained with --test-fraction 0" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_the_model_card_says_when_nothing_was_held_out():
    assert "--test-fraction 0" in " ".join(final_fit_lines(DataRecord(test=0)))
    assert final_fit_lines(DataRecord(test=12)) == [] and final_fit_lines(DataRecord()) == []
