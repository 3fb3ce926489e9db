"""Emotion over time in a video: faces detected, tracked across frames, classified and smoothed.

The detector runs on every ``detect_every``-th used frame (every frame with BlazeFace), on a copy shrunk to
``detect_size`` (MTCNN and Haar), as the ``VideoOptions`` and ``FaceDetection`` of babyface.config.faces say;
detections are linked to tracks by IoU, so each face keeps its id, and in the
frames between two detections a face's box is interpolated linearly between them. Each face is cut out as a square (``FaceBox.square``),
classified by the Classifier, and its probabilities are averaged over the last ``smooth`` used frames.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from babyface.config import FaceDetection, PredictConfig, VideoOptions
from babyface.data.night import for_detection, night_active, stretch_contrast
from babyface.errors import BabyfaceError
from babyface.faces.detectors import FaceBox, detect_faces, square_crop
from babyface.faces.registry import get_detector
from babyface.inference.classifier import Classifier
from babyface.measures.facial import MEASURE_NAMES
from babyface.measures.photos import Tally, measure_rgb
from babyface.outputs import atomic_path, prepare_output_dir, write_csv
from babyface.progress import progress_bar
from babyface.run import RunFolder
from babyface.video.camera import _cv2

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv"})
IOU_MATCH = 0.3  # a detection continues a track when their boxes overlap at least this much
MAX_MISSED = 2  # a track survives (at its predicted box) this many detection rounds without a match: a missed detection


def is_video_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


# ---------------------------------------------------------------- tracking

@dataclass
class Track:
    """A face followed across detection rounds; ``velocity`` is its shift per round (constant-velocity model)."""

    id: int
    box: FaceBox
    velocity: tuple[float, float] = (0.0, 0.0)
    missed: int = 0

    def predicted(self) -> FaceBox:
        """Where the face should be at the next round."""
        dx, dy = (v * (self.missed + 1) for v in self.velocity)
        b = self.box
        return FaceBox(b.left + dx, b.top + dy, b.right + dx, b.bottom + dy, b.score)

    def observe(self, face: FaceBox) -> None:
        rounds = self.missed + 1
        self.velocity = ((_centre(face)[0] - _centre(self.box)[0]) / rounds, (_centre(face)[1] - _centre(self.box)[1]) / rounds)
        self.box, self.missed = face, 0


def _centre(box: FaceBox) -> tuple[float, float]:
    return (box.left + box.right) / 2, (box.top + box.bottom) / 2


@dataclass
class FaceTracker:
    """Greedy IoU matching of each detection round to where the live tracks are expected; new faces get new ids."""

    tracks: list[Track] = field(default_factory=list)
    next_id: int = 1

    def update(self, faces: Sequence[FaceBox]) -> dict[int, FaceBox]:
        """Match ``faces`` to tracks; returns every live face by id (a face missed this round at its predicted box)."""
        expected = [t.predicted() for t in self.tracks]
        # the better of the predicted and the last seen box, so that a face that stops or turns back is not lost
        pairs = sorted(((max(box.iou(f), self.tracks[ti].box.iou(f)), ti, fi) for ti, box in enumerate(expected) for fi, f in enumerate(faces)),
                       reverse=True)
        matched_tracks, matched_faces = set(), set()
        for overlap, ti, fi in pairs:
            if overlap >= IOU_MATCH and ti not in matched_tracks and fi not in matched_faces:
                matched_tracks.add(ti)
                matched_faces.add(fi)
                self.tracks[ti].observe(faces[fi])
        live = {}
        for ti, track in enumerate(self.tracks):
            if ti not in matched_tracks:
                track.missed += 1
            if track.missed <= MAX_MISSED:
                live[track.id] = track.box if ti in matched_tracks else expected[ti]
        self.tracks = [t for t in self.tracks if t.missed <= MAX_MISSED]
        for fi, face in enumerate(faces):
            if fi not in matched_faces:
                self.tracks.append(Track(self.next_id, face))
                live[self.next_id] = face
                self.next_id += 1
        return live


def interpolate(before: dict[int, FaceBox], after: dict[int, FaceBox], t: float) -> dict[int, FaceBox]:
    """Boxes at fraction ``t`` between two detection rounds: faces in both move linearly, the others stay put."""
    boxes = {}
    for face_id, a in before.items():
        b = after.get(face_id, a)
        boxes[face_id] = FaceBox(*(float(x + t * (y - x)) for x, y in zip(
            (a.left, a.top, a.right, a.bottom), (b.left, b.top, b.right, b.bottom))), a.score)
    return boxes


# ---------------------------------------------------------------- frames

@dataclass
class VideoInfo:
    fps: float
    frames: int
    width: int
    height: int


def open_video(path: Path):
    cv2 = _cv2()
    if not path.is_file():
        raise BabyfaceError(f"{path}: no such video file; check the path")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise BabyfaceError(f"{path}: OpenCV cannot read this video; re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    info = VideoInfo(fps if 0 < fps < 1000 else 25.0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
                     int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    return capture, info


def sampled_frames(capture, every: int, stamps: dict[int, float] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, BGR frame) for every ``every``-th frame; skipped frames are grabbed, not converted. ``stamps``
    gets each used frame's presentation time in seconds as the container gives it."""
    index = 0
    while True:
        if index % every == 0:
            ok, frame = capture.read()
            if not ok:
                return
            if stamps is not None:
                stamps[index] = capture.get(_cv2().CAP_PROP_POS_MSEC) / 1000
            yield index, frame
        elif not capture.grab():
            return
        index += 1


