"""``babyface watch``: a baby monitor. Faces in a camera, a video file or a stream are detected, tracked, classified
and smoothed as in video analysis (``babyface.video``); a rolling state per face turns the smoothed labels into
**events**, one JSON object per line, on stdout and optionally a file and a webhook:

- ``started`` / ``stopped``; ``source_lost`` / ``source_back`` when a camera or stream drops and comes back;
- ``face_seen`` when a new face appears, ``face_lost`` when it has not been seen for ``--lost-seconds``;
- ``label`` when a face's smoothed label changes and the new one has lasted ``--hold`` seconds (hysteresis: one
  noisy frame never alerts);
- ``sad_alert`` once per sad spell, when a face's label has stayed sad for ``--sad-seconds``.

Frames are only ever held in memory: nothing is written but the events.

What is guaranteed when things go wrong (no output ever stops the others, or the watching):

- stdout gets every event, until it is closed (``| head -1``); then watch goes on with ``--events`` and
  ``--webhook``, or stops cleanly when there is neither.
- ``--events`` is checked at start-up (a folder, a missing folder or a file that cannot be written is a one-line
  error); a write that fails later (a full disk) loses that event's line only: one warning, then counted at stop.
- ``--webhook`` is at most once, best effort, never retried: one POST at a time from a background thread, each given
  ``WEBHOOK_DEADLINE`` (5 s) in all, connect to last byte (a receiver that trickles bytes cannot hold it); at most
  ``WEBHOOK_QUEUE`` (100) events wait, beyond that the oldest is dropped. The first failure is one warning; when the
  receiver answers again, and at stop, the losses are counted. At stop what is still queued gets one more deadline
  in all, so a hanging receiver delays the exit by at most that.
- A camera or stream that never opens is an error after ``--open-tries`` tries; one that opened once and drops is
  reopened forever. ``--max-seconds`` ends the watch in every state, waiting for a source included.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import math
import os
import socket
import sys
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, TextIO

import numpy as np

from babyface.config import WatchConfig
from babyface.errors import BabyfaceError
from babyface.inference.classifier import Classifier
from babyface.video import VideoAnalyser, _cv2, detection_chunks

log = logging.getLogger("babyface")
WEBHOOK_DEADLINE = 5.0  # seconds a webhook POST may take in all, connect to last byte, before it is given up
WEBHOOK_QUEUE = 100  # events waiting for the webhook; beyond, the oldest is dropped
DEFAULT_FPS = 25.0  # for sources that do not say (many cameras and streams)


class NoOutputLeft(Exception):
    """stdout was closed and there is no ``--events`` or ``--webhook``: nobody reads the events any more."""


# ---------------------------------------------------------------- events out


class EventSink:
    """Writes each event as one JSON line to stdout (or ``stream``), appends it to ``--events`` and hands it to the
    ``--webhook``. A failing output is reported once and counted; it never stops the others."""

    def __init__(
        self, events_file: str = "", webhook: str = "", stream: TextIO | None = None, webhook_deadline: float = WEBHOOK_DEADLINE
    ):
        self.stream: TextIO | None = stream or sys.stdout
        self.events_file = events_file
        self.file = open_events_file(events_file) if events_file else None
        self.webhook = Webhook(webhook, webhook_deadline) if webhook else None
        self.emitted = self.unwritten = 0

    @property
    def has_output(self) -> bool:
        return self.stream is not None or self.file is not None or self.webhook is not None

    def emit(self, event: dict[str, Any]) -> None:
        line = json.dumps({"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), **event})
        self.emitted += 1
        self._print(line)
        self._append(line)
        if self.webhook is not None:
            self.webhook.put(line)

    def _print(self, line: str) -> None:
        if self.stream is None:
            return
        try:
            print(line, file=self.stream, flush=True)
        except BrokenPipeError:
            self._stdout_closed()

    def _stdout_closed(self) -> None:
        others = " and ".join(name for name, on in (("--events", self.file), ("--webhook", self.webhook)) if on)
        then = f"the events go on to {others} only" if others else "nothing else to write to (no --events or --webhook)"
        log.warning("WARNING: stdout was closed (e.g. by '| head'); %s", then)
        if self.stream is sys.stdout:
            point_stdout_at_devnull()
        self.stream = None

    def _append(self, line: str) -> None:
        if self.file is None:
            return
        try:
            write_all(self.file, (line + "\n").encode())
        except OSError as exc:
            self.unwritten += 1
            if self.unwritten == 1:
                log.warning(
                    "WARNING: --events %s: cannot write (%s); the other outputs go on, and the lines lost are counted at stop",
                    self.events_file,
                    exc.strerror or exc,
                )

    def close(self) -> None:
        if self.webhook is not None:
            self.webhook.close()
        if self.file is not None:
            self.file.close()
            if self.unwritten:
                log.warning("WARNING: --events %s: %d of %d events not written", self.events_file, self.unwritten, self.emitted)


def open_events_file(path: str) -> BinaryIO:
    """``path`` opened for appending, unbuffered, so that a failed write loses its own line and nothing queued
    behind it; a one-line error if it is a folder, its folder does not exist or it cannot be written."""
    target = Path(path)
    if target.is_dir():
        raise BabyfaceError(f"--events {path}: is a folder; give a file path, e.g. {target / 'events.jsonl'}")
    if not target.parent.is_dir():
        raise BabyfaceError(f"--events {path}: folder {target.parent} does not exist; create it or give another path")
    try:
        return open(target, "ab", buffering=0)  # noqa: SIM115 (closed in EventSink.close)
    except OSError as exc:
        raise BabyfaceError(f"--events {path}: cannot write it ({exc.strerror}); give a file you may write to") from None


def write_all(file: BinaryIO, data: bytes) -> None:
    while data:
        data = data[file.write(data) :]


def point_stdout_at_devnull() -> None:
    """Once stdout's pipe is closed: Python's own flush of ``sys.stdout`` at exit then finds somewhere to write
    instead of printing 'Exception ignored ... BrokenPipeError'."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # not a real file (a test's capture)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


