"""End-to-end: group-level intervals in evaluate (flags, the run's own grouping, bad manifests), report and compare."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from babyface.cli import main
from tests.e2e.conftest import read_csv


@pytest.fixture(scope="module")
def grouped(tiny_run, tiny_data, tmp_path_factory) -> Path:
    """``tiny_run`` evaluated with its test images grouped by skin tone (5 tones: 'infants' of several images)."""
    out = tmp_path_factory.mktemp("grouped") / "evaluation"
    assert main(["evaluate", str(tiny_run), str(tiny_data), "--out", str(out), "--no-progress", "--framing", "whole",
                 "--group-by", "skin_tone", "--manifest", str(tiny_data / "metadata.csv")]) == 0
    return out


def test_evaluate_reports_both_intervals_and_says_which_to_quote(grouped, tiny_run, tiny_data, tmp_path, capsys):
    metrics = json.loads((grouped / "metrics.json").read_text())
    tones = {r["skin_tone"] for r in read_csv(tiny_data / "metadata.csv") if r["split"] == "test"}
    assert metrics["n_groups"] == len(tones) and metrics["quote"] == "group"
    assert metrics["group_ci"]["group_by"] == "skin_tone" and metrics["group_ci"]["from"] == "--group-by"
    for key in ("accuracy", "macro_f1"):
        low, high = metrics[f"{key}_group_ci"]
        assert 0 <= low <= metrics[key] <= high <= 1
        assert metrics[f"{key}_ci"] and high - low >= 0  # the image-level one is kept beside it
    rows = read_csv(grouped / "predictions.csv")
    assert len(rows) == 12 and {r["group"] for r in rows} == {f"skin_tone={t}" for t in tones}
    assert main(["evaluate", str(tiny_run), str(tiny_data), "--out", str(tmp_path / "e"), "--no-progress", "--framing",
                 "whole", "--group-by", "skin_tone", "--manifest", str(tiny_data / "metadata.csv"), "--by", "grayscale"]) == 0
    printed = capsys.readouterr().out
    assert f"95% intervals over {len(tones)} skin_tone groups" in printed and "quote these" in printed
    assert "images resampled as if independent" in printed and "resample whole --group-by groups" in printed


def test_near_duplicates_as_groups(tiny_run, tiny_data, tmp_path):
    assert main(["evaluate", str(tiny_run), str(tiny_data), "--out", str(tmp_path / "e"), "--no-progress", "--framing",
                 "whole", "--group-by", "near-duplicates"]) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["n_groups"] == metrics["n"] == 12  # distinct synthetic faces: every image is its own group


def test_bad_group_manifests_are_one_line_errors_or_warnings(tiny_run, tiny_data, tmp_path, capsys):
    manifest = tiny_data / "metadata.csv"
    base = ["evaluate", str(tiny_run), str(tiny_data), "--no-progress", "--framing", "whole"]
    assert main([*base, "--out", str(tmp_path / "a"), "--group-by", "infant", "--manifest", str(manifest)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "metadata.csv: no column 'infant'" in error and "skin_tone" in error
    assert not (tmp_path / "a").exists()  # refused before anything was written
    assert main([*base, "--out", str(tmp_path / "b"), "--manifest", str(manifest)]) == 2
    assert "--group-by" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "c"), "--group-by", "skin_tone"]) == 2
    assert "--manifest" in capsys.readouterr().err
    partial = tmp_path / "partial.csv"  # the first three test images have no row: each counts as its own group
    rows = [r for r in read_csv(manifest) if r["split"] == "test"]
    partial.write_text("file,infant\n" + "".join(f"{r['file']},{r['skin_tone']}\n" for r in rows[3:]))
    assert main([*base, "--out", str(tmp_path / "d"), "--group-by", "infant", "--manifest", str(partial)]) == 0
    assert "3 file(s) have no infant" in capsys.readouterr().err
    metrics = json.loads((tmp_path / "d" / "metrics.json").read_text())
    assert metrics["n"] == 12 and metrics["n_groups"] == len({r["skin_tone"] for r in rows[3:]}) + 3


def test_evaluate_reuses_the_grouping_the_run_was_trained_with(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    manifest = str(tiny_data / "metadata.csv")
    assert main(["train", str(tiny_data), "--epochs", "1", "--image-size", "32", "--out", str(run), "--no-progress",
                 "--group-by", "skin_tone", "--manifest", manifest]) == 0
    assert main(["evaluate", str(run), "--no-progress", "--framing", "whole"]) == 0
    assert "--group-by skin_tone" in capsys.readouterr().err
    metrics = json.loads((run / "evaluation" / "metrics.json").read_text())
    assert metrics["quote"] == "group" and metrics["group_ci"]["from"] == "training"
    assert main(["evaluate", str(run), "--no-progress", "--framing", "whole", "--group-by", "none", "--overwrite"]) == 0
    assert "quote" not in json.loads((run / "evaluation" / "metrics.json").read_text())


def test_report_and_model_card_quote_the_group_interval(tiny_run, grouped, tmp_path):
    out = tmp_path / "report"
    assert main(["report", str(tiny_run), "--eval", str(grouped), "--out", str(out), "--gallery", "0"]) == 0
    metrics = json.loads((grouped / "metrics.json").read_text())
    low, high = metrics["accuracy_group_ci"]
    page = (out / "report.html").read_text()
    assert f"{low:.1%} – {high:.1%}" in page and f"({metrics['n_groups']} skin_tone groups)" in page
    assert "cluster bootstrap over" in page
    card = (out / "model_card.md").read_text()
    assert f"[{low:.3f}, {high:.3f}]" in card and "quote these" in card


def test_compare_adds_a_paired_group_test_and_says_which_to_trust(tiny_run, grouped, evaluated_plain, tiny_data, tmp_path,
                                                                  capsys):
    grouped_copies, plain_copies = [], []
    for name, evaluation, copies in (("a", grouped, grouped_copies), ("b", grouped, grouped_copies),
                                     ("c", evaluated_plain, plain_copies), ("d", evaluated_plain, plain_copies)):
        shutil.copytree(tiny_run, tmp_path / name, ignore=shutil.ignore_patterns("evaluation"))
        shutil.copytree(evaluation, tmp_path / name / "evaluation")
        copies.append(str(tmp_path / name))
    assert main(["compare", *grouped_copies, "--output", str(tmp_path / "c.json")]) == 0
    printed = capsys.readouterr().out
    assert "Paired cluster bootstrap" in printed and "Trust: paired cluster bootstrap" in printed
    result = json.loads((tmp_path / "c.json").read_text())
    paired = result["paired_bootstrap"][0]
    assert paired["difference"] == 0 and paired["p_value"] == 1.0 and paired["groups"] >= 2
    assert all(r["intervals"] == "groups" for r in result["runs"])
    assert main(["compare", *plain_copies]) == 0
    assert "Trust: McNemar" in capsys.readouterr().out
    assert main(["compare", *plain_copies, "--group-by", "skin_tone", "--manifest", str(tiny_data / "metadata.csv")]) == 0
    assert "Trust: paired cluster bootstrap" in capsys.readouterr().out
    predictions = tmp_path / "b" / "evaluation" / "predictions.csv"
    rows = read_csv(predictions)
    with open(predictions, "w", newline="") as handle:  # b's groups: every image alone
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "group": r["file"]} for r in rows)
    assert main(["compare", *grouped_copies]) == 2
    assert "different --group-by groups" in capsys.readouterr().err


@pytest.fixture(scope="module")
def evaluated_plain(tiny_run, tiny_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plain") / "evaluation"
    assert main(["evaluate", str(tiny_run), str(tiny_data), "--out", str(out), "--no-progress", "--framing", "whole"]) == 0
    return out