# ---------------------------------------------------------------- classification

@dataclass
class FaceRow:
    time: float
    frame: int
    face_id: int
    box: tuple[int, int, int, int]
    probabilities: dict[str, float]  # empty when only measuring
    label: str
    measures: dict[str, float] | None = None  # with measuring on; None where the face was skipped (too small, unconfirmed)
    infant: float | None = None  # probability that the face is an infant's (a model with RUN/who/), unsmoothed


class VideoAnalyser:
    """Runs detection rounds, tracking, interpolation, classification and smoothing (a moving average of ``smooth``
    used frames) over a stream of frames, faces found as ``faces`` says, frames used as ``video`` says; with
    ``measure``, also the face measures of every face in every frame (``babyface.measures``). Without a classifier it
    only measures."""

    def __init__(self, classifier: Classifier | None, faces: FaceDetection, video: VideoOptions, fps: float,
                 smooth: int = 1, measure: bool = False):
        self.classifier, self.video, self.fps, self.measure = classifier, video, fps, measure
        self.faces = faces if classifier is None else classifier.faces_for(faces)
        # the detector's own interval unless --detect-every says; an unknown detector fails here, before any frame
        self.detect_every = video.detect_every or get_detector(faces.detector).detect_every
        self.tracker = FaceTracker()
        self.history: dict[int, deque] = defaultdict(lambda: deque(maxlen=smooth))
        self.tally = Tally()  # faces measured and skipped

    def detect(self, rgb: np.ndarray) -> dict[int, FaceBox]:
        if night_active(self.video.night, rgb):
            rgb = for_detection(rgb)  # infrared noise costs the detector faces (babyface.data.night)
        faces = detect_faces(rgb, self.faces.detector, self.faces.min_score, max_side=self.faces.detect_size,
                             min_face=self.faces.min_face)
        return self.tracker.update(faces)

    def rows(self, frames: Sequence[tuple[int, np.ndarray]], before: dict[int, FaceBox], after: dict[int, FaceBox]) -> list[FaceRow]:
        """Rows for a chunk of RGB frames that starts at detection round ``before`` and ends just before ``after``."""
        return self.rows_of([(frames, before, after)])[0]

    def rows_of(self, chunks: Sequence[tuple[Sequence[tuple[int, np.ndarray]], dict[int, FaceBox], dict[int, FaceBox]]]) -> list[list[FaceRow]]:
        """``rows`` of several consecutive chunks, their faces classified in one batch (a model call costs as much for
        one face as for dozens)."""
        cut = [self._cut(*chunk) for chunk in chunks]
        crops = [crop for _, chunk_crops, _ in cut for crop in chunk_crops]
        jobs = sum(len(chunk_jobs) for chunk_jobs, _, _ in cut)
        probs = self.classifier.classify_crops(crops) if self.classifier is not None and crops else [None] * jobs
        infant = self.classifier.infant_probabilities(crops) if self.classifier is not None and crops else None
        infant = [None] * jobs if infant is None else [round(float(p), 4) for p in infant]
        rows, at = [], 0
        for chunk_jobs, _, measures in cut:
            measures = measures or [None] * len(chunk_jobs)
            rows.append([self._smoothed_row(index, face_id, box, probs[at + i], measures[i], infant[at + i])
                         for i, (index, face_id, box) in enumerate(chunk_jobs)])
            at += len(chunk_jobs)
        return rows

    def _cut(self, frames: Sequence[tuple[int, np.ndarray]], before: dict[int, FaceBox], after: dict[int, FaceBox]):
        """A chunk's faces: (frame index, face id, square) per face per frame, their crops and their measures."""
        jobs, crops, measures = [], [], []
        for step, (index, rgb) in enumerate(frames):
            height, width = rgb.shape[:2]
            boxes = interpolate(before, after, step / len(frames))
            night = self.classifier is not None and night_active(self.video.night, rgb)
            for face_id, box in boxes.items():
                square = box.square(self.faces.cut_margin, width, height)
                jobs.append((index, face_id, square))
                if self.classifier is not None:
                    crop = square_crop(rgb, square, self.classifier.image_size)
                    crops.append(stretch_contrast(crop) if night else crop)
            if self.measure:
                measures += [found and found[2] for found in measure_rgb(rgb, list(boxes.values()), self.tally)]
        return jobs, crops, measures

    def _smoothed_row(self, index: int, face_id: int, box: tuple[int, int, int, int], probs, measures,
                      infant: float | None = None) -> FaceRow:
        label, probabilities = "", {}
        if probs is not None:
            history = self.history[face_id]
            history.append(probs)
            label, _, probabilities = self.classifier.label(sum(history) / len(history))
        return FaceRow(round(index / self.fps, 4), index, face_id, box, probabilities, label, measures, infant)


