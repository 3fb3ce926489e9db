"""babyface watch: events from smoothed labels (hysteresis, sad spells, lost faces), a source that drops and comes
back, outputs that fail (a webhook that fails, hangs or trickles, a full disk, a closed stdout), and the real command on
a generated video file."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

pytest.importorskip("cv2", reason="watch needs OpenCV")

from babyface.cli import main  # noqa: E402
from babyface.config import WatchConfig  # noqa: E402
from babyface.errors import BabyfaceError  # noqa: E402
from babyface.faces.detectors import FaceBox  # noqa: E402
from babyface.tools.synthetic import write_moving_faces_video  # noqa: E402
from babyface.video import analysis as video  # noqa: E402
from babyface.video.camera import FrameSource  # noqa: E402
from babyface.watch import EventSink, EventTracker, Webhook, post_json, watch  # noqa: E402

P = {"happy": 0.1, "neutral": 0.1, "sad": 0.8}


def feed(tracker: EventTracker, labels: str, step: float = 1.0, face_id: int = 1) -> list[dict]:
    """One observation per character (h/n/s) at ``step``-second intervals; the events they cause."""
    names = {"h": "happy", "n": "neutral", "s": "sad"}
    return [e for i, c in enumerate(labels) for e in tracker.observe(i * step, face_id, names[c], P)]


def test_one_noisy_frame_does_not_change_the_label() -> None:
    events = feed(EventTracker(hold=2.0, sad_seconds=0, lost_seconds=5), "hhhshhh")
    assert [e["event"] for e in events] == ["face_seen"]


def test_a_lasting_change_is_reported_once_after_the_hold() -> None:
    events = feed(EventTracker(hold=2.0, sad_seconds=0, lost_seconds=5), "hhnnnnn")
    assert [(e["event"], e.get("label"), e.get("previous")) for e in events] == [
        ("face_seen", "happy", None),
        ("label", "neutral", "happy"),
    ]
    assert events[1]["t"] == 4.0  # neutral from t=2, confirmed after 2 s


def test_a_sad_spell_alerts_once_counting_from_when_it_began() -> None:
    events = feed(EventTracker(hold=1.0, sad_seconds=3.0, lost_seconds=5), "hhssssssshhss")
    kinds = [e["event"] for e in events]
    assert kinds.count("sad_alert") == 1 and kinds == ["face_seen", "label", "sad_alert", "label", "label"]
    alert = events[2]
    assert alert["t"] == 5.0 and alert["sad_for"] == 3.0  # sad since t=2


def test_a_face_not_seen_is_lost() -> None:
    tracker = EventTracker(hold=1.0, sad_seconds=0, lost_seconds=2.0)
    feed(tracker, "hhh")
    assert tracker.expire(3.5) == [] and [e["event"] for e in tracker.expire(4.5)] == ["face_lost"]
    assert tracker.expire(9.0) == []


class FakeCapture:
    def __init__(self, frames: int | None):
        self.left = frames

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return self.left is not None

    def get(self, prop: int) -> float:
        return 10.0

    def read(self):
        if not self.left:
            return False, None
        self.left -= 1
        return True, np.zeros((4, 4, 3), np.uint8)

    def release(self) -> None:
        pass


def test_a_stream_that_drops_is_reopened_with_a_doubling_wait() -> None:
    events, waits = [], []
    opened = iter([FakeCapture(None), FakeCapture(2), FakeCapture(None), FakeCapture(None), FakeCapture(3)])

    def opener(target):
        try:
            return next(opened)
        except StopIteration:
            raise KeyboardInterrupt from None

    source = FrameSource("rtsp://camera/stream", reconnect=3.0, emit=events.append, opener=opener, sleep=waits.append)
    frames = []
    with pytest.raises(KeyboardInterrupt):
        for index, _ in source.frames():
            frames.append(index)
    assert frames == [0, 1, 2, 3, 4]
    assert waits == [1.0, 1.0, 2.0, 3.0, 1.0]  # reset after a success, capped at --reconnect
    assert [e["event"] for e in events] == [
        "source_lost",
        "source_back",
        "source_lost",
        "source_lost",
        "source_lost",
        "source_back",
        "source_lost",
    ]


def test_a_camera_that_never_opens_without_reconnect_is_a_one_line_error() -> None:
    source = FrameSource("0", reconnect=0, emit=lambda e: None, opener=lambda target: FakeCapture(None))
    with pytest.raises(BabyfaceError, match="cannot open"):
        list(source.frames())
    with pytest.raises(BabyfaceError, match="no such video file"):
        FrameSource("missing.mp4", reconnect=0, emit=lambda e: None)


@pytest.fixture
def walking_face(monkeypatch) -> None:
    """A detector that sees one face drifting right: watch runs without MTCNN's cost."""

    def detect(rgb, detector, min_score, max_side, min_face=0.0):
        return [FaceBox(40, 40, 140, 140, 0.99)]

    monkeypatch.setattr(video, "detect_faces", detect)


