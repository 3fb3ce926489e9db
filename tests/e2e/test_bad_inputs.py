"""Every bad input from the brief through scan, train, evaluate and predict: a one-line error or a clean,
counted skip, never a traceback. Plus property-based tests of the image loader and the bundle loader."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from babyface.bundle import load_bundle
from babyface.cli import main
from babyface.data.images import load_rgb
from babyface.data.scan import scan_dataset
from babyface.errors import BundleError, ImageDecodeError
from tests.conftest import png_claiming

NON_UTF8 = os.fsdecode(b"b\xe9b\xe9_\xff.png")  # a Latin-1 name that is not valid UTF-8


def jpeg_bytes(size=(40, 40), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    array = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(array).convert(mode).save(buffer, format="JPEG")
    return buffer.getvalue()




BAD_FILES = {
    "truncated.jpg": lambda: jpeg_bytes()[:300],
    "empty.jpg": lambda: b"",
    "text.jpg": lambda: b"hello, I am a text file\n",
    "bomb.png": lambda: png_claiming(20000, 20000),
}


def save_odd_but_valid(folder: Path) -> list[str]:
    """Images in unusual modes that must load: 16-bit TIFF, CMYK JPEG, palette PNG with transparency, 1×1."""
    Image.fromarray(np.full((30, 30), 40000, np.uint16)).save(folder / "sixteen.tif")
    Image.new("CMYK", (30, 30), (0, 128, 128, 0)).save(folder / "cmyk.jpg")
    palette = Image.new("P", (30, 30), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.save(folder / "palette.png", transparency=0)
    Image.new("RGB", (1, 1), (200, 10, 10)).save(folder / "one_pixel.png")
    Image.new("RGB", (30, 30), (10, 200, 10)).save(folder / NON_UTF8)
    return ["sixteen.tif", "cmyk.jpg", "palette.png", "one_pixel.png", NON_UTF8]


@pytest.fixture
def bad_data(tiny_data, tmp_path) -> Path:
    data = tmp_path / "bad"
    shutil.copytree(tiny_data, data)
    for split in ("train", "test"):
        folder = data / split / "happy"
        for name, make in BAD_FILES.items():
            (folder / name).write_bytes(make())
        save_odd_but_valid(folder)
        (folder / "loop").symlink_to(folder / "loop")  # a symlink loop
        (data / split / "notes.txt").write_text("a file where a class folder would be")
    return data


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err)
    return err[-1]


def test_scan_lists_odd_files_without_failing(bad_data):
    scan = scan_dataset(bad_data)
    assert scan.classes == ["happy", "neutral", "sad"]
    names = {s.path.name for s in scan.train.samples}
    assert set(BAD_FILES) <= names and "sixteen.tif" in names
    assert any(p.endswith("notes.txt") for p in scan.train.ignored)


def test_train_skips_and_counts_each_bad_file(bad_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(bad_data), "--epochs", "1", "--out", str(run), "--no-progress"]) == 0
    err = capsys.readouterr().err
    for name in BAD_FILES:
        assert any(name in line and "skipped" in line for line in err.splitlines()), name
    assert "Traceback" not in err
    meta = json.loads((run / "model.json").read_text())
    assert meta["data"]["skipped"] == len(BAD_FILES)
    good = 48 + 5  # the synthetic train images plus the odd-but-valid ones
    assert meta["data"]["train"] + meta["data"]["val"] == good


def test_strict_train_stops_on_the_first_bad_file(bad_data, tmp_path, capsys):
    assert main(["train", str(bad_data), "--epochs", "1", "--out", str(tmp_path / "r"), "--strict"]) == 2
    line = one_line_error(capsys)
    assert any(name in line for name in BAD_FILES) and "--strict" in line


def test_evaluate_and_predict_skip_bad_files(bad_data, tiny_run, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", str(tiny_run), str(bad_data), "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["skipped"] == len(BAD_FILES) and metrics["n"] == 12 + 5
    capsys.readouterr()
    assert main(["predict", str(tiny_run), str(bad_data / "test" / "happy"), "--format", "json"]) == 0
    captured = capsys.readouterr()
    names = {Path(p["file"]).name for p in json.loads(captured.out)}
    synthetic = {p.name for p in (bad_data / "test" / "happy").glob("happy_*.jpg")}
    assert len(names) == len(synthetic) + 5 and {"cmyk.jpg", "sixteen.tif", "one_pixel.png"} <= names
    assert not names & set(BAD_FILES)
    assert f"{len(BAD_FILES)} file(s) skipped" in captured.err


def test_predict_on_only_bad_files_fails_cleanly(tiny_run, tmp_path, capsys):
    (tmp_path / "broken.jpg").write_bytes(b"")
    assert main(["predict", str(tiny_run), str(tmp_path / "broken.jpg")]) == 1
    assert "broken.jpg" in capsys.readouterr().err


def test_class_folder_that_is_a_file_is_ignored_but_one_class_is_an_error(tmp_path, capsys):
    root = tmp_path / "d"
    (root / "happy").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "happy" / "a.png")
    (root / "sad").write_text("not a folder")
    assert main(["train", str(root), "--epochs", "1", "--out", str(tmp_path / "r")]) == 2
    assert "only one class folder" in one_line_error(capsys)


# ---------------------------------------------------------------- property-based


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2048))
def test_loader_never_raises_anything_but_decode_error(tmp_path, payload):
    path = tmp_path / "random.jpg"
    path.write_bytes(payload)
    try:
        image = load_rgb(path)
    except ImageDecodeError as exc:
        assert "\n" not in str(exc) and "random.jpg" in str(exc)
    else:
        assert image.mode == "RGB"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mode=st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"]),
    width=st.integers(1, 40),
    height=st.integers(1, 40),
    fmt=st.sampled_from(["PNG", "TIFF", "JPEG", "WEBP", "BMP", "GIF"]),
)
def test_loader_turns_any_mode_into_rgb_of_the_same_size(tmp_path, mode, width, height, fmt):
    image = Image.new(mode, (width, height))
    path = tmp_path / f"x.{fmt.lower()}"
    try:
        image.save(path, format=fmt)
    except (OSError, ValueError, KeyError):
        return  # this format cannot store this mode; nothing to load
    loaded = load_rgb(path)
    assert loaded.mode == "RGB" and loaded.size == (width, height)


@pytest.fixture(scope="module")
def saved_bundle(tiny_run):
    return tiny_run


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    classes=st.lists(st.text(min_size=1, max_size=5), min_size=0, max_size=6),
    image_size=st.one_of(st.integers(-5, 200), st.text(max_size=3), st.none()),
    arch=st.sampled_from(["cnn", "resnet18", "vit", ""]),
)
def test_bundle_whose_json_lies_is_refused(tmp_path, saved_bundle, classes, image_size, arch):
    folder = tmp_path / "lying"
    shutil.copytree(saved_bundle, folder, dirs_exist_ok=True)
    meta = json.loads((folder / "model.json").read_text())
    if (classes, image_size, arch) == (meta["classes"], meta["image_size"], meta["arch"]["name"]):
        return
    meta.update(classes=classes, image_size=image_size)
    meta["arch"]["name"] = arch
    (folder / "model.json").write_text(json.dumps(meta))
    try:
        load_bundle(folder)
    except BundleError as exc:
        assert "\n" not in str(exc)
    else:  # only possible when the lie happens to describe the same tensors (e.g. other class names)
        assert len(classes) == len(meta["classes"]) and arch == "cnn"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0.0, 0.999))
def test_truncated_safetensors_is_refused(tmp_path, saved_bundle, cut):
    folder = tmp_path / "cut"
    shutil.copytree(saved_bundle, folder, dirs_exist_ok=True)
    data = (saved_bundle / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(BundleError):
        load_bundle(folder)


def test_pickle_renamed_to_safetensors_is_refused_without_unpickling(tmp_path, saved_bundle, monkeypatch):
    import pickle

    folder = tmp_path / "pickled"
    shutil.copytree(saved_bundle, folder)
    (folder / "model.safetensors").write_bytes(pickle.dumps({"weight": [1, 2, 3]}))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    with pytest.raises(BundleError, match="safetensors"):
        load_bundle(folder)


def test_crop_counts_bad_files_as_unreadable(bad_data, tmp_path, capsys):
    src = bad_data / "test"
    out = tmp_path / "crops"
    assert main(["data", "crop", str(src), str(out), "--no-progress"]) == 0
    unreadable = (out / "unreadable.txt").read_text(encoding="utf-8", errors="replace")
    for name in BAD_FILES:
        assert name in unreadable
    assert "Traceback" not in capsys.readouterr().err
