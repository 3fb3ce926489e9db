"""End-to-end: intervals, calibration, seeds, abstention, subgroups, explanations, report and compare via the CLI."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from babyface.cli import main



def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def evaluated(tiny_run, tiny_data, tmp_path_factory) -> Path:
    """``tiny_run`` evaluated on the tiny test split with subgroups by skin tone and grayscale."""
    out = tmp_path_factory.mktemp("eval") / "evaluation"
    assert main(["evaluate", str(tiny_run), str(tiny_data), "--out", str(out), "--no-progress",
                 "--metadata", str(tiny_data / "metadata.csv"), "--by", "skin_tone,grayscale"]) == 0
    return out


def test_training_stores_a_fitted_temperature(tiny_run):
    meta = json.loads((tiny_run / "model.json").read_text())
    calibration = meta["calibration"]
    assert meta["temperature"] == calibration["temperature"] > 0
    assert calibration["split"] == "validation" and calibration["nll_after"] <= calibration["nll_before"]


def test_metrics_carry_intervals_and_calibration(evaluated):
    metrics = json.loads((evaluated / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1"):
        low, high = metrics[f"{key}_ci"]
        assert 0 <= low <= metrics[key] <= high <= 1
    assert all("f1_ci" in row for row in metrics["per_class"].values())
    calibration = metrics["calibration"]
    assert calibration["bins"] == 15 and 0 <= calibration["ece_before"] <= 1 and metrics["ece"] == calibration["ece_after"]
    assert Image.open(evaluated / "reliability_diagram.png").size[0] > 400


def test_evaluate_prints_intervals_and_ece(tiny_run, tiny_data, tmp_path, capsys):
    assert main(["evaluate", str(tiny_run), str(tiny_data / "test"), "--out", str(tmp_path / "e"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "95% bootstrap intervals" in printed and "ECE (15 bins)" in printed
    assert "accuracy 0." in printed and "[" in printed


def test_subgroups_from_the_synthetic_metadata(evaluated, tiny_data, tiny_run, tmp_path, capsys):
    result = json.loads((evaluated / "subgroups.json").read_text())
    assert result["matched"] == 12 and result["unmatched"] == 0
    assert set(result["columns"]) == {"skin_tone", "grayscale"}
    for groups in result["columns"].values():
        assert sum(g["n"] for g in groups.values()) == 12 and all(g["small"] for g in groups.values())
    # --by without --metadata uses DATA/metadata.csv and prints the table
    assert main(["evaluate", str(tiny_run), str(tiny_data), "--out", str(tmp_path / "e"), "--no-progress",
                 "--by", "grayscale", "--bootstrap", "0"]) == 0
    printed = capsys.readouterr().out
    assert "grayscale" in printed and "macro-F1 [95% CI]" in printed
    assert main(["evaluate", str(tiny_run), str(tiny_data), "--out", str(tmp_path / "f"), "--by", "ethnicity"]) == 2
    assert "no column ethnicity" in capsys.readouterr().err


def test_stored_temperature_is_applied_by_evaluate_and_predict(tiny_run, tiny_data, tmp_path, capsys):
    hot = tmp_path / "hot"
    shutil.copytree(tiny_run, hot, ignore=shutil.ignore_patterns("evaluation"))
    meta = json.loads((hot / "model.json").read_text())
    meta["temperature"] = 1000.0  # so soft that every probability is about 1/3
    (hot / "model.json").write_text(json.dumps(meta))
    image = sorted((tiny_data / "test" / "happy").iterdir())[0]
    result = predict_json(capsys, hot, image)[0]
    assert all(abs(p - 1 / 3) < 0.01 for p in result["probabilities"].values())
    assert main(["evaluate", str(hot), str(tiny_data), "--out", str(tmp_path / "e"), "--no-progress", "--bootstrap", "0"]) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["calibration"]["temperature"] == 1000.0 and "accuracy_ci" not in metrics


def predict_json(capsys, *args) -> list[dict]:
    assert main(["predict", *map(str, args), "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_predict_abstains_below_min_confidence(tiny_run, tiny_data, capsys):
    folder = tiny_data / "test" / "sad"
    abstained = predict_json(capsys, tiny_run, folder, "--min-confidence", "1.0")
    assert abstained and all(p["label"] == "uncertain" for p in abstained)
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-4 for p in abstained)
    confident = predict_json(capsys, tiny_run, folder, "--min-confidence", "0")
    assert all(p["label"] != "uncertain" for p in confident)


def test_train_with_seeds_writes_one_run_per_seed_and_a_summary(tiny_data, tmp_path, capsys):
    out = tmp_path / "seeds"
    assert main(["train", str(tiny_data), "--epochs", "1", "--seeds", "0,1", "--out", str(out), "--no-progress"]) == 0
    assert "mean ± std" in capsys.readouterr().out
    for seed in (0, 1):
        assert (out / f"seed{seed}" / "model.json").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and len(summary["metrics"]["val_macro_f1"]["values"]) == 2
    assert (out / "summary.md").is_file()
    assert main(["train", str(tiny_data), "--seeds", "0,x", "--out", str(tmp_path / "bad")]) == 2
    assert "--seeds" in capsys.readouterr().err


def test_explain_writes_overlays_at_the_images_own_size(tiny_run, tiny_data, tmp_path, capsys):
    wide = tmp_path / "wide.png"
    Image.open(sorted((tiny_data / "test" / "happy").iterdir())[0]).resize((150, 90)).save(wide)
    out = tmp_path / "cams"
    assert main(["explain", str(tiny_run), str(wide), "--out", str(out), "--class", "sad"]) == 0
    records = json.loads((out / "explanations.json").read_text())
    assert records[0]["explained_class"] == "sad" and records[0]["overlay"] == "wide_sad_gradcam.png"
    assert Image.open(out / "wide_sad_gradcam.png").size == (150, 90)
    assert "Grad-CAM of sad" in capsys.readouterr().out
    assert main(["explain", str(tiny_run), str(wide), "--out", str(tmp_path / "x"), "--class", "angry"]) == 2
    assert "not one of the model's classes" in capsys.readouterr().err
