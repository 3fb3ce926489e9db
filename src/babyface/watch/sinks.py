"""Where watch's events go: stdout, an ``--events`` file and a ``--webhook``; a failing output never stops the others."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import socket
import sys
import threading
import time
import urllib.parse
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable, TextIO

from babyface.errors import BabyfaceError

log = logging.getLogger("babyface")
WEBHOOK_DEADLINE = 5.0  # seconds a webhook POST may take in all, connect to last byte, before it is given up
WEBHOOK_QUEUE = 100  # events waiting for the webhook; beyond, the oldest is dropped


class NoOutputLeft(Exception):
    """stdout was closed and there is no ``--events`` or ``--webhook``: nobody reads the events any more."""


class EventSink:
    """Writes each event as one JSON line to stdout (or ``stream``), appends it to ``--events`` and hands it to the
    ``--webhook``. A failing output is reported once and counted; it never stops the others."""

    def __init__(
        self, events_file: str = "", webhook: str = "", stream: TextIO | None = None, webhook_deadline: float = WEBHOOK_DEADLINE,
        mqtt: str = "", mqtt_announcements: list[tuple[str, str]] | None = None,
    ):
        self.stream: TextIO | None = stream or sys.stdout
        self.events_file = events_file
        self.file = open_events_file(events_file) if events_file else None
        self.webhook = Webhook(webhook, webhook_deadline) if webhook else None
        self.mqtt = _mqtt_publisher(mqtt, mqtt_announcements) if mqtt else None
        self.emitted = self.unwritten = 0

    @property
    def has_output(self) -> bool:
        return self.stream is not None or self.file is not None or self.webhook is not None or self.mqtt is not None

    def state(self, faces: dict[str, Any], monitor: dict[str, Any], t: float) -> None:
        """The faces' current state and the room at a glance (``EventTracker.monitor``), for the outputs that keep
        one (MQTT's retained state topic, which Home Assistant's entities read)."""
        if self.mqtt is not None:
            self.mqtt.publish_state(json.dumps({"time": _now(), "t": round(t, 3), "faces": faces, "monitor": monitor}))

    def snapshot(self, jpeg: bytes) -> None:
        """The latest alert's JPEG, for the outputs that show one (MQTT's retained snapshot topic: Home Assistant's
        image entity)."""
        if self.mqtt is not None:
            from babyface.watch.discovery import SNAPSHOT_TOPIC

            self.mqtt.publish_retained(SNAPSHOT_TOPIC, jpeg)

    def emit(self, event: dict[str, Any]) -> None:
        line = json.dumps({"time": _now(), **event})
        self.emitted += 1
        self._print(line)
        self._append(line)
        if self.webhook is not None:
            self.webhook.put(line)
        if self.mqtt is not None:
            self.mqtt.publish_event(line)

    def _print(self, line: str) -> None:
        if self.stream is None:
            return
        try:
            print(line, file=self.stream, flush=True)
        except BrokenPipeError:
            self._stdout_closed()

    def _stdout_closed(self) -> None:
        outputs = (("--events", self.file), ("--webhook", self.webhook), ("--mqtt", self.mqtt))
        others = " and ".join(name for name, on in outputs if on)
        then = f"the events go on to {others} only" if others else "nothing else to write to (no --events, --webhook or --mqtt)"
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
        if self.mqtt is not None:
            self.mqtt.close()
        if self.file is not None:
            self.file.close()
            if self.unwritten:
                log.warning("WARNING: --events %s: %d of %d events not written", self.events_file, self.unwritten, self.emitted)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _mqtt_publisher(url: str, announcements: list[tuple[str, str]] | None = None):
    from babyface.watch.mqtt import MqttPublisher  # paho-mqtt is imported only when --mqtt is used

    return MqttPublisher(url, announcements=announcements)


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


