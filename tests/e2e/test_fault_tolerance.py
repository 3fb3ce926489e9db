"""End-to-end: resume after SIGKILL, Ctrl-C, and training under torchrun."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from tests.e2e.conftest import run_cli

TRAIN_ARGS = ["--model", "cnn", "--epochs", "6", "--seed", "4", "--no-progress"]


def read_history(run):
    with open(run / "history.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def start_training(data, out, *extra) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "babyface", "train", str(data), "--out", str(out), *TRAIN_ARGS, *extra]
    # a shell's background job starts with SIGINT ignored, and Python then never raises KeyboardInterrupt
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_epochs(proc: subprocess.Popen, run, epochs: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run / "history.csv").is_file() and len(read_history(run)) >= epochs:
            return
        if proc.poll() is not None:
            pytest.fail(f"training ended before it could be interrupted: {proc.stderr.read()[-2000:]}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("training did not reach the epoch to interrupt")


def assert_same_weights(a, b):
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


@pytest.fixture(scope="module")
def uninterrupted(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    run_cli("train", tiny_data, "--out", out, *TRAIN_ARGS)
    return out


def test_resume_after_sigkill_ends_with_the_weights_of_an_uninterrupted_run(tiny_data, tmp_path, uninterrupted):
    run = tmp_path / "killed"
    proc = start_training(tiny_data, run)
    wait_for_epochs(proc, run, 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "model.json").exists()  # the bundle is only written at the end
    run_cli("train", "--resume", run, "--no-progress")
    assert read_history(run) == read_history(uninterrupted)
    assert_same_weights(run, uninterrupted)


def test_ctrl_c_keeps_a_checkpoint_and_says_how_to_resume(tiny_data, tmp_path, uninterrupted):
    run = tmp_path / "stopped"
    proc = start_training(tiny_data, run)
    wait_for_epochs(proc, run, 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"--resume {run}" in err and "Traceback" not in err
    run_cli("train", "--resume", run, "--no-progress")
    assert_same_weights(run, uninterrupted)


def test_resume_needs_a_run_folder(tmp_path):
    proc = run_cli("train", "--resume", tmp_path / "nothing", check=False)
    assert proc.returncode == 2 and "config.yaml" in proc.stderr


def test_torchrun_two_cpu_processes(tiny_data, tmp_path):
    """Two gloo processes, batch 4 each, against one process with batch 8 (exactness without BatchNorm is
    tested in tests/test_distributed.py; here BatchNorm sees 4 images per process, so only close)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    common = ["--model", "resnet18", "--epochs", "2", "--seed", "2", "--no-progress", "--no-augment"]
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "babyface", "train", str(tiny_data), "--out", str(ddp), "--batch-size", "4", *common]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes (global batch 8)" in proc.stderr
    run_cli("train", tiny_data, "--out", single, "--batch-size", "8", *common)
    ddp_rows, single_rows = read_history(ddp), read_history(single)
    assert len(ddp_rows) == len(single_rows) == 2
    for a, b in zip(ddp_rows, single_rows):
        assert abs(float(a["train_loss"]) - float(b["train_loss"])) < 0.25
    assert (ddp / "model.json").is_file() and not list(ddp.glob("*.tmp"))
