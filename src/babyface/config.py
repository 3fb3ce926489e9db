"""Typed configs, one per command, with the reference project's defaults.

Values are resolved in this order: dataclass defaults < YAML file (``--config``) < command-line flags.
Every run writes the resolved config next to its results.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from babyface.errors import BabyfaceError
from babyface.io import write_text

# The face pipeline's defaults (babyface.data.faces), shared by data crop, evaluate, predict, serve and video.
DETECTORS = ("mtcnn", "haar")
DEFAULT_DETECTOR = "mtcnn"
DEFAULT_MIN_SCORE = 0.9  # detector confidence to accept a face
DEFAULT_MARGIN = 0.2  # added around a detected face on every side, as a share of its size, before it is cut out
DETECT_MAX_SIDE = 640  # photos are shrunk to this for detection only; faces are cut from the full image


def helped(default: Any, text: str) -> Any:
    """A config field whose command-line flag shows ``text`` as its help."""
    return field(default=default, metadata={"help": text})


FRAMING_HELP = ("face: classify the square around each image's largest detected face, cut as 'babyface data crop' cuts "
                "it (the whole image when no face is found); whole: classify images as given, for images that are "
                "already tight face crops")
DETECTOR_HELP = "face detector for --framing face"
MARGIN_HELP = "added around a detected face on every side before it is classified, as a share of the face's size"
MIN_SCORE_HELP = "detector confidence (0-1) needed to accept a face"


@dataclass
class AugmentConfig:
    """Training-time augmentation; the reference pipeline plus random grayscale."""

    enabled: bool = True
    hflip: float = 0.5
    rotation: float = 15.0
    shear: float = 10.0
    scale_min: float = 0.8
    scale_max: float = 1.2
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    grayscale: float = 0.2
    crop_scale: float = 1.0  # random resized crop: smallest area share kept (1 = off; 0.6 keeps 60–100%)
    erasing: float = 0.0  # probability of random erasing (one rectangle, 2–33% of the image)


@dataclass
class DataConfig:
    image_size: int = 64
    val_fraction: float = 0.2
    test_fraction: float = 0.15
    strict: bool = False
    max_pixels: int = 100_000_000
    group_by: str = ""  # keep groups whole in the validation split: a --manifest column, or "near-duplicates"
    manifest: str = ""
    leakage_check: bool = True  # warn (refuse with --strict) when test images copy training images
    label_map: str = ""  # YAML: folder class -> model class (or null to drop), for combining sources
    max_per_class: int = 0  # train on at most this many images per class of each source, drawn with --seed (0 = all)
    cache: bool = True  # keep decoded images in a cache file reused across runs (--no-cache: decode every run)
    cache_dir: str = ""  # default $BABYFACE_CACHE_DIR, else $XDG_CACHE_HOME/babyface or ~/.cache/babyface
    cache_mem: float = 4096.0  # MB of decoded images held in memory; a larger dataset streams from the cache file
    framing: str = helped("auto", "how the training images are framed, recorded in model.json for evaluate and predict: "
                                  "auto (face crops when every DATA folder was written by 'babyface data crop', else whole "
                                  "images), face (tight face crops) or whole (images as given)")


@dataclass
class TrainConfig:
    data: str = ""
    sources: list = field(default_factory=list)  # more datasets (--data), combined into one label space
    out: str = ""
    model: str = "cnn"
    model_args: dict = field(default_factory=dict)
    epochs: int = 23
    batch_size: int = 20
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: str = "step"
    step_size: int = 15
    gamma: float = 0.3
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    class_balance: str = helped("auto", "how training images are drawn: none (plain shuffle, the reference), loss (loss "
                                "weighted by inverse class frequency), sampler (every class equally often), source (every "
                                "class equally often, and within a class every source that has it equally often); auto = "
                                "source when the --data sources cover different classes, else none")
    missing_classes: str = helped("auto", "what an image teaches about classes its source has no images of: restrict "
                                  "(nothing: its softmax runs over its source's classes only), prior (restrict, and add "
                                  "each source's class prior to the logits while training), off (plain softmax over all "
                                  "classes: a happy/sad-only source teaches 'not neutral'); auto = restrict when sources "
                                  "cover different classes")
    source_adversary: str = helped("auto", "weight of a training-only head that guesses each image's source through a "
                                   "gradient reversal, so the features learn to hide which dataset an image came from: "
                                   "a number (0 = off), off, or auto = 0.3 when the --data sources cover different "
                                   "classes, else off")
    mixup: float = 0.0  # MixUp Beta(α, α) coefficient; 0 = off (0.2 is typical)
    cutmix: float = 0.0  # CutMix Beta(α, α) coefficient; 0 = off (1.0 is typical); with both, each batch picks one
    ema: float = 0.0  # decay of an exponential moving average of the weights, validated and saved instead (0 = off; e.g. 0.999)
    init: str = ""  # start from this babyface run's weights (same architecture; classifier rows matched by class name)
    freeze_stages: int = 0  # with --init: keep the first N feature stages fixed
    init_lr_scale: float = 1.0  # with --init: learning-rate multiplier for every layer but the classifier
    recipe: str = ""  # a recipe name (e.g. infant) or YAML file: settings applied under --config and flags
    early_stopping: int = 0
    sync_bn: bool = False
    precision: str = "auto"
    channels_last: bool = False
    seed: int = 0
    seeds: str = ""  # "0,1,2": one run per seed under OUT/seedN plus a summary; overrides seed
    device: str = "auto"
    overwrite: bool = False
    progress: bool = True
    data_options: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class EvalConfig:
    run: str = ""
    data: str = ""
    sources: list = field(default_factory=list)  # more datasets (--data); default: the run's own sources
    label_map: str = ""  # default: the label map the run was trained with
    out: str = ""
    batch_size: int = 64
    device: str = "auto"
    grid_size: int = 18
    seed: int = 0
    bootstrap: int = 1000  # resamples for the 95% intervals; 0 = none
    metadata: str = ""  # CSV with a 'file' column (default with --by: DATA/metadata.csv)
    by: str = ""  # metadata column(s) for subgroup metrics, e.g. skin_tone,grayscale
    overwrite: bool = False
    strict: bool = False
    progress: bool = True
    leakage_check: bool = True
    tta: str = "none"  # test-time augmentation: "flip" averages the calibrated probabilities of each image and its mirror
    backend: str = helped("torch", "run the model with torch, or with onnx (RUN/model.onnx, or --onnx FILE, e.g. the int8 "
                                   "export) to measure the exported model itself; auto = onnx when RUN/model.onnx exists")
    onnx: str = helped("", "ONNX file for --backend onnx (default RUN/model.onnx)")
    framing: str = helped("face", FRAMING_HELP)
    detector: str = helped(DEFAULT_DETECTOR, DETECTOR_HELP)
    margin: float = helped(DEFAULT_MARGIN, MARGIN_HELP)
    min_score: float = helped(DEFAULT_MIN_SCORE, MIN_SCORE_HELP)


@dataclass
class PredictConfig:
    run: str = ""
    inputs: list = field(default_factory=list)
    format: str = "table"
    output: str = ""
    min_confidence: float = 0.0  # below it the label is "uncertain" (probabilities still reported)
    batch_size: int = 64
    device: str = "auto"
    strict: bool = False
    backend: str = "auto"  # torch | onnx | auto (onnx when RUN/model.onnx exists and onnxruntime is installed)
    onnx: str = ""  # ONNX file for the onnx backend (default RUN/model.onnx; e.g. RUN/model.int8.onnx)
    tta: str = "none"  # test-time augmentation: "flip" averages the calibrated probabilities of each image and its mirror
    framing: str = helped("face", FRAMING_HELP + " (photos; in videos faces are always detected)")

    # videos (.mp4, .avi, .mov, .mkv, ...): faces found, tracked and classified frame by frame
    out: str = ""  # folder for timeline.csv and timeline.png (default RUN/videos/<video name>)
    annotate: str = ""  # also write this video with boxes and labels drawn in (one input video only)
    every: int = 1  # use every N-th frame
    detect_every: int = 5  # run the face detector on every N-th used frame; boxes in between are interpolated
    detect_size: int = 320  # frames are shrunk to this longest side for detection only
    min_face: float = 0.0  # look only for faces at least this share of the shorter side (0: any size; faster when > 0)
    smooth: int = 5  # moving average of each face's probabilities over this many used frames
    detector: str = helped(DEFAULT_DETECTOR, "face detector (photos with --framing face, and videos)")
    min_score: float = helped(DEFAULT_MIN_SCORE, MIN_SCORE_HELP)
    margin: float = helped(DEFAULT_MARGIN, MARGIN_HELP)
    overwrite: bool = False


@dataclass
class ExportConfig:
    run: str = ""
    format: str = "onnx"
    out: str = ""  # default RUN/model.onnx, with --int8 RUN/model.int8.onnx
    int8: bool = False  # static int8 quantisation, calibrated on --calibration images
    calibration: str = ""  # DATA (its training images) or a folder of images
    calibration_images: int = 200
    parity_images: int = 100  # images for the logit comparison with PyTorch (calibration images, else random)
    overwrite: bool = False


@dataclass
class ExplainConfig:
    run: str = ""
    inputs: list = field(default_factory=list)
    out: str = ""  # default RUN/explanations
    target_class: str = ""  # --class: explain this class instead of the predicted one
    device: str = "auto"
    overwrite: bool = False


@dataclass
class ReportConfig:
    run: str = ""
    eval: str = ""  # evaluation folder (default RUN/evaluation)
    out: str = ""  # default: the run folder
    gallery: int = 8  # most confident mistakes shown with their Grad-CAMs
    device: str = "auto"
    overwrite: bool = False


@dataclass
class ServeConfig:
    run: str = ""
    host: str = "127.0.0.1"  # loopback only by default; 0.0.0.0 exposes the page to the network
    port: int = 8000
    max_upload_mb: float = 10.0
    detector: str = DEFAULT_DETECTOR
    min_score: float = DEFAULT_MIN_SCORE  # detector confidence to accept a face
    margin: float = DEFAULT_MARGIN  # added around each face before it is classified, as a share of its size
    detect_size: int = DETECT_MAX_SIDE  # at most this longest side for detection (faces are cut from the full image)
    min_face: float = 0.1  # look only for faces at least this share of the shorter side; images shrink to match (0: any size, slow)
    min_confidence: float = 0.0
    device: str = "auto"
    tta: str = "none"  # test-time augmentation: "flip" averages the calibrated probabilities of each image and its mirror
    workers: int = 2  # requests whose faces are detected at the same time (one thread each; about one per CPU core)


@dataclass
class EnsembleConfig:
    runs: list = field(default_factory=list)  # the member run folders
    out: str = ""  # the ensemble's folder (required)
    overwrite: bool = False


CHOICES: dict[str, tuple[str, ...]] = {
    "optimizer": ("adam", "adamw", "sgd"),
    "scheduler": ("step", "cosine", "none"),
    "class_balance": ("auto", "none", "loss", "sampler", "source"),
    "missing_classes": ("auto", "restrict", "prior", "off"),
    "format": ("table", "json", "csv"),
    "precision": ("auto", "fp32", "bf16"),
    "backend": ("auto", "torch", "onnx"),
    "ExportConfig.format": ("onnx",),  # a class-qualified key overrides the plain field name for that config
    "detector": DETECTORS,
    "tta": ("none", "flip"),
    "framing": ("face", "whole"),
    "DataConfig.framing": ("auto", "face", "whole"),
}


def choices_for(cls: type, name: str) -> tuple[str, ...] | None:
    return CHOICES.get(f"{cls.__name__}.{name}", CHOICES.get(name))

C = TypeVar("C")


def data_sources(config: Any) -> list[str]:
    """DATA and every --data of a train or evaluate config, in order, each once."""
    paths = [p for p in [config.data, *config.sources] if p]
    return list(dict.fromkeys(paths))


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def from_dict(cls: type[C], values: Mapping[str, Any], where: str = "config") -> C:
    """Build ``cls`` from a (possibly nested, possibly partial) mapping; unknown keys are an error."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise BabyfaceError(f"{where}: expected a mapping of option names to values, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise BabyfaceError(f"{where}: unknown option(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    kwargs = {}
    for name, value in values.items():
        default = fields[name].default_factory() if fields[name].default_factory is not dataclasses.MISSING else fields[name].default
        if dataclasses.is_dataclass(default):
            kwargs[name] = from_dict(type(default), value, f"{where}.{name}")
        else:
            kwargs[name] = _coerce(value, default, f"{where}.{name}")
    config = cls(**kwargs)
    validate(config)
    return config


def _coerce(value: Any, default: Any, where: str) -> Any:
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise BabyfaceError(f"{where}: expected true or false, got {value!r}")
    # bool is an int subclass: "epochs: true" must not become 1; 2.5 epochs must not become 2;
    # a single string must not become a list of its characters
    try:
        if isinstance(default, int):
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, (float, str)) and float(value).is_integer():
                return int(float(value))
        elif isinstance(default, float):
            if isinstance(value, (int, float, str)) and not isinstance(value, bool):
                return float(value)
        elif isinstance(default, str):
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                return str(value)
        elif isinstance(default, list):
            if isinstance(value, (list, tuple)):
                return list(value)
        elif isinstance(default, dict):
            if isinstance(value, Mapping):
                return dict(value)
        else:
            return value
    except (TypeError, ValueError, OverflowError):
        pass
    raise BabyfaceError(f"{where}: expected {type(default).__name__}, got {value!r}")


