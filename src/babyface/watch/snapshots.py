"""Opt-in snapshots: the frame of each alert as a JPEG in ``--snapshots DIR``, the newest ``--snapshot-keep`` kept.

Nothing is stored unless asked: a monitor's frames are the inside of a home. The folder is checked (created when its
parent exists, and written to once) at start-up, so a folder that cannot be written is a one-line error then, not a
lost picture at the first alert. A write that fails later is one warning, then counted; the event still goes out.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from babyface.errors import BabyfaceError
from babyface.outputs import atomic_path

log = logging.getLogger("babyface")
ALERTS = frozenset({"sad_alert", "face_hidden", "asleep", "awake"})  # the events that get a snapshot
PREFIX = "babyface-"  # only files named so are ever pruned: the folder may hold the user's own files too
JPEG_QUALITY = 85


class Snapshots:
    def __init__(self, folder: str, keep: int = 100):
        self.folder, self.keep = Path(folder), keep
        self.failed = 0
        self.latest: bytes = b""  # the JPEG last written, for the outputs that show it (MQTT's snapshot topic)
        check_writable(self.folder)

    def save(self, event: dict, rgb: np.ndarray) -> str | None:
        """Write ``rgb`` as this alert's JPEG and prune the oldest beyond ``keep``; the file's path, or None when it
        could not be written (one warning, then counted)."""
        import cv2

        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.folder / f"{PREFIX}{stamp}-{event['event']}-face{event.get('face_id', 0)}.jpg"
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        try:
            if not ok:
                raise OSError("OpenCV could not encode the frame")
            self.latest = data.tobytes()
            with atomic_path(path, keep_suffix=True) as tmp:
                tmp.write_bytes(self.latest)
            self._prune()
        except OSError as exc:
            self.failed += 1
            if self.failed == 1:
                log.warning("WARNING: --snapshots %s: cannot write a snapshot (%s); the events go on without them, "
                            "failures counted at stop", self.folder, getattr(exc, "strerror", None) or exc)
            return None
        return str(path)

    def _prune(self) -> None:
        mine = sorted(self.folder.glob(f"{PREFIX}*.jpg"))  # the names start with a UTC time: sorted = oldest first
        for old in mine[: max(0, len(mine) - self.keep)]:
            old.unlink(missing_ok=True)

    def close(self) -> None:
        if self.failed:
            log.warning("WARNING: --snapshots %s: %d snapshot(s) could not be written", self.folder, self.failed)


def check_writable(folder: Path) -> None:
    """Create ``folder`` if its parent exists and write a file into it once; a one-line BabyfaceError otherwise."""
    if folder.exists() and not folder.is_dir():
        raise BabyfaceError(f"--snapshots {folder}: is a file; give a folder for the alert snapshots")
    if not folder.parent.is_dir():
        raise BabyfaceError(f"--snapshots {folder}: {folder.parent} is not an existing folder; create it or give another path")
    probe = folder / f".{PREFIX}probe-{os.getpid()}"
    try:
        folder.mkdir(exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise BabyfaceError(f"--snapshots {folder}: cannot write there ({exc.strerror}); give a folder you may write to") from None
