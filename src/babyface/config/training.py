"""``babyface train`` (with its data and augmentation sections) and ``babyface models``, with the reference
project's defaults."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import field_validator, model_validator

from babyface.config.base import ConfigModel, option
from babyface.config.defaults import DEFAULT_MAX_PIXELS, MAX_IMAGE_SIZE
from babyface.errors import BabyfaceError

DATA, SOURCES, MODEL, OPTIMISATION, AUGMENTATION, RUNTIME = (
    "data", "sources (several datasets)", "model", "optimisation", "augmentation", "output and runtime")

DEVICE_HELP = "where to compute: auto (a CUDA GPU when there is one, else the CPU), cpu, cuda or cuda:N"
PROGRESS_HELP = "show progress bars on stderr"
PRECISION_HELP = ("number format of the model's arithmetic (weights are always kept and saved in fp32): bf16 (bfloat16 "
                  "mixed precision), fp32, or auto = bf16 where the hardware computes it natively (a CPU with AVX-512 "
                  "BF16 or AMX, a CUDA GPU; fp16 on GPUs without bf16), else fp32; the log says what was chosen and why")
CHANNELS_LAST_HELP = ("memory layout of images and weights: on (channels-last), off (NCHW), or auto = whichever a few timed "
                      "steps of this model show to be faster on this machine (remembered in the cache folder); same "
                      "numbers either way, only speed differs")
SOURCES_HELP = ("another dataset to combine with DATA (repeatable); classes are matched by folder name after "
                "--label-map")

AUTO_ADVERSARY = 0.3  # measured on real infants (README, "Sources that lack a class"): 3 seeds, + and - the head


class AugmentConfig(ConfigModel):
    """Training-time augmentation: the reference pipeline plus random grayscale, drawn afresh for every image."""

    enabled: bool = option(True, "augment training images (--no-augment trains on them as they are)", flag="--augment")
    hflip: float = option(0.5, "probability of mirroring an image left-right", ge=0, le=1)
    rotation: float = option(15.0, "largest random rotation either way, in degrees (0 = none)", ge=0, le=180)
    shear: float = option(10.0, "largest random shear either way, in degrees (0 = none)", ge=0, lt=90)
    scale_min: float = option(0.8, "smallest random zoom factor (1 = none; 0.8 shows the face 20% smaller)", gt=0)
    scale_max: float = option(1.2, "largest random zoom factor, at least --scale-min (1.2 shows the face 20% larger)",
                              gt=0)
    brightness: float = option(0.2, "brightness is multiplied by a random factor in [1-X, 1+X] (0 = none)", ge=0, le=1)
    contrast: float = option(0.2, "contrast is multiplied by a random factor in [1-X, 1+X] (0 = none)", ge=0, le=1)
    saturation: float = option(0.2, "colour saturation is multiplied by a random factor in [1-X, 1+X] (0 = none)",
                               ge=0, le=1)
    grayscale: float = option(0.2, "probability of turning an image gray, so colour and gray photos both look familiar",
                              ge=0, le=1)
    crop_scale: float = option(1.0, "random resized crop: the smallest share of the image area kept (1 = off; 0.6 keeps "
                                    "60-100%, then zooms back to full size)", ge=0.05, le=1)
    erasing: float = option(0.0, "probability of random erasing: one rectangle of 2-33% of the image filled with its "
                                 "mean colour (0 = off; 0.25 is typical)", ge=0, le=1)

    @model_validator(mode="after")
    def _scale_range(self) -> AugmentConfig:
        if self.scale_max < self.scale_min:
            raise BabyfaceError(f"--scale-max {self.scale_max} must be at least --scale-min {self.scale_min}")
        return self


class DataConfig(ConfigModel):
    """How training images are read, split and cached."""

    image_size: int = option(64, "side in pixels that images are resized to before the model sees them (64 as in the "
                                 "reference; the cnn model needs a multiple of 16)", ge=16, le=MAX_IMAGE_SIZE)
    val_fraction: float = option(0.2, "share of each class of the training images held out for validation (choosing "
                                      "the best epoch, calibration) when DATA has no val/ folder", ge=0, lt=1)
    test_fraction: float = option(0.15, "share of each class held out as the test set when DATA is one folder of class "
                                         "folders without train/ and test/; 0 = no test images at all (test/ folders "
                                         "are trained on too): the model to keep, once a benchmark has measured the "
                                         "recipe on sources it never saw", ge=0, lt=1)
    strict: bool = option(False, "stop at the first image that cannot be decoded instead of skipping and counting it, "
                                 "and refuse test images that copy training images instead of warning")
    max_pixels: int = option(DEFAULT_MAX_PIXELS, "refuse images with more pixels than this (guards against decompression "
                                          "bombs)", gt=0)
    group_by: str = option("", "keep groups whole when splitting off validation: a --manifest column (e.g. "
                               "identity_group) or 'near-duplicates' (copies and near-copies of a photo stay together); "
                               "empty = images are split one by one", metavar="COLUMN")
    manifest: str = option("", "CSV with a 'file' column (relative to DATA) and the --group-by column", metavar="CSV")
    split_file: str = option("", "CSV with a 'file' column (relative to DATA, or to the folder that holds every --data "
                                 "source) and a 'split' column (train, val or test) that fixes each image's split instead "
                                 "of DATA's folders; images it does not list are left out; 'babyface cv' writes one per "
                                 "fold; empty = DATA's own split", metavar="CSV")
    leakage_check: bool = option(True, "warn (refuse with --strict) when test images are copies of training images")
    label_map: str = option("", "YAML mapping folder class -> model class (null drops the class), to combine sources "
                                "whose class folders are named differently; empty = folder names as they are",
                            metavar="YAML", group=SOURCES)
    relabel: str = option("", "CSV of labels that replace the class folders' for the files it lists: a 'file' column "
                              "(relative to the folder holding every source, e.g. shared/data) and a 'label' column, or "
                              "annotators' vote counts in FER+'s columns (neutral, happiness, ..., unknown, nf), where "
                              "the label is the most-voted class; listed files without a label among the data's classes "
                              "are left out, files it does not list keep their folder's; empty = folder labels",
                          metavar="CSV", group=SOURCES)
    min_votes: int = option(0, "with a --relabel CSV of votes: keep a file only when its most-voted class has at least "
                               "this many votes (e.g. 5 of FER+'s 10; 0 = any clear majority)", ge=0, group=SOURCES)
    max_per_class: int = option(0, "train on at most this many images of each class of each source, drawn with --seed "
                                   "(0 = all)", ge=0, group=SOURCES)
    cache: bool = option(True, "keep decoded images in a cache file reused by later runs (--no-cache decodes every run)")
    cache_dir: str = option("", "folder of the decode cache; empty = $BABYFACE_CACHE_DIR, else "
                                "$XDG_CACHE_HOME/babyface or ~/.cache/babyface", metavar="DIR")
    cache_mem: float = option(4096.0, "megabytes of decoded images held in memory; a larger dataset streams from the "
                                      "cache file", ge=0, metavar="MB")
    framing: Literal["auto", "face", "whole"] = option(
        "auto", "how the training images are framed, recorded in model.json for evaluate and predict: auto (face crops "
                "when every DATA folder was written by 'babyface data crop', else whole images), face (tight face crops) "
                "or whole (images as given)")
    face_margin: float | None = option(
        None, "with --framing face: the margin evaluate, predict, serve and watch cut each face with by default (as "
              "--margin; measure it on held-out sources, e.g. benchmarks/cross_source.py --face-margin); auto = as the "
              "DATA folders' framing.json records, else 0.2", ge=0, le=2)
    adults: str = option("", "comma-separated sources whose faces are adults' (their folder or source names as the "
                             "training log prints them, e.g. fer2013-hsn,fer2013-other): the run then also trains an "
                             "infant-vs-adult model into RUN/who/ on the same images (adults: these sources; infants: "
                             "the others), by which code, predict, serve and watch tell the infant from a parent; "
                             "empty = none", metavar="NAMES")
    label_by: Literal["class", "age"] = option(
        "class", "what a training image's label is: class (its class folder) or age (adult for the --adults sources, "
                 "infant for the others: the infant-vs-adult model a run with --adults trains into RUN/who/)")


class TrainConfig(ConfigModel):
    """``babyface train``: the reference project's defaults (64×64, Adam 1e-3, StepLR(15, 0.3), batch 20, 23 epochs)."""

    help_groups: ClassVar[tuple[str, ...]] = (DATA, SOURCES, MODEL, OPTIMISATION, AUGMENTATION, RUNTIME)

    data: str = option("", "dataset folder: DATA/train/<class>/ and DATA/test/<class>/ (the BabyFace layout, optionally "
                           "DATA/val/), or DATA/<class>/", positional="?", group=DATA)
    sources: list[str] = option(description=SOURCES_HELP, default_factory=list, flag="--data", metavar="DATA",
                                group=SOURCES)
    out: str = option("", "run folder to write (must be new or empty unless --overwrite); empty = "
                          "runs/MODEL-DATE-TIME", metavar="DIR", group=RUNTIME)
    model: str = option("cnn", "architecture: cnn (the reference), resnet18, resnet34, xception-mini (for 48-px "
                               "faces); 'babyface models' lists them", metavar="NAME", group=MODEL)
    model_args: dict[str, Any] = option(description="an architecture option as KEY=VALUE, e.g. stem=small or "
                                                    "drop_rate=0.2 (repeatable); contrast=equalize, for any model, "
                                                    "histogram-equalises each face's luminance inside the model (so "
                                                    "in training and every later use)",
                                        default_factory=dict, flag="--model-arg", metavar="KEY=VALUE", group=MODEL)
    color: Literal["rgb", "gray"] = option("rgb", "what the model sees of each image: rgb (its colours, the reference) "
                                                  "or gray (luminance only, in training and every later use, so skin "
                                                  "tone and a dataset's colour cannot be a shortcut)", group=MODEL)
    who_epochs: int = option(6, "epochs of the infant-vs-adult model a run with --adults trains into RUN/who/", ge=1,
                             group=SOURCES)
    unlabelled: str = option("", "folder of unlabelled faces (e.g. infants of the population you will use it on) to learn "
                                 "from by self-training: a first model trained on the labelled data labels the faces it "
                                 "is sure of (--pseudo-threshold, and the same answer for the mirror image), then the "
                                 "model is trained again with them as one more source; empty = none", metavar="DIR",
                             group=SOURCES)
    pseudo_threshold: float = option(0.9, "calibrated probability from which the first model's answer for an unlabelled "
                                          "face is kept as its label (--unlabelled)", gt=0, le=1, group=SOURCES)
    decide_over: list[str] = option(
        description="comma-separated classes that decisions are taken over when the model learns more, e.g. "
                    "happy,neutral,sad for a model that also learns FER2013's angry, disgust, fear and surprise: "
                    "validation, evaluate, predict and serve answer over these (recorded in model.json); classes the "
                    "data lacks are left out; empty = all the classes it learns",
        default_factory=list, metavar="A,B,...", group=MODEL)
    epochs: int = option(23, "passes over the training images", ge=1, group=OPTIMISATION)
    batch_size: int = option(20, "images per training step", ge=1, group=OPTIMISATION)
    optimizer: Literal["adam", "adamw", "sgd"] = option("adam", "optimiser: adam (the reference), adamw (decoupled "
                                                                "weight decay) or sgd (Nesterov momentum)",
                                                        group=OPTIMISATION)
    lr: float = option(1e-3, "learning rate at the start (after --warmup-epochs)", gt=0, group=OPTIMISATION)
    weight_decay: float = option(0.0, "L2 penalty on the weights (0 = none; 0.05 is typical with adamw)", ge=0,
                                 group=OPTIMISATION)
    momentum: float = option(0.9, "momentum of --optimizer sgd", ge=0, lt=1, group=OPTIMISATION)
    scheduler: Literal["step", "cosine", "none"] = option("step", "learning-rate schedule, stepped every epoch: step "
                                                                  "(times --gamma every --step-size epochs, the "
                                                                  "reference), cosine (down to 0 at the last epoch) or "
                                                                  "none (constant)", group=OPTIMISATION)
    step_size: int = option(15, "epochs between learning-rate drops of --scheduler step", ge=1, group=OPTIMISATION)
    gamma: float = option(0.3, "factor the learning rate is multiplied by at each drop of --scheduler step", gt=0, le=1,
                          group=OPTIMISATION)
    warmup_epochs: int = option(0, "epochs of linear learning-rate warm-up before the schedule starts (0 = none)", ge=0,
                                group=OPTIMISATION)
    label_smoothing: float = option(0.0, "share of each target spread over the other classes (0 = none; 0.1 is "
                                         "typical)", ge=0, lt=1, group=OPTIMISATION)
    class_balance: Literal["auto", "none", "loss", "sampler", "source"] = option(
        "auto", "how training images are drawn: none (plain shuffle, the reference), loss (loss weighted by inverse "
                "class frequency), sampler (every class equally often), source (every class equally often, and within a "
                "class every source that has it equally often); auto = source when the --data sources cover different "
                "classes, else none", group=SOURCES)
    missing_classes: Literal["auto", "restrict", "prior", "off"] = option(
        "auto", "what an image teaches about classes its source has no images of: restrict (nothing: its softmax runs "
                "over its source's classes only), prior (restrict, and add each source's class prior to the logits "
                "while training), off (plain softmax over all classes: a happy/sad-only source teaches 'not neutral'); "
                "auto = restrict when sources cover different classes", group=SOURCES)
    source_adversary: str = option(
        "auto", "weight of a training-only head that guesses each image's source through a gradient reversal, so the "
                "features learn to hide which dataset an image came from: a number (0 = off), off, or auto = "
                f"{AUTO_ADVERSARY} when the --data sources cover different classes, else off", metavar="WEIGHT",
        group=SOURCES)
    mixup: float = option(0.0, "MixUp: blend pairs of images and their labels with a Beta(X, X) share (0 = off; 0.2 is "
                               "typical)", ge=0, group=AUGMENTATION)
    cutmix: float = option(0.0, "CutMix: paste a box of one image into another, labels shared by area, Beta(X, X) "
                                "(0 = off; 1.0 is typical); with --mixup too, each batch uses one of them",
                           ge=0, group=AUGMENTATION)
    ema: float = option(0.0, "decay of an exponential moving average of the weights, which is validated and saved "
                             "instead (0 = off; 0.999 is typical)", ge=0, lt=1, group=OPTIMISATION)
    init: str = option("", "start from this babyface run's weights (same architecture; classifier rows matched by class "
                           "name); empty = random initialisation", metavar="RUN", group=MODEL)
    freeze_stages: int = option(0, "with --init: keep the first N feature stages fixed (0 = train everything)", ge=0,
                                group=MODEL)
    init_lr_scale: float = option(1.0, "with --init: learning-rate multiplier for every layer but the classifier "
                                       "(0.3 changes the pretrained layers more gently)", gt=0, le=1, group=MODEL)
    recipe: str = option("", "a recipe name (infant, infant-v1, fast) or YAML file: settings applied under --config and "
                             "the flags; empty = none", metavar="NAME", group=MODEL)
    early_stopping: int = option(0, "stop after this many epochs without a validation macro-F1 gain (0 = off)", ge=0,
                                 group=OPTIMISATION)
    sync_bn: bool = option(False, "synchronise BatchNorm statistics across processes in distributed training",
                           group=RUNTIME)
    precision: Literal["auto", "fp32", "bf16"] = option("auto", PRECISION_HELP, group=RUNTIME)
    channels_last: Literal["auto", "on", "off"] = option("auto", CHANNELS_LAST_HELP, group=RUNTIME)
    seed: int = option(0, "random seed of the splits, initial weights, sampling and augmentation: the same seed "
                          "repeats a run", group=OPTIMISATION)
    seeds: str = option("", "comma-separated seeds, e.g. 0,1,2: one run per seed under OUT/seedN plus a summary and an "
                            "ensemble of them (overrides --seed); empty = one run", metavar="LIST", group=OPTIMISATION)
    device: str = option("auto", DEVICE_HELP, metavar="DEVICE", group=RUNTIME)
    overwrite: bool = option(False, "write into a --out folder that already holds results", group=RUNTIME)
    progress: bool = option(True, PROGRESS_HELP, group=RUNTIME)
    data_options: DataConfig = option(description="how training images are read, split and cached",
                                      default_factory=DataConfig, group=DATA)
    augment: AugmentConfig = option(description="training-time augmentation", default_factory=AugmentConfig,
                                    group=AUGMENTATION)

    @field_validator("channels_last", mode="before")
    @classmethod
    def _layout_switch(cls, value: Any) -> Any:
        """config.yaml files of earlier versions say channels_last: true/false."""
        return ("on" if value else "off") if isinstance(value, bool) else value

    @field_validator("decide_over", mode="before")
    @classmethod
    def _class_list(cls, value: Any) -> Any:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
            return value
        return list(dict.fromkeys(c.strip() for item in items for c in item.split(",") if c.strip()))

    @field_validator("source_adversary")
    @classmethod
    def _adversary(cls, value: str) -> str:
        adversary_weight(value, uneven=False)
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: str) -> str:
        if value:
            parse_seeds(value)
        return value


