"""babyface.bundle.single: save/load round trip, no pickle, atomic save, and a BundleError for every bad bundle."""

from __future__ import annotations

import io
import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from babyface.bundle import load_bundle
from babyface.bundle import single as bundle_module
from babyface.bundle.single import (
    BUNDLE_FORMAT,
    FORMAT_VERSION,
    META_FILE,
    REQUIRED_KEYS,
    WEIGHTS_FILE,
    bundle_metadata,
    read_metadata,
    save_bundle,
)
from babyface.errors import BabyfaceError, BundleError
from babyface.models import create_model
from babyface.run import ENSEMBLE, Arch, MemberRecord

CLASSES = ["happy", "neutral", "sad"]
SIZE = 32
MEAN = [0.5, 0.4, 0.3]
STD = [0.25, 0.2, 0.15]
CREATED = "2026-01-02T03:04:05+00:00"


@pytest.fixture(scope="module")
def pristine_cnn_bundle(tmp_path_factory, perturb_batchnorm) -> tuple[Path, torch.nn.Module]:
    """A tiny 3-class 32×32 CNN saved once per module (BatchNorm stats perturbed so they matter)."""
    torch.manual_seed(0)
    model = perturb_batchnorm(create_model("cnn", len(CLASSES), SIZE))
    folder = tmp_path_factory.mktemp("pristine") / "run"
    meta = bundle_metadata(model, CLASSES, SIZE, MEAN, STD, temperature=1.5, created=CREATED)
    assert save_bundle(folder, model, meta) == folder
    return folder, model


@pytest.fixture
def saved_cnn_bundle(pristine_cnn_bundle, tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    """A private copy of the saved bundle that a test may damage."""
    source, model = pristine_cnn_bundle
    folder = Path(shutil.copytree(source, tmp_path / "run"))
    return folder, model


def edit_meta(folder: Path, **changes) -> dict:
    meta = json.loads((folder / META_FILE).read_text())
    for key, value in changes.items():
        if value is KeyError:
            del meta[key]
        else:
            meta[key] = value
    (folder / META_FILE).write_text(json.dumps(meta))
    return meta


def bundle_error(folder: Path, *needles: str) -> str:
    with pytest.raises(BundleError) as info:
        load_bundle(folder)
    message = str(info.value)
    assert "\n" not in message
    assert str(folder) in message
    for needle in needles:
        assert needle in message, message
    return message


# ---------------------------------------------------------------- round trip


def test_round_trip_gives_identical_outputs(saved_cnn_bundle) -> None:
    folder, model = saved_cnn_bundle
    assert sorted(p.name for p in folder.iterdir()) == sorted([META_FILE, WEIGHTS_FILE])
    loaded = load_bundle(folder)
    assert loaded.path == folder
    assert loaded.classes == CLASSES and loaded.image_size == SIZE
    assert loaded.mean == MEAN and loaded.std == STD
    assert loaded.temperature == 1.5 and loaded.meta.created == CREATED
    assert loaded.model.arch_name == "cnn" and loaded.model.arch_kwargs == model.arch_kwargs
    assert not loaded.model.training
    x = torch.rand(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key


def test_metadata_content(saved_cnn_bundle) -> None:
    folder, _ = saved_cnn_bundle
    meta = read_metadata(folder)
    assert meta.format == BUNDLE_FORMAT and meta.format_version == FORMAT_VERSION
    assert meta.arch.model_dump() == {"name": "cnn", "kwargs": {"drop_rate": 0.5}}
    assert all(getattr(meta, key) is not None for key in REQUIRED_KEYS)


def test_save_with_explicit_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("cnn", 3, SIZE).eval()
    other = create_model("cnn", 3, SIZE).eval()
    save_bundle(tmp_path / "b", model, bundle_metadata(model, CLASSES, SIZE, MEAN, STD), state_dict=other.state_dict())
    loaded = load_bundle(tmp_path / "b")
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), other(x))


def test_save_is_atomic_and_overwrites_cleanly(saved_cnn_bundle) -> None:
    folder, model = saved_cnn_bundle
    meta = bundle_metadata(model, ["a", "b", "c"], SIZE, MEAN, STD)
    save_bundle(folder, model, meta)  # a second save replaces the first
    assert sorted(p.name for p in folder.iterdir()) == sorted([META_FILE, WEIGHTS_FILE])
    assert load_bundle(folder).classes == ["a", "b", "c"]