def merge(config: C, overrides: Mapping[str, Any]) -> C:
    """Return a copy of ``config`` with ``overrides`` (nested mapping) applied and validated."""
    merged = _deep_update(to_dict(config), overrides)
    return from_dict(type(config), merged)


def _deep_update(base: dict, updates: Mapping[str, Any]) -> dict:
    out = dict(base)
    for key, value in updates.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict) and key != "model_args":
            out[key] = _deep_update(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml(path: str | Path, what: str = "config file", flag: str = "--config",
              error: type[BabyfaceError] = BabyfaceError) -> dict:
    """A YAML file that must hold a mapping (empty → {}); one-line ``error`` naming the file otherwise."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: {what} not found; check the {flag} path") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise error(f"{path}: cannot read {what} ({str(exc).splitlines()[0]}); fix its YAML syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"{path}: a {what} must hold a YAML mapping of name: value")
    return data


RECIPES = Path(__file__).parent / "recipes"


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


def load_recipe(name: str) -> dict:
    """Settings of a recipe: a name shipped with babyface (``recipes/NAME.yaml``) or a YAML file path."""
    path = RECIPES / f"{name}.yaml" if name in recipe_names() else Path(name)
    if not path.is_file():
        raise BabyfaceError(f"--recipe {name!r}: no such recipe; available: {', '.join(recipe_names())} (or give a YAML file)")
    return load_yaml(path, "recipe", "--recipe")


def with_recipe(values: dict) -> dict:
    """``values`` (from --config and flags) laid over the settings of the recipe they name, if any."""
    return _deep_update(load_recipe(values["recipe"]), values) if values.get("recipe") else values


def save_yaml(config: Any, path: str | Path) -> Path:
    return write_text(path, yaml.safe_dump(to_dict(config), sort_keys=False))


def validate(config: Any) -> None:
    """Range checks with one-line messages naming the option and the fix."""
    for f in dataclasses.fields(config):
        value, choices = getattr(config, f.name), choices_for(type(config), f.name)
        if choices and value not in choices:
            raise BabyfaceError(f"--{_flag(f.name)} must be one of {', '.join(choices)}, got {value!r}")
    checks = {
        "epochs": lambda v: v >= 1,
        "batch_size": lambda v: v >= 1,
        "lr": lambda v: v > 0,
        "image_size": lambda v: v >= 16,
        "val_fraction": lambda v: 0 <= v < 1,
        "test_fraction": lambda v: 0 < v < 1,
        "step_size": lambda v: v >= 1,
        "gamma": lambda v: 0 < v <= 1,
        "label_smoothing": lambda v: 0 <= v < 1,
        "mixup": lambda v: v >= 0,
        "cutmix": lambda v: v >= 0,
        "ema": lambda v: 0 <= v < 1,
        "freeze_stages": lambda v: v >= 0,
        "max_per_class": lambda v: v >= 0,
        "init_lr_scale": lambda v: 0 < v <= 1,
        "crop_scale": lambda v: 0.05 <= v <= 1,
        "erasing": lambda v: 0 <= v <= 1,
        "hflip": lambda v: 0 <= v <= 1,
        "grayscale": lambda v: 0 <= v <= 1,
        "scale_min": lambda v: v > 0,
        "max_pixels": lambda v: v > 0,
        "cache_mem": lambda v: v >= 0,
        "grid_size": lambda v: v >= 1,
        "bootstrap": lambda v: v == 0 or v >= 100,
        "min_confidence": lambda v: 0 <= v <= 1,
        "calibration_images": lambda v: v >= 1,
        "parity_images": lambda v: v >= 1,
        "port": lambda v: 0 <= v <= 65535,
        "max_upload_mb": lambda v: v > 0,
        "min_score": lambda v: 0 <= v <= 1,
        "margin": lambda v: 0 <= v <= 2,
        "every": lambda v: v >= 1,
        "detect_every": lambda v: v >= 1,
        "detect_size": lambda v: v == 0 or v >= 32,
        "min_face": lambda v: 0 <= v < 1,
        "workers": lambda v: v >= 1,
        "smooth": lambda v: v >= 1,
    }
    for name, ok in checks.items():
        if hasattr(config, name) and not ok(getattr(config, name)):
            raise BabyfaceError(f"--{_flag(name)}: value {getattr(config, name)!r} is out of range")
    if hasattr(config, "source_adversary"):
        adversary_weight(config.source_adversary, uneven=False)
    if getattr(config, "seeds", ""):
        parse_seeds(config.seeds)
    if isinstance(config, AugmentConfig) and config.scale_max < config.scale_min:
        raise BabyfaceError("--scale-max must be at least --scale-min")


AUTO_ADVERSARY = 0.3  # measured on real infants (README, "Sources that lack a class"): 3 seeds, + and - the head


def adversary_weight(value: str, uneven: bool) -> float:
    """--source-adversary as a number: 'auto' is AUTO_ADVERSARY when sources cover different classes, else 0."""
    text = str(value).strip().lower()
    if text == "auto":
        return AUTO_ADVERSARY if uneven else 0.0
    if text == "off":
        return 0.0
    try:
        weight = float(text)
    except ValueError:
        weight = -1.0
    if not weight >= 0:
        raise BabyfaceError(f"--source-adversary {value!r}: give auto, off or a weight >= 0 (e.g. 0.3)")
    return weight


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' → [0, 1, 2]; anything else (not integers, repeats) is an error."""
    try:
        seeds = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise BabyfaceError(f"--seeds {text!r}: expected comma-separated integers, e.g. --seeds 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise BabyfaceError(f"--seeds {text!r}: give distinct integers, e.g. --seeds 0,1,2")
    return seeds


def _flag(name: str) -> str:
    return name.replace("_", "-")
