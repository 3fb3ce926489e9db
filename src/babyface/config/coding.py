"""``babyface code``: a video corpus coded as a lab codes it, the infant's affect every epoch, in files for ELAN,
BORIS and Datavyu."""

from __future__ import annotations

from typing import Literal

from babyface.config.base import ConfigModel, option
from babyface.config.faces import FaceDetection, faces_option
from babyface.config.inference import (
    BATCH_HELP,
    FACES,
    OUTPUT,
    RUN_HELP,
    RUNTIME,
    Backend,
    Precision,
    Tta,
    precision_option,
)
from babyface.config.training import DEVICE_HELP, PROGRESS_HELP

CODING = "coding"
FaceChoice = Literal["auto", "infant", "largest", "all"]

DEFAULT_FPS = 5.0


class CodeConfig(ConfigModel):
    """``babyface code``: every video's infant affect per epoch (positive / neutral / negative / uncodable), written as
    codes.csv, an ELAN .eaf, a BORIS .boris project and a Datavyu .opf per video, with a corpus summary.csv and
    report.html."""

    run: str = option("", RUN_HELP, positional="1")
    inputs: list[str] = option(description="video files and/or folders holding videos (searched recursively)",
                               default_factory=list, positional="+")
    out: str = option("", "folder for the coded corpus: one folder per video plus summary.csv and report.html; "
                          "empty = RUN/coded", metavar="DIR", group=OUTPUT)
    epoch: float = option(1.0, "length of one coded time unit in seconds (labs code 1-second epochs)", gt=0, le=3600,
                          group=CODING)
    fps: float = option(DEFAULT_FPS, "frames looked at per second of video (0 = every frame); more is slower, fewer "
                                     "miss short expressions", ge=0, group=CODING)
    min_confidence: float = option(0.0, "an epoch whose winning code has a mean probability below this is coded "
                                        "'uncodable' (0 = always code the most likely affect)", ge=0, le=1,
                                   group=CODING)
    code_map: str = option("", "how the model's classes become codes, e.g. 'happy=positive,neutral=neutral,"
                               "sad=negative' (a code's probability is the sum of its classes'); empty = happy -> "
                               "positive, neutral -> neutral, sad -> negative", metavar="MAP", group=CODING)
    face: FaceChoice = option("auto", "which face is coded: infant (in each epoch, the face the run's infant-vs-adult "
                                      "model finds most likely an infant's, when more likely than not: a parent in "
                                      "frame is never coded; needs a run trained with --adults), largest (the largest "
                                      "face present: the infant in a close-up; a face under half the area of the "
                                      "session's usual coded face is taken for someone else and the epoch is "
                                      "uncodable), all (every tracked face on its own tier), or auto = infant when the "
                                      "run has an infant-vs-adult model, else largest", group=CODING)
    phases: str = option("", "CSV with columns video, phase, start, end (seconds) naming the episodes of each video "
                             "(e.g. face-to-face, still-face, reunion): summary.csv then has one row per phase and "
                             "the ELAN file a phase tier; empty = none", metavar="CSV", group=CODING)
    workers: int = option(1, "videos coded at once, each in its own process with one thread and the model loaded "
                             "once (the files are the same as with one worker)", ge=1, le=64, group=RUNTIME)
    overwrite: bool = option(False, "code again videos whose outputs exist for the same model and options (by "
                                    "default they are kept and skipped, so an interrupted run resumes)", group=OUTPUT)
    progress: bool = option(True, PROGRESS_HELP, group=OUTPUT)
    batch_size: int = option(64, BATCH_HELP, ge=1, group=RUNTIME)
    device: str = option("auto", DEVICE_HELP, metavar="DEVICE", group=RUNTIME)
    backend: Backend = option("auto", "inference engine: torch, onnx, or auto = onnx when RUN/model.onnx exists and "
                                      "onnxruntime is installed", group=RUNTIME)
    precision: Precision = precision_option()
    tta: Tta = option("none", "test-time augmentation: none, or flip (each face and its mirror)", group=RUNTIME)
    faces: FaceDetection = faces_option(group=FACES)


__all__ = ["CODING", "DEFAULT_FPS", "CodeConfig", "FaceChoice"]
