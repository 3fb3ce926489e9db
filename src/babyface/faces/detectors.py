"""Face detection with weights that ship with babyface or inside pip packages (nothing is downloaded at run time).

``blazeface`` (MediaPipe's short-range model on onnxruntime, about 1/30 of MTCNN's time) finds faces for predict,
serve and watch; ``mtcnn`` (facenet-pytorch) cuts training crops (``data crop``) and frames evaluation;
``haar`` (OpenCV's frontal-face cascade) is the fallback that needs nothing else. Every detector returns boxes in
MTCNN's convention (see ``ALIGN_TO_MTCNN``), so a face is cut the same way whichever one found it. The imports
are lazy: babyface works without them until a face has to be found.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

from babyface.config import DEFAULT_DETECTOR, DEFAULT_MARGIN, DETECT_MAX_SIDE, DETECTOR_MIN_SCORES, DETECTORS
from babyface.data.images import resize_square
from babyface.errors import BabyfaceError

MTCNN_MIN_SIDE = 20  # facenet-pytorch's default min_face_size: no smaller image can hold a detectable face
MIN_FACE_PIXELS = 24  # with ``min_face``, images are shrunk until the smallest wanted face is this many pixels
# (width factor, height factor, centre shift down as a share of the height) that turn a detector's box into the box
# MTCNN draws around the same face: medians over the infant-cry-scenes and infant-web faces both found
# (benchmarks/face_detectors.py prints them). BlazeFace's and Haar's boxes are square and stop at the
# eyebrows; MTCNN's are taller and include the forehead, and the classifiers were trained on MTCNN's crops.
ALIGN_TO_MTCNN = {"blazeface": (1.08, 1.31, -0.08), "haar": (0.99, 1.25, 0.06)}


@dataclass(frozen=True)
class FaceBox:
    """A face in pixel coordinates of the image it was found in; ``score`` is the detector's confidence."""

    left: float
    top: float
    right: float
    bottom: float
    score: float

    @property
    def side(self) -> float:
        return max(self.right - self.left, self.bottom - self.top)

    @property
    def area(self) -> float:
        return max(0.0, self.right - self.left) * max(0.0, self.bottom - self.top)

    def square(self, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
        """A square around the face, ``margin`` of its size added on every side, shifted to stay inside the image."""
        side = round(min(self.side * (1 + 2 * margin), width, height))
        cx, cy = (self.left + self.right) / 2, (self.top + self.bottom) / 2
        left = min(max(round(cx - side / 2), 0), width - side)
        top = min(max(round(cy - side / 2), 0), height - side)
        return left, top, left + side, top + side

    def reshaped(self, width_factor: float, height_factor: float, shift_down: float) -> "FaceBox":
        """The box resized about its centre and moved down by ``shift_down`` of its height (up when negative)."""
        width, height = self.right - self.left, self.bottom - self.top
        cx, cy = (self.left + self.right) / 2, (self.top + self.bottom) / 2 + shift_down * height
        half_w, half_h = width * width_factor / 2, height * height_factor / 2
        return FaceBox(cx - half_w, cy - half_h, cx + half_w, cy + half_h, self.score)

    def scaled(self, factor: float) -> "FaceBox":
        return FaceBox(self.left * factor, self.top * factor, self.right * factor, self.bottom * factor, self.score)

    def iou(self, other: "FaceBox") -> float:
        """Intersection over union of the two boxes (0 when they do not overlap)."""
        inter = FaceBox(max(self.left, other.left), max(self.top, other.top), min(self.right, other.right), min(self.bottom, other.bottom), 0)
        union = self.area + other.area - inter.area
        return inter.area / union if union > 0 else 0.0


def detect_faces(image: Image.Image | np.ndarray, detector: str = DEFAULT_DETECTOR, min_score: float | None = None,
                 max_side: int = 0, min_face: float = 0.0) -> list[FaceBox]:
    """Faces in an RGB image (PIL or H×W×3 uint8), largest first, those scoring under ``min_score`` dropped
    (None: the detector's own threshold, ``DETECTOR_MIN_SCORES``).

    ``max_side`` > 0 runs the detector on a copy shrunk to at most that many pixels per side (much faster on
    large images and video frames). ``min_face`` > 0 looks only for faces at least that share of the image's
    shorter side, on a copy shrunk until such a face is MIN_FACE_PIXELS wide (the time then hardly depends on
    the image size); 0 finds faces down to the detector's own floor. Boxes are always in the coordinates of ``image``.
    """
    rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.uint8)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    min_score = resolve_min_score(detector, min_score)
    if detector == "blazeface":  # it sees a 128-px copy whatever the image's size, so shrinking first gains nothing
        boxes, factor = _detect_blazeface(rgb, min_score), 1.0
    else:
        small, factor = _shrink(rgb, detection_side(rgb.shape[:2], max_side, min_face))
        boxes = _detect_mtcnn(small) if detector == "mtcnn" else _detect_haar(small, min_face)
    if detector in ALIGN_TO_MTCNN:
        boxes = [box.reshaped(*ALIGN_TO_MTCNN[detector]) for box in boxes]
    smallest = min_face * min(rgb.shape[:2])
    faces = [box.scaled(factor) for box in boxes if box.score >= min_score]
    return sorted((face for face in faces if face.side >= smallest), key=lambda b: -b.area)


def resolve_min_score(detector: str, min_score: float | None) -> float:
    """``min_score``, or the detector's own threshold when it is None; an unknown detector is an error."""
    if detector not in DETECTORS:
        raise BabyfaceError(f"--detector {detector!r}: use one of {', '.join(DETECTORS)}")
    return DETECTOR_MIN_SCORES[detector] if min_score is None else min_score


def face_squares(image: Image.Image | np.ndarray, detector: str = DEFAULT_DETECTOR, min_score: float | None = None,
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


def face_boxes(rgb: np.ndarray, detector: str = DEFAULT_DETECTOR, min_score: float | None = None, margin: float = DEFAULT_MARGIN,
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


def _detect_blazeface(rgb: np.ndarray, min_score: float) -> list[FaceBox]:
    from babyface.faces import blazeface

    return [FaceBox(*map(float, face)) for face in blazeface.detect(rgb, min_score)]


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
