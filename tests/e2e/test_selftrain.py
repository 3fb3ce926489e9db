"""train --unlabelled DIR: a teacher, pseudo-labels for the faces it is sure of, a student trained with them."""

from __future__ import annotations

import json
import shutil

import pytest

from babyface.cli import main
from tests.e2e.conftest import read_csv

FAST = ["--model", "xception-mini", "--image-size", "32", "--epochs", "1", "--no-progress", "--no-leakage-check", "--seed", "0"]


@pytest.fixture(scope="module")
def unlabelled(tiny_data, tmp_path_factory):
    """The tiny set's test faces without their class folders (two sub-folders, as a real dump may have), and a
    file that is not an image."""
    root = tmp_path_factory.mktemp("unlabelled")
    for number, path in enumerate(sorted(p for p in (tiny_data / "test").rglob("*") if p.is_file())):
        target = root / f"part{number % 2}" / path.name
        target.parent.mkdir(exist_ok=True)
        shutil.copy(path, target)
    (root / "part0" / "broken.png").write_bytes(b"not an image")
    return root


def test_self_training_writes_teacher_pseudo_labels_and_a_student(tiny_data, unlabelled, tmp_path):
    out = tmp_path / "run"
    assert main(["train", str(tiny_data), "--unlabelled", str(unlabelled), "--pseudo-threshold", "0.34", "--out", str(out), *FAST]) == 0
    rows = read_csv(out / "self-training" / "pseudo_labels.csv")
    assert len(rows) == 12 and {r["kept"] for r in rows} <= {"0", "1"}  # the broken file is skipped, not fatal
    kept = [r for r in rows if r["kept"] == "1"]
    assert kept and all(float(r["confidence"]) >= 0.34 and r["mirror_agrees"] == "1" for r in kept)
    pseudo = out / "self-training" / "pseudo"
    assert sum(1 for p in pseudo.rglob("*") if p.is_file()) == len(kept)
    assert (out / "self-training" / "teacher" / "model.json").is_file()
    meta = json.loads((out / "model.json").read_text())
    assert any(s.endswith("pseudo") for s in meta["data"]["sources"]) and "pseudo" in meta["data"]["coverage"]


def test_a_teacher_sure_of_nothing_or_an_empty_folder_fails_in_one_line(tiny_data, unlabelled, tmp_path, capsys):
    assert main(["train", str(tiny_data), "--unlabelled", str(unlabelled), "--pseudo-threshold", "1.0",
                 "--out", str(tmp_path / "a"), *FAST]) != 0
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the teacher's training log
    assert last.startswith("babyface: error:") and "lower --pseudo-threshold" in last
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", str(tiny_data), "--unlabelled", str(empty), "--out", str(tmp_path / "b"), *FAST]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no image files found" in err[0]
