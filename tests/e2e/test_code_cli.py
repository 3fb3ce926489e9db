"""`babyface synth --video` and `babyface code` end to end through the real CLI: a corpus with a broken file and two
videos of one name, phases, the four kinds of files read back, resuming, refusing foreign results, workers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from babyface.video.coding_files import read_boris, read_codes_csv, read_eaf, read_opf
from tests.e2e.conftest import read_csv, run_cli

pytest.importorskip("cv2", reason="video needs OpenCV")
pytest.importorskip("pympi", reason="ELAN files need pympi-ling")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Two scripted 8-second sessions, a copy of one under another folder (same name), and a file that is no video."""
    root = tmp_path_factory.mktemp("corpus")
    run_cli("synth", root / "sessions", "--video", "--videos", "2", "--seconds", "8", "--video-fps", "10", "--quiet")
    (root / "sessions" / "more").mkdir()
    shutil.copy(root / "sessions" / "session_01.mp4", root / "sessions" / "more" / "session_01.mp4")
    (root / "sessions" / "broken.mp4").write_bytes(b"not a video at all")
    return root / "sessions"


def rounded(tiers):
    return {tier: [(round(b.start, 3), round(b.end, 3), b.code) for b in bouts] for tier, bouts in tiers.items()}


@pytest.fixture(scope="module")
def coded(corpus, untrained_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("coded") / "out"
    proc = run_cli("code", untrained_run, corpus, "--phases", corpus / "phases.csv", "--out", out, "--no-progress",
                   check=False)
    assert proc.returncode == 1, proc.stderr  # the exit status counts the failed videos: broken.mp4
    assert "3 video(s) coded, 0 kept from an earlier run, 1 failed" in proc.stdout
    assert "broken.mp4" in proc.stderr and "re-encode" in proc.stderr
    return out


def test_synth_writes_sessions_with_their_true_codes_and_phases(corpus):
    truth = read_csv(corpus / "session_01.truth.csv")
    assert truth[0]["start"] == "0" and truth[-1]["end"] == "8"
    assert {row["code"] for row in truth} <= {"positive", "neutral", "negative", "uncodable"}
    phases = read_csv(corpus / "phases.csv")
    assert [row["phase"] for row in phases if row["video"] == "session_01.mp4"] == ["face-to-face", "still-face", "reunion"]
    assert rounded(read_eaf(corpus / "session_01.truth.eaf"))["affect@infant"] == [
        (float(r["start"]), float(r["end"]), r["code"]) for r in truth]


def test_every_video_gets_its_files_and_they_agree(coded):
    folders = sorted(p.name for p in coded.iterdir() if p.is_dir())
    assert len(folders) == 3 and "session_02" in folders and sum(f.startswith("session_01-") for f in folders) == 2
    for name in folders:
        folder = coded / name
        codes = read_codes_csv(folder / "codes.csv")
        assert list(codes) == ["affect@largest"]
        assert codes[next(iter(codes))][-1].end == pytest.approx(8.0, abs=0.11)
        assert read_eaf(folder / f"{name}.eaf") == codes
        assert read_boris(folder / f"{name}.boris") == codes
        assert rounded(read_opf(folder / f"{name}.opf")) == rounded(codes)
        assert (folder / "timeline.csv").is_file() and (folder / "coding.json").is_file()
        epochs = read_csv(folder / "codes.csv")
        assert len(epochs) == 8 and {"p_happy", "left", "bottom", "face_id"} <= set(epochs[0])


def test_the_summary_has_a_row_per_phase_and_a_failed_row(coded):
    rows = read_csv(coded / "summary.csv")
    failed = [r for r in rows if r["status"] == "failed"]
    assert [r["video"] for r in failed] == ["broken.mp4"] and "OpenCV cannot read" in failed[0]["error"]
    session = [r for r in rows if r["video"] == "session_02.mp4"]
    assert [r["phase"] for r in session] == ["all", "face-to-face", "still-face", "reunion"]
    for row in session:
        shares = [float(row[f"share_{c}"]) for c in ("positive", "neutral", "negative")]
        assert sum(shares) == pytest.approx(1.0, abs=0.01) or float(row["seconds_coded"]) == 0
    report = (coded / "report.html").read_text()
    assert report.count("<svg") == 3 and "broken.mp4" in report and "still-face" in report


def test_a_rerun_keeps_finished_videos_and_codes_an_interrupted_one(coded, corpus, untrained_run):
    (coded / "session_02" / "coding.json").unlink()  # as if the run had stopped while writing session_02
    before = {p: p.stat().st_mtime_ns for p in coded.glob("session_01-*/codes.csv")}
    proc = run_cli("code", untrained_run, corpus, "--phases", corpus / "phases.csv", "--out", coded, "--no-progress",
                   check=False)
    assert "1 video(s) coded, 2 kept from an earlier run, 1 failed" in proc.stdout
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in before.items())
    assert (coded / "session_02" / "coding.json").is_file()


def test_codes_made_with_other_options_are_not_overwritten_silently(coded, corpus, untrained_run):
    video = corpus / "session_02.mp4"
    proc = run_cli("code", untrained_run, video, "--epoch", "2", "--out", coded, "--no-progress", check=False)
    assert proc.returncode == 2 and "session_02: holds codes made with another model" in proc.stderr
    assert "--overwrite" in proc.stderr


