"""The Classifier: a trained run turned into calibrated probabilities for files, images, faces and crops."""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np
import torch
from PIL import Image

from babyface.bundle.single import Bundle
from babyface.config import FaceDetection
from babyface.data.images import display_path, is_image_file, load_rgb, to_rgb
from babyface.data.inputs import expand_inputs
from babyface.errors import BabyfaceError, DataError
from babyface.faces.detectors import Box, face_boxes, square_crop
from babyface.faces.framing import Framing, decode_framed, found_text, framed_view
from babyface.forward import logits_with_tta, resolve_device, tta_views
from babyface.inference.backends import Backend, TorchBackend, open_backend
from babyface.inference.calibration import calibrated_probabilities
from babyface.outputs import csv_text
from babyface.run import META_FILE, ModelMeta, RunFolder

log = logging.getLogger("babyface")
UNCERTAIN = "uncertain"


@dataclass
class Prediction:
    file: str
    label: str
    confidence: float
    probabilities: dict[str, float]
    face_found: bool | None = None  # None: not looked for (--framing whole); False: the whole image was classified
    measures: dict[str, float] | None = None  # predict --measures: the classified face's measures (babyface.measures)
    infant: float | None = None  # probability that the face is an infant's (a run trained with --adults); else None


@dataclass
class FacePrediction:
    """One face of a photo or frame: the square that was classified and what the model says about it."""

    box: tuple[int, int, int, int]  # left, top, right, bottom in pixels of the image
    face_detected: bool  # False: no face was found and the whole image was classified
    detector_score: float | None
    label: str
    confidence: float
    probabilities: dict[str, float]
    infant: float | None = None  # probability that the face is an infant's (a run trained with --adults); else None


@dataclass
class FoundFaces:
    """The squares of an image to classify, largest face first (without a face: the whole image, score None), their
    detector scores and their crops at the model's size."""

    boxes: list[Box]
    scores: list[float | None]
    crops: list[np.ndarray]


ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray]
Classify = Callable[[Sequence[np.ndarray]], torch.Tensor]  # crops at the model's size -> probabilities N×C


