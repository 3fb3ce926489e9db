"""End-to-end: `babyface cv` through the real command line: group-stratified folds, one run folder per fold, pooled
out-of-fold results with group-level intervals, resume, leave one source out, and bad input."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from babyface.cli import main
from tests.e2e.conftest import read_csv, run_cli

TINY = ["--epochs", "1", "--image-size", "32", "--no-progress"]


@pytest.fixture(scope="module")
def cv_run(tiny_data, tmp_path_factory) -> tuple[Path, str]:
    """3 folds of ``tiny_data`` with its skin tones as the 'infants'; (OUT, what the command printed)."""
    out = tmp_path_factory.mktemp("cv") / "out"
    proc = run_cli("cv", tiny_data, "--folds", "3", "--group-by", "skin_tone", "--manifest", tiny_data / "metadata.csv",
                   "--out", out, *TINY)
    return out, proc.stdout


def test_cv_writes_folds_runs_pooled_results_and_a_report(cv_run, tiny_data):
    out, printed = cv_run
    folds = read_csv(out / "folds.csv")
    images = [r["file"] for r in read_csv(tiny_data / "metadata.csv")]
    assert sorted(r["file"] for r in folds) == sorted(images)  # every image once
    fold_of = defaultdict(set)
    for row in folds:
        fold_of[row["skin_tone"]].add(row["fold"])
    assert all(len(f) == 1 for f in fold_of.values())  # no skin tone in two folds
    for fold in (1, 2, 3):
        run = out / f"fold{fold}"
        assert (run / "model.json").is_file() and (run / "evaluation" / "metrics.json").is_file()
        tested = {r["file"] for r in read_csv(run / "splits.csv") if r["split"] == "test"}
        trained = {r["file"] for r in read_csv(run / "splits.csv") if r["split"] in ("train", "val")}
        assert tested == {r["file"] for r in folds if r["fold"] == str(fold)} and not tested & trained
        meta = json.loads((run / "model.json").read_text())
        assert meta["training"]["data_options"]["group_by"] == "skin_tone"  # validation kept the groups whole too
        metrics = json.loads((run / "evaluation" / "metrics.json").read_text())
        assert metrics["quote"] == "group" and metrics["group_ci"]["group_by"] == "skin_tone"
    oof = read_csv(out / "oof_predictions.csv")
    assert sorted(r["file"] for r in oof) == sorted(images) and {r["fold"] for r in oof} == {"1", "2", "3"}
    summary = json.loads((out / "cv_summary.json").read_text())
    pooled = summary["pooled"]
    assert pooled["n"] == 60 and pooled["n_groups"] == len(fold_of) and pooled["quote"] == "group"
    assert 0 <= pooled["accuracy_group_ci"][0] <= pooled["accuracy"] <= pooled["accuracy_group_ci"][1] <= 1
    assert [f["fold"] for f in summary["per_fold"]] == [1, 2, 3] and sum(f["n"] for f in summary["per_fold"]) == 60
    assert "| pooled | every image, out of fold | 60 |" in printed and "whole skin_tone groups" in printed
    assert (out / "cv_summary.md").read_text().startswith("# Cross-validation")
    for name in ("cv_folds.png", "cv_confusion_matrix.png", "report.html", "cv_config.yaml", "splits/fold2.csv"):
        assert (out / name).is_file(), name
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 2


def test_each_fold_is_an_ordinary_run_folder(cv_run, tmp_path):
    out, _ = cv_run
    assert main(["report", str(out / "fold1"), "--gallery", "0", "--out", str(tmp_path)]) == 0
    assert main(["evaluate", str(out / "fold2"), "--framing", "whole", "--no-progress", "--out", str(tmp_path / "e")]) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["group_ci"]["from"] == "training"  # the fold's own grouping, reused


def test_cv_resumes_fold_by_fold(cv_run, tiny_data, capsys, caplog):
    out, _ = cv_run
    kept = (out / "fold1" / "model.safetensors").stat().st_mtime_ns
    (out / "fold2" / "model.json").unlink()  # fold 2 interrupted after its last checkpoint
    assert main(["cv", str(tiny_data), "--folds", "3", "--out", str(out), *TINY]) == 2  # the same command again
    assert f"babyface cv --resume {out}" in capsys.readouterr().err
    proc = run_cli("cv", "--resume", out, "--no-progress")
    assert "fold1: trained already, kept" in proc.stderr and "fold2: interrupted earlier, resuming" in proc.stderr
    assert "fold3: trained already, kept" in proc.stderr
    assert (out / "fold1" / "model.safetensors").stat().st_mtime_ns == kept
    assert (out / "fold2" / "model.json").is_file() and "| pooled |" in proc.stdout
    assert main(["cv", "--resume", str(out), "--epochs", "2", "--no-progress"]) == 0  # nothing left to train
    assert "options other than those of" in capsys.readouterr().err and "epochs" in caplog.text
    folds = out / "folds.csv"
    text = folds.read_text()
    folds.write_text(text.replace(",1\n", ",2\n", 1))  # as if the data or the groups had changed
    assert main(["cv", "--resume", str(out)]) == 2
    assert "changed since this cross-validation started" in capsys.readouterr().err
    folds.write_text(text)


def test_leave_one_source_out(tmp_path):
    """Two sources held out in turn, a third (the adults, say) trained on in every fold; decisions over two classes."""
    import sys

    import numpy as np

    from babyface.run import read_predictions
    from babyface.tools.synthetic import SynthConfig, generate_dataset

    for name, style, seed in (("photos", "photo", 1), ("studio", "studio", 1), ("always", "photo", 2)):
        generate_dataset(tmp_path / name, SynthConfig(n=24, seed=seed, size=48, style=style), progress=False)
    out = tmp_path / "loso"
    proc = run_cli("cv", tmp_path / "photos", "--data", tmp_path / "studio", "--data", tmp_path / "always",
                   "--folds", "loso", "--hold-out", "photos", "--hold-out", "studio", "--decide-over", "happy,sad",
                   "--out", out, *TINY)
    folds = read_csv(out / "folds.csv")
    assert {(r["source"], r["fold"]) for r in folds} == {("photos", "1"), ("studio", "2"), ("always", "0")}
    summary = json.loads((out / "cv_summary.json").read_text())
    assert [f["held_out"] for f in summary["per_fold"]] == ["source photos", "source studio"]
    tested = sum(r["label"] != "neutral" and r["fold"] != "0" for r in folds)
    assert summary["pooled"]["n"] == tested and "quote" not in summary["pooled"]  # no --group-by: image-level intervals
    assert summary["classes"] == ["happy", "sad"]
    assert "leave one source out" in proc.stdout and "no --group-by" in proc.stderr
    # the cross-source benchmark reads the same folders: one fold per held-out source, scored over the decided classes
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from cross_source import Score, evaluated_models, fold_folders, score_rows, table_markdown

    assert set(fold_folders(out)) == {"photos", "studio"}
    rows = read_predictions(evaluated_models(fold_folders(out)["studio"])[""] / "evaluation" / "predictions.csv")
    probs = np.array([[row.probabilities.get(c, 0.0) for c in ("happy", "neutral", "sad")] for row in rows])
    score = score_rows("babyface", "studio", [row.true for row in rows], probs, None)
    assert isinstance(score, Score) and set(score.recall) == {"happy", "sad"} and score.auc_negative is None
    assert "| studio | babyface | " in table_markdown([score])


def test_bad_cv_input_is_one_line_and_nothing_is_trained(tiny_data, tmp_path, capsys):
    manifest = tiny_data / "metadata.csv"

    def refused(*args: str) -> str:
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        assert main(["cv", str(tiny_data), "--out", str(out), *TINY, *args]) == 2
        assert not list(out.glob("fold*"))
        error = capsys.readouterr().err.strip()
        assert error.count("\n") == 0, error
        return error

    tones = len({r["skin_tone"] for r in read_csv(manifest)})
    assert f"{tones} skin_tone groups for --folds 9" in refused("--folds", "9", "--group-by", "skin_tone", "--manifest",
                                                                   str(manifest))
    assert "no column 'infant'" in refused("--group-by", "infant", "--manifest", str(manifest))
    assert "--folds" in refused("--folds", "1")
    assert "needs two or more sources" in refused("--folds", "loso")
    one_group = tmp_path / "one_group.csv"  # every sad image is one infant's
    one_group.write_text("file,infant\n" + "".join(f"{r['file']},{'x' if r['label'] == 'sad' else r['file']}\n"
                                                   for r in read_csv(manifest)))
    assert "every 'sad' image is in one group (infant=x)" in refused("--group-by", "infant", "--manifest", str(one_group))
    assert "--split-file" in refused("--split-file", str(manifest))


def test_images_missing_from_the_manifest_stand_alone(tiny_data, tmp_path, caplog):
    from babyface.config import CvConfig
    from babyface.experiments.cv import make_plan

    partial = tmp_path / "partial.csv"
    rows = read_csv(tiny_data / "metadata.csv")
    partial.write_text("file,infant\n" + "".join(f"{r['file']},{r['skin_tone']}\n" for r in rows[5:]))
    plan = make_plan(CvConfig(data=str(tiny_data), folds="3", progress=False,
                              data_options={"group_by": "infant", "manifest": str(partial)}))
    assert "5 file(s) have no infant" in caplog.text
    assert len(plan.rows) == 60 and len({r.group for r in plan.rows}) == len({r["skin_tone"] for r in rows[5:]}) + 5


def test_cv_under_torchrun(tiny_data, tmp_path):
    """Two gloo processes train every fold together through one process group; rank 0 alone evaluates and writes."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "babyface", "cv",
           str(tiny_data), "--folds", "2", "--group-by", "skin_tone", "--manifest", str(tiny_data / "metadata.csv"),
           "--out", str(out), *TINY]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("2 processes (global batch 40)") == 2  # both folds trained by both processes
    summary = json.loads((out / "cv_summary.json").read_text())
    assert summary["pooled"]["n"] == 60 and len(summary["per_fold"]) == 2
    assert not list(out.rglob("*.tmp"))


def test_python_api_continues_a_finished_cross_validation_without_training(cv_run, tiny_data, caplog):
    import babyface

    out, _ = cv_run
    result = babyface.cv(data=str(tiny_data), folds="3", epochs=1, out=str(out), progress=False, resume=True,
                         data_options={"image_size": 32, "group_by": "skin_tone", "manifest": str(tiny_data / "metadata.csv")})
    assert result == out and "CvConfig" in babyface.__all__
    assert caplog.text.count("trained already, kept") == 3 and "epoch   1/1" not in caplog.text
    assert json.loads((out / "cv_summary.json").read_text())["pooled"]["n"] == 60
