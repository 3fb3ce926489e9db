"""How images are framed before the model sees them, the same way everywhere.

``face``: the square around the largest detected face, ``margin`` of its size added on every side (what
``babyface data crop`` writes and ``serve`` and video classify); without a face, the whole image. ``whole``: the
image as given, squashed to the model's size. ``data crop`` records its settings in OUT/framing.json, training
records the framing of its images in model.json, and evaluate and predict warn when they frame differently.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from babyface.config import DEFAULT_DETECTOR, DEFAULT_MARGIN, FaceDetection, TrainingCropDetection
from babyface.data.decoded import DecodedImages, decode_images
from babyface.data.images import DEFAULT_MAX_PIXELS, display_path, load_resized, load_rgb, resize_square
from babyface.errors import BabyfaceError
from babyface.faces.detectors import face_squares, resolve_min_score
from babyface.outputs import write_json
from babyface.run import ModelMeta

log = logging.getLogger("babyface")

FRAMING_FILE = "framing.json"  # written by `data crop` into its output folder (and kept by `data split`)
Box = tuple[int, int, int, int]  # left, top, right, bottom in pixels


@dataclass(frozen=True)
class Framing:
    """How images are framed for the model: ``mode`` and, for face, how faces are found and cut (by default as the
    training crops were: ``data crop``'s settings)."""

    mode: str = "face"  # face | whole, or auto: as the bundle records (``for_bundle``)
    faces: FaceDetection = field(default_factory=TrainingCropDetection)

    def __post_init__(self) -> None:
        if self.mode == "whole":
            return
        score = resolve_min_score(self.faces.detector, self.faces.min_score)  # an unknown detector fails here
        if score != self.faces.min_score:  # None: the detector's own threshold, which is what gets recorded
            object.__setattr__(self, "faces", self.faces.replace(min_score=score))

    def for_bundle(self, meta: ModelMeta) -> Framing:
        """``auto`` resolved to the framing of the bundle's training images (face when it records none); an explicit
        face or whole is kept as it is. An auto margin becomes the one the bundle's faces were cut with."""
        trained = bundle_framing(meta)
        framing = replace(self, faces=self.faces.cut_as(trained_margin(trained)))
        if self.mode != "auto":
            return framing
        return replace(framing, mode="whole" if trained is not None and trained["mode"] == "whole" else "face")

    @classmethod
    def from_config(cls, config: Any) -> Framing:
        """From a config with ``framing`` and ``faces`` (EvalConfig, PredictConfig)."""
        return cls(config.framing, config.faces)

    def record(self) -> dict[str, Any]:
        """As model.json and framing.json store it: how faces were cut (how fast they were found is not recorded)."""
        if self.mode == "whole":
            return {"mode": "whole"}
        return {"mode": "face", "detector": self.faces.detector, "margin": self.faces.cut_margin,
                "min_score": self.faces.min_score}


WHOLE = Framing("whole").record()


def describe(record: dict[str, Any]) -> str:
    if record.get("mode") != "face":
        return "whole images as given"
    min_score = record.get("min_score")
    return (f"face crops (detector {record.get('detector')}, margin {record.get('margin')}, min score "
            f"{'auto' if min_score is None else min_score})")


# ---------------------------------------------------------------- images as the model sees them


@dataclass
class FramedImages:
    """Decoded images as framed for the model, with per image the square cut out (None: the whole image) and
    whether a face was found (None: not looked for, ``--framing whole``)."""

    decoded: DecodedImages
    boxes: list[Box | None]
    face_found: list[bool | None]

    @property
    def no_face(self) -> int:
        return sum(found is False for found in self.face_found)


def found_text(found: bool | None) -> str:
    """A ``face_found`` value for CSV: 'true' / 'false', or '' when no face was looked for (--framing whole)."""
    return "" if found is None else str(found).lower()


class FaceCropper:
    """Loads an image file and returns the model's view of the square around its largest face (else the whole
    image), remembering the square per file; callable from several threads."""

    def __init__(self, framing: Framing, size: int, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.framing, self.size, self.max_pixels = framing, size, max_pixels
        self.boxes: dict[Path, Box | None] = {}

    def __call__(self, path: Path) -> np.ndarray:
        pixels, self.boxes[path] = framed_view(load_rgb(path, max_pixels=self.max_pixels), self.framing, self.size)
        return pixels


def framed_view(image: Image.Image, framing: Framing, size: int) -> tuple[np.ndarray, Box | None]:
    """An RGB image as the model sees it under ``framing`` (size×size×3 uint8), and the square cut out of it (None:
    the whole image, because of --framing whole or because no face was found)."""
    box = largest_face_square(image, framing) if framing.mode == "face" else None
    return resize_square(image.crop(box) if box else image, size), box


def largest_face_square(image: Image.Image, framing: Framing) -> Box | None:
    """The square that ``data crop`` cuts around the largest face of an RGB image, or None without a face."""
    squares = face_squares(image, framing.faces)
    return squares[0][0] if squares else None


def decode_framed(paths: Sequence[Path], labels: Sequence[int] | None, size: int, framing: Framing, *,
                  max_pixels: int = DEFAULT_MAX_PIXELS, strict: bool = False, progress: bool = True,
                  desc: str = "decode") -> FramedImages:
    """``decode_images`` with each image framed as ``framing`` says (faces detected one image at a time, in threads);
    logs one line counting the images in which no face was found (those are classified whole)."""
    if framing.mode == "whole":
        decoded = decode_images(paths, labels, size, max_pixels=max_pixels, strict=strict, progress=progress, desc=desc)
        return FramedImages(decoded, [None] * len(decoded), [None] * len(decoded))
    cropper = FaceCropper(framing, size, max_pixels)
    decoded = decode_images(paths, labels, size, max_pixels=max_pixels, strict=strict, progress=progress,
                            desc=f"{desc} (face detection)", loader=cropper)
    boxes = [cropper.boxes[path] for path in decoded.paths]
    framed = FramedImages(decoded, boxes, [box is not None for box in boxes])
    if framed.no_face:
        log.info("no face found in %d of %d image(s) (%s, min score %s): those were classified whole (face_found false)",
                 framed.no_face, len(decoded), framing.faces.detector, framing.faces.min_score)
    return framed


def load_framed(path: Path, box: Box | None, size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The ``box`` of an image file (the whole image when None) at ``size``×``size``: e.g. a grid tile of what the model saw."""
    if box is None:
        return load_resized(path, size, max_pixels=max_pixels)
    return resize_square(load_rgb(path, max_pixels=max_pixels).crop(box), size)


# ---------------------------------------------------------------- what the training images were


def write_framing_file(folder: str | os.PathLike, framing: Framing) -> Path:
    return write_json(Path(folder) / FRAMING_FILE, framing.record())


def read_framing_file(folder: str | os.PathLike) -> dict[str, Any] | None:
    """FOLDER/framing.json when it holds a framing record, else None (a folder not written by ``data crop``)."""
    path = Path(folder) / FRAMING_FILE
    try:
        return parse_record(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def copy_framing_file(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Keep framing.json when a cropped folder is re-laid out (``data split``)."""
    record = read_framing_file(source)
    if record is not None:
        write_json(Path(target) / FRAMING_FILE, record)


def parse_record(record: Any) -> dict[str, Any] | None:
    """A framing record as ``Framing.record`` writes it (missing settings: the defaults), or None when it is not one."""
    if not isinstance(record, dict) or record.get("mode") not in ("face", "whole"):
        return None
    if record["mode"] == "whole":
        return WHOLE
    try:
        faces = TrainingCropDetection(detector=str(record.get("detector", DEFAULT_DETECTOR)),
                                      margin=float(record.get("margin", DEFAULT_MARGIN)), min_score=record.get("min_score"))
        return Framing("face", faces).record()
    except (TypeError, ValueError, BabyfaceError):
        return None


def training_framing(declared: str, sources: Sequence[str | os.PathLike], margin: float | None = None) -> dict[str, Any]:
    """model.json's ``framing`` for training on ``sources``. ``auto``: face crops when every source folder was written
    by ``data crop`` (its framing.json), else whole images; ``face`` / ``whole``: as declared (face with the settings
    the folders record, else with ``data crop``'s defaults). A ``margin`` replaces the recorded one for face framing."""
    if declared == "whole":
        return WHOLE
    framing = _training_framing(declared, sources)
    return framing if margin is None or framing["mode"] != "face" else {**framing, "margin": margin}


def _training_framing(declared: str, sources: Sequence[str | os.PathLike]) -> dict[str, Any]:
    records = [read_framing_file(source) for source in sources]
    faces = [r for r in records if r is not None and r["mode"] == "face"]
    if declared == "auto" and (not faces or len(faces) < len(records)):
        return WHOLE
    if not faces:
        return Framing().record()
    if any(r != faces[0] for r in faces[1:]):
        log.warning("WARNING: the sources were cropped with different settings (%s); model.json records the first's",
                    "; ".join(describe(r) for r in faces))
    return faces[0]


def bundle_framing(meta: ModelMeta) -> dict[str, Any] | None:
    """The framing a bundle's model.json records, or None when unknown (bundles from before it was recorded)."""
    return None if meta.framing is None else parse_record(meta.framing.model_dump(exclude_none=True))


def shared_framing(metas: Sequence[ModelMeta]) -> dict[str, Any] | None:
    """The framing of an ensemble: its members' when they all record the same one, else None (unknown)."""
    records = [bundle_framing(meta) for meta in metas]
    if records[0] is not None and all(r == records[0] for r in records[1:]):
        return records[0]
    if any(records):
        log.warning("WARNING: the members were trained on differently framed images (%s); the ensemble records none",
                    "; ".join(describe(r) if r else "unknown" for r in records))
    return None


# ---------------------------------------------------------------- test time against training time


def trained_margin(trained: dict[str, Any] | None) -> float:
    """The margin a bundle's faces were cut with in training (its framing record), else the default: what an auto
    ``--margin`` becomes for that bundle, in photos and in videos alike."""
    return float(trained["margin"]) if trained is not None and trained["mode"] == "face" else DEFAULT_MARGIN


def framing_mismatch(meta: ModelMeta, used: Framing, run: str | os.PathLike) -> str | None:
    """One line saying how the framing at test time differs from the training images' and what to do; None when it
    does not (or the bundle does not record its framing)."""
    trained = bundle_framing(meta)
    if trained is None or _cut_alike(trained, used.record()):
        return None
    run = display_path(run)
    if trained["mode"] == "whole":
        return (f"{run} was trained on whole images as given, but each image is now cut to the square around its detected "
                "face (--framing face); if your images are already tight face crops like the training images, "
                "pass --framing whole")
    if used.mode == "whole":
        return (f"{run} was trained on {describe(trained)}, but --framing whole classifies whole images; drop --framing whole "
                "unless your images are already cropped that way (e.g. by 'babyface data crop')")
    return (f"{run} was trained on {describe(trained)}, but faces are now cut with {describe(used.record())}; pass "
            f"--margin {trained.get('margin')} to frame them as in training")


def _cut_alike(trained: dict[str, Any], used: dict[str, Any]) -> bool:
    """Whether faces are cut the same way: the detector and its threshold do not matter, because every detector
    draws MTCNN's box (each detector's ``alignment``, babyface.faces.registry); the margin does."""
    return trained["mode"] == used["mode"] and (used["mode"] == "whole" or trained["margin"] == used["margin"])


def warn_if_framing_differs(meta: ModelMeta, used: Framing, run: str | os.PathLike) -> None:
    message = framing_mismatch(meta, used, run)
    if message:
        log.warning("WARNING: %s", message)
