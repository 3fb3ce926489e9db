"""The rolling state of each face watched, and the events its changes cause."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class FaceState:
    label: str  # the reported label
    last_seen: float
    candidate: str | None = None  # a different label waiting out --hold
    candidate_since: float = 0.0
    sad_since: float | None = None
    alerted: bool = False


class EventTracker:
    """Smoothed labels per face in, events out: hysteresis on label changes, sad spells, faces lost."""

    def __init__(self, hold: float, sad_seconds: float, lost_seconds: float):
        self.hold, self.sad_seconds, self.lost_seconds = hold, sad_seconds, lost_seconds
        self.faces: dict[int, FaceState] = {}

    def observe(self, t: float, face_id: int, label: str, probabilities: dict[str, float]) -> list[dict[str, Any]]:
        """Events caused by face ``face_id`` having smoothed label ``label`` at stream time ``t`` (seconds)."""
        facts = {"t": round(t, 3), "face_id": face_id, "probabilities": {k: round(v, 4) for k, v in probabilities.items()}}
        state = self.faces.get(face_id)
        if state is None:
            state = self.faces[face_id] = FaceState(label, t, sad_since=t if label == "sad" else None)
            return [{"event": "face_seen", "label": label, **facts}, *self._sad_alert(state, t, facts)]
        state.last_seen = t
        events = []
        if label == state.label:
            state.candidate = None
        elif label != state.candidate:
            state.candidate, state.candidate_since = label, t
        if state.candidate is not None and t - state.candidate_since >= self.hold:
            events.append({"event": "label", "label": state.candidate, "previous": state.label, **facts})
            state.label, state.candidate = state.candidate, None
            state.sad_since, state.alerted = (state.candidate_since if state.label == "sad" else None), False
        return events + self._sad_alert(state, t, facts)

    def _sad_alert(self, state: FaceState, t: float, facts: dict[str, Any]) -> list[dict[str, Any]]:
        if self.sad_seconds <= 0 or state.sad_since is None or state.alerted or t - state.sad_since < self.sad_seconds:
            return []
        state.alerted = True
        return [{"event": "sad_alert", "label": "sad", "sad_for": round(t - state.sad_since, 3), **facts}]

    def expire(self, t: float) -> list[dict[str, Any]]:
        """``face_lost`` for every face not seen for more than ``lost_seconds`` before ``t``."""
        lost = [face_id for face_id, state in self.faces.items() if t - state.last_seen > self.lost_seconds]
        events = [
            {
                "event": "face_lost",
                "t": round(t, 3),
                "face_id": face_id,
                "label": self.faces[face_id].label,
                "last_seen": round(self.faces[face_id].last_seen, 3),
            }
            for face_id in lost
        ]
        for face_id in lost:
            del self.faces[face_id]
        return events


