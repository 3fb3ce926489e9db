"""End-to-end: the recipes through the real CLI: the first one's regularisers resumed exactly and used as
--init, and the recommended one training three seeds and their ensemble."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.e2e.conftest import run_cli

RECIPE_ARGS = ["--recipe", "infant-v1", "--model", "cnn", "--image-size", "32", "--seed", "2", "--cutmix", "1.0", "--no-progress"]


@pytest.fixture(scope="module")
def recipe_run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("recipe") / "run"
    run_cli("train", tiny_data, "--out", out, "--epochs", "2", *RECIPE_ARGS)
    return out


def test_recipe_settings_are_resolved_into_the_run_config(recipe_run):
    import yaml

    config = yaml.safe_load((recipe_run / "config.yaml").read_text())
    assert config["recipe"] == "infant-v1" and config["mixup"] > 0 and config["cutmix"] == 1.0 and config["ema"] > 0
    assert config["augment"]["erasing"] > 0 and config["model"] == "cnn" and config["epochs"] == 2


def test_recipe_run_resumes_to_the_same_weights(tiny_data, tmp_path, recipe_run):
    """EMA weights and the mixing/erasing random draws are in the checkpoint: resuming changes nothing."""
    run = tmp_path / "run"
    run_cli("train", tiny_data, "--out", run, "--epochs", "1", *RECIPE_ARGS)
    run_cli("train", "--resume", run, "--epochs", "2", "--no-progress")
    a, b = load_file(run / "model.safetensors"), load_file(recipe_run / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_init_from_a_run_with_frozen_stages(tiny_data, tmp_path, recipe_run):
    out = tmp_path / "tuned"
    proc = run_cli("train", tiny_data, "--out", out, "--init", recipe_run, "--model", "cnn", "--image-size", "32",
                   "--epochs", "1", "--freeze-stages", "2", "--init-lr-scale", "0.1", "--no-progress")
    assert "initialised from" in proc.stderr
    before, after = load_file(recipe_run / "model.safetensors"), load_file(out / "model.safetensors")
    assert torch.equal(before["features.0.0.weight"], after["features.0.0.weight"])
    assert torch.equal(before["features.1.1.running_mean"], after["features.1.1.running_mean"])
    assert not torch.equal(before["features.3.0.weight"], after["features.3.0.weight"])
    assert (out / "history.csv").read_text().splitlines()[1].split(",")[6] == "0.001"  # lr column: --lr, not scaled
    meta, pre = json.loads((out / "model.json").read_text()), json.loads((recipe_run / "model.json").read_text())
    assert meta["mean"] == pre["mean"] and meta["std"] == pre["std"]


def test_init_with_another_architecture_is_a_one_line_error(tiny_data, tmp_path, recipe_run):
    proc = run_cli("train", tiny_data, "--out", tmp_path / "x", "--init", recipe_run, "--model", "resnet18", check=False)
    assert proc.returncode == 2 and "pass --model cnn" in proc.stderr and "Traceback" not in proc.stderr


def test_recommended_recipe_trains_three_seeds_and_their_ensemble(tiny_data, tmp_path):
    out = tmp_path / "infant"
    run_cli("train", tiny_data, "--recipe", "infant", "--image-size", "32", "--epochs", "1",
            "--out", out, "--no-progress")
    import yaml

    assert yaml.safe_load((out / "seed1" / "config.yaml").read_text())["class_balance"] == "sampler"
    assert len(json.loads((out / "ensemble" / "model.json").read_text())["members"]) == 3
    proc = run_cli("predict", out / "ensemble", tiny_data / "test", "--format", "json")
    assert json.loads(proc.stdout)
