"""The run folder contract: train writes the split manifest once and evaluate reads it, never re-deriving a split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from babyface.data.images import is_image_file
from babyface.run import SPLIT_COLUMNS, EvaluationFiles, RunFolder, read_split_manifest
from tests.e2e.conftest import run_cli


def images(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if is_image_file(p)]


@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path) -> RunFolder:
    return RunFolder(shutil.copytree(tiny_run, tmp_path / "run"))


def test_train_writes_every_image_once_with_its_split_label_and_source(tiny_run: Path, tiny_data: Path) -> None:
    folder = RunFolder(tiny_run)
    assert folder.splits.read_text(encoding="utf-8").splitlines()[0] == ",".join(SPLIT_COLUMNS)
    meta = json.loads(folder.meta.read_text(encoding="utf-8"))
    manifest = read_split_manifest(folder.splits, Path(meta["data"]["root"]))
    files = [row.file for row in manifest.rows]
    assert len(files) == len(set(files)) == len(images(tiny_data))
    assert {row.split for row in manifest.rows} == {"train", "val", "test"}
    assert all((manifest.root / row.file).is_file() for row in manifest.rows)
    assert folder.split_manifest() == manifest  # the run folder knows its manifest's root from model.json
    assert sorted(p.relative_to(tiny_data).as_posix() for p in images(tiny_data / "test")) == \
        sorted(row.file for row in manifest.files("test"))


def test_evaluate_reads_the_test_rows_of_the_manifest(run_copy: RunFolder) -> None:
    """Edit the manifest: evaluate follows it (a split re-derived from the seed would not)."""
    lines = run_copy.splits.read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    kept = [row for row in rows if ",test," in row][:3] + [row for row in rows if ",test," not in row]
    run_copy.splits.write_text("\n".join([header, *kept]) + "\n", encoding="utf-8")
    run_cli("evaluate", run_copy.path, "--framing", "whole", "--bootstrap", "0", "--no-progress")
    metrics = json.loads((run_copy.evaluation / EvaluationFiles.METRICS).read_text(encoding="utf-8"))
    assert metrics["n"] == 3 and "held out at training" in metrics["data"]


def test_without_a_manifest_evaluate_asks_for_data(run_copy: RunFolder) -> None:
    run_copy.splits.unlink()
    proc = run_cli("evaluate", run_copy.path, "--framing", "whole", check=False)
    assert proc.returncode == 2
    message = proc.stderr.strip().splitlines()[-1]
    assert "splits.csv" in message and "give the test DATA" in message


def test_other_data_is_all_test_data(run_copy: RunFolder, tmp_path: Path, tiny_data: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(tiny_data / "test", other)
    run_cli("evaluate", run_copy.path, other, "--framing", "whole", "--bootstrap", "0", "--no-progress", "--overwrite")
    metrics = json.loads((run_copy.evaluation / EvaluationFiles.METRICS).read_text(encoding="utf-8"))
    assert metrics["n"] == len(images(other))
