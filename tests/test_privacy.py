"""Nothing phones home: a babyface process leaves no telemetry behind (onnxruntime's lives under ~/.cache/Microsoft)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import face_scene


def run_with_home(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300)


def telemetry_files(home: Path) -> list[Path]:
    return sorted(p for p in (home / ".cache" / "Microsoft").rglob("*") if p.is_file())


def test_onnxruntime_alone_would_write_telemetry(tmp_path: Path) -> None:
    """The control: the pinned onnxruntime does write a device id and an event queue when imported bare."""
    run_with_home(tmp_path, "-c", "import onnxruntime")
    if not telemetry_files(tmp_path):
        pytest.skip("this onnxruntime writes no telemetry even when imported bare; nothing to switch off")
    assert {p.name for p in telemetry_files(tmp_path)} >= {"deviceid"}


def test_predict_with_onnxruntime_leaves_nothing_under_microsoft(untrained_run, tmp_path: Path) -> None:
    image = tmp_path / "baby.png"
    face_scene().save(image)
    home = tmp_path / "home"
    home.mkdir()
    done = run_with_home(home, "-m", "babyface", "predict", str(untrained_run), str(image), "--device", "cpu",
                         "--detector", "blazeface")
    assert done.returncode == 0, done.stderr
    script = ("import babyface.inference.backends, babyface.faces.blazeface, onnxruntime; "
              "print(onnxruntime.get_device())")
    assert run_with_home(home, "-c", script).returncode == 0
    assert telemetry_files(home) == []
    assert not (home / ".cache" / "Microsoft").exists()
