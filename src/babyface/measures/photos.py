"""Measures of every face in photos: ``babyface measure`` and ``predict --measures``."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from babyface.config import FaceDetection
from babyface.data.images import display_path, load_rgb
from babyface.errors import ImageDecodeError
from babyface.faces.detectors import FaceBox, detect_faces
from babyface.measures.facial import MEASURE_NAMES, measures_of
from babyface.measures.landmarks import MIN_FACE_SIDE, face_meshes
from babyface.outputs import csv_text

log = logging.getLogger("babyface")


@dataclass
class FaceMeasures:
    """One face of a photo: where it is, whether a detector found it (False: the whole image was measured), the
    landmark model's face-presence probability, and the measures (``MEASURE_NAMES``)."""

    file: str
    face: int  # 0 = the largest face of the photo
    box: tuple[int, int, int, int]
    face_detected: bool
    presence: float
    measures: dict[str, float]


@dataclass
class Tally:
    """What happened to the faces looked at: measured, too small for landmarks, not a face to the landmark model."""

    counts: Counter = field(default_factory=Counter)

    def add(self, what: str, n: int = 1) -> None:
        self.counts[what] += n

    def summary(self) -> str:
        parts = [f"{self.counts['measured']} face(s) measured"]
        if self.counts["too_small"]:
            parts.append(f"{self.counts['too_small']} too small for landmarks (under {MIN_FACE_SIDE} px), skipped")
        if self.counts["not_confirmed"]:
            parts.append(f"{self.counts['not_confirmed']} not confirmed as a face by the landmark model, skipped")
        if self.counts["whole_image"]:
            parts.append(f"{self.counts['whole_image']} photo(s) without a detected face measured whole")
        return "; ".join(parts)


def face_boxes_of(rgb: np.ndarray, faces: FaceDetection, framing: str) -> tuple[list[FaceBox], bool]:
    """The faces to measure and whether a detector found them: every face ``faces`` finds (``framing`` face), else the
    whole image as one face."""
    if framing == "face":
        found = detect_faces(rgb, faces.detector, faces.min_score, faces.detect_size, faces.min_face)
        if found:
            return found, True
    height, width = rgb.shape[:2]
    return [FaceBox(0, 0, width, height, 1.0)], False


def measure_rgb(rgb: np.ndarray, boxes: Sequence[FaceBox], tally: Tally) -> list[tuple[FaceBox, float, dict[str, float]] | None]:
    """(box, presence, measures) for each face box of an H×W×3 uint8 image; None where it was skipped (counted)."""
    meshes = face_meshes(rgb, [(b.left, b.top, b.right, b.bottom) for b in boxes])
    out: list[tuple[FaceBox, float, dict[str, float]] | None] = []
    for box, mesh in zip(boxes, meshes):
        if mesh is None:
            tally.add("too_small" if box.side < MIN_FACE_SIDE else "not_confirmed")
            out.append(None)
        else:
            tally.add("measured")
            out.append((box, round(mesh.presence, 3), measures_of(mesh)))
    return out


def measure_image(rgb: np.ndarray, name: str, faces: FaceDetection, framing: str, tally: Tally) -> list[FaceMeasures]:
    """The measures of every face of an H×W×3 uint8 RGB image (``name`` goes into the rows), largest face first."""
    boxes, detected = face_boxes_of(rgb, faces, framing)
    tally.add("whole_image", int(not detected and framing == "face"))
    rows = []
    for index, found in enumerate(measure_rgb(rgb, boxes, tally)):
        if found is not None:
            box, presence, values = found
            rows.append(FaceMeasures(name, index, _rounded(box), detected, presence, values))
    return rows


def measure_photo(path: Path, faces: FaceDetection, framing: str, tally: Tally) -> list[FaceMeasures]:
    return measure_image(np.asarray(load_rgb(path)), display_path(path), faces, framing, tally)


def measure_photos(paths: Sequence[Path], faces: FaceDetection, framing: str = "face",
                   strict: bool = False) -> tuple[list[FaceMeasures], list[str], Tally]:
    """Measures of every face in each photo; the files skipped (not decodable: a warning each, or an error with
    ``strict``); the tally of faces."""
    rows: list[FaceMeasures] = []
    skipped: list[str] = []
    tally = Tally()
    for path in paths:
        try:
            rows += measure_photo(path, faces, framing, tally)
        except ImageDecodeError as exc:
            if strict:
                raise
            log.warning("WARNING: %s", exc)
            skipped.append(str(path))
    return rows, skipped, tally


def _rounded(box: FaceBox) -> tuple[int, int, int, int]:
    return round(box.left), round(box.top), round(box.right), round(box.bottom)


def format_measures(rows: Sequence[FaceMeasures], fmt: str) -> str:
    """The rows as an aligned table, JSON or CSV (one row per face)."""
    if fmt == "json":
        return json.dumps([row.__dict__ for row in rows], indent=2, allow_nan=False) + "\n"
    header = ["file", "face", "left", "top", "right", "bottom", "face_detected", "presence", *MEASURE_NAMES]
    table = [[r.file, r.face, *r.box, int(r.face_detected), r.presence, *(r.measures[m] for m in MEASURE_NAMES)] for r in rows]
    if fmt == "csv":
        return csv_text(header, table)
    short = ["file", "face", *MEASURE_NAMES]
    cells = [[Path(r.file).name, str(r.face), *(f"{r.measures[m]:g}" for m in MEASURE_NAMES)] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(short)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(short, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths)) for cell in cells]
    return "\n".join(lines) + "\n"
