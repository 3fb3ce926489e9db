"""The run folder contract: every artifact name of a run (and of ``cv`` and ``train --seeds`` folders), the typed
model metadata, the evaluation's metrics and predictions, and the split manifest.

A run folder is what ``babyface train`` writes and every other command reads. Nothing else in babyface spells
an artifact's file name or reads ``model.json``, ``metrics.json`` or ``predictions.csv`` as a loose mapping: they ask
``RunFolder`` (``CvFolder``, ``SeedsFolder``), ``ModelMeta``, ``EvaluationMetrics`` and ``read_predictions``. The
records refuse keys they do not know, model.json's top level included, so a renamed key is an error naming it, never a
silent default.

```
RUN/
  model.json            ModelMeta: architecture, classes, image size, normalisation, temperature, framing, data, ...
  model.safetensors     the weights (an ensemble has members/NAME/ bundles instead)
  config.yaml           the resolved training config
  splits.csv            the split manifest: every image's split, label and source, written once by train
  history.csv, learning_curves.png, train.log, checkpoint.pt (while training)
  evaluation/           predictions.csv, confusion_matrix.png, ..., metrics.json last (babyface evaluate)
  model.onnx            babyface export;  explanations/  babyface explain;  videos/NAME/  babyface predict VIDEO
  report.html, model_card.md  babyface report
```
"""

from __future__ import annotations

import csv
import difflib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_serializer, model_validator

from babyface.config.base import from_dict
from babyface.config.defaults import MAX_IMAGE_SIZE
from babyface.config.training import TrainConfig
from babyface.errors import BabyfaceError, BundleError
from babyface.outputs import write_csv

# ---------------------------------------------------------------- artifact names

META_FILE = "model.json"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
SPLITS_FILE = "splits.csv"
HISTORY_FILE = "history.csv"
LEARNING_CURVES_FILE = "learning_curves.png"
TRAIN_LOG_FILE = "train.log"
CHECKPOINT_FILE = "checkpoint.pt"
ONNX_FILE = "model.onnx"
MEMBERS_DIR = "members"
EVALUATION_DIR = "evaluation"
EXPLANATIONS_DIR = "explanations"
VIDEOS_DIR = "videos"
REPORT_FILE = "report.html"
MODEL_CARD_FILE = "model_card.md"


class EvaluationFiles:
    """Names inside an evaluation folder (RUN/evaluation by default). ``metrics.json`` is written last, atomically:
    a folder that has it holds a complete evaluation (what ``babyface cv --resume`` checks)."""

    METRICS = "metrics.json"
    PREDICTIONS = "predictions.csv"
    CONFUSION_JSON = "confusion_matrix.json"
    CONFUSION_PNG = "confusion_matrix.png"
    RELIABILITY_PNG = "reliability_diagram.png"
    GRID_PNG = "predictions_grid.png"
    SUBGROUPS = "subgroups.json"
    CONFIG = "eval_config.yaml"


@dataclass(frozen=True)
class Folder:
    """A folder babyface writes, its files named by the subclass; ``path`` may be given as text."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))


@dataclass(frozen=True)
class RunFolder(Folder):
    """The paths of one run's artifacts."""

    meta = property(lambda self: self.path / META_FILE)
    weights = property(lambda self: self.path / WEIGHTS_FILE)
    config = property(lambda self: self.path / CONFIG_FILE)
    splits = property(lambda self: self.path / SPLITS_FILE)
    history = property(lambda self: self.path / HISTORY_FILE)
    learning_curves = property(lambda self: self.path / LEARNING_CURVES_FILE)
    train_log = property(lambda self: self.path / TRAIN_LOG_FILE)
    checkpoint = property(lambda self: self.path / CHECKPOINT_FILE)
    onnx = property(lambda self: self.path / ONNX_FILE)
    members = property(lambda self: self.path / MEMBERS_DIR)
    evaluation = property(lambda self: self.path / EVALUATION_DIR)
    explanations = property(lambda self: self.path / EXPLANATIONS_DIR)
    report = property(lambda self: self.path / REPORT_FILE)
    model_card = property(lambda self: self.path / MODEL_CARD_FILE)
    who = property(lambda self: self.path / WHO_FOLDER)  # the infant-vs-adult model of a run trained with --adults

    def video(self, stem: str) -> Path:
        return self.path / VIDEOS_DIR / stem

    def member(self, name: str) -> RunFolder:
        return RunFolder(self.path / MEMBERS_DIR / name)

    def split_manifest(self) -> SplitManifest | None:
        """The split manifest, its files under the data root that model.json records; None when there is none."""
        try:
            root = json.loads(self.meta.read_text(encoding="utf-8"))["data"]["root"]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            root = None  # no (readable) model.json yet, e.g. while training: the files' names are still right
        return read_split_manifest(self.splits, Path(root) if isinstance(root, str) else None)


