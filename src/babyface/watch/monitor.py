"""``babyface watch``: a baby monitor. Faces in a camera, a video file or a stream are detected, tracked, classified
and smoothed as in video analysis (``babyface.video.analysis``), their eyes measured (``babyface.measures``); a rolling state
per face (``babyface.watch.state``) turns them into **events**, one JSON object per line, on stdout and optionally a
file, a webhook and an MQTT broker:

- ``started`` / ``stopped``; ``source_lost`` / ``source_back`` when a camera or stream drops and comes back;
- ``face_seen`` when a new face appears (with ``replaces`` when it is a vanished face back under a new id);
- ``label`` when a face's smoothed label changes and the new one has lasted ``--hold`` seconds (hysteresis: one
  noisy frame never alerts);
- ``sad_alert`` once per sad spell, when a face's label has stayed sad for ``--sad-seconds``;
- ``asleep`` when a face's eyes have stayed shut ``--asleep-seconds``, ``awake`` when they then stay open ``--hold``
  seconds (``eyes`` in face_seen and label events: open, shut or null before the landmarks have seen them);
- ``face_hidden`` when a face has not been found for ``--hidden-seconds`` while the frame keeps changing where it was
  (someone is there: the face covered or turned away); ``face_lost`` when it has not been seen for
  ``--lost-seconds`` and the scene where it was is still.

With ``--infant-only`` and a run trained with ``--adults`` (an infant-vs-adult model in RUN/who/), only infants'
faces raise events: a parent in frame is left out (``InfantFilter``).

Frames are only ever held in memory, unless ``--snapshots DIR`` asks for the frame of each alert (``snapshot`` in the
event; the newest ``--snapshot-keep`` kept). ``--mqtt`` also keeps every face's state (label, eyes, asleep, hidden)
retained on the broker, for a dashboard to show at once.

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
- ``--mqtt`` is best effort: a broker that is down or refuses is one warning, retried with back-off (1 s to 30 s),
  at most 100 events waiting; the losses are counted when it answers again and at stop.
- ``--snapshots`` is checked at start-up (one line if it cannot be written); a write that fails later is one warning.
- A camera or stream that never opens is an error after ``--open-tries`` tries; one that opened once and drops is
  reopened forever. ``--max-seconds`` ends the watch in every state, waiting for a source included.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any, Callable

import numpy as np

from babyface.config import WatchConfig
from babyface.errors import BabyfaceError
from babyface.inference.classifier import Classifier
from babyface.video.analysis import FaceRow, VideoAnalyser, detection_chunks
from babyface.video.camera import FrameSource
from babyface.video.coding import infant_threshold
from babyface.watch.sinks import EventSink, NoOutputLeft
from babyface.watch.snapshots import ALERTS, Snapshots
from babyface.watch.state import EventTracker

log = logging.getLogger("babyface")

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
    snapshots = Snapshots(config.snapshots, config.snapshot_keep) if config.snapshots else None
    if config.ha_discovery_remove:
        return remove_from_home_assistant(config)
    sink = sink or EventSink(config.events, config.webhook, mqtt=config.mqtt, mqtt_announcements=ha_announcements(config))
    classifier = Classifier(config.run, device=config.device, min_confidence=config.min_confidence, precision=config.precision)
    tracker = EventTracker(config.hold, config.sad_seconds, config.lost_seconds, config.asleep_seconds, config.hidden_seconds)
    counts = {"frames": 0, "faces": 0, "events": 0}
    started = clock()
    if config.infant_only and classifier.who is None:
        raise BabyfaceError(f"--infant-only: {config.run} has no infant-vs-adult model (RUN/who/); train the run with "
                            "--adults naming the adult sources, or leave --infant-only out")
    infants = InfantFilter() if config.infant_only else None

    def record(event: dict[str, Any]) -> None:
        counts["events"] += 1
        counts["faces"] += event["event"] == "face_seen"
        sink.emit(event)

    def emit(event: dict[str, Any], rgb: np.ndarray | None = None) -> None:
        if snapshots is not None and rgb is not None and event["event"] in ALERTS:
            event = {**event, "snapshot": snapshots.save(event, rgb)}
            if event["snapshot"]:
                sink.snapshot(snapshots.latest)
        record(event)
        if not sink.has_output:
            raise NoOutputLeft

    source = FrameSource(config.source, config.reconnect, emit, opener, sleep, config.open_tries, config.max_seconds, clock)
    # before 'started': an unknown --detector is an error, not a watch that stops at once
    analyser = VideoAnalyser(classifier, config.faces, config.video, source.fps, config.smooth,
                             measure=config.asleep_seconds > 0)
    try:
        emit({"event": "started", "source": config.source, "run": config.run, "classes": classifier.classes})
        frames = ((index, frame) for index, frame in source.frames() if index % config.video.every == 0)
        for chunk, before, after in detection_chunks(analyser, frames):
            analyser.fps = source.fps
            counts["frames"] += len(chunk)
            rows = analyser.rows(chunk, before, after)
            if follow_chunk(tracker, infants.keep(rows) if infants else rows, chunk, source.fps, emit):
                sink.state(tracker.state(), tracker.monitor(), chunk[-1][0] / source.fps)
            if source.time_left() <= 0:
                break
    except (KeyboardInterrupt, NoOutputLeft):
        pass
    finally:
        record({"event": "stopped", "frames": counts["frames"], "faces": counts["faces"], "seconds": round(clock() - started, 1)})
        sink.close()
        if snapshots is not None:
            snapshots.close()
    return counts


def ha_announcements(config: WatchConfig) -> list[tuple[str, str]] | None:
    """With --ha-discovery, the Home Assistant discovery configs the MQTT publisher sends on every connect."""
    if config.ha_discovery is None:
        return None
    if not config.mqtt:
        raise BabyfaceError("--ha-discovery needs --mqtt URL: Home Assistant discovers the monitor through its MQTT broker")
    from babyface import __version__
    from babyface.watch.discovery import check_name, check_prefix, discovery_messages
    from babyface.watch.mqtt import parse_mqtt_url

    return discovery_messages(check_name(config.name), parse_mqtt_url(config.mqtt).topic, check_prefix(config.ha_discovery),
                              snapshots=bool(config.snapshots), version=__version__)


def remove_from_home_assistant(config: WatchConfig) -> dict[str, Any]:
    """--ha-discovery-remove: empty retained configs for the monitor's entities (Home Assistant deletes them), then stop."""
    if not config.mqtt:
        raise BabyfaceError("--ha-discovery-remove needs --mqtt URL: the broker Home Assistant discovered the monitor on")
    from babyface.watch.discovery import DEFAULT_PREFIX, check_name, check_prefix, removal_messages
    from babyface.watch.mqtt import parse_mqtt_url, publish_once

    prefix = check_prefix(config.ha_discovery or DEFAULT_PREFIX)
    messages = removal_messages(check_name(config.name), parse_mqtt_url(config.mqtt).topic, prefix)
    publish_once(config.mqtt, messages)
    log.info("removed %d Home Assistant entities of '%s' under %s/", len(messages), config.name, prefix)
    return {"frames": 0, "faces": 0, "events": 0, "removed": len(messages)}


