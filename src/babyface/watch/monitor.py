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

import time
from typing import Any, Callable

from babyface.camera import FrameSource
from babyface.config import WatchConfig
from babyface.inference.classifier import Classifier
from babyface.video import VideoAnalyser, detection_chunks
from babyface.watch.sinks import EventSink, NoOutputLeft
from babyface.watch.state import EventTracker

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
