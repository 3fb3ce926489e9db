"""A video coded as a developmental lab codes it: one affect code per epoch (1 second by default) for a face.

The frames a video analysis classified (``babyface.video.analysis``) are grouped into epochs. In each epoch the coded
face is chosen (the face the infant-vs-adult model finds most likely an infant's, the largest face present, or every
tracked face on its own tier), its class probabilities are
averaged over the epoch's frames, and summed into codes through the code map (happy -> positive, sad -> negative).
An epoch is ``uncodable`` when the face is in fewer than half of its frames or its winning code's mean probability is
below ``min_confidence``. Consecutive equal epochs make a bout; bouts are what ELAN, BORIS and Datavyu show.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from babyface.errors import BabyfaceError
from babyface.video.analysis import FaceRow

AFFECT_CODES = ("positive", "neutral", "negative")
UNCODABLE = "uncodable"
CODES = (*AFFECT_CODES, UNCODABLE)
CODE_DESCRIPTIONS = {
    "positive": "positive affect: smiling, laughing (the model's happy)",
    "neutral": "neutral affect: interested or calm face",
    "negative": "negative affect: fussing, crying, distress (the model's sad)",
    UNCODABLE: "no codable face: the infant's face is away, hidden or out of frame, or the model is unsure",
}
DEFAULT_CODE_MAP = {"happy": "positive", "neutral": "neutral", "sad": "negative"}
LARGEST = "largest"
INFANT = "infant"
INFANT_FLOOR = 0.15  # --face infant: a face less likely an infant's than this is never coded as the infant
SAME_FACE_AREA = 0.5  # a face under half the area of the session's usual coded face is taken for another person


def parse_code_map(text: str, classes: Sequence[str]) -> dict[str, str]:
    """``class=code,...`` (empty: the default map) checked against the model's decision classes: every class must
    become one of the affect codes."""
    pairs = [item.partition("=") for item in text.split(",") if item.strip()] if text.strip() else []
    mapping = {name.strip(): code.strip() for name, _, code in pairs} if pairs else dict(DEFAULT_CODE_MAP)
    for name, code in mapping.items():
        if code not in AFFECT_CODES:
            raise BabyfaceError(f"--code-map: {name}={code or '?'} names no code; map each class to one of "
                                f"{', '.join(AFFECT_CODES)}, e.g. 'happy=positive,neutral=neutral,sad=negative'")
    unknown = sorted(set(mapping) - set(classes))
    missing = [c for c in classes if c not in mapping]
    if unknown and pairs:
        raise BabyfaceError(f"--code-map names {', '.join(unknown)}, which the model does not decide over; its classes "
                            f"are {', '.join(classes)}")
    if missing:
        raise BabyfaceError(f"the model decides over {', '.join(missing)}, which the code map does not place; give "
                            f"--code-map with every class, e.g. '{','.join(f'{c}=neutral' for c in classes)}'")
    return {c: mapping[c] for c in classes}


@dataclass(frozen=True)
class Epoch:
    """One coded time unit of one tier: the code, the face's mean class probabilities and mean box over the frames it
    was seen in (empty where it was not seen), and how many of the epoch's used frames showed it."""

    start: float
    end: float
    code: str
    face_id: int | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    box: tuple[int, int, int, int] | None = None
    frames: int = 0
    seen: int = 0


@dataclass(frozen=True)
class Bout:
    start: float
    end: float
    code: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class CodedVideo:
    """A video's codes: a tier of epochs per coded face (``affect@largest``, or ``affect@face<id>`` for every face)."""

    video: str
    duration: float
    epoch: float
    classes: list[str]
    tiers: dict[str, list[Epoch]]

    def bouts(self, tier: str) -> list[Bout]:
        return merge_bouts(self.tiers[tier])


def tier_name(face: str) -> str:
    return f"affect@{face}"


def epoch_bounds(duration: float, epoch: float) -> list[tuple[float, float]]:
    """Consecutive epochs over ``[0, duration)``; the last one ends with the video."""
    count = max(1, math.ceil(duration / epoch - 1e-9))
    return [(round(i * epoch, 6), round(min((i + 1) * epoch, duration), 6)) for i in range(count)]


def code_epochs(rows: Sequence[FaceRow], used_times: Sequence[float], duration: float, epoch: float,
                classes: Sequence[str], code_map: dict[str, str], face: str = LARGEST,
                min_confidence: float = 0.0) -> dict[str, list[Epoch]]:
    """The tiers of a video: ``rows`` are the classified faces of the used frames, ``used_times`` the times of all
    used frames (with or without a face)."""
    bounds = epoch_bounds(duration, epoch)
    frames_in = np.bincount(_epoch_index(used_times, epoch, len(bounds)), minlength=len(bounds))
    by_epoch: list[dict[int, list[FaceRow]]] = [defaultdict(list) for _ in bounds]
    for row, index in zip(rows, _epoch_index([r.time for r in rows], epoch, len(bounds))):
        by_epoch[index][row.face_id].append(row)
    if face in (LARGEST, INFANT):
        chosen = (_session_largest([_largest(faces) for faces in by_epoch]) if face == LARGEST else
                  _session_infant([_most_infant(faces) for faces in by_epoch]))
        return {tier_name(face): [_coded(bounds[i], chosen[i], int(frames_in[i]), classes, code_map, min_confidence)
                                  for i in range(len(bounds))]}
    ids = sorted({row.face_id for row in rows})
    return {tier_name(f"face{face_id}"): [_coded(bounds[i], (face_id, faces.get(face_id, [])), int(frames_in[i]), classes,
                                                 code_map, min_confidence) for i, faces in enumerate(by_epoch)]
            for face_id in ids}


