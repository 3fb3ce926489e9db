"""MediaPipe's face landmark model (478 points) and blendshape model (52 coefficients), run with onnxruntime.

Both graphs are MediaPipe's Face Landmarker (Apache-2.0, ``faces/weights/LICENSE-mediapipe.txt`` and ``NOTICE``),
converted once to ONNX by ``scripts/face_landmarker_to_onnx.py``. As in MediaPipe, the landmark model sees a
256×256 square around a detected face (``ROI_SCALE`` times the detector's box), levelled so the eyes are
horizontal: the first pass finds the eye line, and a face tilted more than ``LEVEL_FROM`` degrees is cut again,
rotated. The blendshape model reads 146 of the 478 points (``BLENDSHAPE_LANDMARKS``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from babyface.faces.blazeface import single_thread_session
from babyface.measures.mediapipe_face import BLENDSHAPE_LANDMARKS, BLENDSHAPE_NAMES

WEIGHTS = Path(__file__).resolve().parents[1] / "faces" / "weights"
LANDMARKS_FILE = WEIGHTS / "face_landmarks.onnx"
BLENDSHAPES_FILE = WEIGHTS / "face_blendshapes.onnx"
SIDE = 256  # the landmark model's input side
ROI_SCALE = 1.2  # the square cut around a face, times the longer side of its box in MTCNN's convention (taller than
# BlazeFace's own box, so about MediaPipe's 1.5 of that); larger squares lost a quarter of the tight infant crops
LEVEL_FROM = 8.0  # degrees of eye-line tilt above which the face is cut again, rotated upright
MIN_PRESENCE = 0.5  # the landmark model's own face-presence probability below which its points are not used
MIN_FACE_SIDE = 24  # pixels: a face smaller than this in its image is too small for landmarks (skipped, counted)
EYE_CORNERS = (33, 263)  # the outer corners of the right and the left eye (the infant's own sides)

@dataclass(frozen=True)
class Roi:
    """A square of ``side`` pixels centred on (``cx``, ``cy``), turned by ``angle`` radians (counter-clockwise on
    the image), which the landmark model sees as its 256×256 input."""

    cx: float
    cy: float
    side: float
    angle: float = 0.0

    def to_input(self) -> np.ndarray:
        """The 2×3 affine matrix from image pixels to the model's input pixels."""
        scale = SIDE / self.side
        cos, sin = math.cos(self.angle) * scale, math.sin(self.angle) * scale
        # turn clockwise on the image by ``angle`` about the centre (y points down), scale, centre on the input
        return np.array([[cos, -sin, SIDE / 2 - cos * self.cx + sin * self.cy],
                         [sin, cos, SIDE / 2 - sin * self.cx - cos * self.cy]], np.float64)


def roi_around(left: float, top: float, right: float, bottom: float, angle: float = 0.0) -> Roi:
    return Roi((left + right) / 2, (top + bottom) / 2, max(right - left, bottom - top) * ROI_SCALE, angle)


@dataclass
class FaceMesh:
    """One face's landmarks in the pixels of its image (x, y; z in the same units, larger = farther from the
    camera), the model's face-presence probability, and the 52 blendshape coefficients by name."""

    points: np.ndarray  # (478, 3) float32
    presence: float
    blendshapes: dict[str, float]


def _session(path: Path):
    return single_thread_session(path, "face landmark model", "reinstall babyface (pip install --force-reinstall babyface)")


@functools.lru_cache(maxsize=1)
def landmark_session():
    return _session(LANDMARKS_FILE)


@functools.lru_cache(maxsize=1)
def blendshape_session():
    return _session(BLENDSHAPES_FILE)


def cut(rgb: np.ndarray, roi: Roi) -> np.ndarray:
    """The model's 256×256×3 float input in 0..1 for ``roi`` of an H×W×3 uint8 image (outside the image: black)."""
    import cv2

    patch = cv2.warpAffine(rgb, roi.to_input(), (SIDE, SIDE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return patch.astype(np.float32) / 255.0


def run_landmarks(rgb: np.ndarray, rois: Sequence[Roi]) -> list[tuple[np.ndarray, float]]:
    """(478×3 points in image pixels, presence probability) for each ROI, in one batch."""
    if not rois:
        return []
    batch = np.stack([cut(rgb, roi) for roi in rois])
    session = landmark_session()
    raw, presence_logit, _ = session.run(None, {session.get_inputs()[0].name: batch})
    out = []
    for roi, flat, logit in zip(rois, raw.reshape(len(rois), 478, 3), presence_logit.reshape(-1)):
        out.append((to_image(flat, roi), float(1 / (1 + math.exp(-float(np.clip(logit, -50, 50)))))))
    return out


def to_image(points: np.ndarray, roi: Roi) -> np.ndarray:
    """Input-pixel landmarks mapped back into the image's pixels (z scaled like x and y)."""
    forward = roi.to_input()
    inverse = np.linalg.inv(np.vstack([forward, [0, 0, 1]]))[:2]
    xy = points[:, :2] @ inverse[:, :2].T + inverse[:, 2]
    z = points[:, 2:] * (roi.side / SIDE)
    return np.hstack([xy, z]).astype(np.float32)


def eye_line_angle(points: np.ndarray) -> float:
    """Radians by which the line from the right eye's outer corner to the left one's is turned counter-clockwise
    on the image (0 for a level face)."""
    (x0, y0), (x1, y1) = points[EYE_CORNERS[0], :2], points[EYE_CORNERS[1], :2]
    return math.atan2(-(y1 - y0), x1 - x0)


def run_blendshapes(points: np.ndarray) -> dict[str, float]:
    """The 52 coefficients (0..1) by name, from a face's 478 landmarks in any pixel units (the model is
    scale-invariant)."""
    session = blendshape_session()
    subset = points[list(BLENDSHAPE_LANDMARKS), :2].astype(np.float32)[None]
    values = session.run(None, {session.get_inputs()[0].name: subset})[0].reshape(-1)
    return {name: float(v) for name, v in zip(BLENDSHAPE_NAMES, values)}


def face_meshes(rgb: np.ndarray, boxes: Sequence[tuple[float, float, float, float]]) -> list[FaceMesh | None]:
    """A FaceMesh for each (left, top, right, bottom) face box of an H×W×3 uint8 image; None where the face is
    too small (under MIN_FACE_SIDE pixels) or the landmark model says there is no face (presence < MIN_PRESENCE)."""
    wanted = [i for i, (left, top, right, bottom) in enumerate(boxes) if max(right - left, bottom - top) >= MIN_FACE_SIDE]
    rois = [roi_around(*boxes[i]) for i in wanted]
    found = run_landmarks(rgb, rois)
    tilted = [k for k, (points, _) in enumerate(found) if abs(math.degrees(eye_line_angle(points))) > LEVEL_FROM]
    levelled = run_landmarks(rgb, [_levelled(rois[k], found[k][0]) for k in tilted])
    for k, again in zip(tilted, levelled):
        found[k] = again
    meshes: list[FaceMesh | None] = [None] * len(boxes)
    for i, (points, presence) in zip(wanted, found):
        if presence >= MIN_PRESENCE:
            meshes[i] = FaceMesh(points, presence, run_blendshapes(points))
    return meshes


def _levelled(roi: Roi, points: np.ndarray) -> Roi:
    """The ROI re-centred on the landmarks' centre and turned with the eye line, so the face sits upright."""
    centre = points[:, :2].mean(axis=0)
    return Roi(float(centre[0]), float(centre[1]), roi.side, eye_line_angle(points))