CV = "cross-validation"


class CvDataConfig(DataConfig):
    """DataConfig as ``babyface cv`` reads it: --group-by also keeps every group in one fold."""

    group_by: str = option("", "keep groups whole: no group is in two folds (nor in a fold's train and validation "
                               "images), and the 95% intervals resample whole groups; a --manifest column (e.g. "
                               "identity_group) or 'near-duplicates' (copies and near-copies of a photo stay together); "
                               "empty = images are assigned one by one", metavar="COLUMN")
    test_fraction: float = option(0.15, "not used by cv: every image is tested once, by the fold that holds it", gt=0,
                                  lt=1)
    split_file: str = option("", "not used by cv, which writes one split file per fold (OUT/splits/foldK.csv); leave "
                                 "empty", metavar="CSV")

    @field_validator("split_file")
    @classmethod
    def _no_split_file(cls, value: str) -> str:
        if value:
            raise ValueError("cv makes its own split per fold; drop --split-file (or train on it with 'babyface train')")
        return value


class CvConfig(TrainConfig):
    """``babyface cv``: one training per fold with every option of ``babyface train``, each fold tested on images (and
    groups) it never saw, results pooled over every image."""

    help_groups: ClassVar[tuple[str, ...]] = (CV, DATA, SOURCES, MODEL, OPTIMISATION, AUGMENTATION, RUNTIME)

    data: str = option("", "dataset folder: a BabyFace layout (DATA/train/, val/ and test/ are pooled, then cut into "
                           "folds) or DATA/<class>/", positional="?", group=DATA)
    folds: str = option("5", "number of folds, at least 2: the images are cut into K parts of whole --group-by groups "
                             "with the classes spread evenly, and each part is tested by a model trained on the others; "
                             "loso = one fold per DATA/--data source (leave one source out)", metavar="K|loso", group=CV)
    hold_out: list[str] = option(
        description="with --folds loso: the source to hold out in one fold, by the name the log gives it (its folder's "
                    "name; FER2013's two folders are 'fer2013'), or several joined by + to hold out together, e.g. "
                    "utk-infant-faces+utk-infant-smile (repeatable, one fold each); sources never named are trained on "
                    "in every fold; empty = every source is held out in turn",
        default_factory=list, metavar="SOURCE[+SOURCE]", group=CV)
    bootstrap: int = option(1000, "bootstrap resamples of the 95% intervals (at least 100)", ge=100, group=CV)
    out: str = option("", "folder for the folds (OUT/fold1, ... each a run folder), the pooled results and report.html; "
                          "must be new or empty unless --overwrite; empty = runs/cv-MODEL-DATE-TIME", metavar="DIR",
                      group=RUNTIME)
    data_options: CvDataConfig = option(description="how images are read, grouped and cached",
                                        default_factory=CvDataConfig, group=DATA)

    @field_validator("folds")
    @classmethod
    def _folds(cls, value: str) -> str:
        text = str(value).strip().lower()
        if text != "loso" and not (text.isdigit() and int(text) >= 2):
            raise ValueError(f"give a number of folds of at least 2 (e.g. 5), or loso (leave one source out), got {value!r}")
        return text

    @model_validator(mode="after")
    def _hold_out_needs_loso(self) -> CvConfig:
        if self.hold_out and self.folds != "loso":
            raise BabyfaceError(f"--hold-out chooses the sources of leave-one-source-out folds; add --folds loso (or drop "
                                f"--hold-out for --folds {self.folds})")
        return self

    def fold_config(self, **changes: Any) -> TrainConfig:
        """The TrainConfig of one fold's training: these options without the cv ones, ``changes`` applied
        (nested ``data_options`` changes merged)."""
        values = self.model_dump(exclude={"folds", "bootstrap", "hold_out"})
        values["data_options"] = {**values["data_options"], **changes.pop("data_options", {})}
        return TrainConfig(**{**values, **changes})


class ModelsConfig(ConfigModel):
    """``babyface models``: the size the table is computed at."""

    image_size: int = option(64, "input side in pixels the parameters and FLOPs are computed for", ge=16,
                             le=MAX_IMAGE_SIZE)
    num_classes: int = option(3, "number of classes of the classifier", ge=1)


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
