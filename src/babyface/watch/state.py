"""The rolling state of each face watched, and the events its changes cause: labels with hysteresis, sad spells,
eyes open or shut (asleep / awake), and faces that vanish, either hidden (the frame keeps changing where the face was:
someone is there, the face covered or turned away) or lost (the scene is still)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from babyface.faces.detectors import FaceBox

EYES_SHUT, EYES_OPEN = 0.35, 0.55  # smoothed eye openness below / above which the eyes count as shut / open
EYE_SMOOTH = 5  # observations averaged for the eye state
PATCH = 16  # a vanished face's region is compared between frames as a PATCH×PATCH grey thumbnail
MOTION_LEVEL = 6.0  # mean grey-level change of that thumbnail above which the region moved between two frames
IOU_SAME_FACE = 0.3  # a new face this much over a vanished one's last box is that face back
MOTION_SHARE = 0.25  # the region "keeps changing" when it moved in at least this share of the frames looked at


@dataclass
class FaceState:
    label: str  # the reported label
    last_seen: float
    candidate: str | None = None  # a different label waiting out --hold
    candidate_since: float = 0.0
    sad_since: float | None = None
    alerted: bool = False
    box: tuple[int, int, int, int] | None = None  # where it was last seen
    eyes: str | None = None  # "open", "shut", or None before the landmarks have seen it
    openness: deque = field(default_factory=lambda: deque(maxlen=EYE_SMOOTH))
    shut_since: float | None = None
    open_since: float | None = None
    asleep_since: float | None = None
    hidden: bool = False  # face_hidden was reported for the current absence
    patch: np.ndarray | None = None  # the last thumbnail of its region while it is not seen
    moves: deque = field(default_factory=deque)  # (time, moved) of its region while it is not seen
    probabilities: dict[str, float] = field(default_factory=dict)  # the latest observation's

    def summary(self) -> dict[str, Any]:
        return {"label": self.label, "eyes": self.eyes, "asleep": self.asleep_since is not None, "hidden": self.hidden}


class EventTracker:
    """Smoothed labels (and eye openness) per face in, events out.

    ``asleep_seconds`` > 0: ``asleep`` once the eyes have stayed shut that long, ``awake`` once they have then stayed
    open ``hold`` seconds. ``hidden_seconds`` > 0: a face not seen for that long whose region keeps changing is
    ``face_hidden``, and it is only ``face_lost`` once its region has been still for ``lost_seconds``; with 0, any face
    not seen for ``lost_seconds`` is lost."""

    def __init__(self, hold: float, sad_seconds: float, lost_seconds: float, asleep_seconds: float = 0.0,
                 hidden_seconds: float = 0.0):
        self.hold, self.sad_seconds, self.lost_seconds = hold, sad_seconds, lost_seconds
        self.asleep_seconds, self.hidden_seconds = asleep_seconds, hidden_seconds
        self.faces: dict[int, FaceState] = {}

    def observe(self, t: float, face_id: int, label: str, probabilities: dict[str, float],
                box: tuple[int, int, int, int] | None = None, eyes_open: float | None = None) -> list[dict[str, Any]]:
        """Events caused by face ``face_id`` having smoothed label ``label`` at stream time ``t`` (seconds), seen at
        ``box`` with mean eye openness ``eyes_open`` (None: not measured)."""
        facts = {"t": round(t, 3), "face_id": face_id, "probabilities": {k: round(v, 4) for k, v in probabilities.items()}}
        state = self.faces.get(face_id)
        if state is None:
            replaced = self._replaced_by(box)
            state = self.faces[face_id] = FaceState(label, t, sad_since=t if label == "sad" else None, box=box)
            self._see(state, t, box, eyes_open, facts["probabilities"])
            seen = {"event": "face_seen", "label": label, "eyes": state.eyes, **facts}
            return [{**seen, "replaces": replaced} if replaced else seen, *self._sad_alert(state, t, facts)]
        self._see(state, t, box, eyes_open, facts["probabilities"])
        events = []
        if label == state.label:
            state.candidate = None
        elif label != state.candidate:
            state.candidate, state.candidate_since = label, t
        if state.candidate is not None and t - state.candidate_since >= self.hold:
            events.append({"event": "label", "label": state.candidate, "previous": state.label, "eyes": state.eyes, **facts})
            state.label, state.candidate = state.candidate, None
            state.sad_since, state.alerted = (state.candidate_since if state.label == "sad" else None), False
        return events + self._sad_alert(state, t, facts) + self._sleep(state, t, facts)

    def _see(self, state: FaceState, t: float, box: tuple[int, int, int, int] | None, eyes_open: float | None,
             probabilities: dict[str, float]) -> None:
        state.last_seen, state.hidden, state.patch, state.probabilities = t, False, None, probabilities
        state.moves.clear()
        if box is not None:
            state.box = box
        if eyes_open is None:
            return
        state.openness.append(eyes_open)
        mean = sum(state.openness) / len(state.openness)
        eyes = "shut" if mean < EYES_SHUT else "open" if mean > EYES_OPEN else state.eyes
        if eyes != state.eyes:
            state.eyes = eyes
            state.shut_since = t if eyes == "shut" else None
            state.open_since = t if eyes == "open" else None

    def _replaced_by(self, box: tuple[int, int, int, int] | None) -> int | None:
        """The id of a face not seen now whose last box the new face at ``box`` overlaps (it is back, with a new id);
        that face is dropped without a face_lost."""
        if box is None:
            return None
        for face_id, state in list(self.faces.items()):
            if state.box is not None and state.patch is not None and FaceBox(*state.box, 1.0).iou(FaceBox(*box, 1.0)) >= IOU_SAME_FACE:
                del self.faces[face_id]
                return face_id
        return None

    def _sad_alert(self, state: FaceState, t: float, facts: dict[str, Any]) -> list[dict[str, Any]]:
        if self.sad_seconds <= 0 or state.sad_since is None or state.alerted or t - state.sad_since < self.sad_seconds:
            return []
        state.alerted = True
        return [{"event": "sad_alert", "label": "sad", "sad_for": round(t - state.sad_since, 3), **facts}]

    def _sleep(self, state: FaceState, t: float, facts: dict[str, Any]) -> list[dict[str, Any]]:
        if self.asleep_seconds <= 0:
            return []
        if state.asleep_since is None and state.shut_since is not None and t - state.shut_since >= self.asleep_seconds:
            state.asleep_since = state.shut_since
            return [{"event": "asleep", "label": state.label, "eyes_shut_for": round(t - state.shut_since, 3), **facts}]
        if state.asleep_since is not None and state.open_since is not None and t - state.open_since >= self.hold:
            slept, state.asleep_since = state.open_since - state.asleep_since, None
            return [{"event": "awake", "label": state.label, "asleep_for": round(slept, 3), **facts}]
        return []

    def look(self, t: float, rgb: np.ndarray) -> None:
        """Note, for every face not seen at ``t``, whether the frame changed where it was since the last look."""
        for state in self.faces.values():
            if state.last_seen >= t or state.box is None:
                continue
            patch = _thumbnail(rgb, state.box)
            if state.patch is not None:
                state.moves.append((t, float(np.abs(patch - state.patch).mean()) > MOTION_LEVEL))
            state.patch = patch

    def expire(self, t: float) -> list[dict[str, Any]]:
        """``face_hidden`` and ``face_lost`` for the faces not seen before ``t``."""
        events = []
        for face_id, state in list(self.faces.items()):
            gone = t - state.last_seen
            if self.hidden_seconds > 0 and not state.hidden and gone >= self.hidden_seconds and self._moving(state, t, self.hidden_seconds):
                state.hidden = True
                events.append({"event": "face_hidden", "t": round(t, 3), "face_id": face_id, "label": state.label,
                               "last_seen": round(state.last_seen, 3), "hidden_for": round(gone, 3)})
            if gone > self.lost_seconds and not (self.hidden_seconds > 0 and self._moving(state, t, self.lost_seconds)):
                events.append({"event": "face_lost", "t": round(t, 3), "face_id": face_id, "label": state.label,
                               "last_seen": round(state.last_seen, 3)})
                del self.faces[face_id]
        return events

    def _moving(self, state: FaceState, t: float, window: float) -> bool:
        """Whether the face's region changed in at least MOTION_SHARE of the frames looked at in the last ``window`` s."""
        while state.moves and state.moves[0][0] < t - max(self.hidden_seconds, self.lost_seconds):
            state.moves.popleft()
        recent = [moved for when, moved in state.moves if when >= t - window]
        return bool(recent) and sum(recent) >= MOTION_SHARE * len(recent)

    def state(self) -> dict[str, Any]:
        """Every face's label, eyes, asleep and hidden, by id: the retained state a dashboard shows."""
        return {str(face_id): state.summary() for face_id, state in self.faces.items()}

    def monitor(self) -> dict[str, Any]:
        """The room at a glance (Home Assistant's entities): the affect and probabilities of the largest face in view
        ('none' without one), and whether any face is crying (a sad spell that raised sad_alert goes on), asleep,
        hidden, or in view."""
        in_view = [state for state in self.faces.values() if state.patch is None]  # seen at the latest look
        main = max(in_view, key=lambda s: _area(s.box), default=None)
        return {"affect": main.label if main else "none", "probabilities": main.probabilities if main else {},
                "crying": any(s.alerted and s.label == "sad" for s in self.faces.values()),
                "asleep": any(s.asleep_since is not None for s in self.faces.values()),
                "face_hidden": any(s.hidden for s in self.faces.values()), "face_seen": bool(in_view)}


def _area(box: tuple[int, int, int, int] | None) -> float:
    return 0.0 if box is None else max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def _thumbnail(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    import cv2

    height, width = rgb.shape[:2]
    left, top = max(0, int(box[0])), max(0, int(box[1]))
    right, bottom = min(width, int(box[2])), min(height, int(box[3]))
    if right - left < 2 or bottom - top < 2:
        return np.zeros((PATCH, PATCH), np.float32)
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[top:bottom, left:right]), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (PATCH, PATCH), interpolation=cv2.INTER_AREA).astype(np.float32)