def detection_chunks(analyser: VideoAnalyser, frames: Iterator[tuple[int, np.ndarray]]):
    """(RGB frames from one detection round up to the next, faces at the first, faces at the next round), a round
    every ``analyser.detect_every`` frames."""
    cv2 = _cv2()
    detect_every = analyser.detect_every
    chunk: list[tuple[int, np.ndarray]] = []
    before: dict[int, FaceBox] = {}
    for index, bgr in frames:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if not chunk or len(chunk) == detect_every:
            after = analyser.detect(rgb)
            if chunk:
                yield chunk, before, after
            chunk, before = [], after
        chunk.append((index, rgb))
    if chunk:
        yield chunk, before, before


# ---------------------------------------------------------------- outputs

@dataclass
class VideoRows:
    """A video read through: its container facts, the frame indices used, and a row per face per used frame."""

    info: VideoInfo
    rows: list[FaceRow]
    used: list[int]
    frames_read: int  # frames decoded or skipped up to the end, used or not
    seconds: float  # wall-clock time the reading took
    times: list[float] = field(default_factory=list)  # seconds of each used frame (``frame_times``)

    @property
    def duration(self) -> float:
        """Seconds of video read (the container's frame count is not trusted: truncated files overstate it; with a
        variable frame rate the container's mean rate), and at least to the last used frame's time."""
        return max(self.frames_read / self.info.fps, self.times[-1] if self.times else 0.0)


def frame_times(used: Sequence[int], stamps: dict[int, float], fps: float) -> list[float]:
    """Each used frame's time: the container's presentation times where they rise frame after frame (a phone's
    variable frame rate keeps its real timing), else frame index / fps (a container without them reports zeros)."""
    times = [stamps.get(index, -1.0) for index in used]
    if len(times) > 1 and times[0] >= 0 and all(b > a for a, b in zip(times, times[1:])):
        return [t - times[0] + used[0] / fps for t in times]  # a stream starting at a later time starts at its first frame
    return [index / fps for index in used]