@dataclass(frozen=True)
class SeedsFolder(Folder):
    """What ``babyface train --seeds`` writes (and a cross-validation fold trained with --seeds): one run per seed,
    their ensemble, and (train --seeds) the summary across seeds."""

    summary_json = property(lambda self: self.path / "summary.json")
    summary_md = property(lambda self: self.path / "summary.md")
    ensemble = property(lambda self: self.path / "ensemble")

    def seed(self, seed: int) -> Path:
        return self.path / f"seed{seed}"


@dataclass(frozen=True)
class CvFolder(Folder):
    """What ``babyface cv`` writes (its layout is drawn in ``babyface.experiments.cv``)."""

    config = property(lambda self: self.path / "cv_config.yaml")
    folds = property(lambda self: self.path / "folds.csv")
    splits = property(lambda self: self.path / "splits")
    oof_predictions = property(lambda self: self.path / "oof_predictions.csv")
    summary_json = property(lambda self: self.path / "cv_summary.json")
    summary_md = property(lambda self: self.path / "cv_summary.md")
    folds_png = property(lambda self: self.path / "cv_folds.png")
    confusion_png = property(lambda self: self.path / "cv_confusion_matrix.png")
    report = property(lambda self: self.path / REPORT_FILE)

    def fold(self, fold: int) -> Path:
        """Fold ``fold``'s run folder (a SeedsFolder when trained with --seeds)."""
        return self.path / f"fold{fold}"

    def split_file(self, fold: int) -> Path:
        return self.splits / f"fold{fold}.csv"

    def fold_folders(self) -> list[Path]:
        return sorted(self.path.glob("fold[0-9]*"))


def default_run_folder(model: str) -> Path:
    """Where a run goes when no --out is given: runs/MODEL-YYYYmmdd-HHMMSS."""
    return Path("runs") / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"


# ---------------------------------------------------------------- model metadata

BUNDLE_FORMAT = "babyface-bundle"
FORMAT_VERSION = 1
ENSEMBLE = "ensemble"  # the arch name of an ensemble bundle, whose weights are its members'


class Arch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


# Limits on what a model.json may say, so a hostile bundle is refused before anything is built or allocated.
MAX_META_BYTES = 1 << 20  # a run's model.json is about 4 KB, an ensemble's a few times that
MAX_NESTING = 32  # levels of JSON nesting; babyface writes about 5
MAX_CLASS_NAME = 64
MAX_MEMBER_NAME = 255  # a folder name
MAX_MEMBERS = 32


def _printable(text: str, limit: int) -> bool:
    return 0 < len(text) <= limit and text.isprintable()


def check_class_name(name: str) -> str:
    if not _printable(name, MAX_CLASS_NAME):  # control characters would reach the terminal with every prediction
        raise ValueError(f"name {shortened(ascii(name))} is not 1 to {MAX_CLASS_NAME} printable characters")
    return name


def _distinct(names: list[str]) -> list[str]:
    twice = [name for i, name in enumerate(names) if name in names[:i]]
    if twice:
        raise ValueError(f"lists {twice[0]!r} more than once; each class needs its own name")
    return names