def test_workers_write_the_same_codes_as_one_process(coded, corpus, untrained_run, tmp_path):
    out = tmp_path / "workers"
    proc = run_cli("code", untrained_run, corpus, "--phases", corpus / "phases.csv", "--out", out, "--workers", "2",
                   "--no-progress", check=False)
    assert proc.returncode == 1 and "3 video(s) coded" in proc.stdout
    for folder in (p for p in coded.iterdir() if p.is_dir()):
        assert (out / folder.name / "codes.csv").read_text() == (folder / "codes.csv").read_text()
    def without_status(path):
        return [{k: v for k, v in row.items() if k != "status"} for row in read_csv(path)]

    assert without_status(out / "summary.csv") == without_status(coded / "summary.csv")


def test_phases_naming_a_missing_video_are_refused(corpus, untrained_run, tmp_path):
    phases = tmp_path / "phases.csv"
    phases.write_text("video,phase,start,end\nsession_09.mp4,still-face,0,5\n")
    proc = run_cli("code", untrained_run, corpus / "session_01.mp4", "--phases", phases, "--out", tmp_path / "o",
                   check=False)
    assert proc.returncode == 2 and "session_09.mp4" in proc.stderr and "not among the inputs" in proc.stderr


def test_ray_writes_the_same_codes_as_a_local_run(coded, corpus, untrained_run, tmp_path):
    pytest.importorskip("ray", reason="Ray is an extra: pip install 'babyface[ray]' (.ci/run installs it)")
    out = tmp_path / "ray"
    proc = run_cli("code", untrained_run, corpus, "--phases", corpus / "phases.csv", "--out", out, "--ray",
                   "--workers", "2", "--no-progress", check=False)
    assert proc.returncode == 1 and "3 video(s) coded" in proc.stdout, proc.stderr
    assert "broken.mp4" in proc.stderr
    for folder in (p for p in coded.iterdir() if p.is_dir()):
        assert (out / folder.name / "codes.csv").read_text() == (folder / "codes.csv").read_text()
        assert (out / folder.name / "timeline.csv").read_text() == (folder / "timeline.csv").read_text()
    rerun = run_cli("code", untrained_run, corpus, "--phases", corpus / "phases.csv", "--out", out, "--ray",
                    "--workers", "2", "--no-progress", check=False)
    assert "0 video(s) coded, 3 kept from an earlier run, 1 failed" in rerun.stdout


def test_a_ray_address_that_does_not_answer_is_one_line_and_writes_nothing(corpus, untrained_run, tmp_path):
    pytest.importorskip("ray", reason="Ray is an extra: pip install 'babyface[ray]' (.ci/run installs it)")
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    out = tmp_path / "never"
    proc = run_cli("code", untrained_run, corpus / "session_01.mp4", "--out", out, "--ray", f"127.0.0.1:{port}",
                   check=False)
    assert proc.returncode == 2 and "no Ray cluster answers there" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


def test_code_with_a_reference_writes_the_agreement_beside_the_codes(corpus, untrained_run, tmp_path):
    out = tmp_path / "with-reference"
    proc = run_cli("code", untrained_run, corpus / "session_02.mp4", "--out", out, "--no-progress",
                   "--reference", corpus / "session_02.truth.csv")
    assert "agreement with" in proc.stdout and "over 1 video(s): kappa" in proc.stdout
    import json

    report = json.loads((out / "agreement" / "agreement.json").read_text())
    assert [v["video"] for v in report["videos"]] == ["session_02"] and report["pooled"]["epochs"] > 0
    assert (out / "agreement" / "agreement.md").is_file() and (out / "agreement" / "bland_altman.png").is_file()


def write_variable_rate_video(path: Path, seconds_between: list[float]) -> list[float]:
    """An MPEG-4 video whose frames come at the given gaps (as a phone's variable frame rate does), each frame a face
    scene; returns each frame's presentation time."""
    import fractions

    av = pytest.importorskip("av", reason="PyAV writes the variable-frame-rate video (pip install av; a test extra)")
    import numpy as np

    from tests.conftest import face_scene

    frame_rgb = np.asarray(face_scene(size=(320, 240), at=(80, 40)))
    times, pts = [], 0
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.time_base = fractions.Fraction(1, 1000)
        for gap in [0.0, *seconds_between]:
            pts += round(gap * 1000)
            frame = av.VideoFrame.from_ndarray(frame_rgb, format="rgb24")
            frame.pts, frame.time_base = pts, fractions.Fraction(1, 1000)
            times.append(pts / 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return times


def test_a_variable_frame_rate_video_is_coded_on_its_own_clock(untrained_run, tmp_path):
    gaps = [0.1] * 9 + [0.5] * 10 + [0.1] * 10  # 1 s at 10 frames/s, 5 s at 2, 1 s at 10: 4.3 frames/s on average
    true_times = write_variable_rate_video(tmp_path / "phone.mp4", gaps)
    out = tmp_path / "coded"
    run_cli("code", untrained_run, tmp_path / "phone.mp4", "--fps", "0", "--out", out, "--no-progress")
    timeline = read_csv(out / "phone" / "timeline.csv")
    seen = {int(row["frame"]): float(row["time"]) for row in timeline}
    assert seen and all(seen[frame] == pytest.approx(true_times[frame], abs=0.002) for frame in seen)
    assert seen.get(10) == pytest.approx(1.4, abs=0.002)  # not 10 / 4.3 = 2.3 s
    epochs = read_csv(out / "phone" / "codes.csv")
    assert len(epochs) == 7 and float(epochs[-1]["end"]) == pytest.approx(7.0, abs=0.11)
