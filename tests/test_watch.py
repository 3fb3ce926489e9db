"""babyface watch: events from smoothed labels (hysteresis, sad spells, lost faces), a source that drops and comes
back, and the real command on a generated video file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cv2", reason="watch needs OpenCV")

from babyface import video  # noqa: E402
from babyface.cli import main  # noqa: E402
from babyface.config import WatchConfig  # noqa: E402
from babyface.data.faces import FaceBox  # noqa: E402
from babyface.data.synthetic import write_moving_faces_video  # noqa: E402
from babyface.errors import BabyfaceError  # noqa: E402
from babyface.watch import EventSink, EventTracker, FrameSource, watch  # noqa: E402

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
    assert [(e["event"], e.get("label"), e.get("previous")) for e in events] == [("face_seen", "happy", None), ("label", "neutral", "happy")]
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
    assert [e["event"] for e in events] == ["source_lost", "source_back", "source_lost", "source_lost", "source_lost",
                                            "source_back", "source_lost"]


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
    assert main(["watch", str(untrained_run), str(clip), "--events", str(events_file), "--device", "cpu",
                 "--hold", "0.5", "--sad-seconds", "0", "--detect-every", "3"]) == 0
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
    counts = watch(WatchConfig(run=str(untrained_run), source="rtsp://camera", device="cpu"), EventSink(stream=stream),
                   opener=opener)
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert events == ["started", "stopped"] and counts["frames"] == 0


def test_a_webhook_must_be_a_url() -> None:
    with pytest.raises(BabyfaceError, match="http"):
        EventSink(webhook="ftp://example")