ClassName = Annotated[str, AfterValidator(check_class_name)]
ImageSize = Annotated[int, Field(ge=8, le=MAX_IMAGE_SIZE)]
Mean = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]  # of pixels scaled to 0..1
Std = Annotated[float, Field(ge=1e-3, le=10, allow_inf_nan=False)]  # training floors a channel's std at 1e-3
Temperature = Annotated[float, Field(ge=0.01, le=100, allow_inf_nan=False)]


class ComputeRecord(BaseModel):
    """How a run was trained to compute, chosen at run time for its hardware (``training.compute``)."""

    model_config = ConfigDict(extra="forbid")

    precision: Literal["fp32", "bf16", "fp16"]
    precision_reason: str = ""
    channels_last: bool = False
    layout_reason: str = ""
    device: str = ""
    hardware: str = ""


class Record(BaseModel):
    """A record babyface writes into a run and reads back: an unknown key is refused, so that a renamed or misspelt
    key is a validation error naming it, never a value silently left at its default."""

    model_config = ConfigDict(extra="forbid", strict=True)


class DataRecord(Record):
    """``data`` of model.json: where the training images came from. An ensemble of runs trained on different data
    records none of it (``known`` is false: evaluate then needs DATA)."""

    root: str | None = None  # the folder the split manifest's files are relative to
    sources: list[str] = Field(default_factory=list)  # the --data folders, resolved
    label_map: dict[str, str | None] = Field(default_factory=dict)  # folder class -> model class (None: dropped)
    train: int | None = None
    val: int | None = None
    test: int | None = None  # images held out as the test split; 0: trained with --test-fraction 0 (the final fit)
    skipped: int | None = None  # undecodable files left out
    coverage: dict[str, dict[str, int]] = Field(default_factory=dict)  # training images per source and class
    missing_classes: str | None = None
    class_balance: str | None = None
    source_adversary: float | None = None

    @property
    def known(self) -> bool:
        return bool(self.model_fields_set)


WHO_FOLDER = "who"
WHO_RECORD = "who.json"


class WhoRecord(Record):
    """RUN/who/who.json: the infant-vs-adult model's adult sources and its validation AUC (infant vs adult) at the
    epoch kept."""

    adults: list[str]
    epochs: int
    best_epoch: int | None = None
    val_auc: float | None = None
    val_acc: float | None = None


class ValidationRecord(Record):
    """``metrics`` of model.json: the validation metrics of the epoch kept, and how long training took."""

    best_epoch: int | None = None
    val_macro_f1: float | None = None  # None without a validation split
    val_acc: float | None = None
    val_loss: float | None = None
    epochs_run: int | None = None
    seconds_per_epoch: float | None = None


class CalibrationScores(Record):
    """NLL and ECE of the same logits at T = 1 and at the temperature (``inference.calibration.calibration_summary``)."""

    bins: int
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float


class CalibrationRecord(Record):
    """``calibration`` of model.json: where the temperature was fitted and the CalibrationScores there (none without a
    validation split). The temperature itself is ``ModelMeta.temperature``, stored once."""

    split: Literal["validation", "none"] = "none"
    bins: int | None = None
    nll_before: float | None = None
    nll_after: float | None = None
    ece_before: float | None = None
    ece_after: float | None = None


class FramingRecord(Record):
    """``framing`` of model.json (and framing.json): face crops with these settings, or whole images as given."""

    mode: Literal["face", "whole"]
    detector: str | None = None  # None: the settings of ``data crop``'s defaults
    margin: float | None = None
    min_score: float | None = None


class MemberRecord(Record):
    """One member as an ensemble's model.json records it (its own bundle, members/NAME, is checked when loaded)."""

    name: str
    run: str = ""  # the run folder it was copied from, as given to 'babyface ensemble'
    arch: Arch
    image_size: ImageSize
    temperature: Temperature
    weights_sha256: str = ""


