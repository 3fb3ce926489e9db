"""OpenCV's frontal-face Haar cascade: the fallback detector that needs nothing but OpenCV."""

from __future__ import annotations

import functools

import numpy as np

from babyface.errors import BabyfaceError
from babyface.faces.boxes import FaceBox
from babyface.faces.registry import FaceDetector, register_detector


@register_detector("haar")
class Haar(FaceDetector):
    description = "OpenCV's Haar cascade, misses many infant faces"
    min_score = 0.9
    alignment = (0.99, 1.25, 0.06)  # its square box stops at the eyebrows (medians of benchmarks/face_detectors.py)
    detect_every = 5

    def detect(self, rgb: np.ndarray, min_score: float, min_face: float = 0.0) -> list[FaceBox]:
        cv2, cascade = _haar()
        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        smallest = round(min(gray.shape) * (min_face or 0.1))
        found, _, weights = cascade.detectMultiScale3(gray, scaleFactor=1.1, minNeighbors=5, minSize=(smallest, smallest),
                                                      outputRejectLevels=True)
        # level weights are unbounded margins; squash them to 0..1 so one --min-score works for every detector
        return [FaceBox(float(x), float(y), float(x + w), float(y + h), float(1 / (1 + np.exp(-wt))))
                for (x, y, w, h), wt in zip(found, np.ravel(weights))]


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