class Classifier:
    """A trained run ready to classify, and the one path from a bundle to probabilities that evaluate, predict, serve,
    video, explain, export and the Python API share: framing, normalisation, test-time augmentation, temperature,
    abstention and the torch or ONNX back end.

    ``backend``: 'torch', 'onnx' (``onnx_file``, default RUN/model.onnx) or 'auto' (onnx when an exported model of this
    run exists and onnxruntime is installed, else torch); see ``babyface.inference.backends``. ``tta='flip'`` averages
    the calibrated probabilities of each image and its mirror. Below ``min_confidence`` the label is ``uncertain``.
    ``framing`` is how ``predict`` frames photos (default ``auto``: as the bundle's training images were framed, the
    square around the largest face, as ``data crop`` cuts it, when the bundle does not say).
    ``precision`` is the PyTorch back end's number format: auto (bf16 where the hardware computes it natively, else
    fp32), fp32 or bf16; an ONNX file carries its own. ``channels_last`` its memory layout: auto (measured), on, off.
    """

    def __init__(self, run: str | os.PathLike, device: str = "auto", batch_size: int = 64, min_confidence: float = 0.0,
                 backend: str = "auto", onnx_file: str = "", tta: str = "none", framing: Framing | None = None,
                 precision: str = "auto", channels_last: str = "auto"):
        self.run = Path(run)
        self.device = resolve_device(device)
        self.backend: Backend = open_backend(run, backend, self.device, onnx_file, precision, channels_last, batch_size)
        self.batch_size = batch_size
        self.min_confidence = min_confidence
        self.tta = tta
        self.framing = (framing or Framing("auto", FaceDetection())).for_bundle(self.meta)
        tta_views(torch.zeros(0, 3, 1, 1), tta)  # an unknown --tta fails here, not at the first image

    def __repr__(self) -> str:
        return (f"Classifier({display_path(self.run)!r}: {self.meta.arch.name}, classes {self.classes}, "
                f"{self.image_size}px, backend {self.backend.name} {self.backend.precision}, tta {self.tta})")

    @property
    def meta(self) -> ModelMeta:
        """The bundle's model.json (whichever backend runs the model)."""
        return self.backend.meta

    @property
    def classes(self) -> list[str]:
        """The classes decisions and probabilities are over: the task's, which may be fewer than the model learned."""
        return self.meta.decides_over

    @property
    def image_size(self) -> int:
        return self.meta.image_size

    @property
    def temperature(self) -> float:
        return self.meta.temperature

    @property
    def bundle(self) -> Bundle:
        """The PyTorch bundle (model, normalisation): for Grad-CAM and export, which need the torch model itself."""
        if not isinstance(self.backend, TorchBackend):
            raise BabyfaceError(f"{display_path(self.run)}: this needs the PyTorch model; use backend='torch'")
        return self.backend.bundle

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N×3×S×S at the bundle's size → logits N×C (float32, CPU) of the decision classes, without test-time
        augmentation; a softmax over them is the model's distribution given that the face shows one of them."""
        logits = self.backend.logits(images, self.batch_size)
        index = self.meta.decision_index
        return logits if index is None else logits[:, index]

    def view_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits N×C, or V×N×C with test-time augmentation (one slice per view); ``calibrate`` turns either into
        probabilities."""
        return logits_with_tta(self.logits, images, self.tta)

    def calibrate(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits (N×C or V×N×C) → calibrated probabilities N×C, averaged over the views."""
        return calibrated_probabilities(logits, self.temperature)

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N×3×S×S at the bundle's size → calibrated probabilities N×C (averaged over the TTA views)."""
        return self.calibrate(self.view_logits(images))

    def predict(self, inputs: ImageInput | Sequence[ImageInput]) -> Prediction | list[Prediction]:
        """Classify one image (a file path, a PIL image or an H×W×3 / H×W uint8 array) or a list of them; each is framed
        as ``self.framing`` says. One input gives one Prediction, a list gives a list."""
        if isinstance(inputs, (list, tuple)):
            return [self._predict_one(item) for item in inputs]
        return self._predict_one(inputs)

    def _predict_one(self, item: ImageInput) -> Prediction:
        if isinstance(item, (str, os.PathLike)):
            name, image = display_path(item), load_rgb(item)
        else:
            name, image = "<image>", as_rgb_image(item)
        pixels, box = framed_view(image, self.framing, self.image_size)
        images = torch.from_numpy(np.array(pixels)).permute(2, 0, 1)[None]
        infant = self.infant_probabilities(images)
        return Prediction(name, *self.label(self.probabilities(images)[0]),
                          face_found=None if self.framing.mode == "whole" else box is not None,
                          infant=None if infant is None else float(infant[0]))

    def predict_files(self, paths: Sequence[Path], strict: bool = False, progress: bool = False,
                      framing: Framing | None = None) -> tuple[list[Prediction], list[str]]:
        """One prediction per decodable file, each image framed as ``framing`` (default ``self.framing``) says;
        the names of the files skipped."""
        framed = decode_framed(paths, None, self.image_size, framing or self.framing, strict=strict, progress=progress, desc="predict")
        decoded = framed.decoded
        if len(decoded) == 0:
            return [], decoded.skipped
        probs = self.probabilities(decoded.images)
        infant = self.infant_probabilities(decoded.images)
        return [Prediction(display_path(p), *self.label(row), face_found=found, infant=None if infant is None else float(infant[i]))
                for i, (p, row, found) in enumerate(zip(decoded.paths, probs, framed.face_found))], decoded.skipped

    def classify_boxes(self, rgb: np.ndarray, boxes: Sequence[Sequence[int]]) -> torch.Tensor:
        """Probabilities N×C for square boxes of an H×W×3 uint8 image."""
        return self.classify_crops(self.crops(rgb, boxes))

    def classify_crops(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        """Probabilities N×C for S×S×3 uint8 crops at the bundle's size."""
        return self.probabilities(torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2))

    def crops(self, rgb: np.ndarray, boxes: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """The square boxes of an H×W×3 uint8 image at the bundle's size."""
        return [square_crop(rgb, box, self.image_size) for box in boxes]

    def predict_faces(self, image: ImageInput, faces: FaceDetection | None = None,
                      classify: Classify | None = None) -> list[FacePrediction]:
        """Every face found in an image (``faces``: how; default FaceDetection's), largest first; without one, the whole
        image as one (``face_detected`` False). ``classify`` replaces ``classify_crops`` for the crops (serve's
        micro-batcher classifies several requests' crops together)."""
        return self.classify_faces(self.find_faces(image, faces), classify)

    def faces_for(self, faces: FaceDetection | None = None) -> FaceDetection:
        """``faces`` (default FaceDetection's) with an auto margin resolved to the one this model's faces were cut
        with in training: how photos, videos, serve and watch cut faces for it."""
        return (faces or FaceDetection()).cut_as(self.framing.faces.cut_margin)

    def find_faces(self, image: ImageInput, faces: FaceDetection | None = None) -> FoundFaces:
        """The first half of ``predict_faces``: detect and cut."""
        image = load_rgb(image) if isinstance(image, (str, os.PathLike)) else as_rgb_image(image)
        rgb = np.asarray(image, dtype=np.uint8)
        boxes, scores = face_boxes(rgb, self.faces_for(faces))
        return FoundFaces(boxes, scores, self.crops(rgb, boxes))

    def classify_faces(self, found: FoundFaces, classify: Classify | None = None) -> list[FacePrediction]:
        """The second half of ``predict_faces``: the crops classified (by ``classify``, default ``classify_crops``)."""
        probs = (classify or self.classify_crops)(found.crops)
        infant = self.infant_probabilities(found.crops)
        return [FacePrediction(tuple(box), score is not None, score, *self.label(row), None if infant is None else float(infant[i]))
                for i, (box, score, row) in enumerate(zip(found.boxes, found.scores, probs))]

    @functools.cached_property
    def who(self) -> Classifier | None:
        """RUN/who/, the infant-vs-adult model of a run trained with --adults (None without one)."""
        folder = RunFolder(self.run).who
        if not (folder / META_FILE).is_file():
            return None
        return Classifier(folder, device=str(self.device), batch_size=self.batch_size, backend="torch",
                          framing=Framing("whole", FaceDetection()))

    def infant_probabilities(self, images: torch.Tensor | Sequence[np.ndarray]) -> np.ndarray | None:
        """For each face (uint8 N×3×S×S, or S×S×3 crops), the probability that it shows an infant; None without
        RUN/who/."""
        who = self.who
        if who is None or not len(images):
            return None
        if not isinstance(images, torch.Tensor):
            images = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
        if images.shape[-1] != who.image_size:
            images = torch.nn.functional.interpolate(images.float(), size=who.image_size, mode="bilinear", antialias=True)
            images = images.round().clamp(0, 255).to(torch.uint8)
        return who.probabilities(images)[:, who.classes.index("infant")].numpy()

    def label(self, probs: torch.Tensor) -> tuple[str, float, dict[str, float]]:
        """The most probable class (or UNCERTAIN, abstention, under ``min_confidence``), its probability, all of them."""
        values = probs.tolist()
        best = int(probs.argmax())
        label = self.classes[best] if values[best] >= self.min_confidence else UNCERTAIN
        return label, values[best], dict(zip(self.classes, values))


def as_rgb_image(image: Image.Image | np.ndarray) -> Image.Image:
    """A PIL image (any mode) or a uint8 array (H×W gray, H×W×3 RGB, H×W×4 RGBA) as an RGB PIL image."""
    if isinstance(image, Image.Image):
        return to_rgb(image)
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise DataError(f"image array of shape {array.shape} and dtype {array.dtype}: give uint8 H×W, H×W×3 (RGB) or H×W×4")
    return to_rgb(Image.fromarray(array))


def collect_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Expand files and folders (recursively, image extensions only, sorted); a missing input is an error."""
    return expand_inputs(inputs, is_image_file, "image files")


def format_predictions(predictions: Sequence[Prediction], classes: Sequence[str], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([p.__dict__ for p in predictions], indent=2, allow_nan=False) + "\n"
    measures = _measure_names(predictions)
    infant = any(p.infant is not None for p in predictions)
    if fmt == "csv":
        rows = [[p.file, p.label, f"{p.confidence:.6f}", *(f"{p.probabilities[c]:.6f}" for c in classes), found_text(p.face_found),
                 *([f"{p.infant:.6f}"] if infant and p.infant is not None else [""] if infant else []),
                 *((p.measures or {}).get(m, "") for m in measures)] for p in predictions]
        return csv_text(["file", "label", "confidence", *(f"p_{c}" for c in classes), "face_found",
                         *(["p_infant"] if infant else []), *measures], rows)
    return _table(predictions, classes, measures, infant)


def _measure_names(predictions: Sequence[Prediction]) -> list[str]:
    """The measure columns (``predict --measures``), in their order, or none."""
    return next((list(p.measures) for p in predictions if p.measures), [])


def _table(predictions: Sequence[Prediction], classes: Sequence[str], measures: Sequence[str] = (), infant: bool = False) -> str:
    width = max([len("file")] + [len(p.file) for p in predictions])
    header = (f"{'file':<{width}}  {'label':<10} " + " ".join(f"{c:>9}" for c in classes) + "  face_found"
              + ("  infant" if infant else "") + "".join(f"  {m}" for m in measures))
    lines = [header, "-" * len(header)]
    for p in predictions:
        values = p.measures or {}
        lines.append(f"{p.file:<{width}}  {p.label:<10} " + " ".join(f"{p.probabilities[c]:>9.3f}" for c in classes)
                     + f"  {found_text(p.face_found) or '-':<{10 if measures or infant else 0}}"
                     + (f"  {p.infant:>6.3f}" if infant and p.infant is not None else "       -" if infant else "")
                     + "".join(f"  {values[m]:>{len(m)}g}" if m in values else f"  {'-':>{len(m)}}" for m in measures))
    return "\n".join(lines) + "\n"
