"""Face detection with weights that ship inside pip packages (nothing is downloaded at run time).

``mtcnn`` (facenet-pytorch) is the default; ``haar`` (OpenCV's frontal-face cascade) is the fallback.
Both imports are lazy: babyface works without them until a face has to be found.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

from babyface.config import DEFAULT_DETECTOR, DEFAULT_MARGIN, DEFAULT_MIN_SCORE, DETECT_MAX_SIDE, DETECTORS
from babyface.data.images import resize_square
from babyface.errors import BabyfaceError

MTCNN_MIN_SIDE = 20  # facenet-pytorch's default min_face_size: no smaller image can hold a detectable face
MIN_FACE_PIXELS = 24  # with ``min_face``, images are shrunk until the smallest wanted face is this many pixels


@dataclass(frozen=True)
class FaceBox:
    """A face in pixel coordinates of the image it was found in; ``score`` is the detector's confidence."""

    left: float
    top: float
    right: float
    bottom: float
    score: float

    @property
    def area(self) -> float:
        return max(0.0, self.right - self.left) * max(0.0, self.bottom - self.top)

    def square(self, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
        """A square around the face, ``margin`` of its size added on every side, shifted to stay inside the image."""
        side = max(self.right - self.left, self.bottom - self.top) * (1 + 2 * margin)
        side = min(side, width, height)
        cx, cy = (self.left + self.right) / 2, (self.top + self.bottom) / 2
        left = min(max(cx - side / 2, 0), width - side)
        top = min(max(cy - side / 2, 0), height - side)
        return round(left), round(top), round(left + side), round(top + side)


    def scaled(self, factor: float) -> "FaceBox":
        return FaceBox(self.left * factor, self.top * factor, self.right * factor, self.bottom * factor, self.score)

    def iou(self, other: "FaceBox") -> float:
        """Intersection over union of the two boxes (0 when they do not overlap)."""
        inter = FaceBox(max(self.left, other.left), max(self.top, other.top), min(self.right, other.right), min(self.bottom, other.bottom), 0)
        union = self.area + other.area - inter.area
        return inter.area / union if union > 0 else 0.0


def detect_faces(image: Image.Image | np.ndarray, detector: str = DEFAULT_DETECTOR, min_score: float = DEFAULT_MIN_SCORE,
                 max_side: int = 0, min_face: float = 0.0) -> list[FaceBox]:
    """Faces in an RGB image (PIL or H×W×3 uint8), largest first, those scoring under ``min_score`` dropped.

    ``max_side`` > 0 runs the detector on a copy shrunk to at most that many pixels per side (much faster on
    large images and video frames). ``min_face`` > 0 looks only for faces at least that share of the image's
    shorter side, on a copy shrunk until such a face is MIN_FACE_PIXELS wide (the time then hardly depends on
    the image size); 0 finds faces down to the detector's own floor. Boxes are always in the coordinates of ``image``.
    """
    rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.uint8)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    small, factor = _shrink(rgb, detection_side(rgb.shape[:2], max_side, min_face))
    if detector == "mtcnn":
        boxes = _detect_mtcnn(small)
    elif detector == "haar":
        boxes = _detect_haar(small, min_face)
    else:
        raise BabyfaceError(f"--detector {detector!r}: use one of {', '.join(DETECTORS)}")
    return sorted((b.scaled(factor) for b in boxes if b.score >= min_score), key=lambda b: -b.area)


def face_squares(image: Image.Image | np.ndarray, detector: str = DEFAULT_DETECTOR, min_score: float = DEFAULT_MIN_SCORE,
                 margin: float = DEFAULT_MARGIN, max_side: int = DETECT_MAX_SIDE,
                 min_face: float = 0.0) -> list[tuple[tuple[int, int, int, int], float]]:
    """(square, detector score) per face, largest first: the squares that ``data crop`` cuts and evaluate, predict
    and serve classify (``margin`` of the face's size added on every side, kept inside the image)."""
    width, height = image.size if isinstance(image, Image.Image) else (image.shape[1], image.shape[0])
    faces = detect_faces(image, detector, min_score, max_side=max_side, min_face=min_face)
    return [(face.square(margin, width, height), face.score) for face in faces]


def square_crop(rgb: np.ndarray, box: Sequence[int], size: int) -> np.ndarray:
    """The box of an H×W×3 uint8 image resized to ``size``×``size`` (what the model sees)."""
    left, top, right, bottom = box
    return resize_square(Image.fromarray(rgb[top:bottom, left:right]), size)


def face_boxes(rgb: np.ndarray, detector: str = DEFAULT_DETECTOR, min_score: float = DEFAULT_MIN_SCORE, margin: float = DEFAULT_MARGIN,
               detect_size: int = DETECT_MAX_SIDE, min_face: float = 0.0) -> tuple[list[tuple[int, int, int, int]], list[float | None]]:
    """Squares to classify in an H×W×3 image, largest face first, and their detector scores; without a face,
    the whole image with score None."""
    squares = face_squares(rgb, detector, min_score, margin, max_side=detect_size, min_face=min_face)
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


@functools.lru_cache(maxsize=1)
def _mtcnn():
    try:
        from facenet_pytorch import MTCNN
    except ImportError:
        raise BabyfaceError("face detection needs facenet-pytorch: pip install facenet-pytorch==2.5.3 (or use --detector haar)") from None
    import torch

    mtcnn = MTCNN(keep_all=True, device="cpu", post_process=False, min_face_size=MTCNN_MIN_SIDE)
    for net in (mtcnn.pnet, mtcnn.rnet, mtcnn.onet):
        net.to(memory_format=torch.channels_last)  # same results; CPU max-pooling is up to 10× faster than on NCHW
    return mtcnn


def _detect_mtcnn(rgb: np.ndarray) -> list[FaceBox]:
    import torch

    if min(rgb.shape[:2]) < MTCNN_MIN_SIDE:
        return []  # smaller than MTCNN's first network window: facenet-pytorch would fail on an empty pyramid
    mtcnn = _mtcnn()  # built outside inference mode: its weights stay ordinary tensors
    with torch.inference_mode():
        boxes, scores = mtcnn.detect(Image.fromarray(rgb))
    if boxes is None:
        return []
    return [FaceBox(*map(float, box), float(score)) for box, score in zip(boxes, scores)]


@functools.lru_cache(maxsize=1)
def _haar():
    try:
        import cv2
    except ImportError:
        raise BabyfaceError("--detector haar needs OpenCV: pip install 'opencv-python-headless<5'") from None
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    if cascade.empty():
        raise BabyfaceError("OpenCV's Haar cascade files are missing (OpenCV 5 dropped them); pip install 'opencv-python-headless<5'")
    return cv2, cascade


def _detect_haar(rgb: np.ndarray, min_face: float = 0.0) -> list[FaceBox]:
    cv2, cascade = _haar()
    gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    smallest = round(min(gray.shape) * (min_face or 0.1))
    found, _, weights = cascade.detectMultiScale3(gray, scaleFactor=1.1, minNeighbors=5, minSize=(smallest, smallest),
                                                  outputRejectLevels=True)
    # level weights are unbounded margins; squash them to 0..1 so one --min-score works for both detectors
    return [FaceBox(float(x), float(y), float(x + w), float(y + h), float(1 / (1 + np.exp(-wt))))
            for (x, y, w, h), wt in zip(found, np.ravel(weights))]
