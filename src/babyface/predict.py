"""Prediction on image files and folders with a trained bundle: probabilities for every class."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from .backends import Backend, open_backend
from .bundle import meta_temperature
from .calibration import calibrated_probabilities
from .data.decoded import decode_images
from .data.images import display_path, is_image_file
from .engine import resolve_device
from .errors import DataError
from .io import csv_text

log = logging.getLogger("babyface")
UNCERTAIN = "uncertain"


@dataclass
class Prediction:
    file: str
    label: str
    confidence: float
    probabilities: dict[str, float]


class Predictor:
    """Loads a bundle once; ``predict_files`` and ``predict_images`` can then be called many times.

    ``backend``: 'torch', 'onnx' (``onnx_file``, default RUN/model.onnx) or 'auto' (onnx when an exported model
    of this run exists and onnxruntime is installed, else torch); see ``babyface.backends``.
    """

    def __init__(self, run: str | os.PathLike, device: str = "auto", batch_size: int = 64, min_confidence: float = 0.0,
                 backend: str = "auto", onnx_file: str = ""):
        self.device = resolve_device(device)
        self.backend: Backend = open_backend(run, backend, self.device, onnx_file)
        self.batch_size = batch_size
        self.min_confidence = min_confidence

    @property
    def classes(self) -> list[str]:
        return list(self.backend.meta["classes"])

    @property
    def image_size(self) -> int:
        return int(self.backend.meta["image_size"])

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N×3×S×S at the bundle's size → logits N×C (float32, CPU)."""
        return self.backend.logits(images, self.batch_size)

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N×3×S×S at the bundle's size → calibrated probabilities N×C."""
        return calibrated_probabilities(self.logits(images), meta_temperature(self.backend.meta))

    def predict_files(self, paths: Sequence[Path], strict: bool = False, progress: bool = False) -> tuple[list[Prediction], list[str]]:
        decoded = decode_images(paths, None, self.image_size, strict=strict, progress=progress, desc="predict")
        if len(decoded) == 0:
            return [], decoded.skipped
        probs = self.probabilities(decoded.images)
        return [self._prediction(display_path(p), row) for p, row in zip(decoded.paths, probs)], decoded.skipped

    def _prediction(self, name: str, probs: torch.Tensor) -> Prediction:
        """The most probable class, or UNCERTAIN (abstention) when its probability is under ``min_confidence``."""
        values = probs.tolist()
        best = int(probs.argmax())
        label = self.classes[best] if values[best] >= self.min_confidence else UNCERTAIN
        return Prediction(name, label, values[best], dict(zip(self.classes, values)))


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
        rows = [[p.file, p.label, f"{p.confidence:.6f}", *(f"{p.probabilities[c]:.6f}" for c in classes)] for p in predictions]
        return csv_text(["file", "label", "confidence", *(f"p_{c}" for c in classes)], rows)
    return _table(predictions, classes)


def _table(predictions: Sequence[Prediction], classes: Sequence[str]) -> str:
    width = max([len("file")] + [len(p.file) for p in predictions])
    header = f"{'file':<{width}}  {'label':<10} " + " ".join(f"{c:>9}" for c in classes)
    lines = [header, "-" * len(header)]
    for p in predictions:
        lines.append(f"{p.file:<{width}}  {p.label:<10} " + " ".join(f"{p.probabilities[c]:>9.3f}" for c in classes))
    return "\n".join(lines) + "\n"