def test_watch_a_video_file_end_to_end(untrained_run, tmp_path: Path, walking_face, capsys) -> None:
    clip = write_moving_faces_video(tmp_path / "clip.mp4", frames=30, size=(320, 240), fps=10.0)
    events_file = tmp_path / "events.jsonl"
    assert (
        main(
            [
                "watch",
                str(untrained_run),
                str(clip),
                "--events",
                str(events_file),
                "--device",
                "cpu",
                "--hold",
                "0.5",
                "--sad-seconds",
                "0",
                "--detect-every",
                "3",
            ]
        )
        == 0
    )
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    written = [json.loads(line) for line in events_file.read_text(encoding="utf-8").splitlines()]
    assert [e["event"] for e in printed] == [e["event"] for e in written]
    assert written[0]["event"] == "started" and written[-1]["event"] == "stopped" and written[-1]["frames"] == 30
    assert any(e["event"] == "face_seen" and e["face_id"] == 1 for e in written)
    assert all("time" in e for e in written)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "events.jsonl"]  # no frame is stored


def test_ctrl_c_stops_cleanly_with_a_stopped_event(untrained_run, tmp_path: Path, walking_face) -> None:
    def opener(target):
        raise KeyboardInterrupt

    stream = io.StringIO()
    counts = watch(
        WatchConfig(run=str(untrained_run), source="rtsp://camera", device="cpu"), EventSink(stream=stream), opener=opener
    )
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert events == ["started", "stopped"] and counts["frames"] == 0


def test_a_webhook_must_be_a_url() -> None:
    with pytest.raises(BabyfaceError, match="http"):
        EventSink(webhook="ftp://example")


# ---------------------------------------------------------------- hostile conditions: the source


class FakeClock:
    """Time that passes only when slept: waits are recorded, never waited."""

    def __init__(self):
        self.now, self.waits = 0.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def opens(*captures: FakeCapture, then_closed: int = 50) -> Callable[[object], FakeCapture]:
    """An opener: ``captures`` in turn, then ``then_closed`` that do not open, then the test fails (no bound)."""
    queue = iter([*captures, *[FakeCapture(None) for _ in range(then_closed)]])

    def opener(target: object) -> FakeCapture:
        capture = next(queue, None)
        if capture is None:
            pytest.fail("the source was reopened without end")
        return capture

    return opener


def fake_source(target: str, opener, clock: FakeClock, **options) -> FrameSource:
    """A FrameSource on fakes: ``opener`` gives the captures, ``clock`` the time and the waits (none really taken)."""
    return FrameSource(target, reconnect=30, opener=opener, sleep=clock.sleep, clock=clock, **options)


def test_a_camera_that_never_opens_is_an_error_after_open_tries() -> None:
    clock = FakeClock()
    source = fake_source("7", opens(), clock, emit=lambda e: None, open_tries=3)
    with pytest.raises(BabyfaceError, match=r"^7: OpenCV cannot open it \(3 tries\).*--open-tries$"):
        list(source.frames())
    assert clock.waits == [1.0, 2.0]


def test_a_stream_that_opened_once_is_retried_beyond_open_tries() -> None:
    clock = FakeClock()
    source = fake_source("rtsp://camera", opens(FakeCapture(1), FakeCapture(None), FakeCapture(None), FakeCapture(None), FakeCapture(1)), clock, emit=lambda e: None, open_tries=1)
    frames = source.frames()
    assert [next(frames)[0], next(frames)[0]] == [0, 1]
    assert clock.waits == [1.0, 2.0, 4.0, 8.0]


def test_max_seconds_cuts_the_waits_and_ends_a_source_that_sends_nothing() -> None:
    clock, events = FakeClock(), []
    source = fake_source("rtsp://camera", opens(FakeCapture(1)), clock, emit=events.append, max_seconds=10)
    assert [index for index, _ in source.frames()] == [0]
    assert clock.waits == [1.0, 2.0, 4.0, 3.0] and clock.now == 10.0  # the last wait cut to the time left
    assert [e["retry_in"] for e in events] == [1.0, 2.0, 4.0, 3.0]


