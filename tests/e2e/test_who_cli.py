"""The infant, not the parent: a run trained with --adults (synthetic infants and adults, cut as videos cut faces)
gets an infant-vs-adult model; predict reports each face's infant probability, code --face infant codes the infant's
face in scripted sessions with a parent in frame, and watch --infant-only raises no event for the parent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import read_csv, run_cli

pytest.importorskip("cv2", reason="video needs OpenCV")


@pytest.fixture(scope="module")
def who_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("who")
    run_cli("synth", root / "infants", "--n", "300", "--quiet")
    run_cli("synth", root / "adults", "--n", "300", "--age", "adult", "--seed", "5", "--quiet")
    for name in ("infants", "adults"):  # faces cut by the detector, as code and watch cut them in videos
        run_cli("data", "crop", root / name, root / f"{name}-faces", "--detector", "blazeface", "--no-progress")
    run_cli("train", root / "infants-faces", "--data", root / "adults-faces", "--adults", "adults-faces", "--model", "cnn",
            "--epochs", "1", "--who-epochs", "6", "--out", root / "run", "--seed", "0", "--no-progress")
    return root / "run"


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sessions") / "s"
    run_cli("synth", out, "--video", "--videos", "2", "--seconds", "12", "--video-fps", "10", "--quiet")
    return out


def test_the_run_holds_an_infant_vs_adult_model_with_its_validation_auc(who_run):
    record = json.loads((who_run / "who" / "who.json").read_text())
    assert record["adults"] == ["adults-faces"] and record["epochs"] == 6
    assert record["val_auc"] >= 0.85
    assert json.loads((who_run / "who" / "model.json").read_text())["classes"] == ["adult", "infant"]


def test_predict_reports_each_faces_infant_probability(who_run):
    crops = who_run.parent
    proc = run_cli("predict", who_run, crops / "infants-faces" / "test" / "happy", crops / "adults-faces" / "test" / "happy",
                   "--format", "csv")
    rows = [line.split(",") for line in proc.stdout.strip().splitlines()]
    column = rows[0].index("p_infant")
    infant = [float(r[column]) for r in rows[1:] if "infants-faces" in r[0]]
    adult = [float(r[column]) for r in rows[1:] if "adults-faces" in r[0]]
    assert sum(infant) / len(infant) > sum(adult) / len(adult) + 0.3


def parent_ids(timeline: Path) -> set[int]:
    """Face ids of the parent, whose face sits in the top-right corner of the generated sessions."""
    return {int(r["face_id"]) for r in read_csv(timeline) if int(r["left"]) > 400}


def test_code_codes_the_infant_and_never_the_parent(who_run, sessions, tmp_path):
    run_cli("code", who_run, sessions, "--face", "infant", "--out", tmp_path / "coded", "--no-progress")
    for truth_file in sorted(sessions.glob("*.truth.csv")):
        folder = tmp_path / "coded" / truth_file.name.replace(".truth.csv", "")
        codes = read_csv(folder / "codes.csv")
        assert {r["tier"] for r in codes} == {"affect@infant"}
        parents = parent_ids(folder / "timeline.csv")
        assert parents and all(int(r["face_id"]) not in parents for r in codes if r["face_id"])
        truth = [row["code"] for row in read_csv(truth_file) for _ in range(int(row["end"]) - int(row["start"]))]
        away = [code["code"] for code, expected in zip(codes, truth) if expected == "uncodable"]
        assert away and away.count("uncodable") >= len(away) - 1  # the infant turned away: the parent is not coded
        seen = [code["code"] for code, expected in zip(codes, truth) if expected != "uncodable"]
        assert seen.count("uncodable") <= len(seen) // 4


def test_watch_raises_no_event_for_the_parent(who_run, sessions, tmp_path):
    video = sessions / "session_01.mp4"
    without = tmp_path / "without-who"
    shutil.copytree(who_run, without, ignore=shutil.ignore_patterns("who", "checkpoint.pt"))

    def faces_seen(run: Path, name: str, *flags: str) -> set[int]:
        events = tmp_path / f"{name}.jsonl"
        run_cli("watch", run, video, "--events", events, *flags)
        return {e["face_id"] for e in map(json.loads, events.read_text().splitlines()) if e["event"] == "face_seen"}

    run_cli("code", who_run, video, "--face", "all", "--fps", "0", "--out", tmp_path / "all", "--no-progress")
    parents = parent_ids(tmp_path / "all" / "session_01" / "timeline.csv")
    assert parents & faces_seen(without, "without"), (parents, faces_seen(without, "again"))  # without the model the parent is followed like the infant
    assert parents & faces_seen(who_run, "by-default")  # every face is followed unless --infant-only
    followed = faces_seen(who_run, "with", "--infant-only")
    assert followed and not parents & followed
    refused = run_cli("watch", without, video, "--infant-only", check=False)
    assert refused.returncode == 2 and "no infant-vs-adult model" in refused.stderr