def _epoch_index(times: Iterable[float], epoch: float, count: int) -> np.ndarray:
    return np.clip((np.asarray(list(times), dtype=float) / epoch + 1e-9).astype(int), 0, count - 1)


def _largest(faces: dict[int, list[FaceRow]]) -> tuple[int | None, list[FaceRow]]:
    """The face with the most area summed over the epoch's frames: the largest and most present face."""
    if not faces:
        return None, []
    face_id = max(faces, key=lambda i: (sum(_area(r.box) for r in faces[i]), -i))
    return face_id, faces[face_id]


def _most_infant(faces: dict[int, list[FaceRow]]) -> tuple[int | None, list[FaceRow]]:
    """The face the infant-vs-adult model finds most likely an infant's (mean over the epoch's frames)."""
    if not faces:
        return None, []
    face_id = max(faces, key=lambda i: (_mean_infant(faces[i]), -i))
    return face_id, faces[face_id]


def _mean_infant(rows: Sequence[FaceRow]) -> float:
    return float(np.mean([r.infant for r in rows if r.infant is not None] or [0.0]))


def _session_infant(chosen: list[tuple[int | None, list[FaceRow]]]) -> list[tuple[int | None, list[FaceRow]]]:
    """Each epoch's most infant-like face, unless even it is unlikely an infant's: under half the session's usual
    infant probability of the coded face (between INFANT_FLOOR and 0.5), so that with the infant out of view a
    parent is not coded in its place, also where a new camera or lighting lowers every face's probability."""
    scores = [_mean_infant(rows) for _, rows in chosen if rows]
    if not scores:
        return chosen
    threshold = infant_threshold(float(np.median(scores)))
    return [(face_id, rows) if rows and _mean_infant(rows) >= threshold else (None, []) for face_id, rows in chosen]


def infant_threshold(usual: float) -> float:
    """The infant probability under which a face is taken for someone else's than the infant whose usual probability
    is ``usual``: half of it, between INFANT_FLOOR and 0.5 (coding and watch decide alike)."""
    return float(np.clip(0.5 * usual, INFANT_FLOOR, 0.5))


def _session_largest(chosen: list[tuple[int | None, list[FaceRow]]]) -> list[tuple[int | None, list[FaceRow]]]:
    """Each epoch's largest face, unless it is much smaller than the session's usual coded face: when the infant in
    close-up turns away, the largest face left is someone else's (a parent beside it), not the infant's."""
    sizes = [_mean_area(rows) for _, rows in chosen if rows]
    if not sizes:
        return chosen
    usual = float(np.median(sizes))
    return [(face_id, rows) if rows and _mean_area(rows) >= SAME_FACE_AREA * usual else (None, [])
            for face_id, rows in chosen]


def _mean_area(rows: Sequence[FaceRow]) -> float:
    return float(np.mean([_area(r.box) for r in rows]))


def _area(box: tuple[int, int, int, int]) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def _coded(bounds: tuple[float, float], face: tuple[int | None, list[FaceRow]], frames: int, classes: Sequence[str],
           code_map: dict[str, str], min_confidence: float) -> Epoch:
    face_id, rows = face
    start, end = bounds
    if not rows or len(rows) * 2 < frames:
        return Epoch(start, end, UNCODABLE, face_id if rows else None, _mean_probabilities(rows, classes),
                     _mean_box(rows), frames, len(rows))
    probabilities = _mean_probabilities(rows, classes)
    per_code = code_probabilities(probabilities, code_map)
    code = max(AFFECT_CODES, key=lambda c: per_code[c])
    if per_code[code] < min_confidence:
        code = UNCODABLE
    return Epoch(start, end, code, face_id, probabilities, _mean_box(rows), frames, len(rows))


def code_probabilities(probabilities: dict[str, float], code_map: dict[str, str]) -> dict[str, float]:
    totals = dict.fromkeys(AFFECT_CODES, 0.0)
    for name, p in probabilities.items():
        totals[code_map[name]] += p
    return totals


def _mean_probabilities(rows: Sequence[FaceRow], classes: Sequence[str]) -> dict[str, float]:
    if not rows:
        return {}
    return {c: round(float(np.mean([r.probabilities[c] for r in rows])), 4) for c in classes}


def _mean_box(rows: Sequence[FaceRow]) -> tuple[int, int, int, int] | None:
    if not rows:
        return None
    return tuple(int(round(v)) for v in np.mean([r.box for r in rows], axis=0))  # type: ignore[return-value]


def merge_bouts(epochs: Sequence[Epoch]) -> list[Bout]:
    """Consecutive epochs of one code joined into bouts."""
    bouts: list[Bout] = []
    for e in epochs:
        if bouts and bouts[-1].code == e.code and math.isclose(bouts[-1].end, e.start, abs_tol=1e-6):
            bouts[-1] = Bout(bouts[-1].start, e.end, e.code)
        else:
            bouts.append(Bout(e.start, e.end, e.code))
    return bouts


def check_epoch_has_frames(epoch: float, sampled_fps: float, where: str) -> None:
    if epoch * sampled_fps < 1 - 1e-9:
        raise BabyfaceError(f"{where}: --epoch {epoch:g} s holds no frame at {sampled_fps:g} used frames a second; raise "
                            f"--fps to at least {math.ceil(1 / epoch)} or lengthen --epoch")


__all__ = ["AFFECT_CODES", "CODES", "CODE_DESCRIPTIONS", "DEFAULT_CODE_MAP", "INFANT", "LARGEST", "UNCODABLE", "Bout", "CodedVideo",
           "Epoch", "check_epoch_has_frames", "code_epochs", "code_probabilities", "epoch_bounds", "infant_threshold", "merge_bouts",
           "parse_code_map", "tier_name"]
