"""A one-epoch run of benchmarks/time_to_accuracy.py on tiny synthetic faces: both recipes train through babyface's
loop, and the table, the curves and the PNG are written (no timing is checked)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import time_to_accuracy  # noqa: E402


def test_epochs_scale_both_recipes_alike():
    assert time_to_accuracy.scaled_epochs(12, None) == 12
    assert time_to_accuracy.scaled_epochs(23, 3) == 3
    assert time_to_accuracy.scaled_epochs(12, 1) == 1


def test_seconds_to_reach_is_the_first_epoch_at_the_target():
    curve = time_to_accuracy.Curve("fast", config=None, seconds=[1.0, 2.0, 3.0], cpu_seconds=[1.5, 2.5, 3.5],
                                   accuracy=[0.4, 0.7, 0.6])
    assert curve.seconds_to_reach(0.6) == (2.0, 2.5)
    assert curve.seconds_to_reach(0.8) is None


def test_split_file_pools_train_and_val_and_keeps_test(tmp_path: Path, write_tiny_png):
    for folder in ("train", "val", "test"):
        write_tiny_png(tmp_path / "data" / folder / "happy" / "a.png")
    rows = list(csv.DictReader(time_to_accuracy.write_split_file(tmp_path / "data", tmp_path / "split.csv").open()))
    assert [(r["file"], r["split"]) for r in rows] == [
        ("train/happy/a.png", "train"), ("val/happy/a.png", "train"), ("test/happy/a.png", "test")]


def test_an_ensemble_is_one_point_at_its_members_summed_time():
    labels = torch.tensor([0, 1, 1])
    members = [time_to_accuracy.Curve("fast", config=None, seconds=[5.0, 10.0], cpu_seconds=[9.0, 19.0], accuracy=[0.3, 0.6],
                                      trained_epochs=2, train_images=30, labels=labels, probabilities=p)
               for p in (torch.tensor([[0.6, 0.4], [0.9, 0.1], [0.1, 0.9]]), torch.tensor([[0.6, 0.4], [0.2, 0.8], [0.6, 0.4]]))]
    ensemble = time_to_accuracy.ensemble_of(members)
    assert ensemble.seconds == [20.0] and ensemble.cpu_seconds == [38.0] and ensemble.trained_epochs == 4
    assert ensemble.accuracy == [pytest.approx(2 / 3)]  # means: [0.6, 0.4], [0.55, 0.45] (wrong), [0.35, 0.65]
    assert ensemble.label == "fast ×2 ensemble" and ensemble.images_per_second() == pytest.approx(30 * 4 / 20)


@pytest.mark.filterwarnings("ignore")
def test_one_epoch_run_writes_table_curves_and_png(tiny_data: Path, tmp_path: Path):
    out = tmp_path / "tta"
    table = time_to_accuracy.main(["--data", str(tiny_data), "--out", str(out), "--epochs", "1", "--peak-seconds", "0.2",
                                   "--tta", "flip", "--fast-models", "2", "--baselines", "fp32,bf16", "--parity"])
    assert (out / "time_to_accuracy.png").stat().st_size > 10_000
    assert (out / "time_to_accuracy.md").read_text().strip() == table.strip()
    assert "| reference | fp32 | resnet18 | 64×64 | 1 |" in table and "| reference bf16 | bf16 | resnet18 | 64×64 | 1 |" in table
    fast = time_to_accuracy.choose_precision("auto", torch.device("cpu"), warn=False).name
    assert f"| fast | {fast} | xception-mini | 48×48 | 1 |" in table and "| fast fp32 | fp32 | xception-mini |" in table
    assert f"| fast (flip TTA) | {fast} | xception-mini | 48×48 | 1 |" in table
    assert "| fast ×2 ensemble |" in table and "| fast ×2 ensemble (flip TTA) |" in table
    assert "share of peak" in table and "GFLOP/s" in table and "| time to target vs reference bf16 |" in table
    assert "CPU " in table and "native bf16" in table  # the hardware line
    assert "| reference bf16 | reference | " in table and "McNemar p" in table  # the parity table
    metrics = json.loads((out / "runs" / "fast" / "model.json").read_text())["metrics"]
    assert metrics["best_epoch"] == 1 and metrics["val_macro_f1"] is None  # no validation split: nothing to report
    rows = list(csv.DictReader((out / "curves.csv").open()))
    assert [r["recipe"] for r in rows] == ["reference", "reference bf16", "fast", "fast ×2 ensemble", "fast (flip TTA)",
                                             "fast ×2 ensemble (flip TTA)", "fast fp32"]
    assert all(0 <= float(r["test_accuracy"]) <= 1 and float(r["train_seconds"]) > 0 for r in rows)


def test_baselines_always_include_the_fp32_reference():
    assert time_to_accuracy.baseline_names("fp32,bf16") == ["reference", "reference bf16"]
    assert time_to_accuracy.baseline_names("auto")[0] == "reference"
    with pytest.raises(SystemExit):
        time_to_accuracy.baseline_names("bf16")
