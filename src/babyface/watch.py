"""``babyface watch``: a baby monitor. Faces in a camera, a video file or a stream are detected, tracked, classified
and smoothed as in video analysis (``babyface.video``); a rolling state per face turns the smoothed labels into
**events**, one JSON object per line, on stdout and optionally a file and a webhook:

- ``started`` / ``stopped``; ``source_lost`` / ``source_back`` when a camera or stream drops and comes back;
- ``face_seen`` when a new face appears, ``face_lost`` when it has not been seen for ``--lost-seconds``;
- ``label`` when a face's smoothed label changes and the new one has lasted ``--hold`` seconds (hysteresis: one
  noisy frame never alerts);
- ``sad_alert`` once per sad spell, when a face's label has stayed sad for ``--sad-seconds``.

Frames are only ever held in memory: nothing is written but the events.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

import numpy as np

from babyface.config import WatchConfig
from babyface.errors import BabyfaceError
from babyface.inference.classifier import Classifier
from babyface.video import VideoAnalyser, _cv2, detection_chunks

log = logging.getLogger("babyface")
WEBHOOK_TIMEOUT = 5.0  # seconds a webhook POST may take before it is given up (logged, never fatal)
DEFAULT_FPS = 25.0  # for sources that do not say (many cameras and streams)


# ---------------------------------------------------------------- events out

class EventSink:
    """Writes each event as one JSON line to stdout (or ``stream``), appends it to ``--events`` and POSTs it to
    ``--webhook`` from a background thread, so a slow receiver never holds up the camera."""

    def __init__(self, events_file: str = "", webhook: str = "", stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self.file = open(events_file, "a", encoding="utf-8") if events_file else None  # noqa: SIM115 (closed in close())
        self.webhook = webhook
        self.poster = ThreadPoolExecutor(max_workers=1) if webhook else None
        if webhook and not webhook.startswith(("http://", "https://")):
            raise BabyfaceError(f"--webhook {webhook}: give an http:// or https:// URL")

    def emit(self, event: dict[str, Any]) -> None:
        line = json.dumps({"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), **event})
        print(line, file=self.stream, flush=True)
        if self.file is not None:
            self.file.write(line + "\n")
            self.file.flush()
        if self.poster is not None:
            self.poster.submit(post_json, self.webhook, line)

    def close(self) -> None:
        if self.poster is not None:
            self.poster.shutdown(wait=True)
        if self.file is not None:
            self.file.close()


def post_json(url: str, body: str) -> None:
    request = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT):
            pass
    except Exception as exc:  # noqa: BLE001 (any network failure: the monitor goes on)
        log.warning("WARNING: webhook %s failed (%s); the event is still in the output", url, exc)


# ---------------------------------------------------------------- per-face state

@dataclass
class FaceState:
    label: str  # the reported label
    last_seen: float
    candidate: str | None = None  # a different label waiting out --hold
    candidate_since: float = 0.0
    sad_since: float | None = None
    alerted: bool = False


class EventTracker:
    """Smoothed labels per face in, events out: hysteresis on label changes, sad spells, faces lost."""

    def __init__(self, hold: float, sad_seconds: float, lost_seconds: float):
        self.hold, self.sad_seconds, self.lost_seconds = hold, sad_seconds, lost_seconds
        self.faces: dict[int, FaceState] = {}

    def observe(self, t: float, face_id: int, label: str, probabilities: dict[str, float]) -> list[dict[str, Any]]:
        """Events caused by face ``face_id`` having smoothed label ``label`` at stream time ``t`` (seconds)."""
        facts = {"t": round(t, 3), "face_id": face_id, "probabilities": {k: round(v, 4) for k, v in probabilities.items()}}
        state = self.faces.get(face_id)
        if state is None:
            state = self.faces[face_id] = FaceState(label, t, sad_since=t if label == "sad" else None)
            return [{"event": "face_seen", "label": label, **facts}, *self._sad_alert(state, t, facts)]
        state.last_seen = t
        events = []
        if label == state.label:
            state.candidate = None
        elif label != state.candidate:
            state.candidate, state.candidate_since = label, t
        if state.candidate is not None and t - state.candidate_since >= self.hold:
            events.append({"event": "label", "label": state.candidate, "previous": state.label, **facts})
            state.label, state.candidate = state.candidate, None
            state.sad_since, state.alerted = (state.candidate_since if state.label == "sad" else None), False
        return events + self._sad_alert(state, t, facts)

    def _sad_alert(self, state: FaceState, t: float, facts: dict[str, Any]) -> list[dict[str, Any]]:
        if self.sad_seconds <= 0 or state.sad_since is None or state.alerted or t - state.sad_since < self.sad_seconds:
            return []
        state.alerted = True
        return [{"event": "sad_alert", "label": "sad", "sad_for": round(t - state.sad_since, 3), **facts}]

    def expire(self, t: float) -> list[dict[str, Any]]:
        """``face_lost`` for every face not seen for more than ``lost_seconds`` before ``t``."""
        lost = [face_id for face_id, state in self.faces.items() if t - state.last_seen > self.lost_seconds]
        events = [{"event": "face_lost", "t": round(t, 3), "face_id": face_id, "label": self.faces[face_id].label,
                   "last_seen": round(self.faces[face_id].last_seen, 3)} for face_id in lost]
        for face_id in lost:
            del self.faces[face_id]
        return events


# ---------------------------------------------------------------- frames in

class FrameSource:
    """BGR frames from a camera index, a video file or a stream URL. A file ends at its end; a camera or stream that
    stops is reopened with a doubling wait (1 s, 2 s, ... up to ``reconnect`` seconds), forever, unless
    ``reconnect`` is 0."""

    def __init__(self, source: str, reconnect: float, emit: Callable[[dict], None],
                 opener: Callable[[Any], Any] | None = None, sleep: Callable[[float], None] = time.sleep):
        self.source, self.reconnect, self.emit, self.sleep = source, reconnect, emit, sleep
        self.is_file = Path(source).is_file()
        self.target: Any = int(source) if source.isdigit() else source
        self.opener = opener or _cv2().VideoCapture
        self.fps = DEFAULT_FPS
        if not self.is_file and not source.isdigit() and "://" not in source:
            raise BabyfaceError(f"{source}: no such video file; give a file, a camera index (0) or a stream URL (rtsp://...)")

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        index, wait, opened_once, lost = 0, 1.0, False, False
        while True:
            capture = self.opener(self.target)
            if capture.isOpened():
                fps = capture.get(5)  # cv2.CAP_PROP_FPS
                self.fps = fps if 0 < fps < 1000 else DEFAULT_FPS
                if lost:
                    self.emit({"event": "source_back", "source": self.source})
                opened_once, lost, wait = True, False, 1.0
                while True:
                    ok, frame = capture.read()
                    if not ok:
                        break
                    yield index, frame
                    index += 1
            capture.release()
            if not opened_once and (self.is_file or not self.reconnect):
                raise BabyfaceError(f"{self.source}: OpenCV cannot open it; check the camera index, file or URL")
            if self.is_file or not self.reconnect:
                return
            self.emit({"event": "source_lost", "source": self.source, "retry_in": wait})
            lost = True
            self.sleep(wait)
            wait = min(wait * 2, self.reconnect)


# ---------------------------------------------------------------- the loop

def watch(config: WatchConfig, sink: EventSink | None = None, opener: Callable[[Any], Any] | None = None,
          sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Run until the source ends, ``max_seconds`` pass or Ctrl-C; returns counts of frames, faces and events."""
    sink = sink or EventSink(config.events, config.webhook)
    classifier = Classifier(config.run, device=config.device, min_confidence=config.min_confidence,
                            precision=config.precision)
    source = FrameSource(config.source, config.reconnect, sink.emit, opener, sleep)
    tracker = EventTracker(config.hold, config.sad_seconds, config.lost_seconds)
    counts = {"frames": 0, "faces": 0, "events": 0}
    started = time.monotonic()

    def emit(event: dict[str, Any]) -> None:
        counts["events"] += 1
        counts["faces"] += event["event"] == "face_seen"
        sink.emit(event)

    emit({"event": "started", "source": config.source, "run": config.run, "classes": classifier.classes})
    try:
        frames = ((index, frame) for index, frame in source.frames() if index % config.every == 0)
        analyser = VideoAnalyser(classifier, config, source.fps)
        for chunk, before, after in detection_chunks(analyser, frames, config.detect_every):
            analyser.fps = source.fps
            counts["frames"] += len(chunk)
            for row in analyser.rows(chunk, before, after):
                for event in tracker.observe(row.time, row.face_id, row.label, row.probabilities):
                    emit(event)
            for event in tracker.expire(chunk[-1][0] / source.fps):
                emit(event)
            if config.max_seconds and time.monotonic() - started >= config.max_seconds:
                break
    except KeyboardInterrupt:
        pass
    finally:
        emit({"event": "stopped", "frames": counts["frames"], "faces": counts["faces"],
              "seconds": round(time.monotonic() - started, 1)})
        sink.close()
    return counts
