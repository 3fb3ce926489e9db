"""End-to-end: the real ``babyface watch`` against hostile conditions. Webhook receivers on 127.0.0.1 that trickle a
byte every 2 s, never answer, or close every connection; a full disk as ``--events``; a stdout closed after its first
line (``| head -1``). Each time watch must end within a bound, say what happened in one-line warnings, and still give
every event to the outputs that work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from babyface.tools.synthetic import write_moving_faces_video
from babyface.watch import WEBHOOK_DEADLINE
from tests.test_watch import hang, receiver, refuse, trickle

# the eyes are off: these tests are about the outputs, and the landmarks would cost seconds a run on 200 frames
WATCH_ARGS = ["--device", "cpu", "--hold", "0.5", "--sad-seconds", "0", "--asleep-seconds", "0"]
STARTUP = 15.0  # seconds python, torch and the model may take to start on a busy 2-core machine
pytestmark = pytest.mark.timeout(60)  # a watch that hangs before its first line, say, still ends the test


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """200 frames: about a second and a half of watching, time for a pipe to be closed while it runs."""
    return write_moving_faces_video(tmp_path_factory.mktemp("watch") / "clip.mp4", frames=200, size=(320, 240), fps=25.0)


def start_watch(run: Path, clip: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "babyface", "watch", str(run), str(clip), *WATCH_ARGS, *extra]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """stdout and stderr once ``proc`` ends; killed, and the test failed, if it runs past ``timeout`` seconds."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"watch ran past {timeout:g} s: {proc.communicate()[1][-2000:]}")


def warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "WARNING" in line]


def assert_every_event(events: list[dict], stderr: str) -> None:
    """started first, stopped last, and as many as the CLI's closing line counts."""
    assert events[0]["event"] == "started" and events[-1]["event"] == "stopped" and events[-1]["frames"] == 200
    assert f"{len(events)} event(s)" in stderr.splitlines()[-1]


@pytest.mark.parametrize("answer", [trickle(2.0), hang], ids=["trickles-a-byte-every-2s", "never-answers"])
def test_a_webhook_that_holds_the_post_delays_the_exit_by_one_deadline(untrained_run, clip, answer) -> None:
    with receiver(answer) as url:
        begun = time.monotonic()
        out, err = finish(start_watch(untrained_run, clip, "--webhook", url), STARTUP + 2 * WEBHOOK_DEADLINE)
        ended = datetime.now(timezone.utc)
    events = [json.loads(line) for line in out.splitlines()]
    assert_every_event(events, err)
    after_stop = (ended - datetime.fromisoformat(events[-1]["time"])).total_seconds()
    # one deadline in all, not one per queued event (10 s and more here); the rest is Python and torch exiting
    assert after_stop < WEBHOOK_DEADLINE + 3.0
    assert time.monotonic() - begun < STARTUP + WEBHOOK_DEADLINE
    failed, summary = warning_lines(err)
    assert failed.startswith(f"WARNING: webhook {url} failed (no complete answer within 5 s)")
    assert summary.startswith(f"WARNING: webhook: {len(events)} of {len(events)} events not delivered to {url}")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full to play a full disk")
def test_a_refusing_webhook_and_a_full_disk_leave_stdout_whole(untrained_run, clip) -> None:
    with receiver(refuse) as url:
        proc = start_watch(untrained_run, clip, "--webhook", url, "--events", "/dev/full")
        out, err = finish(proc, STARTUP + WEBHOOK_DEADLINE)
    events = [json.loads(line) for line in out.splitlines()]
    assert proc.returncode == 0
    assert_every_event(events, err)
    warnings = warning_lines(err)
    assert len(warnings) == 4 and all(line.startswith("WARNING: ") for line in warnings)
    assert sum(line.startswith(f"WARNING: webhook {url} failed (") for line in warnings) == 1
    assert (
        "WARNING: --events /dev/full: cannot write (No space left on device); the other outputs go on, and the lines lost are counted at stop"
        in warnings
    )
    assert f"WARNING: --events /dev/full: {len(events)} of {len(events)} events not written" in warnings
    assert (
        f"WARNING: webhook: {len(events)} of {len(events)} events not delivered to {url} ({len(events)} failed, "
        "0 dropped from a full queue, 0 still queued at stop)" in warnings
    )


def test_a_stdout_closed_after_one_line_does_not_stop_the_events_file(untrained_run, clip, tmp_path) -> None:
    events_file = tmp_path / "events.jsonl"
    proc = start_watch(untrained_run, clip, "--events", str(events_file))
    first = json.loads(proc.stdout.readline())
    proc.stdout.close()  # as '| head -1' does
    _, err = finish(proc, STARTUP)
    assert proc.returncode == 0, err
    written = [json.loads(line) for line in events_file.read_text(encoding="utf-8").splitlines()]
    assert first == written[0]
    assert_every_event(written, err)
    assert warning_lines(err) == ["WARNING: stdout was closed (e.g. by '| head'); the events go on to --events only"]
    assert "Exception ignored" not in err and "Traceback" not in err