def test_failed_save_leaves_no_temp_files(tmp_path: Path, monkeypatch) -> None:
    model = create_model("cnn", 3, SIZE)
    meta = bundle_metadata(model, CLASSES, SIZE, MEAN, STD)

    def broken_save_file(state, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bundle_module, "save_file", broken_save_file)
    with pytest.raises(BabyfaceError, match="disk full"):
        save_bundle(tmp_path / "b", model, meta)
    assert list((tmp_path / "b").iterdir()) == []


def test_loading_never_unpickles(saved_cnn_bundle, monkeypatch) -> None:
    folder, _ = saved_cnn_bundle

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used while loading a bundle")

    class ForbiddenUnpickler:
        def __init__(self, *args, **kwargs):
            forbidden()

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", ForbiddenUnpickler)
    monkeypatch.setattr(torch, "load", forbidden)
    loaded = load_bundle(folder)
    assert loaded.classes == CLASSES


# ---------------------------------------------------------------- errors


def test_missing_folder(tmp_path: Path) -> None:
    bundle_error(tmp_path / "no-such-run", "not found")


def test_folder_without_metadata(saved_cnn_bundle) -> None:
    folder, _ = saved_cnn_bundle
    (folder / META_FILE).unlink()
    bundle_error(folder, META_FILE)


def test_folder_without_weights(saved_cnn_bundle) -> None:
    folder, _ = saved_cnn_bundle
    (folder / WEIGHTS_FILE).unlink()
    bundle_error(folder, WEIGHTS_FILE)


def test_empty_folder(tmp_path: Path) -> None:
    bundle_error(tmp_path, "not a babyface model")


def test_corrupt_json(saved_cnn_bundle) -> None:
    folder, _ = saved_cnn_bundle
    (folder / META_FILE).write_text('{"format": "babyface-bundle", "classes": [')
    bundle_error(folder, "corrupt")


def test_json_not_utf8(saved_cnn_bundle) -> None:
    folder, _ = saved_cnn_bundle
    (folder / META_FILE).write_bytes(b"\xff\xfe\x00garbage")
    bundle_error(folder, "corrupt")


@pytest.mark.parametrize("content", ['{"format": "something-else", "format_version": 1}', "[1, 2, 3]", '"babyface-bundle"'])
def test_json_of_another_format(saved_cnn_bundle, content: str) -> None:
    folder, _ = saved_cnn_bundle
    (folder / META_FILE).write_text(content)
    bundle_error(folder, "not a babyface model bundle")


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_unsupported_format_version(saved_cnn_bundle, version) -> None:
    folder, _ = saved_cnn_bundle
    edit_meta(folder, format_version=version)
    bundle_error(folder, "format version", repr(version))


@pytest.mark.parametrize("key", [k for k in REQUIRED_KEYS if k not in ("format", "format_version")])
def test_missing_required_key(saved_cnn_bundle, key: str) -> None:
    folder, _ = saved_cnn_bundle
    edit_meta(folder, **{key: KeyError})
    bundle_error(folder, key)


@pytest.mark.parametrize(("renamed", "phrase"), [
    ({"temperature": "temprature"}, "'temprature' is not a key babyface knows (did you mean 'temperature'?)"),
    ({"decision_classes": "decisions"}, "'decisions' is not a key babyface knows (did you mean 'decision_classes'?)"),
], ids=["misspelt", "renamed"])
def test_a_renamed_top_level_key_is_refused_naming_it(saved_cnn_bundle, renamed: dict, phrase: str) -> None:
    folder, _ = saved_cnn_bundle
    values = json.loads((folder / META_FILE).read_text())
    values.setdefault("decision_classes", ["happy", "sad"])
    (folder / META_FILE).write_text(json.dumps({renamed.get(key, key): value for key, value in values.items()}))
    message = bundle_error(folder, str(folder / META_FILE), phrase, "rename or remove it")
    assert "damaged" not in message


def test_metadata_lies_about_classes(saved_cnn_bundle) -> None:
    folder, _ = saved_cnn_bundle
    edit_meta(folder, classes=["a", "b", "c", "d"])
    bundle_error(folder, "shape", "does not match")


@pytest.mark.parametrize("classes", [["only"], "happy,sad", ["a", 2]])
def test_invalid_classes(saved_cnn_bundle, classes) -> None:
    folder, _ = saved_cnn_bundle
    edit_meta(folder, classes=classes)
    bundle_error(folder, "classes")


def test_metadata_lies_about_image_size(saved_cnn_bundle) -> None:
    folder, _ = saved_cnn_bundle
    edit_meta(folder, image_size=64)
    bundle_error(folder, "shape")


