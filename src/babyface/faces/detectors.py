"""The face pipeline every command shares: a detector of the registry (``babyface.faces.registry``) run on a copy
shrunk for speed, its boxes aligned to MTCNN's, thresholded and sorted; the squares cut around them.

Detectors ship their weights with babyface or inside pip packages (nothing is downloaded at run time): ``blazeface``
finds faces for predict, serve and watch, ``mtcnn`` cuts training crops (``data crop``) and frames evaluation, ``haar``
is the fallback that needs only OpenCV. Every detector's box is reshaped to MTCNN's convention (its ``alignment``),
so a face is cut the same way whichever one found it. Their imports are lazy: babyface works without them until a
face has to be found.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image

from babyface.config import DEFAULT_DETECTOR, FaceDetection
from babyface.data.images import resize_square
from babyface.faces.boxes import FaceBox
from babyface.faces.registry import get_detector, resolve_min_score

MIN_FACE_PIXELS = 24  # with ``min_face``, images are shrunk until the smallest wanted face is this many pixels
Box = tuple[int, int, int, int]  # left, top, right, bottom in pixels

__all__ = ["FaceBox", "MIN_FACE_PIXELS", "detect_faces", "detection_side", "face_boxes", "face_squares",
           "resolve_min_score", "square_crop"]


def detect_faces(image: Image.Image | np.ndarray, detector: str = DEFAULT_DETECTOR, min_score: float | None = None,
                 max_side: int = 0, min_face: float = 0.0) -> list[FaceBox]:
    """Faces in an RGB image (PIL or H×W×3 uint8), largest first, those scoring under ``min_score`` dropped
    (None: the detector's own threshold).

    ``max_side`` > 0 runs the detector on a copy shrunk to at most that many pixels per side (much faster on
    large images and video frames). ``min_face`` > 0 looks only for faces at least that share of the image's
    shorter side, on a copy shrunk until such a face is MIN_FACE_PIXELS wide (the time then hardly depends on
    the image size); 0 finds faces down to the detector's own floor. Boxes are always in the coordinates of ``image``.
    """
    rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.uint8)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    found = get_detector(detector)
    min_score = resolve_min_score(detector, min_score)
    small, factor = _shrink(rgb, detection_side(rgb.shape[:2], max_side, min_face)) if found.shrinks else (rgb, 1.0)
    boxes = found.detect(small, min_score, min_face)
    if found.alignment is not None:
        boxes = [box.reshaped(*found.alignment) for box in boxes]
    smallest = min_face * min(rgb.shape[:2])
    faces = [box.scaled(factor) for box in boxes if box.score >= min_score]
    return sorted((face for face in faces if face.side >= smallest), key=lambda b: -b.area)


def face_squares(image: Image.Image | np.ndarray, faces: FaceDetection) -> list[tuple[Box, float]]:
    """(square, detector score) per face, largest first: the squares that ``data crop`` cuts and evaluate, predict,
    serve and watch classify (``faces.margin`` of the face's size added on every side, kept inside the image)."""
    width, height = image.size if isinstance(image, Image.Image) else (image.shape[1], image.shape[0])
    found = detect_faces(image, faces.detector, faces.min_score, max_side=faces.detect_size, min_face=faces.min_face)
    return [(face.square(faces.cut_margin, width, height), face.score) for face in found]


def square_crop(rgb: np.ndarray, box: Sequence[int], size: int) -> np.ndarray:
    """The box of an H×W×3 uint8 image resized to ``size``×``size`` (what the model sees)."""
    left, top, right, bottom = box
    return resize_square(Image.fromarray(rgb[top:bottom, left:right]), size)


def face_boxes(rgb: np.ndarray, faces: FaceDetection) -> tuple[list[Box], list[float | None]]:
    """Squares to classify in an H×W×3 image, largest face first, and their detector scores; without a face,
    the whole image with score None."""
    squares = face_squares(rgb, faces)
    if not squares:
        height, width = rgb.shape[:2]
        return [(0, 0, width, height)], [None]
    return [box for box, _ in squares], [score for _, score in squares]


def detection_side(shape: tuple[int, int], max_side: int, min_face: float) -> int:
    """The longest side of the copy the detector sees (0: the image as it is), from ``max_side`` and ``min_face``."""
    if min_face <= 0:
        return max_side
    side = math.ceil(max(shape) * MIN_FACE_PIXELS / (min_face * min(shape)))
    return min(side, max_side) if max_side > 0 else side


def _shrink(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``rgb`` resized so that its longer side is at most ``max_side``, and the factor back to full size."""
    longest = max(rgb.shape[:2])
    if max_side <= 0 or longest <= max_side:
        return rgb, 1.0
    factor = longest / max_side
    size = (max(1, round(rgb.shape[1] / factor)), max(1, round(rgb.shape[0] / factor)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR)), factor
