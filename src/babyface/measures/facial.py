"""Named face measures from MediaPipe's blendshapes and landmarks, each tied to the Baby FACS action unit it
approximates, so that a researcher can relate babyface's output to a coding scheme.

MediaPipe's blendshapes were trained on adult faces (ARKit's 52 coefficients, 0..1); ``benchmarks/face_measures.py``
measures how well each measure separates the classes on held-out infant faces. Left and right are the infant's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from babyface.measures.landmarks import FaceMesh


@dataclass(frozen=True)
class Measure:
    name: str
    blendshapes: tuple[str, ...]  # averaged (``1 -`` their mean for an ``inverted`` measure)
    action_unit: str  # the Baby FACS action unit it approximates
    meaning: str
    inverted: bool = False


# The blendshape model names sides as the infant's own (``eyeBlinkRight`` rises when the eye on the image's left closes:
# tests/test_measures.py pins this on landmarks with one eyelid moved shut).
MEASURES = (
    Measure("eye_open_left", ("eyeBlinkLeft",), "AU43/45 absent (eyes closed / blink)", "the infant's left eye open (1) or shut (0)", True),
    Measure("eye_open_right", ("eyeBlinkRight",), "AU43/45 absent (eyes closed / blink)", "the infant's right eye open (1) or shut (0)", True),
    Measure("smile", ("mouthSmileLeft", "mouthSmileRight"), "AU12 lip corner puller", "lip corners pulled up and back"),
    Measure("brow_lower", ("browDownLeft", "browDownRight"), "AU3+4 brow knit and lower", "brows drawn together and down"),
    Measure("brow_raise", ("browInnerUp",), "AU1 inner brow raiser", "inner brows raised (with AU4: the sad brow)"),
    Measure("eye_squeeze", ("eyeSquintLeft", "eyeSquintRight"), "AU7 lid tightener", "lids tightened (cry face, bright light)"),
    Measure("frown", ("mouthFrownLeft", "mouthFrownRight"), "AU15 lip corner depressor", "lip corners pulled down"),
    Measure("mouth_stretch", ("mouthStretchLeft", "mouthStretchRight"), "AU20 lip stretcher", "lips stretched sideways (cry face)"),
    Measure("mouth_open", ("jawOpen",), "AU26/27 jaw drop / mouth stretch", "how far the jaw has dropped"),
)
# Not offered: AU6 (cheek raiser) from cheekSquintLeft/Right, which MediaPipe's model leaves at 0 on every face
# (benchmarks/face_measures.py: at most 3e-6 on 521 infants), like cheekPuff and noseSneer: a measure that is always 0
# would read as "no cheek raise" when nothing was measured.
POSE = ("yaw", "pitch", "roll")  # degrees, from the landmarks' 3-D points
MEASURE_NAMES = tuple(m.name for m in MEASURES) + POSE
# face outline points for the head's axes: forehead top and chin, and the two outer eye corners
FOREHEAD, CHIN, RIGHT_EYE, LEFT_EYE = 10, 152, 33, 263


def measures_of(mesh: FaceMesh) -> dict[str, float]:
    """Every measure (MEASURE_NAMES) of one face, rounded to 3 decimals (0.1 degree for the pose)."""
    values = {m.name: _blend(mesh.blendshapes, m) for m in MEASURES}
    values.update(head_pose(mesh.points))
    return values


def _blend(blendshapes: dict[str, float], measure: Measure) -> float:
    mean = sum(blendshapes[name] for name in measure.blendshapes) / len(measure.blendshapes)
    return round(1.0 - mean if measure.inverted else mean, 3)


def head_pose(points: np.ndarray) -> dict[str, float]:
    """Yaw, pitch and roll in degrees from the 3-D landmarks: 0, 0, 0 facing the camera upright; yaw > 0 turned
    towards the image's right, pitch > 0 looking up, roll > 0 tilted clockwise on the image."""
    across = points[LEFT_EYE] - points[RIGHT_EYE]  # image x (right), y (down), z (away from the camera)
    down = points[CHIN] - points[FOREHEAD]
    x = across / np.linalg.norm(across)
    y = down - np.dot(down, x) * x
    y = y / np.linalg.norm(y)
    toward_camera = -np.cross(x, y)
    return {
        "yaw": round(math.degrees(math.atan2(toward_camera[0], -toward_camera[2])), 1),
        "pitch": round(math.degrees(math.atan2(-toward_camera[1], -toward_camera[2])), 1),
        "roll": round(math.degrees(math.atan2(x[1], x[0])), 1),
    }