def test_max_seconds_up_before_a_source_ever_opens_is_the_cannot_open_error() -> None:
    clock = FakeClock()
    source = fake_source("rtsp://nowhere", opens(), clock, emit=lambda e: None, open_tries=100, max_seconds=5)
    with pytest.raises(BabyfaceError, match=r"cannot open it \(4 tries\)"):
        list(source.frames())
    assert clock.now == 5.0


def test_watch_honours_max_seconds_while_no_frame_arrives(untrained_run) -> None:
    clock, stream = FakeClock(), io.StringIO()
    config = WatchConfig(run=str(untrained_run), source="rtsp://camera", device="cpu", max_seconds=20)
    opener = opens(FakeCapture(0))  # it opens, then never a frame
    counts = watch(config, EventSink(stream=stream), opener=opener, sleep=clock.sleep, clock=clock)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["started"] + ["source_lost"] * 5 + ["stopped"]
    assert events[-1]["seconds"] == 20.0 and counts["frames"] == 0 and counts["events"] == 7


# ---------------------------------------------------------------- hostile conditions: the outputs


def read_request(conn: socket.socket) -> bytes:
    """One HTTP request's body (headers up to the blank line, then Content-Length bytes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
    while len(body) < length:
        body += conn.recv(65536)
    return body


def answer_204(bodies: list[bytes]) -> Callable[[socket.socket, threading.Event], None]:
    """A receiver that answers at once, keeping what it was sent."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        bodies.append(read_request(conn))
        conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    return answer


def trickle(every: float) -> Callable[[socket.socket, threading.Event], None]:
    """A receiver that sends its answer one byte every ``every`` seconds (until the client goes away)."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" * 100:
            conn.sendall(bytes([byte]))
            if stop.wait(every):
                return

    return answer


def hang(conn: socket.socket, stop: threading.Event) -> None:
    """A receiver that reads the request and never answers."""
    read_request(conn)
    stop.wait(60)


def refuse(conn: socket.socket, stop: threading.Event) -> None:
    """A receiver that closes every connection at once."""


@contextlib.contextmanager
def receiver(answer: Callable[[socket.socket, threading.Event], None]) -> Iterator[str]:
    """A raw HTTP receiver on 127.0.0.1, ``answer`` called in a thread for each connection; yields its URL."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            answer(conn, stop)

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = server.accept()
                threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/hook?baby=1"
    finally:
        stop.set()
        thread.join()
        server.close()


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "babyface" and r.levelno == logging.WARNING]


def test_post_json_delivers_to_a_receiver_that_answers() -> None:
    bodies: list[bytes] = []
    with receiver(answer_204(bodies)) as url:
        post_json(url, '{"event": "started"}', deadline=2.0)
    assert bodies == [b'{"event": "started"}']


def test_post_json_gives_up_on_a_trickling_receiver_at_its_deadline() -> None:
    with receiver(trickle(0.05)) as url:  # a byte every 0.05 s: a timeout per read would never fire
        begun = time.monotonic()
        with pytest.raises(TimeoutError, match="no complete answer within 0.5 s"):
            post_json(url, "{}", deadline=0.5)
        assert time.monotonic() - begun < 1.5


def test_webhook_failures_warn_once_then_are_counted_on_recovery_and_at_stop(caplog) -> None:
    def post(url: str, body: str, deadline: float) -> None:
        if body.startswith("fail"):
            raise ConnectionRefusedError("refused")

    webhook = Webhook("http://receiver/hook", post=post)
    for body in ["ok", "fail 1", "fail 2", "fail 3", "ok", "fail 4"]:
        webhook.put(body)
    webhook.close()
    assert warnings(caplog) == [
        "WARNING: webhook http://receiver/hook failed (refused); the events are still in the output, and further "
        "failures are counted until it answers again",
        "WARNING: webhook http://receiver/hook answers again; 3 event(s) were not delivered while it failed",
        "WARNING: webhook http://receiver/hook failed (refused); the events are still in the output, and further "
        "failures are counted until it answers again",
        "WARNING: webhook: 4 of 6 events not delivered to http://receiver/hook (4 failed, 0 dropped from a full queue, "
        "0 still queued at stop)",
    ]


