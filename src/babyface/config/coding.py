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
FaceChoice = Literal["infant", "largest", "all"]

LOCAL_RAY = "local"
DEFAULT_FPS = 5.0  # benchmarks/code_speed.py: as accurate as every frame against generated sessions' codes, 4x faster


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
    fps: float = option(DEFAULT_FPS, "frames looked at per second of video (0 = every frame); 5 measured as accurate "
                                     "as every frame at 4x the speed, 2 slightly less (benchmarks/code_speed.py)",
                        ge=0, group=CODING)
    min_confidence: float = option(0.0, "an epoch whose winning code has a mean probability below this is coded "
                                        "'uncodable' (0 = always code the most likely affect)", ge=0, le=1,
                                   group=CODING)
    code_map: str = option("", "how the model's classes become codes, e.g. 'happy=positive,neutral=neutral,"
                               "sad=negative' (a code's probability is the sum of its classes'); empty = happy -> "
                               "positive, neutral -> neutral, sad -> negative", metavar="MAP", group=CODING)
    face: FaceChoice = option("largest", "which face is coded: largest (in each epoch, the largest face present: the "
                                         "infant in a close-up; a face under half the area of the session's usual "
                                         "coded face is taken for someone else and the epoch is uncodable), infant (the "
                                         "face the run's infant-vs-adult model finds most likely an infant's; needs a "
                                         "run trained with --adults; measured less reliable than largest on infants "
                                         "unlike its training sources: docs/coding.md), or all (every tracked face on "
                                         "its own tier)", group=CODING)
    phases: str = option("", "CSV with columns video, phase, start, end (seconds) naming the episodes of each video "
                             "(e.g. face-to-face, still-face, reunion): summary.csv then has one row per phase and "
                             "the ELAN file a phase tier; empty = none", metavar="CSV", group=CODING)
    reference: list[str] = option(description="after coding, compare the codes with these (repeatable): a human coder's "
                                              "files or folders as 'babyface agree' reads them (ELAN, BORIS, Datavyu, CSV); "
                                              "writes OUT/agreement/ (agreement.json, agreement.md, Bland-Altman plot)",
                                  default_factory=list, metavar="REF", group=CODING)
    reference_tier: str = option("", "with --reference: the reference's tier when its files hold several", metavar="NAME",
                                 group=CODING)
    reference_map: str = option("", "with --reference: the reference's vocabulary onto the codes, e.g. 'smile=positive,"
                                     "cry=negative'; empty = its values are the codes already", metavar="MAP",
                                group=CODING)
    workers: int = option(1, "videos coded at once, each in its own process with one thread and the model loaded "
                             "once (the files are the same as with one worker); with --ray, the CPUs of the local Ray "
                             "it starts, or the most videos in flight on a cluster (1 = as many as the cluster has CPUs)",
                          ge=1, le=4096, group=RUNTIME)
    ray: str | None = option(None, "code the videos as tasks on a Ray cluster (needs pip install 'babyface[ray]'): "
                                   "--ray alone starts a local Ray on this machine; --ray HOST:PORT joins a cluster "
                                   "whose nodes see the videos and the model at the same paths; the files are written "
                                   "here and are the same as a local run's", metavar="ADDRESS", bare=LOCAL_RAY,
                             group=RUNTIME)
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





class AgreeConfig(ConfigModel):
    """``babyface agree``: agreement between two codings of the same videos (babyface's and a human coder's, or two
    coders'), in the statistics labs report."""

    codes: list[str] = option(description="the first side's codes: files (codes.csv, .eaf, .boris, .opf, a CSV of video, "
                                          "start, end, code) or folders holding them, e.g. a 'babyface code' --out folder",
                              default_factory=list, positional="+")
    reference: list[str] = option(description="the second side's codes (repeatable): files or folders as for CODES, e.g. "
                                              "a human coder's ELAN files", default_factory=list, metavar="REF",
                                  group=CODING)
    out: str = option("", "folder for agreement.json and agreement.md; empty = print the table only", metavar="DIR",
                      group=OUTPUT)
    epoch: float = option(1.0, "seconds of one compared time unit (the code at each epoch's midpoint is compared)",
                          gt=0, le=3600, group=CODING)
    tolerance: float = option(0.0, "seconds: an epoch agrees when the other side has the same code within this "
                                   "window (0 = the same epoch only)", ge=0, le=60, group=CODING)
    tier: str = option("", "the first side's tier when its files hold several (e.g. affect@face2); empty = the only one",
                       metavar="NAME", group=CODING)
    reference_tier: str = option("", "the reference's tier (ELAN tier, BORIS subject, Datavyu column) when its files "
                                     "hold several; empty = the only one", metavar="NAME", group=CODING)
    map: str = option("", "the reference's vocabulary onto the codes, e.g. 'smile=positive,cry=negative,fuss=negative,"
                          "away=uncodable'; empty = its values are the codes already", metavar="MAP", group=CODING)
    include_uncodable: bool = option(False, "compare uncodable epochs as a code of their own (by default an epoch "
                                            "either side calls uncodable is left out and counted apart)", group=CODING)
    bootstrap: int = option(1000, "bootstrap resamples of the videos for the 95% intervals (0 = none)", ge=0,
                            group=OUTPUT)
    seed: int = option(0, "random seed of the bootstrap", group=OUTPUT)
    overwrite: bool = option(False, "write over agreement.json and agreement.md in --out", group=OUTPUT)
__all__ = ["CODING", "DEFAULT_FPS", "LOCAL_RAY", "AgreeConfig", "CodeConfig", "FaceChoice"]
