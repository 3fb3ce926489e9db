"""Bundles that are valid JSON and valid safetensors but hostile: each is refused with one line, before anything big
is allocated. A table of (mutation of a real small bundle, phrase the error must hold), as timm's model tests."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from babyface.bundle import load_bundle
from babyface.bundle.ensemble import create_ensemble
from babyface.bundle.single import META_FILE, WEIGHTS_FILE, bundle_metadata, save_bundle
from babyface.cli import main
from babyface.config import EnsembleConfig
from babyface.errors import BundleError
from babyface.inference.calibration import TEMPERATURE_BOUNDS
from babyface.inference.classifier import Classifier, Prediction
from babyface.models import create_model
from babyface.run import MAX_MEMBERS, MAX_META_BYTES, MEMBERS_DIR

CLASSES = ["happy", "neutral", "sad"]
SIZE = 32
Mutation = Callable[[Path], Any]


def make_bundle(folder: Path, seed: int = 0) -> Path:
    """A real 32×32 xception-mini (width 8: a few thousand weights) saved as a bundle."""
    torch.manual_seed(seed)
    model = create_model("xception-mini", len(CLASSES), SIZE).eval()
    return save_bundle(folder, model, bundle_metadata(model, CLASSES, SIZE, [0.5] * 3, [0.25] * 3, temperature=1.2))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> dict[str, Path]:
    """One single bundle and one ensemble of two, made once; tests damage private copies."""
    root = tmp_path_factory.mktemp("hostile")
    runs = [make_bundle(root / name, seed) for seed, name in enumerate("ab")]
    ensemble = create_ensemble(EnsembleConfig(runs=[str(run) for run in runs], out=str(root / "ens")))
    return {"single": runs[0], "ensemble": ensemble}


@pytest.fixture
def single(pristine, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine["single"], tmp_path / "run"))


@pytest.fixture
def ensemble(pristine, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine["ensemble"], tmp_path / "ens"))


def one_line_refusal(folder: Path, phrase: str) -> str:
    with pytest.raises(BundleError) as info:
        load_bundle(folder)
    message = str(info.value)
    assert "\n" not in message and "\x1b" not in message and message.isprintable(), repr(message)
    assert phrase in message, message
    return message


# ---------------------------------------------------------------- mutations


def edit_json(path: Path, change: Callable[[dict], Any]) -> None:
    values = json.loads(path.read_text())
    change(values)
    path.write_text(json.dumps(values))


def meta(**changes: Any) -> Mutation:
    """model.json with top-level ``changes``."""
    return lambda folder: edit_json(folder / META_FILE, lambda values: values.update(changes))


def renamed(old: str, new: str) -> Mutation:
    """model.json with its top-level key ``old`` renamed ``new``."""
    return lambda folder: edit_json(folder / META_FILE, lambda values: values.__setitem__(new, values.pop(old)))


def arch_kwargs(**changes: Any) -> Mutation:
    return lambda folder: edit_json(folder / META_FILE, lambda values: values["arch"]["kwargs"].update(changes))


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def raw_meta(old: str, new: str) -> Mutation:
    """model.json, as json.dumps writes it, with ``old`` replaced by ``new`` (for what json.dumps cannot write)."""

    def mutate(folder: Path) -> None:
        text = json.dumps(json.loads((folder / META_FILE).read_text()))
        assert old in text
        (folder / META_FILE).write_text(text.replace(old, new))

    return mutate


def weight(value: float, which: int = 0) -> Mutation:
    """The ``which``-th floating tensor (in name order) gets one element set to ``value``."""

    def mutate(folder: Path) -> None:
        state = load_file(str(folder / WEIGHTS_FILE))
        name = sorted(key for key, tensor in state.items() if tensor.is_floating_point())[which]
        state[name].view(-1)[0] = value
        save_file(state, str(folder / WEIGHTS_FILE))

    return mutate


def member_record(**changes: Any) -> Mutation:
    """The first member's record in the ensemble's model.json with ``changes``."""
    return lambda folder: edit_json(folder / META_FILE, lambda values: values["members"][0].update(changes))


def members(change: Callable[[list], Any]) -> Mutation:
    return lambda folder: edit_json(folder / META_FILE, lambda values: change(values["members"]))


def in_member(mutation: Mutation) -> Mutation:
    """``mutation`` applied to the first member's own bundle under members/."""
    return lambda folder: mutation(folder / MEMBERS_DIR / "a")


