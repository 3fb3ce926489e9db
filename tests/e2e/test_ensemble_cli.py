"""End-to-end: `babyface ensemble` of two trained runs, then evaluate (with --tta flip), predict and report on it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from babyface.cli import main
from babyface.config import DEFAULT_DETECTOR, LIVE_DETECTOR, FaceDetection
from babyface.faces.framing import Framing
from babyface.inference.classifier import Classifier, collect_inputs
from tests.e2e.conftest import run_cli


@pytest.fixture(scope="module")
def second_run(tiny_data: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "cnn-seed2"
    run_cli("train", tiny_data, "--model", "cnn", "--epochs", "1", "--out", out, "--seed", "2", "--no-progress")
    return out


@pytest.fixture(scope="module")
def ensemble(tiny_run: Path, second_run: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ensemble") / "ens"
    printed = run_cli("ensemble", tiny_run, second_run, "--out", out).stdout
    assert str(out) in printed
    return out


def mean_member_probabilities(runs: list[Path], files: list[Path], tta: str = "none",
                              detector: str = DEFAULT_DETECTOR) -> torch.Tensor:
    """Each member run's own calibrated probabilities (with ``tta``) for ``files``, averaged; faces found with
    ``detector`` (evaluate's default; predict's is LIVE_DETECTOR)."""
    probs = []
    for run in runs:
        classifier = Classifier(run, device="cpu", backend="torch", tta=tta, framing=Framing(faces=FaceDetection(detector=detector)), precision="fp32")
        predictions, _ = classifier.predict_files(files)
        probs.append(torch.tensor([list(p.probabilities.values()) for p in predictions]))
    return torch.stack(probs).mean(0)


def test_predict_on_an_ensemble_gives_the_members_mean(ensemble: Path, tiny_run: Path, second_run: Path, tiny_data: Path):
    files = collect_inputs([tiny_data / "test"])
    predictions = json.loads(run_cli("predict", ensemble, tiny_data / "test", "--format", "json", "--backend", "torch",
                                     "--precision", "fp32", "--framing", "face").stdout)
    actual = torch.tensor([list(p["probabilities"].values()) for p in predictions])
    assert torch.allclose(actual, mean_member_probabilities([tiny_run, second_run], files, detector=LIVE_DETECTOR), atol=1e-5)
    assert json.loads((ensemble / "model.json").read_text())["framing"] == {"mode": "whole"}  # as both members'


@pytest.mark.parametrize("which", ["single", "ensemble"])
def test_evaluate_with_flip_tta(which: str, ensemble: Path, tiny_run: Path, second_run: Path, tiny_data: Path, tmp_path: Path):
    run = ensemble if which == "ensemble" else tiny_run
    out = tmp_path / "evaluation"
    printed = run_cli("evaluate", run, tiny_data, "--tta", "flip", "--out", out, "--bootstrap", "0", "--no-progress",
                      "--precision", "fp32").stdout
    assert "(TTA: flip)" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tta"] == "flip" and metrics["model"] == ("ensemble" if which == "ensemble" else "cnn")
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    actual = torch.tensor([[float(row[f"p_{c}"]) for c in metrics["per_class"]] for row in rows])
    files = [tiny_data / row["file"] for row in rows]
    members = [tiny_run, second_run] if which == "ensemble" else [tiny_run]
    assert torch.allclose(actual, mean_member_probabilities(members, files, tta="flip"), atol=1e-5)
    assert not torch.allclose(actual, mean_member_probabilities(members, files), atol=1e-4)


def test_report_and_compare_accept_an_ensemble(ensemble: Path, tiny_data: Path, tmp_path: Path, capsys):
    assert main(["evaluate", str(ensemble), str(tiny_data), "--bootstrap", "0", "--no-progress", "--overwrite"]) == 0
    assert main(["report", str(ensemble), "--out", str(tmp_path), "--overwrite"]) == 0
    html = (tmp_path / "report.html").read_text()
    assert "ensemble of" in html and "cnn-seed2" in html
    assert main(["compare", str(ensemble), str(ensemble)]) == 0
    assert "ensemble" in capsys.readouterr().out