class Webhook:
    """POSTs events to ``url`` one at a time from a daemon thread, so a slow receiver never holds up the camera.

    Each POST may take ``deadline`` seconds in all; at most ``queue_size`` events wait, beyond that the oldest is
    dropped. ``close`` gives what is still queued one more ``deadline`` in all and counts the rest as not delivered.
    ``post`` is ``post_json``, or a fake in tests."""

    def __init__(
        self,
        url: str,
        deadline: float = WEBHOOK_DEADLINE,
        queue_size: int = WEBHOOK_QUEUE,
        post: Callable[[str, str, float], None] | None = None,
    ):
        if not url.startswith(("http://", "https://")):
            raise BabyfaceError(f"--webhook {url}: give an http:// or https:// URL")
        self.url, self.deadline, self.post = url, deadline, post or post_json
        self.queue: deque[str] = deque()
        self.queue_size = queue_size
        self.changed = threading.Condition()
        self.drain_until: float | None = None  # set by close()
        self.submitted = self.delivered = self.failed = self.dropped = 0
        self.failed_before_spell: int | None = None  # ``failed`` when the current failure spell began; None = it answers
        self.worker = threading.Thread(target=self._deliver_all, name="babyface-webhook", daemon=True)
        self.worker.start()

    def put(self, body: str) -> None:
        with self.changed:
            self.submitted += 1
            if len(self.queue) >= self.queue_size:
                self.queue.popleft()
                self.dropped += 1
                if self.dropped == 1:
                    log.warning(
                        "WARNING: webhook %s: %d events are waiting; dropping the oldest (counted at stop)",
                        self.url,
                        self.queue_size,
                    )
            self.queue.append(body)
            self.changed.notify()

    def close(self) -> None:
        with self.changed:
            self.drain_until = time.monotonic() + self.deadline
            self.changed.notify()
        self.worker.join(self.deadline + 1.0)  # the POSTs end by drain_until; the second is a margin, never a wait
        lost = self.submitted - self.delivered
        if lost:
            left = lost - self.failed - self.dropped
            log.warning(
                "WARNING: webhook: %d of %d events not delivered to %s (%d failed, %d dropped from a full queue, "
                "%d still queued at stop)",
                lost,
                self.submitted,
                self.url,
                self.failed,
                self.dropped,
                left,
            )

    def _deliver_all(self) -> None:
        while (job := self._next()) is not None:
            self._deliver(*job)

    def _next(self) -> tuple[str, float] | None:
        """The next event to POST and the seconds it may take; None once closing and nothing is left or the time is up."""
        with self.changed:
            while not self.queue and self.drain_until is None:
                self.changed.wait()
            left = self.deadline if self.drain_until is None else self.drain_until - time.monotonic()
            if not self.queue or left <= 0:
                return None
            return self.queue.popleft(), min(self.deadline, left)

    def _deliver(self, body: str, deadline: float) -> None:
        try:
            self.post(self.url, body, deadline)
        except Exception as exc:  # noqa: BLE001 (any network failure: the monitor goes on)
            self._failed(exc)
        else:
            self._delivered()

    def _failed(self, exc: Exception) -> None:
        if self.failed_before_spell is None:
            self.failed_before_spell = self.failed
            log.warning(
                "WARNING: webhook %s failed (%s); the events are still in the output, and further failures are "
                "counted until it answers again",
                self.url,
                exc,
            )
        self.failed += 1

    def _delivered(self) -> None:
        self.delivered += 1
        if self.failed_before_spell is not None:
            log.warning(
                "WARNING: webhook %s answers again; %d event(s) were not delivered while it failed",
                self.url,
                self.failed - self.failed_before_spell,
            )
            self.failed_before_spell = None