SINGLE_CASES = {
    "image-size-1e9": (meta(image_size=10**9), "'image_size' input should be less than or equal to 512"),
    "image-size-2048": (meta(image_size=2048), "'image_size' input should be less than or equal to 512"),
    "image-size-4": (meta(image_size=4), "'image_size' input should be greater than or equal to 8"),
    "image-size-5000-digits": (
        raw_meta('"image_size": 32', '"image_size": 1' + "0" * 5000),
        "corrupt model metadata (ValueError)",
    ),
    "mean-above-1": (meta(mean=[0.5, 2.0, 0.5]), "'mean' input should be less than or equal to 1"),
    "mean-negative": (meta(mean=[-0.5, 0.5, 0.5]), "'mean' input should be greater than or equal to 0"),
    "mean-nan": (meta(mean=[math.nan, 0.5, 0.5]), "'mean' input should be a finite number"),
    "std-1e-300": (meta(std=[1e-300, 0.25, 0.25]), "'std' input should be greater than or equal to 0.001"),
    "std-huge": (meta(std=[0.25, 1e6, 0.25]), "'std' input should be less than or equal to 10"),
    "std-infinite": (meta(std=[math.inf, 0.25, 0.25]), "'std' input should be a finite number"),
    "temperature-tiny": (meta(temperature=1e-9), "'temperature' input should be greater than or equal to 0.01"),
    "temperature-huge": (meta(temperature=1e9), "'temperature' input should be less than or equal to 100"),
    "width-1e6": (arch_kwargs(width=10**6), "width must be an integer from 1 to 256"),
    "width-legal-but-not-these-weights": (arch_kwargs(width=256), "the metadata does not match the weights"),
    "nested-100": (meta(data={"sources": nested(100)}), "nested more than 32 levels deep"),
    "nested-100000": (
        raw_meta('"data": {}', '"data": ' + "[" * 100_000 + "]" * 100_000),
        "corrupt model metadata (RecursionError)",
    ),
    "over-1-MiB": (meta(created="x" * MAX_META_BYTES), "larger than 1 MiB"),
    "renamed-key": (renamed("temperature", "temprature"), "model.json: 'temprature' is not a key babyface knows (did you"),
    "unknown-key": (meta(note="unit test"), "model.json: 'note' is not a key babyface knows; rename or remove it"),
    "unknown-key-ansi-and-long": (meta(**{"\x1b[2J" + "x" * 10_000: 1}), "'\\x1b[2Jxxx"),
    "duplicate-classes": (meta(classes=["happy", "happy", "sad"]), "'classes' lists 'happy' more than once"),
    "duplicate-decision-classes": (meta(decision_classes=["happy", "happy"]), "two or more distinct classes"),
    "ansi-class": (meta(classes=["\x1b[31mhappy", "neutral", "sad"]), "name '\\x1b[31mhappy' is not 1 to 64 printable"),
    "newline-class": (meta(classes=["hap\npy", "neutral", "sad"]), "name 'hap\\npy' is not 1 to 64 printable"),
    "bidi-override-class": (meta(classes=["\u202ehappy", "neutral", "sad"]), "name '\\u202ehappy' is not 1 to 64"),
    "empty-class": (meta(classes=["", "neutral", "sad"]), "name '' is not 1 to 64 printable"),
    "long-class": (meta(classes=["h" * 65, "neutral", "sad"]), "is not 1 to 64 printable characters"),
    "nan-weight": (weight(math.nan), "holds NaN or infinite values"),
    "inf-weight": (weight(math.inf, which=-1), "holds NaN or infinite values"),
}

ENSEMBLE_CASES = {
    "member-image-size-2048": (
        member_record(image_size=2048),
        "member 'a': 'image_size' input should be less than or equal to 512",
    ),
    "member-temperature-1e9": (member_record(temperature=1e9), "member 'a': 'temperature' input should be less than"),
    "member-arch-not-a-mapping": (member_record(arch="cnn"), "member 'a': cannot rebuild the architecture"),
    "member-name-ansi": (member_record(name="\x1b[2Ja"), "'members' must name 2 to"),
    "member-listed-twice": (members(lambda m: m.__setitem__(1, m[0])), "'members' must name 2 to"),
    "too-many-members": (
        members(lambda m: m.extend(dict(m[0], name=f"m{i}") for i in range(MAX_MEMBERS))),
        "'members' must name",
    ),
    "members-nested-deep": (member_record(run=nested(40)), "nested more than 32 levels deep"),
    "own-meta-image-size-2048": (in_member(meta(image_size=2048)), "member 'a' cannot be loaded"),
    "own-meta-ansi-class": (in_member(meta(classes=["\x1b[31mhappy", "neutral", "sad"])), "printable characters"),
    "own-meta-over-1-MiB": (in_member(meta(created="x" * MAX_META_BYTES)), "larger than 1 MiB"),
    "renamed-key": (renamed("combine", "combined"), "model.json: 'combined' is not a key babyface knows (did you mean 'combine'?)"),
    "member-renamed-key": (member_record(runs="a"), "member 'a': 'runs' is not a key babyface knows (did you mean 'run'?)"),
    "own-meta-renamed-key": (in_member(renamed("temperature", "temprature")), "'temprature' is not a key babyface knows"),
    "own-weights-nan": (in_member(weight(math.nan)), "holds NaN or infinite values"),
}


@pytest.mark.parametrize(("mutation", "phrase"), SINGLE_CASES.values(), ids=SINGLE_CASES.keys())
def test_hostile_single_bundle_is_refused_in_one_line(single: Path, mutation: Mutation, phrase: str) -> None:
    mutation(single)
    assert str(single) in one_line_refusal(single, phrase)


