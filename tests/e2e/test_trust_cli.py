"""End-to-end: intervals, calibration, seeds, abstention, subgroups, explanations, report and compare via the CLI."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from babyface.cli import main
from tests.e2e.conftest import read_csv


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a chromium binary; installed with apt-get when missing (as root), else the test is skipped."""
    found = shutil.which("chromium")
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            subprocess.run(command, capture_output=True, env=env, timeout=900)
        found = shutil.which("chromium")
    if not found:
        pytest.skip("chromium is not installed and could not be installed with apt-get (needs root and network)")
    return found


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
    assert meta["temperature"] > 0 and "temperature" not in calibration  # stored once
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
    meta["temperature"] = 100.0  # so soft that every probability is about 1/3 (the largest a bundle may hold)
    (hot / "model.json").write_text(json.dumps(meta))
    image = sorted((tiny_data / "test" / "happy").iterdir())[0]
    result = predict_json(capsys, hot, image)[0]
    assert all(abs(p - 1 / 3) < 0.01 for p in result["probabilities"].values())
    assert main(["evaluate", str(hot), str(tiny_data), "--out", str(tmp_path / "e"), "--no-progress", "--bootstrap", "0"]) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["calibration"]["temperature"] == 100.0 and "accuracy_ci" not in metrics


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
    ensemble = json.loads((out / "ensemble" / "model.json").read_text())
    assert [m["name"] for m in ensemble["members"]] == ["seed0", "seed1"]
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
    assert "not one of the classes the model decides over" in capsys.readouterr().err


def render_dom(chromium: str, page: Path, profile: Path) -> str:
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
               "--dump-dom", page.resolve().as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=120).stdout


def test_report_is_self_contained_with_no_broken_images(tiny_run, evaluated, tmp_path, chromium, capsys):
    out = tmp_path / "report"
    assert main(["report", str(tiny_run), "--eval", str(evaluated), "--out", str(out), "--gallery", "3"]) == 0
    page = (out / "report.html").read_text()
    for heading in ("Configuration", "Dataset", "Learning curves", "Confusion matrix", "Per-class results",
                    "Calibration", "by skin_tone", "Most confident mistakes"):
        assert heading in page
    dom = render_dom(chromium, out / "report.html", tmp_path / "profile")
    sources = re.findall(r"<img[^>]*\ssrc=\"([^\"]*)\"", dom)
    assert len(sources) == 3 + 2 * min(3, len(evaluated_mistakes(evaluated)))  # 3 figures + gallery pairs
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()
    card = (out / "model_card.md").read_text()
    assert "Not a clinical tool" in card and "macro-F1" in card and "skin_tone" in card and "[" in card
    assert "Weights are stored in fp32" in card and "Evaluated with the torch back end in" in card
    assert main(["report", str(tiny_run), "--eval", str(evaluated), "--out", str(out)]) == 2  # exists, no --overwrite


def evaluated_mistakes(evaluated: Path) -> list[dict]:
    return [r for r in read_csv(evaluated / "predictions.csv") if r["true"] != r["predicted"]]


def test_report_without_evaluation_says_what_to_run(tiny_run, tmp_path, capsys):
    assert main(["report", str(tiny_run), "--eval", str(tmp_path / "nothing"), "--out", str(tmp_path / "r")]) == 2
    assert "run 'babyface evaluate" in capsys.readouterr().err


def test_compare_prints_table_and_mcnemar_and_refuses_other_test_sets(tiny_run, evaluated, tmp_path, capsys):
    copies = []
    for name in ("a", "b"):
        shutil.copytree(tiny_run, tmp_path / name, ignore=shutil.ignore_patterns("evaluation"))
        shutil.copytree(evaluated, tmp_path / name / "evaluation")
        copies.append(str(tmp_path / name))
    assert main(["compare", *copies, "--output", str(tmp_path / "c.json")]) == 0
    printed = capsys.readouterr().out
    assert "McNemar" in printed and "5,176,099" in printed and "exact binomial p = 1" in printed
    assert json.loads((tmp_path / "c.json").read_text())["mcnemar"][0]["only_a_right"] == 0
    predictions = tmp_path / "b" / "evaluation" / "predictions.csv"
    predictions.write_text("".join(predictions.read_text().splitlines(keepends=True)[:-1]))  # one image fewer
    assert main(["compare", *copies]) == 2
    assert "different test sets" in capsys.readouterr().err