def post_json(url: str, body: str, deadline: float = WEBHOOK_DEADLINE) -> None:
    """POST ``body`` to ``url``; raises if that fails or the answer is not complete within ``deadline`` seconds in all
    (a timeout per read alone would let a receiver that sends a byte every few seconds hold it forever)."""
    parts = urllib.parse.urlsplit(url)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.hostname, parts.port, timeout=deadline)
    watchdog = Watchdog(connection, deadline)
    try:
        connection.connect()
        watchdog.raise_if_expired()
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", target, body.encode(), {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException) as exc:
        watchdog.raise_if_expired(exc)
        raise
    finally:
        watchdog.cancel()
        connection.close()
    watchdog.raise_if_expired()  # a read cut short by the watchdog can look like a normal end
    if response.status >= 400:
        raise OSError(f"HTTP {response.status} {response.reason}")


class Watchdog:
    """Shuts ``connection``'s socket down after ``seconds``: that wakes a recv blocked in another thread, which no
    socket timeout does while the peer keeps sending a byte now and then."""

    def __init__(self, connection: http.client.HTTPConnection, seconds: float):
        self.connection, self.seconds, self.expired = connection, seconds, False
        self.timer = threading.Timer(seconds, self._expire)
        self.timer.daemon = True
        self.timer.start()

    def _expire(self) -> None:
        self.expired = True  # before reading .sock: connect() sets .sock before its caller looks at .expired
        sock = self.connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def raise_if_expired(self, cause: BaseException | None = None) -> None:
        if self.expired:
            raise TimeoutError(f"no complete answer within {self.seconds:g} s") from cause

    def cancel(self) -> None:
        self.timer.cancel()


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
        events = [
            {
                "event": "face_lost",
                "t": round(t, 3),
                "face_id": face_id,
                "label": self.faces[face_id].label,
                "last_seen": round(self.faces[face_id].last_seen, 3),
            }
            for face_id in lost
        ]
        for face_id in lost:
            del self.faces[face_id]
        return events


