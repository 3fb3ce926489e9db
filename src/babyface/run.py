"""The run folder contract: every artifact name of a run, the typed model metadata and the split manifest.

A run folder is what ``babyface train`` writes and every other command reads. Nothing else in babyface spells
an artifact's file name or reads ``model.json`` as a loose mapping: they ask ``RunFolder`` and ``ModelMeta``.

```
RUN/
  model.json            ModelMeta: architecture, classes, image size, normalisation, temperature, framing, data, ...
  model.safetensors     the weights (an ensemble has members/NAME/ bundles instead)
  config.yaml           the resolved training config
  splits.csv            the split manifest: every image's split, label and source, written once by train
  history.csv, learning_curves.png, train.log, checkpoint.pt (while training)
  evaluation/           metrics.json, predictions.csv, confusion_matrix.png, ... (babyface evaluate)
  model.onnx            babyface export;  explanations/  babyface explain;  videos/NAME/  babyface predict VIDEO
  report.html, model_card.md  babyface report
```
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from babyface.config.defaults import MAX_IMAGE_SIZE
from babyface.errors import BundleError
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
SEEDS_SUMMARY_JSON = "summary.json"
SEEDS_SUMMARY_MD = "summary.md"


class EvaluationFiles:
    """Names inside an evaluation folder (RUN/evaluation by default)."""

    METRICS = "metrics.json"
    PREDICTIONS = "predictions.csv"
    CONFUSION_JSON = "confusion_matrix.json"
    CONFUSION_PNG = "confusion_matrix.png"
    RELIABILITY_PNG = "reliability_diagram.png"
    GRID_PNG = "predictions_grid.png"
    SUBGROUPS = "subgroups.json"
    CONFIG = "eval_config.yaml"


@dataclass(frozen=True)
class RunFolder:
    """The paths of one run's artifacts."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

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


class ModelMeta(BaseModel):
    """``model.json``, validated once when read: what inference needs (checked) and what training recorded."""

    model_config = ConfigDict(extra="allow", strict=True)

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
    framing: dict[str, Any] | None = None
    data: dict[str, Any] = Field(default_factory=dict)  # where the images came from: root, sources, counts, coverage
    training: dict[str, Any] = Field(default_factory=dict)  # the resolved TrainConfig
    metrics: dict[str, Any] = Field(default_factory=dict)  # validation metrics of the kept epoch
    calibration: dict[str, Any] = Field(default_factory=dict)
    compute: ComputeRecord | None = None  # the number format and layout training used (weights are always fp32)
    members: Any = Field(default_factory=list)  # an ensemble's MemberRecords, kept as the dicts model.json holds

    @model_validator(mode="after")
    def _decisions_among_classes(self) -> ModelMeta:
        unknown = [c for c in self.decision_classes if c not in self.classes]
        if unknown or len(self.decision_classes) == 1 or len(set(self.decision_classes)) != len(self.decision_classes):
            raise ValueError(f"decision_classes {self.decision_classes} must be two or more distinct classes of {self.classes}")
        return self

    @model_validator(mode="after")
    def _members_of_an_ensemble(self) -> ModelMeta:
        if self.is_ensemble:
            check_member_records(self.members)
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
        arches = [member.get("arch", {}) for member in self.members] if self.is_ensemble else [self.arch.model_dump()]
        colours = {arch.get("kwargs", {}).get("color", "rgb") for arch in arches}
        return colours.pop() if len(colours) == 1 else "mixed"

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def parse_model_meta(values: Any, where: Path) -> ModelMeta:
    """``values`` read from ``where`` as ModelMeta, or a one-line BundleError naming the first bad field."""
    if nested_deeper(values, MAX_NESTING):
        raise BundleError(f"{where}: nested more than {MAX_NESTING} levels deep; the bundle is damaged, retrain or restore it")
    try:
        return ModelMeta.model_validate(values)
    except ValidationError as exc:
        raise BundleError(f"{where}: {first_problem(exc)}; the bundle is damaged, retrain or restore it") from None


def first_problem(exc: ValidationError) -> str:
    """The first error of ``exc`` in one line: the field, what is wrong with it and (shortened) what it got."""
    error = exc.errors()[0]
    if error["type"] == "value_error":  # babyface's own validators say what is wrong in full
        reason = str(error["ctx"]["error"])
    else:
        reason = f"{error['msg'].lower()} (got {shortened(repr(error.get('input')))})"
    if not error["loc"]:
        return reason
    field = str(error["loc"][0])
    problem = f"'{field}' {reason}"
    return f"cannot rebuild the architecture ({problem})" if field == "arch" else problem


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


class MemberRecord(BaseModel):
    """One member as an ensemble's model.json records it (its own bundle, members/NAME, is checked when loaded)."""

    model_config = ConfigDict(extra="allow", strict=True)

    name: str
    arch: Arch
    image_size: ImageSize
    temperature: Temperature
    weights_sha256: str = ""


def check_member_records(members: Any) -> None:
    """Raise ValueError unless ``members`` records 2 to MAX_MEMBERS distinct member folders, each within the limits
    of any bundle (reports and comparisons read these records without loading the members)."""
    names = [m.get("name") for m in members] if isinstance(members, list) and all(isinstance(m, dict) for m in members) else []
    if not 2 <= len(names) <= MAX_MEMBERS or not all(map(_folder_name, names)) or len(set(names)) < len(names):
        raise ValueError(f"'members' must name 2 to {MAX_MEMBERS} distinct member folders")
    for record in members:
        try:
            MemberRecord.model_validate(record)
        except ValidationError as exc:
            raise ValueError(f"member {record['name']!r}: {first_problem(exc)}") from None


def _folder_name(name: Any) -> bool:
    return isinstance(name, str) and _printable(name, MAX_MEMBER_NAME) and name not in (".", "..") and not {"/", "\\"} & set(name)


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
