"""Typed configs, one pydantic model per command, with the reference project's defaults.

Each field holds its default, its constraints and the help text of its command-line flag, so every option
has one name, one default and one place where it is documented (``babyface.cli`` builds the flags from them).
Values are resolved in this order: defaults < recipe < YAML file (``--config``) < flags < positionals.
"""

from __future__ import annotations

import typing

from babyface.config.base import (
    RECIPES,
    ConfigModel,
    config_error,
    data_sources,
    deep_update,
    field_flag,
    from_dict,
    load_recipe,
    load_yaml,
    merge,
    option,
    recipe_names,
    save_yaml,
    to_dict,
    with_recipe,
    zero_or_at_least,
)
from babyface.config.coding import AgreeConfig, CodeConfig
from babyface.config.datasets import AuditConfig, CropConfig, DemoConfig, SplitConfig, SynthCommand, SynthConfig
from babyface.config.defaults import (
    DEFAULT_DETECTOR,
    DEFAULT_MARGIN,
    DEFAULT_MAX_DECODE_MB,
    DEFAULT_MAX_PIXELS,
    DEFAULT_THRESHOLD,
    DETECT_MAX_SIDE,
    LIVE_DETECTOR,
    MAX_IMAGE_SIZE,
)
from babyface.config.faces import FaceDetection, TrainingCropDetection, VideoOptions
from babyface.config.inference import (
    CompareConfig,
    EnsembleConfig,
    EvalConfig,
    ExplainConfig,
    ExportConfig,
    MeasureConfig,
    PredictConfig,
    ReportConfig,
    ServeConfig,
    Tta,
    WatchConfig,
)
from babyface.config.training import (
    AUTO_ADVERSARY,
    AugmentConfig,
    CvConfig,
    CvDataConfig,
    DataConfig,
    ModelsConfig,
    TrainConfig,
    adversary_weight,
    parse_seeds,
)

CHOICES: dict[str, tuple[str, ...]] = {"tta": typing.get_args(Tta)}  # for code that checks a value outside a config

__all__ = [
    "DEFAULT_DETECTOR", "DEFAULT_MARGIN", "DEFAULT_MAX_DECODE_MB", "DEFAULT_MAX_PIXELS", "DEFAULT_THRESHOLD", "DETECT_MAX_SIDE",
    "LIVE_DETECTOR", "MAX_IMAGE_SIZE",
    "AUTO_ADVERSARY", "CHOICES", "RECIPES", "AgreeConfig", "AuditConfig", "AugmentConfig", "CodeConfig", "CompareConfig", "ConfigModel", "CropConfig",
    "CvConfig", "CvDataConfig", "DataConfig", "DemoConfig", "EnsembleConfig", "EvalConfig", "ExplainConfig", "ExportConfig", "FaceDetection",
    "MeasureConfig", "ModelsConfig", "PredictConfig", "ReportConfig", "ServeConfig", "SplitConfig", "SynthCommand", "SynthConfig", "TrainConfig",
    "TrainingCropDetection", "VideoOptions", "WatchConfig",
    "adversary_weight", "config_error", "data_sources", "deep_update", "field_flag", "from_dict", "load_recipe",
    "load_yaml", "merge", "option", "parse_seeds", "recipe_names", "save_yaml", "to_dict", "with_recipe",
    "zero_or_at_least",
]