def test_a_full_webhook_queue_drops_the_oldest_with_one_warning(caplog) -> None:
    posting, release, posted = threading.Event(), threading.Event(), []

    def post(url: str, body: str, deadline: float) -> None:
        posting.set()
        release.wait(5)
        posted.append(body)

    webhook = Webhook("http://receiver/hook", queue_size=3, post=post)
    webhook.put("0")
    assert posting.wait(5)
    for body in "123456789":
        webhook.put(body)
    release.set()
    webhook.close()
    assert posted == ["0", "7", "8", "9"]
    assert warnings(caplog) == [
        "WARNING: webhook http://receiver/hook: 3 events are waiting; dropping the oldest (counted at stop)",
        "WARNING: webhook: 6 of 10 events not delivered to http://receiver/hook (0 failed, 6 dropped from a full queue, "
        "0 still queued at stop)",
    ]


def test_a_hanging_webhook_delays_the_stop_by_one_deadline_in_all(caplog) -> None:
    deadlines = []

    def post(url: str, body: str, deadline: float) -> None:  # a receiver that never answers, as post_json meets it
        deadlines.append(deadline)
        time.sleep(deadline)
        raise TimeoutError(f"no complete answer within {deadline:g} s")

    webhook = Webhook("http://receiver/hook", deadline=0.4, post=post)
    for body in range(20):
        webhook.put(str(body))
    time.sleep(0.2)  # the first POST is half-way through its deadline
    begun = time.monotonic()
    webhook.close()
    assert time.monotonic() - begun < 0.4 + 0.2  # one deadline in all; one per event would be 20 x 0.4 s
    assert len(deadlines) >= 2 and sum(deadlines[1:]) < 0.3  # what the drain had left (0.2 s), not a deadline each
    assert warnings(caplog)[-1].startswith("WARNING: webhook: 20 of 20 events not delivered")
    assert "still queued at stop)" in warnings(caplog)[-1]


def unwritable_path(tmp_path: Path) -> Path:
    readonly = tmp_path / "readonly.jsonl"
    readonly.touch()
    readonly.chmod(0o444)
    if not os.access(readonly, os.W_OK):
        return readonly
    if Path("/sys/kernel").is_dir():  # root may write any file, but not make one in sysfs
        return Path("/sys/kernel/events.jsonl")
    pytest.skip("no file this user cannot write")


def test_the_events_file_is_checked_at_start(tmp_path: Path) -> None:
    with pytest.raises(BabyfaceError, match=r"^--events .*: is a folder; give a file path, e.g. .*events.jsonl$"):
        EventSink(events_file=str(tmp_path))
    with pytest.raises(BabyfaceError, match=r"folder .*missing does not exist; create it"):
        EventSink(events_file=str(tmp_path / "missing" / "events.jsonl"))
    with pytest.raises(BabyfaceError, match=r"cannot write it \(Permission denied\)"):
        EventSink(events_file=str(unwritable_path(tmp_path)))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full to play a full disk")
def test_a_full_disk_is_one_warning_and_a_count_while_stdout_and_the_webhook_go_on(caplog) -> None:
    bodies: list[bytes] = []
    stream = io.StringIO()
    with receiver(answer_204(bodies)) as url:
        sink = EventSink(events_file="/dev/full", webhook=url, stream=stream)
        for n in range(3):
            sink.emit({"event": "label", "n": n})
        sink.close()
    assert [json.loads(line)["n"] for line in stream.getvalue().splitlines()] == [0, 1, 2]
    assert [json.loads(body)["n"] for body in bodies] == [0, 1, 2]
    assert warnings(caplog) == [
        "WARNING: --events /dev/full: cannot write (No space left on device); the other outputs go on, and the lines lost are counted at stop",
        "WARNING: --events /dev/full: 3 of 3 events not written",
    ]


class ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_stdout_stops_printing_but_the_events_file_goes_on(tmp_path: Path, caplog) -> None:
    events_file = tmp_path / "events.jsonl"
    sink = EventSink(events_file=str(events_file), stream=ClosedPipe())
    for n in range(3):
        sink.emit({"event": "label", "n": n})
    sink.close()
    assert sink.has_output and len(events_file.read_text().splitlines()) == 3
    assert warnings(caplog) == ["WARNING: stdout was closed (e.g. by '| head'); the events go on to --events only"]


def test_watch_stops_cleanly_when_stdout_closes_and_there_is_no_other_output(untrained_run, caplog) -> None:
    def opener(target):
        pytest.fail("watch went on with nobody to read its events")

    counts = watch(
        WatchConfig(run=str(untrained_run), source="rtsp://camera", device="cpu"), EventSink(stream=ClosedPipe()), opener=opener
    )
    assert counts["events"] == 2  # started, stopped
    assert warnings(caplog) == [
        "WARNING: stdout was closed (e.g. by '| head'); nothing else to write to (no --events, --webhook or --mqtt)"
    ]