def read_video_rows(analyser: VideoAnalyser, capture, info: VideoInfo, path: Path, every: int, progress: bool = True,
                    on_chunk: Callable[[Sequence[tuple[int, np.ndarray]], list[FaceRow]], None] | None = None,
                    group_chunks: int = 1) -> VideoRows:
    """Every ``every``-th frame of an opened video (``open_video``) through ``analyser``, the capture released at the
    end; ``on_chunk`` sees each chunk of RGB frames with its rows (for the annotated video). ``group_chunks`` detection
    rounds are classified in one batch (faster; the frames of a group are held in memory together)."""
    rows: list[FaceRow] = []
    used: list[int] = []
    stamps: dict[int, float] = {}
    started = time.perf_counter()
    try:
        total = max(info.frames // every, 1) if info.frames > 0 else None
        frames = progress_bar(sampled_frames(capture, every, stamps), progress, total=total, desc=path.name, unit="frame",
                              leave=False)
        for group in batched(detection_chunks(analyser, iter(frames)), group_chunks):
            for (chunk, _, _), chunk_rows in zip(group, analyser.rows_of(group)):
                rows += chunk_rows
                used += [index for index, _ in chunk]
                if on_chunk is not None:
                    on_chunk(chunk, chunk_rows)
        frames_read = max(int(capture.get(_cv2().CAP_PROP_POS_FRAMES) or 0), used[-1] + 1 if used else 0)
    finally:
        capture.release()
    times = frame_times(used, stamps, info.fps)
    at = dict(zip(used, times))
    for row in rows:
        row.time = round(at.get(row.frame, row.time), 4)
    return VideoRows(info, rows, used, frames_read, time.perf_counter() - started, times)


def batched(items, size: int):
    """Lists of ``size`` consecutive items (the last may be shorter): itertools.batched, which Python 3.11 lacks."""
    iterator = iter(items)
    while group := list(itertools.islice(iterator, size)):
        yield group


@dataclass(frozen=True)
class VideoAnalysis:
    """How a video is analysed and where its timeline goes: what ``predict`` and ``measure`` share, each building it
    from its own options (``measure`` without a model, unsmoothed)."""

    faces: FaceDetection
    video: VideoOptions
    smooth: int = 1
    out: str = ""  # folder for timeline.csv and timeline.png; empty: RUN/videos/<video name>
    run: str = ""
    overwrite: bool = False
    annotate: str = ""  # also write this video with boxes and labels

    @classmethod
    def of(cls, config: PredictConfig) -> "VideoAnalysis":
        return cls(config.faces, config.video, config.smooth, config.out, config.run, config.overwrite, config.annotate)


def analyse_video(classifier: Classifier | None, path: str | os.PathLike, config: VideoAnalysis, progress: bool = True,
                  measure: bool = False) -> dict:
    """Write timeline.csv and timeline.png (and the annotated video with ``config.annotate``) into ``config.out``
    (empty: RUN/videos/<video name>); with ``measure`` the face measures too, and without a classifier only them.
    Returns a summary."""
    path = Path(path)
    capture, info = open_video(path)
    out = prepare_output_dir(config.out or RunFolder(config.run).video(path.stem), overwrite=config.overwrite)
    analyser = VideoAnalyser(classifier, config.faces, config.video, info.fps, config.smooth, measure)
    every = config.video.every
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(annotated_writer(Path(config.annotate), info, every)) if config.annotate else None
        on_chunk = (lambda chunk, rows: write_annotated(writer, chunk, rows)) if writer is not None else None
        read = read_video_rows(analyser, capture, info, path, every, progress, on_chunk)
    rows, used, seconds = read.rows, len(read.used), read.seconds
    classes = classifier.classes if classifier is not None else []
    write_timeline(out / "timeline.csv", rows, classes, measure)
    from babyface.plots import plot_timeline

    plot_timeline([row.__dict__ for row in rows], classes, out / "timeline.png", title=path.name, measures=measure)
    return {"video": str(path), "out": str(out), "frames": used, "faces": len({r.face_id for r in rows}), "rows": len(rows),
            "seconds": round(seconds, 3), "frames_per_second": round(used / seconds, 1) if seconds > 0 else None,
            "annotated": config.annotate or None, "measured": analyser.tally.summary() if measure else None}


def write_timeline(path: Path, rows: Sequence[FaceRow], classes: Sequence[str], measures: bool = False) -> Path:
    """One row per face per used frame: time, frame, face id, box, the smoothed probabilities and label (with a
    classifier), the probability that the face is an infant's (a model with RUN/who/) and the measures (with ``measures``; empty cells where a face was skipped)."""
    infant = any(r.infant is not None for r in rows)
    header = ["time", "frame", "face_id", "left", "top", "right", "bottom", *(f"p_{c}" for c in classes)]
    header += ["label"] if classes else []
    header += ["p_infant"] if infant else []
    header += list(MEASURE_NAMES) if measures else []

    def cells(r: FaceRow) -> list:
        row = [r.time, r.frame, r.face_id, *r.box, *(f"{r.probabilities[c]:.4f}" for c in classes)] + ([r.label] if classes else [])
        row += [r.infant] if infant else []
        if measures:
            row += [r.measures[m] for m in MEASURE_NAMES] if r.measures else [""] * len(MEASURE_NAMES)
        return row

    return write_csv(path, header, (cells(r) for r in rows))


@contextlib.contextmanager
def annotated_writer(path: Path, info: VideoInfo, every: int):
    """An OpenCV writer onto a temporary name that becomes ``path`` only when the video is complete."""
    cv2 = _cv2()
    with atomic_path(path, keep_suffix=True) as tmp:
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
        handle = cv2.VideoWriter(str(tmp), fourcc, info.fps / every, (info.width, info.height))
        if not handle.isOpened():
            raise BabyfaceError(f"{path}: OpenCV cannot write this kind of video; name it .mp4 or .avi")
        try:
            yield handle
        finally:
            handle.release()


LABEL_COLOURS_BGR = {"happy": (23, 163, 232), "neutral": (148, 135, 123), "sad": (177, 124, 62)}


def write_annotated(writer, chunk: Sequence[tuple[int, np.ndarray]], rows: Sequence[FaceRow]) -> None:
    cv2 = _cv2()
    by_frame: dict[int, list[FaceRow]] = defaultdict(list)
    for row in rows:
        by_frame[row.frame].append(row)
    for index, rgb in chunk:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        for row in by_frame[index]:
            draw_face(cv2, bgr, row)
        writer.write(bgr)


def draw_face(cv2, bgr: np.ndarray, row: FaceRow) -> None:
    left, top, right, bottom = row.box
    colour = LABEL_COLOURS_BGR.get(row.label, (222, 111, 47))
    cv2.rectangle(bgr, (left, top), (right, bottom), (255, 255, 255), 4)  # a white halo keeps the box visible on any background
    cv2.rectangle(bgr, (left, top), (right, bottom), colour, 2)
    text = f"#{row.face_id} {row.label} {max(row.probabilities.values()):.0%}"
    (width, height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    y = max(top, height + 6)
    cv2.rectangle(bgr, (left, y - height - 6), (left + width + 6, y), colour, -1)
    cv2.putText(bgr, text, (left + 3, y - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)


def analyse_videos(classifier: Classifier | None, paths: Sequence[str | os.PathLike], config: VideoAnalysis,
                   progress: bool = True, measure: bool = False) -> list[dict]:
    """``analyse_video`` for each video; with several, ``--out`` holds one folder per video."""
    if config.annotate and len(paths) > 1:
        raise BabyfaceError(f"--annotate {config.annotate} takes one input video, got {len(paths)}; run it once per video")
    summaries = []
    for path in paths:
        out = str(Path(config.out) / Path(path).stem) if config.out and len(paths) > 1 else config.out
        summaries.append(analyse_video(classifier, path, dataclasses.replace(config, out=out), progress, measure))
    return summaries
