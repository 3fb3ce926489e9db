"""The live view of ``babyface serve --live SOURCE``: a camera, a video file or a stream, its faces boxed and labelled,
streamed to the page as MJPEG behind the same token as the rest of the API.

Two background threads, started with the app and stopped with it:

- the **reader** takes frames from ``FrameSource`` as they come (a camera or stream that drops is reopened as
  ``babyface watch`` reopens it; a video file plays once, paced at its own frame rate) and keeps only the newest;
- the **analyser** takes the newest frame whenever it is free, detects, tracks, classifies and smooths its faces as
  video analysis does (``VideoAnalyser``; the detector on every analysed frame), draws them (``draw_face``) and
  encodes the result as a JPEG, which replaces the previous one.

So the analysis runs at the rate the CPU allows, skipping the frames it cannot keep up with instead of falling
behind, and nothing queues: each viewer (at most ``MAX_VIEWERS``) is sent the newest JPEG whenever it changes, at
most ``--live-fps`` a second, and a slow viewer only ever waits for its own network. Frames stay in memory: nothing
is written. The crops are classified by the server's own loaded classifier, through its micro-batcher (the thread
that owns the model), together with the crops of concurrent uploads.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable
from urllib.parse import urlsplit

import numpy as np
from fastapi import APIRouter, HTTPException
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from babyface.config import ServeConfig, VideoOptions
from babyface.errors import BabyfaceError
from babyface.serve.guard import one_line
from babyface.video.analysis import FaceRow, VideoAnalyser, draw_face
from babyface.video.camera import FrameSource, _cv2

log = logging.getLogger("babyface")

MAX_VIEWERS = 4  # simultaneous streams: each costs a JPEG send per frame, and a home server has few watchers
JPEG_QUALITY = 80
BOUNDARY = "babyface-live-frame"
SMOOTH = 5  # frames of moving average of each face's probabilities (predict's default; serve has no --smooth)
RECONNECT = 30.0  # seconds between tries at most, once a camera or stream has dropped (watch's default --reconnect)
OPEN_TRIES = 5  # tries for a camera or stream that has not opened yet (watch's default --open-tries)
POLL = 0.02  # seconds a viewer waits between looks for a newer frame (the frames come from another thread)
FPS_WINDOW = 2.0  # seconds over which the analysed frames per second are measured
LIVE_PATHS = ("/live", "/live/status")

# the Live section of index.html (markup, style and script), removed from the page when there is no live source
LIVE_BLOCK = re.compile(r"[ \t]*(?:<!--|/\*) live (?:-->|\*/)\n.*?(?:<!--|/\*) /live (?:-->|\*/)\n", re.S)


class Stopped(Exception):
    """Raised inside the reader when the server stops while the source is being (re)opened."""


def source_name(source: str) -> str:
    """How the status and the log name the source: never a server path (a file's name only) nor a stream's
    credentials (rtsp://user:password@... and ?query are left out)."""
    if source.isdigit():
        return f"camera {source}"
    if "://" in source:
        parts = urlsplit(source)
        host = parts.hostname or ""
        with_port = f"{host}:{parts.port}" if parts.port else host
        return f"{parts.scheme}://{'***@' if parts.username or parts.password else ''}{with_port}{parts.path}"
    return Path(source).name


@dataclass(frozen=True)
class LiveFrame:
    seq: int  # 1 for the first frame shown, then one more for each
    jpeg: bytes
    faces: int


class Newest:
    """A one-frame mailbox between the reader and the analyser: a new frame replaces one not yet taken."""

    def __init__(self):
        self.cond = threading.Condition()
        self.item: tuple[int, np.ndarray] | None = None
        self.closed = False
        self.dropped = 0

    def put(self, item: tuple[int, np.ndarray]) -> None:
        with self.cond:
            self.dropped += self.item is not None
            self.item = item
            self.cond.notify()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def take(self, stopping: threading.Event) -> tuple[int, np.ndarray] | None:
        """The newest frame, waiting for one; None once the reader has closed and nothing is left, or on stop."""
        with self.cond:
            while self.item is None and not self.closed and not stopping.is_set():
                self.cond.wait(0.2)
            if stopping.is_set():
                return None
            item, self.item = self.item, None
            return item


class LiveView:
    """The reader and analyser threads of one source, the newest annotated JPEG, the status and the viewer count."""

    def __init__(self, config: ServeConfig, opener: Callable[[Any], Any] | None = None):
        self.config = config
        self.name = source_name(config.live)
        self.stopping = threading.Event()
        self.source = FrameSource(config.live, RECONNECT, self._event, opener, self._sleep, OPEN_TRIES)  # checks the source
        self.mailbox = Newest()
        self.lock = threading.Lock()
        self.newest: LiveFrame | None = None
        self.state = "starting"  # starting, running, reconnecting, then ended, failed or stopped
        self.last_error: str | None = None
        self.size: tuple[int, int] | None = None
        self.shown: deque[float] = deque(maxlen=256)  # when the last frames were shown, for the fps
        self.viewers = 0
        self.threads: list[threading.Thread] = []
        self.ended = threading.Event()  # set once the analyser has shown its last frame

    # ---------------------------------------------------------------- life cycle

    def start(self, classifier: Any, classify: Callable[[list[np.ndarray]], Any]) -> None:
        """Start reading and analysing with ``classifier`` (its crops classified by ``classify``, the micro-batcher)."""
        analyser = VideoAnalyser(BatchedClassifier(classifier, classify), self.config.faces, VideoOptions(), self.source.fps,
                                 SMOOTH)
        self.threads = [threading.Thread(target=self._read, name="babyface-live-reader", daemon=True),
                        threading.Thread(target=self._analyse, args=(analyser,), name="babyface-live", daemon=True)]
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        """Ask both threads to stop (returns at once): the streams end with the analyser's current frame."""
        self.stopping.set()
        self.mailbox.close()

    def close(self, timeout: float = 5.0) -> None:
        """Stop and wait for the analyser (it may be classifying: the classifier must outlive it). A reader stuck in
        OpenCV's read of a stalled stream is left behind: it is a daemon thread and ends with the process."""
        self.stop()
        for thread, wait in zip(reversed(self.threads), (timeout, 1.0)):  # the analyser first
            thread.join(wait)

    @property
    def running(self) -> bool:
        return not self.ended.is_set()

    # ---------------------------------------------------------------- the reader

    def _sleep(self, seconds: float) -> None:
        if self.stopping.wait(seconds):
            raise Stopped

    def _event(self, event: dict) -> None:
        """FrameSource's source_lost and source_back."""
        if self.stopping.is_set():
            raise Stopped
        with self.lock:
            if event["event"] == "source_lost":
                if self.newest is None and self.state != "running":  # not a frame yet: it has never opened
                    what = f"OpenCV cannot open {self.name} (yet; {OPEN_TRIES} tries in all)"
                else:
                    what = f"{self.name} stopped delivering frames (it is reopened until it is back)"
                if self.state != "reconnecting":
                    log.warning("WARNING: live view: %s", what)
                self.state = "reconnecting"
                self.last_error = f"{what}; next try in {event['retry_in']:g} s"
            elif event["event"] == "source_back":
                log.warning("WARNING: live view: %s is back", self.name)
                self.state = "running"

    def _read(self) -> None:
        started = None
        try:
            for index, frame in self.source.frames():
                if self.stopping.is_set():
                    return
                if self.source.is_file:  # a recording plays at its own speed, as a camera would deliver it
                    started = time.monotonic() - index / self.source.fps if started is None else started
                    if self.stopping.wait(max(0.0, started + index / self.source.fps - time.monotonic())):
                        return
                with self.lock:
                    if self.state in ("starting", "reconnecting"):
                        self.state = "running"
                self.mailbox.put((index, frame))
        except Stopped:
            pass
        except BabyfaceError as exc:
            self._fail(str(exc).replace(self.config.live, self.name))
        except Exception as exc:  # noqa: BLE001 (OpenCV and FFmpeg fail in many ways: one line, the server goes on)
            self._fail(f"reading {self.name} failed: {one_line(exc)}")
        finally:
            self.mailbox.close()

    def _fail(self, message: str) -> None:
        log.warning("WARNING: live view: %s", message)
        with self.lock:
            self.state, self.last_error = "failed", message
        self.stopping.set()

    # ---------------------------------------------------------------- the analyser

    def _analyse(self, analyser: VideoAnalyser) -> None:
        """What ``detection_chunks`` does with a detection round on every frame, one frame at a time: it holds each
        chunk back until the next frame is detected, which would show every frame one source frame late."""
        cv2 = _cv2()
        try:
            while (item := self.mailbox.take(self.stopping)) is not None:
                index, bgr = item
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                faces = analyser.detect(rgb)
                analyser.fps = self.source.fps
                self._show(cv2, bgr, analyser.rows([(index, rgb)], faces, faces))
        except Exception as exc:  # noqa: BLE001 (the page says what happened; uploads are still answered)
            self._fail(f"analysing {self.name} failed: {one_line(exc)}")
        finally:
            with self.lock:
                if self.state in ("starting", "running", "reconnecting"):
                    self.state = "stopped" if self.stopping.is_set() else "ended"
            self.stopping.set()
            self.ended.set()

    def _show(self, cv2, bgr: np.ndarray, rows: list[FaceRow]) -> None:
        for row in rows:
            draw_face(cv2, bgr, row)  # on the frame itself: the reader has let go of it
        ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise BabyfaceError("OpenCV could not encode the frame as JPEG")
        with self.lock:
            seq = self.newest.seq + 1 if self.newest else 1
            self.newest = LiveFrame(seq, encoded.tobytes(), len(rows))
            self.size = (bgr.shape[1], bgr.shape[0])
            self.shown.append(time.monotonic())

    # ---------------------------------------------------------------- what the endpoints read

    def status(self) -> dict[str, Any]:
        with self.lock:
            now = time.monotonic()
            recent = [t for t in self.shown if now - t <= FPS_WINDOW]
            fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 2 and recent[-1] > recent[0] else 0.0
            return {"running": self.running, "state": self.state, "source": self.name,
                    "frames": self.newest.seq if self.newest else 0, "fps": round(fps, 1),
                    "faces": self.newest.faces if self.newest else 0, "dropped": self.mailbox.dropped,
                    "width": self.size[0] if self.size else None, "height": self.size[1] if self.size else None,
                    "viewers": self.viewers, "max_viewers": MAX_VIEWERS, "max_fps": self.config.live_fps,
                    "last_error": self.last_error}

    def admit(self) -> None:
        """Count a new viewer, or refuse it: 503 when all places are taken or the source never gave a frame."""
        with self.lock:
            if self.newest is None and not self.running:
                raise HTTPException(503, f"the live view has nothing to show: {self.last_error or 'its source ended'}")
            if self.viewers >= MAX_VIEWERS:
                raise HTTPException(503, f"the live view already has {MAX_VIEWERS} viewers, its limit; close one of them "
                                         "(another tab or device) or retry later", headers={"Retry-After": "5"})
            self.viewers += 1

    def leave(self) -> None:
        with self.lock:
            self.viewers -= 1

    async def parts(self) -> AsyncIterator[bytes]:
        """The multipart body of one viewer: the newest frame whenever it changes, at most ``live_fps`` a second;
        the closing boundary once the source has ended (after its last frame) or the server stops."""
        interval, sent = 1.0 / self.config.live_fps, 0
        while True:
            running = self.running  # read before the frame: a source that has ended has shown its last one
            frame = self.newest
            if frame is not None and frame.seq != sent:
                sent = frame.seq
                yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n\r\n").encode() \
                    + frame.jpeg + b"\r\n"
                await asyncio.sleep(interval)
            elif not running:
                yield f"--{BOUNDARY}--\r\n".encode()
                return
            else:
                await asyncio.sleep(min(POLL, interval))


class BatchedClassifier:
    """The server's classifier as ``VideoAnalyser`` uses it, its crops classified by the server's micro-batcher."""

    def __init__(self, classifier: Any, classify: Callable[[list[np.ndarray]], Any]):
        self.classifier, self.classify_crops = classifier, classify

    @property
    def image_size(self) -> int:
        return self.classifier.image_size

    def faces_for(self, faces):
        return self.classifier.faces_for(faces)

    def label(self, probs):
        return self.classifier.label(probs)

    def infant_probabilities(self, crops):
        return self.classifier.infant_probabilities(crops)


class ViewerStream(StreamingResponse):
    """One viewer's MJPEG response: its place is given back however the response ends (the source ended, the
    viewer went away, the server stopped)."""

    def __init__(self, live: LiveView):
        live.admit()
        self.live = live
        super().__init__(live.parts(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                         headers={"X-Accel-Buffering": "no"})  # a reverse proxy (nginx) must not hold frames back

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.live.leave()


def live_routes(live: LiveView, dependencies: list) -> APIRouter:
    """GET /live (the MJPEG stream) and GET /live/status (JSON), both behind ``dependencies`` (the token check).

    The page fetches the stream with ``fetch`` and the same ``Authorization: Bearer`` header as every other API call,
    and draws each JPEG itself, rather than in an ``<img src>`` with a signed, short-lived token in the URL: a
    credential in a URL ends up in the browser's history, in a reverse proxy's access log and in any copied or
    screenshotted address, and signing one would add a second secret, a clock and an expiry to get right. The header
    keeps one check for the whole API: the same constant-time comparison and the same back-off after wrong tokens."""
    router = APIRouter(dependencies=dependencies)

    @router.get("/live", response_class=StreamingResponse, responses={200: {"content": {"multipart/x-mixed-replace": {}}}})
    async def stream() -> StreamingResponse:
        """The live source, annotated, as MJPEG (multipart/x-mixed-replace of JPEGs, each part with its
        Content-Length); it ends when the source ends. 503 when all viewer places are taken."""
        return ViewerStream(live)

    @router.get("/live/status")
    async def status() -> dict[str, Any]:
        """running, state (starting, running, reconnecting, ended, failed, stopped), source, frames shown, fps
        analysed, faces in the newest frame, dropped frames, size, viewers and last_error."""
        return live.status()

    return router


def page_with_live(page: str, live: bool) -> str:
    """index.html with its Live section, or without a trace of it."""
    return page if live else LIVE_BLOCK.sub("", page)
