"""The options of finding faces (``FaceDetection``) and of reading videos (``VideoOptions``), declared once with one set
of defaults and nested into every command that uses them (``config.faces.detect_size``, ``config.video.every``).

Their flags keep their names (``--detect-size``, ``--every``); a YAML file may give them nested (``faces:
{detect_size: 320}``) or, as before they were grouped, at the top level (``detect_size: 320``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from babyface.config.base import ConfigModel, option, zero_or_at_least
from babyface.config.defaults import DEFAULT_DETECTOR, DEFAULT_MARGIN, DETECT_MAX_SIDE, LIVE_DETECTOR

Night = Literal["auto", "on", "off"]

# the detectors themselves, their thresholds and video intervals are listed from babyface.faces' registry: the
# command line adds them to these texts (a new detector is one file there, nothing here)
DETECTOR_HELP = "face detector (each one's box is reshaped to MTCNN's, so all cut a face as the training crops were cut)"
MIN_SCORE_HELP = "detector confidence (0-1) needed to accept a face; auto = the detector's own (see --detector)"
MARGIN_HELP = ("added around a detected face on every side, as a share of the face's size (0.2 = 20%); auto = as the "
               "model's faces were cut in training (model.json: 0 for --recipe infant), else 0.2")
DETECT_SIZE_HELP = ("images and frames are shrunk to at most this longest side in pixels for detection only (faces are "
                    "cut from the full image; BlazeFace always sees a 128-px copy); 0 = full size")
MIN_FACE_HELP = ("look only for faces at least this share of the image's shorter side, which lets large images "
                 "shrink before detection (faster); 0 = any size")
DETECT_EVERY_HELP = ("run the face detector on every N-th used frame, boxes in between interpolated; auto = the "
                     "detector's own interval (see --detector), what keeps 25 frames/s on 2 cores; watch's events lag by "
                     "about that many frames")
NIGHT_HELP = ("night mode for infrared cameras: detect on a denoised copy of each frame and classify contrast-stretched "
              "faces (measured in benchmarks/night.py); auto = for grey frames only, on, or off")


class FaceDetection(ConfigModel):
    """How faces are found and cut: the detector, its threshold, the margin, and the copy it sees."""

    flat_keys = True  # also given at the top level of a command's YAML, where these keys were before

    detector: str = option(LIVE_DETECTOR, DETECTOR_HELP, choices_from="detectors")
    min_score: float | None = option(None, MIN_SCORE_HELP, ge=0, le=1)
    margin: float | None = option(None, MARGIN_HELP, ge=0, le=2)
    detect_size: Annotated[int, zero_or_at_least(32)] = option(DETECT_MAX_SIDE, DETECT_SIZE_HELP, ge=0)
    min_face: float = option(0.0, MIN_FACE_HELP, ge=0, lt=1)

    @property
    def cut_margin(self) -> float:
        """The margin faces are cut with: ``margin``, or 0.2 where it is auto and no model says otherwise."""
        return DEFAULT_MARGIN if self.margin is None else self.margin

    def cut_as(self, margin: float) -> FaceDetection:
        """These settings with an auto margin resolved to ``margin`` (a model's own); a given margin is kept."""
        return self if self.margin is not None else self.replace(margin=margin)


class TrainingCropDetection(FaceDetection):
    """``FaceDetection`` for ``data crop`` and ``evaluate``: the detector that cuts the training crops by default."""

    # the one default that differs, on purpose: the models are trained on MTCNN's crops (benchmarks/face_detectors.py)
    detector: str = option(DEFAULT_DETECTOR, DETECTOR_HELP, choices_from="detectors")


class VideoOptions(ConfigModel):
    """Which frames of a video are used and how faces are looked for in them."""

    flat_keys = True

    every: int = option(1, "use every N-th frame (1 = all)", ge=1)
    detect_every: int | None = option(None, DETECT_EVERY_HELP, ge=1)
    night: Night = option("auto", NIGHT_HELP)


def faces_option(cls: type[FaceDetection] = FaceDetection, group: str | None = "faces") -> FaceDetection:
    """A command's ``faces`` section (annotate the field with ``cls``, so that a partial YAML mapping keeps its
    defaults)."""
    return option(description="how faces are found and cut", default_factory=cls, group=group)


def video_option(group: str | None = "videos") -> VideoOptions:
    """A command's ``video`` section."""
    return option(description="which frames of a video are used", default_factory=VideoOptions, group=group)


__all__ = ["DETECTOR_HELP", "DETECT_EVERY_HELP", "DETECT_SIZE_HELP", "MARGIN_HELP", "MIN_FACE_HELP", "MIN_SCORE_HELP",
           "NIGHT_HELP", "FaceDetection", "Night", "TrainingCropDetection", "VideoOptions",
           "faces_option", "video_option"]