class InfantFilter:
    """With a run's infant-vs-adult model (RUN/who/), the faces the monitor follows: a face whose mean infant
    probability so far is under half the most infant-like face's in view (or under INFANT_FLOOR) is an adult's, and
    raises no event; a parent laughing or frowning beside the infant changes nothing. Without the model, every face."""

    def __init__(self) -> None:
        self.sums: dict[int, float] = defaultdict(float)
        self.counts: dict[int, int] = defaultdict(int)

    def keep(self, rows: list[FaceRow]) -> list[FaceRow]:
        for row in rows:
            if row.infant is not None:
                self.sums[row.face_id] += row.infant
                self.counts[row.face_id] += 1
        means = {i: self.sums[i] / self.counts[i] for i in {row.face_id for row in rows} if self.counts[i]}
        if not means:
            return rows
        threshold = infant_threshold(max(means.values()))
        return [row for row in rows if means.get(row.face_id, 1.0) >= threshold]


def follow_chunk(tracker: EventTracker, rows: list[FaceRow], chunk: list[tuple[int, np.ndarray]], fps: float,
                 emit: Callable[..., None]) -> bool:
    """Feed one chunk's rows and frames to the tracker, frame by frame, emitting its events with their frame;
    whether any event was emitted."""
    by_frame: dict[int, list[FaceRow]] = defaultdict(list)
    for row in rows:
        by_frame[row.frame].append(row)
    emitted = False
    for index, rgb in chunk:
        events = []
        for row in by_frame[index]:
            events += tracker.observe(row.time, row.face_id, row.label, row.probabilities, row.box, eyes_open(row))
        tracker.look(index / fps, rgb)
        events += tracker.expire(index / fps)
        for event in events:
            emit(event, rgb)
        emitted = emitted or bool(events)
    return emitted


def eyes_open(row: FaceRow) -> float | None:
    """The mean openness of a face's two eyes, or None when it was not measured."""
    if not row.measures:
        return None
    return (row.measures["eye_open_left"] + row.measures["eye_open_right"]) / 2