# ---------------------------------------------------------------- frames in


class FrameSource:
    """BGR frames from a camera index, a video file or a stream URL. A file ends at its end. A camera or stream that
    stops is reopened with a doubling wait (1 s, 2 s, ... up to ``reconnect`` seconds), forever, unless ``reconnect``
    is 0; one that has never opened is given up after ``open_tries`` tries. With ``max_seconds`` the frames end when
    that much time has passed by ``clock``, waits included (they are cut to the time left)."""

    def __init__(
        self,
        source: str,
        reconnect: float,
        emit: Callable[[dict], None],
        opener: Callable[[Any], Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        open_tries: int = 5,
        max_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.source, self.reconnect, self.emit, self.sleep = source, reconnect, emit, sleep
        self.open_tries, self.clock = open_tries, clock
        self.stop_at = clock() + max_seconds if max_seconds else math.inf
        self.is_file = Path(source).is_file()
        self.target: Any = int(source) if source.isdigit() else source
        self.opener = opener or _cv2().VideoCapture
        self.fps = DEFAULT_FPS
        if not self.is_file and not source.isdigit() and "://" not in source:
            raise BabyfaceError(f"{source}: no such video file; give a file, a camera index (0) or a stream URL (rtsp://...)")

    def time_left(self) -> float:
        return self.stop_at - self.clock()

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        index, wait, tries, opened_once, lost = 0, 1.0, 0, False, False
        retries = not self.is_file and self.reconnect > 0
        while True:
            capture = self.opener(self.target)
            tries += 1
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
            left = self.time_left()
            if not opened_once and (not retries or tries >= self.open_tries or left <= 0):
                raise self._never_opened(tries)
            if not retries or left <= 0:
                return
            self.emit({"event": "source_lost", "source": self.source, "retry_in": round(min(wait, left), 3)})
            lost = True
            self.sleep(min(wait, left))
            wait = min(wait * 2, self.reconnect)

    def _never_opened(self, tries: int) -> BabyfaceError:
        if tries == 1:
            return BabyfaceError(f"{self.source}: OpenCV cannot open it; check the camera index, file or URL")
        return BabyfaceError(
            f"{self.source}: OpenCV cannot open it ({tries} tries); check the camera index or URL, or give it more --open-tries"
        )


# ---------------------------------------------------------------- the loop


def watch(
    config: WatchConfig,
    sink: EventSink | None = None,
    opener: Callable[[Any], Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Run until the source ends, ``max_seconds`` pass, stdout closes with no other output, or Ctrl-C; returns
    counts of frames, faces and events."""
    sink = sink or EventSink(config.events, config.webhook)
    classifier = Classifier(config.run, device=config.device, min_confidence=config.min_confidence, precision=config.precision)
    tracker = EventTracker(config.hold, config.sad_seconds, config.lost_seconds)
    counts = {"frames": 0, "faces": 0, "events": 0}
    started = clock()

    def record(event: dict[str, Any]) -> None:
        counts["events"] += 1
        counts["faces"] += event["event"] == "face_seen"
        sink.emit(event)

    def emit(event: dict[str, Any]) -> None:
        record(event)
        if not sink.has_output:
            raise NoOutputLeft

    source = FrameSource(config.source, config.reconnect, emit, opener, sleep, config.open_tries, config.max_seconds, clock)
    try:
        emit({"event": "started", "source": config.source, "run": config.run, "classes": classifier.classes})
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
            if source.time_left() <= 0:
                break
    except (KeyboardInterrupt, NoOutputLeft):
        pass
    finally:
        record({"event": "stopped", "frames": counts["frames"], "faces": counts["faces"], "seconds": round(clock() - started, 1)})
        sink.close()
    return counts
