"""The Python API, for notebooks and scripts: the same library and typed configs as the command line.

    import babyface

    model = babyface.load("runs/r18")                   # a Classifier
    model.predict("baby.jpg")                           # Prediction(file='baby.jpg', label='happy', confidence=0.93, ...)
    model.predict([pil_image, numpy_array])             # a list in, a list out; faces found and framed as everywhere

    run = babyface.train(data="babyface_data", model="resnet18", out="runs/r18", epochs=23)
    metrics = babyface.evaluate("runs/r18")             # the run's own held-out test split
    metrics.accuracy, metrics.macro_f1_ci                # EvaluationMetrics, the typed metrics.json

    out = babyface.cv(data="faces", folds="5", data_options={"group_by": "identity_group", "manifest": "ids.csv"})

    corpus = babyface.code("runs/r18", ["sessions/"], out="coded")   # CorpusResult: per video its tiers of epochs
    corpus.videos[0].summaries[0].shares["positive"]

    faces = babyface.measure("baby.jpg")                # FaceMeasures per face: eyes, smile, brows, head pose
    faces[0].measures["smile"]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from babyface.config import (
    LIVE_DETECTOR,
    CodeConfig,
    CvConfig,
    EvalConfig,
    FaceDetection,
    TrainConfig,
    from_dict,
    merge,
    with_recipe,
)
from babyface.data.images import load_rgb
from babyface.evaluation.evaluate import evaluate_run
from babyface.experiments.cv import run_cv
from babyface.experiments.seeds import fit_seeds
from babyface.faces.framing import Framing
from babyface.inference.classifier import Classifier, as_rgb_image
from babyface.measures.photos import FaceMeasures, Tally, measure_image
from babyface.run import EvaluationMetrics, default_run_folder, read_evaluation_metrics
from babyface.training.fit import fit
from babyface.video.corpus import CorpusResult, code_corpus


def load(run: str | os.PathLike, *, device: str = "auto", backend: str = "auto", tta: str = "none",
         min_confidence: float = 0.0, framing: str = "auto", batch_size: int = 64, precision: str = "auto") -> Classifier:
    """The model in a run folder (single or ensemble), ready to ``predict`` paths, PIL images and numpy arrays.

    ``framing='auto'`` frames images as the run's training images were (its model.json says: whole for runs trained
    on tight crops, face for runs trained on ``data crop`` output); ``'face'`` classifies the square around each
    image's largest face; ``'whole'`` classifies images as given (already tight face crops). ``backend``, ``tta``, ``min_confidence`` and
    ``precision`` mean what the ``predict`` command's options of the same names mean."""
    return Classifier(run, device=device, batch_size=batch_size, min_confidence=min_confidence, backend=backend, tta=tta,
                      framing=Framing(framing, FaceDetection()), precision=precision)


def train(config: TrainConfig | None = None, /, **options: Any) -> Path:
    """Train as ``babyface train`` does and return the run folder. Give a TrainConfig, options by their config names
    (``data=``, ``model=``, ``epochs=``, ``recipe=``, nested ones as dicts: ``data_options={"image_size": 48}``), or
    both (options override the config). With ``seeds="0,1,2"`` it trains one run per seed and returns their folder."""
    config = merge(config, options) if config is not None else from_dict(TrainConfig, with_recipe(options), where="babyface.train")
    if not config.out:
        config.out = str(default_run_folder(config.model))
    return fit_seeds(config) if config.seeds else fit(config)


def evaluate(config: EvalConfig | str | os.PathLike, /, **options: Any) -> EvaluationMetrics:
    """Evaluate a run as ``babyface evaluate`` does and return its metrics, the typed record of the metrics.json it
    writes to RUN/evaluation/ (``metrics.accuracy``, ``metrics.macro_f1_ci``, ``metrics.model_dump()`` for JSON).
    ``babyface.evaluate("runs/r18")`` uses the run's own held-out test split; ``data=`` evaluates on other data."""
    if isinstance(config, EvalConfig):
        config = merge(config, options)
    else:
        config = from_dict(EvalConfig, {"run": str(config), **options}, where="babyface.evaluate")
    return read_evaluation_metrics(Path(evaluate_run(config)["out"]))


def cv(config: CvConfig | None = None, /, **options: Any) -> Path:
    """Cross-validate as ``babyface cv`` does and return its folder (OUT/cv_summary.json holds the results). Options as
    for :func:`train` plus ``folds`` (a number, or "loso"); ``resume=True`` continues an interrupted one in ``out``."""
    resume = bool(options.pop("resume", False))
    config = merge(config, options) if config is not None else from_dict(CvConfig, with_recipe(options), where="babyface.cv")
    if not config.out:
        config.out = str(default_run_folder(f"cv-{config.model}"))
    return run_cv(config, resume=resume)


def code(run: str | os.PathLike | CodeConfig, inputs: Any = (), /, **options: Any) -> CorpusResult:
    """Code videos as ``babyface code`` does: ``code("runs/r18", ["a.mp4", "videos/"], out="coded", epoch=1.0)``, or
    a CodeConfig. Returns the corpus: per video its status, tiers of epochs and per-phase summaries (the files are
    written as by the command)."""
    if isinstance(run, CodeConfig):
        return code_corpus(merge(run, options))
    videos = [str(inputs)] if isinstance(inputs, (str, os.PathLike)) else [str(i) for i in inputs]
    return code_corpus(from_dict(CodeConfig, {"run": str(run), "inputs": videos, **options}, where="babyface.code"))


def measure(image: str | os.PathLike | Any, *, detector: str = LIVE_DETECTOR, framing: str = "face",
            min_score: float | None = None, faces: FaceDetection | None = None) -> list[FaceMeasures]:
    """The measures of every face in a photo (a path, a PIL image or an H×W×3 uint8 array), largest first, as
    ``babyface measure`` gives them; ``framing="whole"`` for a tight face crop. ``faces`` sets every face option
    (detect_size, min_face, ...) and then wins over ``detector`` and ``min_score``. A face too small for landmarks,
    or not confirmed by the landmark model, has no entry."""
    faces = faces or FaceDetection(detector=detector, min_score=min_score)
    if isinstance(image, (str, os.PathLike)):
        rgb, name = load_rgb(image), str(image)
    else:
        rgb, name = as_rgb_image(image), "image"
    return measure_image(np.asarray(rgb), name, faces, framing, Tally())
