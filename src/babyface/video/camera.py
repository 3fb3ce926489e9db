"""Frames from a camera index, a video file or a stream URL, reopened when a live source drops."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from babyface.errors import BabyfaceError

DEFAULT_FPS = 25.0  # for sources that do not say (many cameras and streams)


def _cv2():
    try:
        import cv2
    except ImportError:
        raise BabyfaceError("video needs OpenCV: pip install 'opencv-python-headless>=4.8,<5'") from None
    return cv2


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