class ModelMeta(Record):
    """``model.json``, validated once when read: what inference needs (checked) and what training recorded."""

    format: str
    format_version: int
    arch: Arch
    classes: Annotated[list[ClassName], AfterValidator(_distinct)] = Field(min_length=2)
    decision_classes: list[str] = Field(default_factory=list)  # the task's classes, decisions are taken over; [] = all
    image_size: ImageSize
    mean: list[Mean] = Field(min_length=3, max_length=3)
    std: list[Std] = Field(min_length=3, max_length=3)
    temperature: Temperature = 1.0
    babyface_version: str = ""
    created: str = ""
    framing: FramingRecord | None = None  # None: not recorded (bundles from before it was)
    data: DataRecord = Field(default_factory=DataRecord)
    training: dict[str, Any] = Field(default_factory=dict)  # the resolved TrainConfig, as written: see training_config()
    metrics: ValidationRecord = Field(default_factory=ValidationRecord)
    calibration: CalibrationRecord = Field(default_factory=CalibrationRecord)
    compute: ComputeRecord | None = None  # the number format and layout training used (weights are always fp32)
    members: list[MemberRecord] = Field(default_factory=list)  # an ensemble's
    combine: str | None = None  # an ensemble's: how it combines its members' predictions, in words

    @model_validator(mode="before")
    @classmethod
    def _temperature_once(cls, values: Any) -> Any:
        """Bundles of earlier versions kept the temperature in ``calibration`` too; ``temperature`` is the one used."""
        calibration = values.get("calibration") if isinstance(values, dict) else None
        if isinstance(calibration, dict) and "temperature" in calibration:
            values = {**values, "calibration": {k: v for k, v in calibration.items() if k != "temperature"}}
        return values

    @model_validator(mode="before")
    @classmethod
    def _members_of_an_ensemble(cls, values: Any) -> Any:
        """An ensemble's member records checked as a whole first, so that an error names the member it is about."""
        arch = values.get("arch") if isinstance(values, dict) else None
        if isinstance(arch, dict) and arch.get("name") == ENSEMBLE:
            values = {**values, "members": checked_member_records(values.get("members"))}
        return values

    @field_serializer("data", "metrics", "calibration")
    def _as_recorded(self, record: Record, info: Any) -> dict[str, Any]:
        """The keys a record was written or read with, no others: an ensemble of runs trained on different data
        records ``data: {}``, as it always has."""
        return record.model_dump(mode=info.mode, exclude_unset=True)

    @model_validator(mode="after")
    def _decisions_among_classes(self) -> ModelMeta:
        unknown = [c for c in self.decision_classes if c not in self.classes]
        if unknown or len(self.decision_classes) == 1 or len(set(self.decision_classes)) != len(self.decision_classes):
            raise ValueError(f"decision_classes {self.decision_classes} must be two or more distinct classes of {self.classes}")
        return self

    @property
    def decides_over(self) -> list[str]:
        """The classes a decision is taken over: the task's (e.g. happy, neutral, sad of a model that also learned
        FER2013's angry, disgust, fear and surprise), else all the model's classes."""
        return list(self.decision_classes or self.classes)

    @property
    def decision_index(self) -> list[int] | None:
        """Columns of the model's logits that decisions use; None when they use all of them."""
        return [self.classes.index(c) for c in self.decision_classes] if self.decision_classes else None

    @property
    def is_ensemble(self) -> bool:
        return self.arch.name == ENSEMBLE

    @property
    def arch_name(self) -> str:
        return self.arch.name

    @property
    def color(self) -> str:
        """What the model sees: 'gray' (luminance only: every member of an ensemble trained with --color gray), 'rgb',
        or 'mixed' for an ensemble of both."""
        arches = [member.arch for member in self.members] if self.is_ensemble else [self.arch]
        colours = {arch.kwargs.get("color", "rgb") for arch in arches}
        return colours.pop() if len(colours) == 1 else "mixed"

    def training_config(self) -> TrainConfig:
        """The training config the run recorded, validated again (an ensemble records none: the defaults); a key this
        version does not know is a BundleError naming it."""
        try:
            return from_dict(TrainConfig, self.training, where="training")
        except BabyfaceError as exc:
            raise BundleError(f"{META_FILE}: the training config it records does not fit babyface {self.babyface_version or '?'}'s "
                              f"options ({exc}); read it with a matching babyface version") from None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


