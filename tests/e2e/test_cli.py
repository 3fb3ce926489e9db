"""End-to-end: the real `babyface` CLI on a tiny synthetic set."""

from __future__ import annotations

import csv
import json
import re
import shutil

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from babyface.cli import main
from tests.e2e.conftest import run_cli


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_synth_writes_babyface_layout(tmp_path):
    run_cli("synth", tmp_path / "s", "--n", "30", "--size", "64", "--seed", "5", "--quiet")
    rows = read_csv(tmp_path / "s" / "metadata.csv")
    assert len(rows) == 30
    for split in ("train", "test"):
        assert sorted(p.name for p in (tmp_path / "s" / split).iterdir()) == ["happy", "neutral", "sad"]
    assert all((tmp_path / "s" / r["file"]).is_file() for r in rows)


def test_train_writes_complete_run_folder(tiny_run, tiny_data):
    names = {p.name for p in tiny_run.iterdir()}
    assert {"config.yaml", "model.safetensors", "model.json", "history.csv", "learning_curves.png", "train.log", "splits.csv"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    meta = json.loads((tiny_run / "model.json").read_text())
    assert meta["format"] == "babyface-bundle"
    assert meta["classes"] == ["happy", "neutral", "sad"]
    assert meta["image_size"] == 64 and meta["arch"]["name"] == "cnn"
    assert len(meta["mean"]) == 3 and all(0 < s < 1 for s in meta["std"])
    assert meta["training"]["epochs"] == 2 and meta["training"]["lr"] == 1e-3
    assert 1 <= meta["metrics"]["best_epoch"] <= 2
    history = read_csv(tiny_run / "history.csv")
    assert [int(r["epoch"]) for r in history] == [1, 2]
    assert set(history[0]) >= {"train_loss", "val_loss", "train_acc", "val_acc", "val_macro_f1", "lr", "seconds"}
    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    assert config["epochs"] == 2 and config["seed"] == 1 and config["augment"]["rotation"] == 15.0
    splits = read_csv(tiny_run / "splits.csv")
    assert {r["split"] for r in splits} == {"train", "val", "test"}
    assert sum(r["split"] == "test" for r in splits) == 12
    assert Image.open(tiny_run / "learning_curves.png").size[0] > 400


def test_same_seed_gives_identical_history(tiny_data, tmp_path):
    for name in ("a", "b"):
        run_cli("train", tiny_data, "--epochs", "2", "--out", tmp_path / name, "--seed", "7", "--no-progress")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731 - wall time differs
    assert strip(read_csv(tmp_path / "a" / "history.csv")) == strip(read_csv(tmp_path / "b" / "history.csv"))
    a, b = (load_file(tmp_path / name / "model.safetensors") for name in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_evaluate_writes_metrics_plots_and_predictions(tiny_run, tiny_data, tmp_path):
    out = tmp_path / "eval"
    proc = run_cli("evaluate", tiny_run, tiny_data, "--out", out, "--framing", "face", "--no-progress")
    assert "accuracy" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 12 and 0 <= metrics["accuracy"] <= 1
    assert sum(sum(row) for row in metrics["confusion_matrix"]) == 12
    preds = read_csv(out / "predictions.csv")
    assert len(preds) == 12 and set(preds[0]) == {"file", "true", "predicted", "p_happy", "p_neutral", "p_sad", "face_found"}
    assert {r["face_found"] for r in preds} <= {"true", "false"}  # --framing face looks for faces
    assert all(r["file"].startswith("test/") for r in preds)
    assert abs(sum(float(preds[0][f"p_{c}"]) for c in ("happy", "neutral", "sad")) - 1) < 1e-4
    for png in ("confusion_matrix.png", "predictions_grid.png"):
        assert Image.open(out / png).size[0] > 300
    # the same call again must not overwrite silently
    again = run_cli("evaluate", tiny_run, tiny_data, "--out", out, check=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_evaluate_accepts_the_test_folder_itself(tiny_run, tiny_data, tmp_path):
    assert main(["evaluate", str(tiny_run), str(tiny_data / "test"), "--out", str(tmp_path / "e"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["n"] == 12


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_predict_formats(tiny_run, tiny_data, fmt):
    one_sad = sorted((tiny_data / "test" / "sad").iterdir())[0]
    # tight synthetic crops, as the run was trained on: no face detection (saves its start-up in each process)
    proc = run_cli("predict", tiny_run, tiny_data / "test" / "happy", one_sad, "--format", fmt, "--framing", "whole")
    n_happy = len(list((tiny_data / "test" / "happy").iterdir()))
    if fmt == "json":
        result = json.loads(proc.stdout)
        assert len(result) == n_happy + 1
        assert set(result[0]["probabilities"]) == {"happy", "neutral", "sad"}
        assert result[0]["label"] == max(result[0]["probabilities"], key=result[0]["probabilities"].get)
        assert result[0]["face_found"] is None  # --framing whole: no face looked for
    elif fmt == "csv":
        rows = list(csv.DictReader(proc.stdout.splitlines()))
        assert len(rows) == n_happy + 1 and "p_neutral" in rows[0] and rows[0]["face_found"] == ""
    else:
        assert len(proc.stdout.strip().splitlines()) == n_happy + 3  # header, rule, rows
        assert one_sad.name in proc.stdout


def test_train_refuses_non_empty_out(tiny_run, tiny_data):
    proc = run_cli("train", tiny_data, "--epochs", "1", "--out", tiny_run, check=False)
    assert proc.returncode == 2
    assert "not empty" in proc.stderr and "Traceback" not in proc.stderr


def test_yaml_config_and_flags(tiny_data, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model: resnet18\nmodel_args: {stem: small}\nepochs: 3\naugment: {rotation: 5}\n")
    assert main(["train", str(tiny_data), "--config", str(config), "--epochs", "1", "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    resolved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert resolved["model"] == "resnet18" and resolved["epochs"] == 1 and resolved["augment"]["rotation"] == 5
    assert json.loads((tmp_path / "r" / "model.json").read_text())["arch"]["kwargs"]["stem"] == "small"


def test_one_folder_dataset_gets_a_held_out_test_split(tiny_data, tmp_path):
    flat = tmp_path / "flat"
    shutil.copytree(tiny_data / "train", flat)
    run = tmp_path / "run"
    assert main(["train", str(flat), "--epochs", "1", "--out", str(run), "--test-fraction", "0.25", "--no-progress"]) == 0
    test_files = {r["file"] for r in read_csv(run / "splits.csv") if r["split"] == "test"}
    train_files = {r["file"] for r in read_csv(run / "splits.csv") if r["split"] in ("train", "val")}
    assert len(test_files) == 12 and not test_files & train_files
    assert main(["evaluate", str(run), str(flat), "--out", str(tmp_path / "e"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["n"] == 12


def test_undecodable_file_is_skipped_or_fatal_with_strict(tiny_data, tmp_path, capsys):
    data = tmp_path / "d"
    shutil.copytree(tiny_data, data)
    (data / "train" / "happy" / "broken.jpg").write_bytes(b"this is not a jpeg")
    assert main(["train", str(data), "--epochs", "1", "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    assert "broken.jpg" in capsys.readouterr().err
    assert json.loads((tmp_path / "r" / "model.json").read_text())["data"]["skipped"] == 1
    assert main(["train", str(data), "--epochs", "1", "--out", str(tmp_path / "r2"), "--strict", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.jpg" in err[0] and "--strict" in err[0]


@pytest.mark.parametrize(
    "make_data, expected",
    [
        (lambda root: None, "README"),
        (lambda root: (root / "train" / "happy").mkdir(parents=True), "no test/"),
        (lambda root: [(root / s / c).mkdir(parents=True) for s in ("train", "test") for c in ("happy", "sad")], "no images"),
    ],
)
def test_bad_datasets_give_one_line_errors(tmp_path, capsys, make_data, expected):
    root = tmp_path / "DATA"
    make_data(root)
    assert main(["train", str(root), "--epochs", "1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0] and str(root) in err[0]


def test_class_mismatch_between_train_and_test(tiny_data, tmp_path, capsys):
    data = tmp_path / "d"
    shutil.copytree(tiny_data, data)
    shutil.rmtree(data / "test" / "neutral")
    assert main(["train", str(data), "--epochs", "1", "--out", str(tmp_path / "r")]) == 2
    assert "do not match" in capsys.readouterr().err


def test_foreign_bundle_is_refused(tmp_path, tiny_data, capsys):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "model.json").write_text('{"hello": "world"}')
    (fake / "model.safetensors").write_bytes(b"\x80\x04pickle")
    assert main(["predict", str(fake), str(tiny_data / "test")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a babyface model" in err[0]


def test_models_lists_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("cnn", "resnet18", "resnet34"):
        assert name in out
    assert "5,176,099" in out  # cnn parameters at 64×64, 3 classes


def test_demo_trains_each_model_and_writes_a_results_table_beside_the_ceiling(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n", "60", "--models", "fast,resnet18,cnn", "--epochs", "1"]) == 0
    table = (out / "results.md").read_text()
    for model in ("fast", "resnet18", "cnn"):
        assert f"| {model} |" in table
        for name in ("learning_curves.png", "evaluation/confusion_matrix.png", "evaluation/predictions_grid.png"):
            assert (out / model / name).is_file()
    assert json.loads((out / "fast" / "model.json").read_text())["arch"]["name"] == "xception-mini"  # the fast recipe
    assert re.search(r"Ceiling: \d+\.\d\d%, a logistic regression", table)
    assert "| model |" in capsys.readouterr().out
    assert main(["demo", "--out", str(out), "--n", "60"]) == 2  # an earlier demo is not replaced silently


def test_demo_models_are_the_ones_the_config_offers() -> None:
    from babyface.config.datasets import DEMO_MODELS as OFFERED
    from babyface.tools.demo import DEMO_MODELS

    assert tuple(DEMO_MODELS) == OFFERED


def test_the_expression_ceiling_is_high_but_not_perfect(tmp_path) -> None:
    from babyface.tools.demo import expression_ceiling
    from babyface.tools.synthetic import SynthConfig, generate_dataset

    generate_dataset(tmp_path, SynthConfig(n=600, size=32), progress=False)
    assert 0.8 < expression_ceiling(tmp_path) < 1.0


def test_bf16_and_channels_last_train_and_load(tiny_data, tmp_path):
    run = tmp_path / "bf16"
    assert main(["train", str(tiny_data), "--epochs", "1", "--precision", "bf16", "--channels-last", "on", "--out", str(run), "--no-progress"]) == 0
    assert main(["evaluate", str(run), str(tiny_data), "--no-progress", "--precision", "bf16"]) == 0
    metrics = json.loads((run / "evaluation" / "metrics.json").read_text())
    assert metrics["n"] == 12 and metrics["precision"] == "bf16" and metrics["backend"] == "torch"
    assert json.loads((run / "model.json").read_text())["compute"]["precision"] == "bf16"


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_gray_model_gives_a_colour_photo_and_its_gray_copy_the_same_answer(tiny_data, tmp_path, backend):
    pytest.importorskip("onnxruntime")
    from babyface.inference.backends import OnnxBackend, TorchBackend

    run = tmp_path / "gray"
    # fp32: after one epoch of bf16 training the colour swap below moves the logits too little to compare against
    assert main(["train", str(tiny_data), "--epochs", "1", "--color", "gray", "--precision", "fp32", "--out", str(run),
                 "--no-progress"]) == 0
    meta = json.loads((run / "model.json").read_text())
    assert meta["arch"]["kwargs"]["color"] == "gray" and meta["training"]["color"] == "gray"
    assert len(set(meta["mean"])) == 1 and len(set(meta["std"])) == 1  # the luminance's, for every channel
    if backend == "onnx":
        assert main(["export", str(run), "--format", "onnx"]) == 0
    with Image.open(sorted((tiny_data / "test" / "happy").iterdir())[0]) as image:
        assert image.mode == "RGB" and len(set(image.getpixel((32, 40)))) > 1
        views = [image, image.convert("L").convert("RGB"), Image.merge("RGB", image.split()[::-1])]  # BGR: other luminance
        images = torch.stack([torch.from_numpy(np.array(view)).permute(2, 0, 1) for view in views])
    model = TorchBackend(run, torch.device("cpu")) if backend == "torch" else OnnxBackend(run)
    original, gray, swapped = model.logits(images, 8)
    off_by_rounding = (gray - original).abs().max()  # the gray copy's luminance is rounded to whole levels
    assert off_by_rounding < 0.02 * (swapped - original).abs().max()