def test_metadata_with_invalid_image_size(saved_cnn_bundle) -> None:
    folder, _ = saved_cnn_bundle
    edit_meta(folder, image_size=40)  # not a multiple of 16: the CNN cannot be built
    bundle_error(folder, "cannot rebuild")


def test_metadata_lies_about_architecture(saved_cnn_bundle) -> None:
    folder, _ = saved_cnn_bundle
    edit_meta(folder, arch={"name": "resnet18", "kwargs": {}})
    bundle_error(folder, "do not match")


@pytest.mark.parametrize(
    "kwargs",
    [{"drop_rate": 0.5, "width": 4}, {"drop_rate": 2.0}, None, [1, 2]],
    ids=["unknown-kwarg", "bad-value", "null", "list"],
)
def test_bad_arch_kwargs(saved_cnn_bundle, kwargs) -> None:
    folder, _ = saved_cnn_bundle
    edit_meta(folder, arch={"name": "cnn", "kwargs": kwargs})
    bundle_error(folder, "cannot rebuild")


@pytest.mark.parametrize("arch", [{"name": "vgg99", "kwargs": {}}, {"kwargs": {}}, "cnn"])
def test_unknown_or_malformed_arch(saved_cnn_bundle, arch) -> None:
    folder, _ = saved_cnn_bundle
    edit_meta(folder, arch=arch)
    message = bundle_error(folder, "cannot rebuild")
    if isinstance(arch, dict) and "name" in arch:
        assert "vgg99" in message


def _torch_save_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(2)}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "payload",
    [pickle.dumps({"a": 1}), pickle.dumps({"a": 1}, protocol=0), _torch_save_bytes(), b"", b"\x00" * 7],
    ids=["pickle", "pickle-protocol0", "torch-save", "empty", "seven-zero-bytes"],
)
def test_pickle_or_garbage_renamed_to_safetensors(saved_cnn_bundle, monkeypatch, payload: bytes) -> None:
    folder, _ = saved_cnn_bundle
    (folder / WEIGHTS_FILE).write_bytes(payload)
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load used"))
    bundle_error(folder, WEIGHTS_FILE, "safetensors")


def test_truncated_safetensors(saved_cnn_bundle) -> None:
    folder, _ = saved_cnn_bundle
    data = (folder / WEIGHTS_FILE).read_bytes()
    (folder / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    bundle_error(folder, WEIGHTS_FILE, "safetensors")


def test_safetensors_with_missing_tensor(saved_cnn_bundle) -> None:
    from safetensors.torch import load_file, save_file

    folder, _ = saved_cnn_bundle
    state = load_file(str(folder / WEIGHTS_FILE))
    state.pop(sorted(state)[0])
    save_file(state, str(folder / WEIGHTS_FILE))
    bundle_error(folder, "missing")


@pytest.mark.parametrize(
    "changes",
    [
        {"mean": [0.5, 0.5]},
        {"mean": "0.5"},
        {"mean": [0.5, "x", 0.5]},
        {"std": [0.2, 0.0, 0.2]},
        {"std": [0.2, None, 0.2]},
        {"temperature": 0},
        {"temperature": "hot"},
        {"temperature": None},
    ],
    ids=["mean-short", "mean-string", "mean-item", "std-zero", "std-null", "temperature-zero", "temperature-string", "temperature-null"],
)
def test_bad_normalisation_or_temperature(saved_cnn_bundle, changes: dict) -> None:
    folder, _ = saved_cnn_bundle
    edit_meta(folder, **changes)
    bundle_error(folder, next(iter(changes)))


def test_temperature_is_optional(saved_cnn_bundle) -> None:
    folder, _ = saved_cnn_bundle
    edit_meta(folder, temperature=KeyError)
    assert load_bundle(folder).temperature == 1.0


def test_a_gray_bundle_loads_gray_and_says_so(tmp_path: Path):
    model = create_model("cnn", 3, 32, color="gray")
    save_bundle(tmp_path / "gray", model, bundle_metadata(model, ["happy", "neutral", "sad"], 32, [0.5] * 3, [0.25] * 3))
    loaded = load_bundle(tmp_path / "gray")
    assert loaded.meta.color == "gray" and len(loaded.model._forward_pre_hooks) == 1
    members = [member(name, color="gray") for name in "ab"]
    ensemble = loaded.meta.model_copy(update={"arch": Arch(name=ENSEMBLE), "members": members})
    assert ensemble.color == "gray"
    assert ensemble.model_copy(update={"members": [*members, member("c")]}).color == "mixed"


def member(name: str, **kwargs) -> MemberRecord:
    return MemberRecord(name=name, arch=Arch(name="cnn", kwargs=kwargs), image_size=32, temperature=1.0)