@pytest.mark.parametrize(("mutation", "phrase"), ENSEMBLE_CASES.values(), ids=ENSEMBLE_CASES.keys())
def test_hostile_ensemble_is_refused_in_one_line(ensemble: Path, mutation: Mutation, phrase: str) -> None:
    mutation(ensemble)
    assert str(ensemble) in one_line_refusal(ensemble, phrase)


def test_the_untouched_bundles_load(pristine) -> None:
    assert load_bundle(pristine["single"]).classes == CLASSES
    assert load_bundle(pristine["ensemble"]).classes == CLASSES


@pytest.mark.parametrize(
    "changes",
    [
        {"std": [1e-3, 0.25, 0.25], "mean": [0.0, 1.0, 0.5]},  # training floors a channel's std at 1e-3
        {"temperature": TEMPERATURE_BOUNDS[0]},
        {"temperature": TEMPERATURE_BOUNDS[1]},
        {"classes": ["é" * 64, "neutral", "sad"]},  # printable, not ASCII
        {"classes": ["crying infant", "neutral", "sad"], "decision_classes": ["crying infant", "sad"]},
    ],
    ids=["std-floor", "temperature-low", "temperature-high", "unicode-class", "spaces"],
)
def test_the_limits_admit_what_training_writes(single: Path, changes: dict) -> None:
    meta(**changes)(single)
    assert load_bundle(single).meta.model_dump(include=set(changes)) == changes


def test_a_huge_bad_value_is_shown_shortened(single: Path) -> None:
    meta(classes=["\x07" * 10_000, "neutral", "sad"])(single)
    assert len(one_line_refusal(single, "'\\x07\\x07")) < 300


def test_the_first_bad_tensor_is_named(single: Path) -> None:
    state = load_file(str(single / WEIGHTS_FILE))
    first = sorted(state)[0]
    weight(math.nan)(single)
    assert f"weight {first} holds NaN" in one_line_refusal(single, "NaN")


# ---------------------------------------------------------------- memory guard


class LargestTensor(TorchDispatchMode):
    """Records the most elements of any tensor with storage that an operation creates."""

    def __init__(self) -> None:
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        sizes = [t.numel() for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor) and t.device.type != "meta"]
        self.numel = max([self.numel, *sizes])
        return out


@pytest.mark.parametrize(
    ("mutation", "phrase"),
    [
        (meta(image_size=2048), "'image_size'"),  # the cnn's head alone would be 17 GB
        (meta(arch={"name": "cnn", "kwargs": {}}, image_size=512), "do not match"),  # legal, 1 GB: refused by the header
        (arch_kwargs(width=10**6), "width"),
        (arch_kwargs(width=256), "does not match"),  # legal: 16 MB, still not allocated before the header is checked
    ],
    ids=["image-size-2048", "cnn-at-512", "width-1e6", "width-256"],
)
def test_oversized_architecture_is_refused_before_allocation(single: Path, mutation: Mutation, phrase: str) -> None:
    mutation(single)
    start = time.perf_counter()
    with LargestTensor() as largest:
        one_line_refusal(single, phrase)
    assert largest.numel < 100_000, f"{largest.numel} elements allocated before the refusal"
    assert time.perf_counter() - start < 5


# ---------------------------------------------------------------- the CLI


def write_png(path: Path) -> Path:
    Image.new("RGB", (40, 40), (120, 80, 60)).save(path)
    return path


@pytest.mark.parametrize("case", ["image-size-1e9", "nested-100000"])  # both were tracebacks
def test_cli_refuses_a_hostile_bundle_in_one_line(single: Path, tmp_path: Path, case: str) -> None:
    mutation, phrase = SINGLE_CASES[case]
    mutation(single)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "babyface", "predict", str(single), str(write_png(tmp_path / "x.png"))]
    command += ["--format", "json", "--backend", "torch"]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(err) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert err[0].startswith("babyface: error: ") and phrase in err[0] and "\x1b" not in err[0]
    assert proc.stdout == ""


@pytest.mark.parametrize("case", ["ansi-class", "duplicate-classes", "nan-weight"])
def test_predict_refuses_a_hostile_bundle_in_one_line(single: Path, tmp_path: Path, case: str, capsys) -> None:
    mutation, phrase = SINGLE_CASES[case]
    mutation(single)
    assert main(["predict", str(single), str(write_png(tmp_path / "x.png")), "--format", "json", "--backend", "torch"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and phrase in err and "\x1b" not in err


def test_predictions_with_nan_are_never_printed(single: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    nan = Prediction("x.png", "happy", math.nan, {c: math.nan for c in CLASSES})
    monkeypatch.setattr(Classifier, "predict_files", lambda self, paths, strict=False, progress=False: ([nan], []))
    assert main(["predict", str(single), str(write_png(tmp_path / "x.png")), "--format", "json", "--backend", "torch"]) == 2
    out, err = capsys.readouterr()
    assert "NaN" not in out and "non-finite probabilities" in err and len(err.strip().splitlines()) == 1
