"""Prediction on image files and folders with a trained bundle: probabilities for every class."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from babyface.bundle.single import meta_temperature
from babyface.data.faces import DEFAULT_DETECTOR, DEFAULT_MARGIN, DEFAULT_MIN_SCORE, DETECT_MAX_SIDE, face_squares
from babyface.data.framing import Framing, decode_framed, found_text
from babyface.data.images import display_path, is_image_file, resize_square
from babyface.engine import logits_with_tta, resolve_device
from babyface.errors import DataError
from babyface.inference.backends import Backend, open_backend
from babyface.inference.calibration import calibrated_probabilities
from babyface.io import csv_text

log = logging.getLogger("babyface")
UNCERTAIN = "uncertain"


@dataclass
class Prediction:
    file: str
    label: str
    confidence: float
    probabilities: dict[str, float]
    face_found: bool | None = None  # None: not looked for (--framing whole); False: the whole image was classified


@dataclass
class FacePrediction:
    """One face of a photo or frame: the square that was classified and what the model says about it."""

    box: tuple[int, int, int, int]  # left, top, right, bottom in pixels of the image
    face_detected: bool  # False: no face was found and the whole image was classified
    detector_score: float | None
    label: str
    confidence: float
    probabilities: dict[str, float]


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


class Predictor:
    """Loads a bundle once; ``predict_files`` and ``predict_images`` can then be called many times.

    ``backend``: 'torch', 'onnx' (``onnx_file``, default RUN/model.onnx) or 'auto' (onnx when an exported model
    of this run exists and onnxruntime is installed, else torch); see ``babyface.inference.backends``. ``tta='flip'`` averages
    the calibrated probabilities of each image and its mirror (the backend runs the mirrored batch too).
    """

    def __init__(self, run: str | os.PathLike, device: str = "auto", batch_size: int = 64, min_confidence: float = 0.0,
                 backend: str = "auto", onnx_file: str = "", tta: str = "none"):
        self.device = resolve_device(device)
        self.backend: Backend = open_backend(run, backend, self.device, onnx_file)
        self.batch_size = batch_size
        self.min_confidence = min_confidence
        self.tta = tta

    @property
    def meta(self) -> dict:
        """The bundle's model.json (whichever backend runs the model)."""
        return self.backend.meta

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def image_size(self) -> int:
        return int(self.meta["image_size"])

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N×3×S×S at the bundle's size → logits N×C (float32, CPU), without test-time augmentation."""
        return self.backend.logits(images, self.batch_size)

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N×3×S×S at the bundle's size → calibrated probabilities N×C (averaged over the TTA views)."""
        return calibrated_probabilities(logits_with_tta(self.logits, images, self.tta), meta_temperature(self.meta))

    def predict_files(self, paths: Sequence[Path], strict: bool = False, progress: bool = False,
                      framing: Framing = Framing()) -> tuple[list[Prediction], list[str]]:
        """One prediction per decodable file, each image framed as ``framing`` says (by default the square around its
        largest face, as ``data crop`` cuts it); the names of the files skipped."""
        framed = decode_framed(paths, None, self.image_size, framing, strict=strict, progress=progress, desc="predict")
        decoded = framed.decoded
        if len(decoded) == 0:
            return [], decoded.skipped
        probs = self.probabilities(decoded.images)
        return [Prediction(display_path(p), *self.label(row), face_found=found)
                for p, row, found in zip(decoded.paths, probs, framed.face_found)], decoded.skipped

    def classify_boxes(self, rgb: np.ndarray, boxes: Sequence[Sequence[int]]) -> torch.Tensor:
        """Probabilities N×C for square boxes of an H×W×3 uint8 image."""
        return self.classify_crops([square_crop(rgb, box, self.image_size) for box in boxes])

    def classify_crops(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        """Probabilities N×C for S×S×3 uint8 crops at the bundle's size."""
        return self.probabilities(torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2))

    def predict_faces(self, image: Image.Image | np.ndarray, detector: str = DEFAULT_DETECTOR, min_score: float = DEFAULT_MIN_SCORE,
                      margin: float = DEFAULT_MARGIN, detect_size: int = DETECT_MAX_SIDE, min_face: float = 0.0) -> list[FacePrediction]:
        """Every face found in an RGB image, largest first; without one, the whole image as one (``face_detected`` False)."""
        rgb = np.asarray(image, dtype=np.uint8)
        boxes, scores = face_boxes(rgb, detector, min_score, margin, detect_size, min_face)
        return self.face_predictions(boxes, scores, self.classify_boxes(rgb, boxes))

    def face_predictions(self, boxes: Sequence[Sequence[int]], scores: Sequence[float | None], probs: torch.Tensor) -> list[FacePrediction]:
        """``face_boxes``' boxes and scores with the classifier's probabilities for them."""
        return [FacePrediction(tuple(box), score is not None, score, *self.label(row)) for box, score, row in zip(boxes, scores, probs)]

    def label(self, probs: torch.Tensor) -> tuple[str, float, dict[str, float]]:
        """The most probable class (or UNCERTAIN, abstention, under ``min_confidence``), its probability, all of them."""
        values = probs.tolist()
        best = int(probs.argmax())
        label = self.classes[best] if values[best] >= self.min_confidence else UNCERTAIN
        return label, values[best], dict(zip(self.classes, values))


def collect_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Expand files and folders (recursively, image extensions only, sorted); a missing input is an error."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths.extend(sorted(p for p in path.rglob("*") if p.is_file() and is_image_file(p)))
        elif path.is_file():
            paths.append(path)
        else:
            raise DataError(f"{display_path(path)}: no such file or folder; check the path")
    if not paths:
        raise DataError(f"no image files found in {', '.join(display_path(i) for i in inputs)}; give image files or folders holding them")
    return paths


def format_predictions(predictions: Sequence[Prediction], classes: Sequence[str], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([p.__dict__ for p in predictions], indent=2) + "\n"
    if fmt == "csv":
        rows = [[p.file, p.label, f"{p.confidence:.6f}", *(f"{p.probabilities[c]:.6f}" for c in classes), found_text(p.face_found)]
                for p in predictions]
        return csv_text(["file", "label", "confidence", *(f"p_{c}" for c in classes), "face_found"], rows)
    return _table(predictions, classes)


def _table(predictions: Sequence[Prediction], classes: Sequence[str]) -> str:
    width = max([len("file")] + [len(p.file) for p in predictions])
    header = f"{'file':<{width}}  {'label':<10} " + " ".join(f"{c:>9}" for c in classes) + "  face_found"
    lines = [header, "-" * len(header)]
    for p in predictions:
        lines.append(f"{p.file:<{width}}  {p.label:<10} " + " ".join(f"{p.probabilities[c]:>9.3f}" for c in classes)
                     + f"  {found_text(p.face_found) or '-'}")
    return "\n".join(lines) + "\n"