DAMAGED_BUNDLE = "the bundle is damaged, retrain or restore it"
UNKNOWN_KEY_FIX = "rename or remove it, or read the bundle with the babyface version that wrote it"


def parse_model_meta(values: Any, where: Path) -> ModelMeta:
    """``values`` read from ``where`` as ModelMeta, or a one-line BundleError naming the first bad field (for a key
    babyface does not know: the key, the field it may have been renamed from, and what to do)."""
    if nested_deeper(values, MAX_NESTING):
        raise BundleError(f"{where}: nested more than {MAX_NESTING} levels deep; {DAMAGED_BUNDLE}")
    try:
        return ModelMeta.model_validate(values)
    except ValidationError as exc:
        fix = UNKNOWN_KEY_FIX if exc.errors()[0]["type"] == "extra_forbidden" else DAMAGED_BUNDLE
        raise BundleError(f"{where}: {first_problem(exc, ModelMeta)}; {fix}") from None


def first_problem(exc: ValidationError, record: type[BaseModel] | None = None) -> str:
    """The first error of ``exc`` in one line: the field, what is wrong with it and (shortened) what it got; for a key
    that ``record`` (the model validated) does not have, the field of that name it may have been misspelt from."""
    error = exc.errors()[0]
    names = [str(part) for part in error["loc"] if isinstance(part, str)]  # 'data.rooot', not 'mean.1'
    if error["type"] == "value_error":  # babyface's own validators say what is wrong in full
        reason = str(error["ctx"]["error"])
    elif error["type"] == "extra_forbidden":
        reason = f"is not a key babyface knows{_did_you_mean(names, record)}"
    else:
        reason = f"{error['msg'].lower()} (got {shortened(repr(error.get('input')))})"
    if not names:
        return reason
    problem = f"{shortened(ascii('.'.join(names)))} {reason}"  # ascii: a hostile key may hold control characters
    return f"cannot rebuild the architecture ({problem})" if names[0] == "arch" else problem


def _did_you_mean(names: list[str], record: type[BaseModel] | None) -> str:
    """' (did you mean 'NAME'?)' for the unknown key ``names[-1]``, when the record it is in has a field close to it."""
    for name in names[:-1]:
        field = record.model_fields.get(name) if record else None
        record = _record_in(field.annotation) if field else None
    close = difflib.get_close_matches(names[-1], list(record.model_fields), n=1) if record and names else []
    return f" (did you mean '{close[0]}'?)" if close else ""


def _record_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field's type holds (``FramingRecord | None``, ``list[MemberRecord]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_record_in, get_args(annotation))), None)


