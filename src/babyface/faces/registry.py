"""The face detectors, by name: each is a ``FaceDetector`` subclass in its own module that registers itself.

A detector says what it finds (``detect(rgb, min_score, min_face) -> boxes``), the score it accepts a face at by
default, how its box differs from MTCNN's (the training crops were cut around MTCNN's boxes, so every other detector's
box is reshaped to it) and on how many video frames it can run. ``babyface.faces.detectors`` does the rest (shrinking,
alignment, thresholds, sorting), and the command line's ``--detector`` choices and help are these names. A new
detector is one module here, imported by ``babyface/faces/__init__.py``, as a model is one module in ``models/``.
"""

from __future__ import annotations

from typing import Callable, ClassVar, TypeVar

import numpy as np

from babyface.errors import BabyfaceError
from babyface.faces.boxes import FaceBox

D = TypeVar("D", bound=type["FaceDetector"])
Alignment = tuple[float, float, float]  # width factor, height factor, centre shift down as a share of the height

_DETECTORS: dict[str, type[FaceDetector]] = {}


class FaceDetector:
    """A face detector; the class attributes describe it, ``detect`` finds the faces."""

    name: ClassVar[str] = ""  # set by register_detector
    description: ClassVar[str] = ""  # what --detector says of it
    min_score: ClassVar[float] = 0.5  # a face scoring less is dropped unless --min-score says otherwise
    # the box resized about its centre and moved down (FaceBox.reshaped) to become the box MTCNN draws around the same
    # face; None: it draws MTCNN's box already
    alignment: ClassVar[Alignment | None] = None
    detect_every: ClassVar[int] = 1  # videos: detect on every N-th used frame when --detect-every is not given
    shrinks: ClassVar[bool] = True  # whether it is given a copy shrunk by --detect-size and --min-face (else the image)

    def detect(self, rgb: np.ndarray, min_score: float, min_face: float = 0.0) -> list[FaceBox]:
        """The faces in an H×W×3 uint8 image, in its pixel coordinates and the detector's own box convention; those
        under ``min_score`` or smaller than ``min_face`` of the shorter side may be returned (they are dropped after)."""
        raise NotImplementedError


def register_detector(name: str) -> Callable[[D], D]:
    """Class decorator that registers a ``FaceDetector`` subclass under ``name``."""

    def decorator(cls: D) -> D:
        if name in _DETECTORS:
            raise ValueError(f"detector {name!r} is already registered")
        cls.name = name
        _DETECTORS[name] = cls
        return cls

    return decorator


def detector_names() -> list[str]:
    """The registered detectors, in the order they were registered."""
    return list(_DETECTORS)


def get_detector(name: str) -> FaceDetector:
    """The detector registered as ``name``; an unknown name is a one-line error naming the choices."""
    try:
        return _DETECTORS[name]()
    except KeyError:
        raise BabyfaceError(f"--detector {name!r}: use one of {', '.join(detector_names())}") from None


def resolve_min_score(detector: str, min_score: float | None) -> float:
    """``min_score``, or the detector's own threshold when it is None; an unknown detector is an error."""
    own = get_detector(detector).min_score
    return own if min_score is None else min_score


def describe_detectors() -> str:
    """The registered detectors for --help: what each is, the score it accepts and its interval in videos."""
    return ", ".join(f"{cls.name} ({cls.description}; min score {cls.min_score}; in videos every "
                     f"{'' if cls.detect_every == 1 else f'{cls.detect_every}th '}frame)" for cls in _DETECTORS.values())
