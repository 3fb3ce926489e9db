"""Commands that make or check datasets: synth, data audit / split / crop, and the demo.

They live here, not beside their code, so that the command line can be built without importing torch."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, model_validator

from babyface.config.base import ConfigModel, option
from babyface.config.defaults import DEFAULT_MAX_PIXELS, DEFAULT_THRESHOLD
from babyface.config.faces import TrainingCropDetection, faces_option
from babyface.config.training import DEVICE_HELP, PROGRESS_HELP
from babyface.errors import BabyfaceError

CLASSES = ("happy", "neutral", "sad")  # the expressions the synthetic generator can draw
STYLES = ("photo", "studio", "sketch")  # its looks: one per simulated data source
DEMO_MODELS = ("fast", "resnet18", "cnn")  # what `babyface demo` can train (babyface.tools.demo.DEMO_MODELS)


def split_commas(value: object) -> object:
    """``"a, b"`` → ``("a", "b")``: a comma-separated option given on the command line; other values unchanged."""
    return tuple(c.strip() for c in value.split(",") if c.strip()) if isinstance(value, str) else value


def distinct_names(allowed: tuple[str, ...]) -> AfterValidator:
    """Checks that a tuple of ``allowed`` names names at least one, none twice."""
    def check(value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"must be distinct names from {', '.join(allowed)}, got {','.join(value) or 'none'}")
        return value
    return AfterValidator(check)


# comma-separated on the command line (``--classes happy,sad``), a list in YAML
ClassNames = Annotated[tuple[Literal[CLASSES], ...], BeforeValidator(split_commas), distinct_names(CLASSES)]
DemoModelNames = Annotated[tuple[Literal[DEMO_MODELS], ...], BeforeValidator(split_commas), distinct_names(DEMO_MODELS)]
GROUP_BY_HELP = ("keep groups whole: a --manifest column (e.g. identity_group), or 'near-duplicates' (copies and "
                 "near-copies of a photo stay together); empty = files are split one by one")
MANIFEST_HELP = "CSV with a 'file' column (relative to DATA) and the --group-by column"


class SynthConfig(ConfigModel):
    """What the synthetic infant-face generator draws; the same values give byte-identical images."""

    n: int = option(1800, "number of images (at least 2 per class)", ge=1)
    seed: int = option(0, "random seed: the same seed gives byte-identical images", ge=0)
    size: int = option(128, "image side in pixels", ge=32)
    test_fraction: float = option(0.2, "share of each class written to OUT/test", gt=0, lt=1)
    grayscale_share: float = option(0.2, "share of images saved in grayscale", ge=0, le=1)
    classes: ClassNames = option(
        CLASSES, "comma-separated classes to generate, a subset of happy,neutral,sad; images take the classes in turn, "
                 "e.g. --classes happy,sad for a source without neutral faces", metavar="A,B,...")
    style: Literal[STYLES] = option(  # type: ignore[valid-type]
        "photo", "rendering: photo (cluttered backgrounds, natural skin tones, lighting, noise), studio (the same faces "
                 "on a plain teal backdrop under an amber cast) or sketch (blue ink on plain paper, posterised, "
                 "outlined): looks easy to tell apart, to simulate a second data source")

    age: Literal["infant", "adult"] = option(
        "infant", "whose faces: infant, or adult (a longer face, smaller eyes set higher, a larger nose, full hair, no "
                  "rosy cheeks): a source of adults for training the infant-vs-adult model (train --adults)")

    @model_validator(mode="after")
    def _two_per_class(self) -> SynthConfig:
        if self.n < 2 * len(self.classes):
            raise BabyfaceError(f"--n: must be at least {2 * len(self.classes)} (2 images per class), got {self.n}")
        return self


class SynthCommand(SynthConfig):
    """``babyface synth``: what to generate, and where."""

    out: str = option("", "output folder (must be new or empty unless --overwrite)", positional="1")
    overwrite: bool = option(False, "replace the contents of a non-empty OUT")
    progress: bool = option(True, PROGRESS_HELP + " (--quiet is the same as --no-progress)")
    video: bool = option(False, "write scripted video sessions instead of photos: an infant in close-up whose expression "
                                "follows a known timeline (turning away at times) and a parent's face in a corner, with "
                                "the true codes as CSV and ELAN beside each video and phases.csv (face-to-face, "
                                "still-face, reunion), to try 'babyface code' on", group="videos")
    videos: int = option(3, "with --video: number of sessions", ge=1, le=1000, group="videos")
    seconds: int = option(30, "with --video: length of each session in seconds", ge=6, le=7200, group="videos")
    video_fps: float = option(30.0, "with --video: frames per second of the videos (they are 640x480)", gt=0, le=120,
                              group="videos")


class AuditConfig(ConfigModel):
    """``babyface data audit``: image statistics and duplicates within classes, across classes and across splits."""

    data: str = option("", "DATA/train|val|test/<class>/ or DATA/<class>/", positional="1")
    out: str = option("", "report folder; empty = DATA/audit", metavar="DIR")
    manifest: str = option("", "CSV with a 'file' column (relative to DATA) and a --group-by column", metavar="CSV")
    group_by: str = option("", "manifest column of groups (e.g. identity_group) that must not span splits; empty = no "
                               "group check", metavar="COLUMN")
    threshold: float = option(DEFAULT_THRESHOLD, "near-duplicate score (0-1) from which two images count as copies of "
                                                 "one photo; lower finds more, with more false alarms", ge=0, le=1)
    max_sheets: int = option(20, "contact sheets per kind of finding, largest clusters first", ge=0)
    max_pixels: int = option(DEFAULT_MAX_PIXELS, "refuse images with more pixels than this (guards against "
                                                 "decompression bombs)", gt=0)
    strict: bool = option(False, "exit with status 1 when there is leakage across splits or a conflicting label")
    overwrite: bool = option(False, "replace an earlier report in --out")
    progress: bool = option(True, PROGRESS_HELP)


class SplitConfig(ConfigModel):
    """``babyface data split``: a stratified train/val/test layout in which every group stays whole in one split."""

    data: str = option("", "DATA/<class>/ (or a BabyFace layout, whose splits are pooled first)", positional="1")
    out: str = option("", "new or empty output folder", positional="1")
    test: float = option(0.15, "share of each class for OUT/test", gt=0, lt=1)
    val: float = option(0.15, "share of each class for OUT/val (0 = no val/)", ge=0, lt=1)
    group_by: str = option("", GROUP_BY_HELP, metavar="COLUMN")
    manifest: str = option("", MANIFEST_HELP, metavar="CSV")
    copy_files: bool = option(False, "copy files instead of hard-linking them", flag="--copy")
    seed: int = option(0, "random seed of the split: the same seed gives the same split")
    progress: bool = option(True, PROGRESS_HELP)

    @model_validator(mode="after")
    def _shares(self) -> SplitConfig:
        if self.test + self.val >= 1:
            raise BabyfaceError(f"--test {self.test} and --val {self.val}: together they must stay under 1")
        return self


class CropConfig(ConfigModel):
    """``babyface data crop``: square face crops cut out of photos, keeping the class layout."""

    src: str = option("", "SRC/<class>/ or a BabyFace layout of whole-scene photos", positional="1")
    out: str = option("", "new or empty output folder", positional="1")
    faces: TrainingCropDetection = faces_option(TrainingCropDetection, group=None)
    all_faces: bool = option(False, "one crop per face instead of the largest face only")
    overwrite: bool = option(False, "replace the contents of a non-empty OUT")
    progress: bool = option(True, PROGRESS_HELP)


class DemoConfig(ConfigModel):
    """``babyface demo``: synthetic faces, models trained on them to convergence, each evaluated, a results table.

    Sized so that ``make demo`` (venv included) ends within 7 minutes on 2 CPU cores: by default the fast recipe's
    xception-mini alone (babyface.tools.demo.DEMO_MODELS has each model's settings and epochs)."""

    out: str = option("demo_out", "folder for the data, the runs and results.md", metavar="DIR")
    n: int = option(6000, "synthetic images to generate (a fifth of them are the test split)", ge=6)
    seed: int = option(0, "random seed of the data and of every training", ge=0)
    models: DemoModelNames = option(
        ("fast",), "comma-separated models to train, from: fast (the fast recipe: xception-mini on 48-px gray faces), "
                   "resnet18 (the reference's model on the fast recipe's schedule and input; three times the time "
                   "of fast) and cnn (the reference CNN, 64-px colour faces)", metavar="A,B,...")
    epochs: int = option(0, "training epochs of every model; 0 = each model's own (fast 30, resnet18 12, cnn 10)",
                         ge=0)
    overwrite: bool = option(False, "replace an earlier demo in --out")
    device: str = option("auto", DEVICE_HELP, metavar="DEVICE")