def shortened(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def nested_deeper(value: Any, limit: int) -> bool:
    """Whether lists and dicts in ``value`` nest more than ``limit`` levels (iterative: any depth is safe to ask)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth == limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def checked_member_records(members: Any) -> list[MemberRecord]:
    """``members`` as MemberRecords; ValueError unless they record 2 to MAX_MEMBERS distinct member folders, each
    within the limits of any bundle (reports and comparisons read these records without loading the members)."""
    names = [_member_name(m) for m in members] if isinstance(members, list) else []
    if not 2 <= len(names) <= MAX_MEMBERS or not all(map(_folder_name, names)) or len(set(names)) < len(names):
        raise ValueError(f"'members' must name 2 to {MAX_MEMBERS} distinct member folders")
    return [_member_record(record) for record in members]


def _member_name(record: Any) -> Any:
    """The name a member record gives (read from model.json: a dict; made by 'babyface ensemble': a MemberRecord)."""
    return record.name if isinstance(record, MemberRecord) else record.get("name") if isinstance(record, dict) else None


def _member_record(record: dict[str, Any] | MemberRecord) -> MemberRecord:
    if isinstance(record, MemberRecord):
        return record
    try:
        return MemberRecord.model_validate(record)
    except ValidationError as exc:
        raise ValueError(f"member {record['name']!r}: {first_problem(exc, MemberRecord)}") from None


def _folder_name(name: Any) -> bool:
    return isinstance(name, str) and _printable(name, MAX_MEMBER_NAME) and name not in (".", "..") and not {"/", "\\"} & set(name)


# ---------------------------------------------------------------- evaluation: metrics.json and predictions.csv

Interval = list[float]  # a 95% interval: [low, high]


class ClassScores(Record):
    precision: float
    recall: float
    f1: float
    support: int
    precision_ci: Interval | None = None
    recall_ci: Interval | None = None
    f1_ci: Interval | None = None


class BootstrapRecord(Record):
    """How a bootstrap interval was made."""

    method: str
    resamples: int
    confidence: float
    seed: int


class GroupBootstrapRecord(BootstrapRecord):
    """How a group-level interval was made, and from which groups: --group-by's column (or near-duplicates), its
    manifest, and ``from`` ("--group-by", or "training" when the run's own grouping was reused)."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)

    group_by: str
    groups: int
    manifest: str = ""
    origin: str = Field("", alias="from")


class AucRecord(Record):
    """One of ``babyface.evaluation.affect``'s AUCs: what was scored, on how many faces, with its interval."""

    auc: float
    positives: int
    negatives: int
    what: str
    auc_ci: Interval | None = None
    ci: BootstrapRecord | None = None
    n_groups: int | None = None


class TestScores(Record):
    """``babyface.metrics.classification_metrics`` of a set of test images: scores, their image-level intervals and,
    when the images' groups were known (``quote`` is "group"), the group-level ones to quote."""

    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion_matrix: list[list[int]]  # rows = truth
    classes: list[str]
    accuracy_ci: Interval | None = None
    macro_f1_ci: Interval | None = None
    ci: BootstrapRecord | None = None  # how the image-level intervals were made
    accuracy_group_ci: Interval | None = None
    macro_f1_group_ci: Interval | None = None
    n_groups: int | None = None
    group_ci: GroupBootstrapRecord | None = None
    quote: Literal["group"] | None = None
    affect_auc: dict[str, AucRecord] = Field(default_factory=dict)

    @property
    def resamples(self) -> int:
        return self.ci.resamples if self.ci else 0


class TestCalibration(CalibrationScores):
    """metrics.json's ``calibration``: what the bundle's temperature does on the test images."""

    temperature: float


class EvaluationFraming(FramingRecord):
    """How the test images were framed, in how many no face was found, and how the training images were."""

    no_face: int = 0
    trained_on: FramingRecord | None = None


class EvaluationMetrics(TestScores):
    """``metrics.json``: what ``babyface evaluate`` measured, read by the CLI, report, compare and cv."""

    model: str
    run: str
    data: str  # what the test images were, in words
    data_root: str  # the folder predictions.csv's file names are relative to
    skipped: int = 0
    tta: str = "none"
    backend: str = "torch"
    precision: str = ""
    framing: EvaluationFraming | None = None
    calibration: TestCalibration
    ece: float
    per_source: dict[str, TestScores] = Field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


def read_evaluation_metrics(folder: Path) -> EvaluationMetrics:
    """FOLDER/metrics.json, validated; a one-line BabyfaceError when it is missing or is not what evaluate writes."""
    path = Path(folder) / EvaluationFiles.METRICS
    try:
        return EvaluationMetrics.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise BabyfaceError(f"{path}: not found; evaluate the run first ('babyface evaluate RUN [DATA]')") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValidationError is a ValueError
        reason = first_problem(exc, EvaluationMetrics) if isinstance(exc, ValidationError) else exc.__class__.__name__
        raise BabyfaceError(f"{path}: not the metrics of a babyface evaluation ({reason}); evaluate the run again") from None


@dataclass(frozen=True)
class PredictionRow:
    """One test image in predictions.csv."""

    file: str  # relative to metrics.json's data_root when inside it
    true: str
    predicted: str
    probabilities: dict[str, float]  # the p_CLASS columns, calibrated
    face_found: str = ""  # true / false, or "" when no face was looked for (--framing whole)
    group: str = ""  # "" when evaluate knew no groups

    @property
    def correct(self) -> bool:
        return self.true == self.predicted

    @property
    def confidence(self) -> float:
        return self.probabilities[self.predicted]


def write_predictions(path: Path, classes: list[str], rows: list[PredictionRow], grouped: bool) -> Path:
    """predictions.csv; with ``grouped`` a last column ``group`` (which ``compare`` uses for its paired test)."""
    header = ["file", "true", "predicted", *(f"p_{c}" for c in classes), "face_found", *(["group"] if grouped else [])]
    return write_csv(path, header, ([row.file, row.true, row.predicted, *(f"{row.probabilities[c]:.6f}" for c in classes),
                                     row.face_found, *([row.group] if grouped else [])] for row in rows))


def read_predictions(path: Path) -> list[PredictionRow]:
    """The rows of a predictions.csv (``write_predictions``); a one-line BabyfaceError when it is missing or damaged."""
    try:
        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
            return [_prediction_row(row) for row in csv.DictReader(handle)]
    except FileNotFoundError:
        raise BabyfaceError(f"{path}: not found; evaluate the run first ('babyface evaluate RUN [DATA]')") from None
    except (OSError, KeyError, ValueError) as exc:
        raise BabyfaceError(f"{path}: not a babyface predictions.csv ({exc.__class__.__name__}: {exc}); evaluate again") from None


def _prediction_row(row: dict[str, str]) -> PredictionRow:
    probabilities = {name[2:]: float(value) for name, value in row.items() if name.startswith("p_")}
    return PredictionRow(row["file"], row["true"], row["predicted"], probabilities, row.get("face_found") or "",
                         row.get("group") or "")


# ---------------------------------------------------------------- split manifest

SPLIT_COLUMNS = ["file", "split", "label", "source"]


@dataclass(frozen=True)
class SplitRow:
    file: str  # relative to the manifest's root, POSIX separators
    split: str  # train | val | test
    label: str  # class name in the model's label space
    source: str = ""  # the dataset it came from, when several were combined


@dataclass(frozen=True)
class SplitManifest:
    """Every image a run used and its split, written once by train; evaluate, ensemble, report only read it."""

    root: Path
    rows: list[SplitRow]

    def files(self, *splits: str) -> list[SplitRow]:
        return [row for row in self.rows if row.split in splits]

    def paths(self, *splits: str) -> list[Path]:
        return [self.root / row.file for row in self.files(*splits)]

    def counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for row in self.rows:
            counts[row.split, row.label] = counts.get((row.split, row.label), 0) + 1
        return counts


def write_split_manifest(path: Path, rows: list[SplitRow]) -> Path:
    return write_csv(path, SPLIT_COLUMNS, ([row.file, row.split, row.label, row.source] for row in sorted(rows, key=_row_key)))


def _row_key(row: SplitRow) -> tuple[str, str, str, str]:
    return row.file, row.split, row.label, row.source


def read_split_manifest(path: Path, root: Path | None = None) -> SplitManifest | None:
    """The manifest at ``path`` (None when there is none); ``root`` defaults to the folder its files are relative to,
    which the run's model.json records as ``data.root``."""
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        rows = [SplitRow(r["file"], r["split"], r["label"], r.get("source") or "") for r in csv.DictReader(handle)]
    return SplitManifest(root or path.parent, rows)
