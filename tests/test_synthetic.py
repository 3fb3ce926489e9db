"""The synthetic infant-face generator: determinism, layout, metadata, class structure, errors."""

from __future__ import annotations

import csv
import hashlib
import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from babyface.errors import BabyfaceError, OutputExistsError
from babyface.tools.synthetic import (
    CLASSES,
    METADATA_COLUMNS,
    SKIN_TONES,
    STYLES,
    SynthConfig,
    generate_dataset,
    render_face,
)

SMALL = SynthConfig(n=30, seed=7, size=48)
MEDIUM = SynthConfig(n=300, seed=3, size=64)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): _sha(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _images(root: Path) -> dict[str, Path]:
    """Image files by file name (the name holds the class and the global index, not the split)."""
    return {p.name: p for p in root.glob("*/*/*.jpg")}


def _metadata(root: Path) -> list[dict[str, str]]:
    with open(root / "metadata.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("small") / "data"
    return out, generate_dataset(out, SMALL, progress=False)


@pytest.fixture(scope="module")
def medium(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("medium") / "data"
    return out, generate_dataset(out, MEDIUM, progress=False)


def test_same_seed_gives_byte_identical_files(small, tmp_path):
    out, _ = small
    generate_dataset(tmp_path / "again", SMALL, progress=False)
    assert _digests(out) == _digests(tmp_path / "again")


def test_different_seed_gives_different_images(small, tmp_path):
    out, _ = small
    generate_dataset(tmp_path / "other", SMALL.replace(seed=SMALL.seed + 1), progress=False)
    first = {name: _sha(path) for name, path in _images(out).items()}
    second = {name: _sha(path) for name, path in _images(tmp_path / "other").items()}
    assert first.keys() == second.keys()
    assert not set(first.values()) & set(second.values())


def test_image_i_does_not_depend_on_n(small, tmp_path):
    out, _ = small
    generate_dataset(tmp_path / "bigger", SMALL.replace(n=SMALL.n + 15), progress=False)
    bigger = _images(tmp_path / "bigger")
    for name, path in _images(out).items():
        assert _sha(path) == _sha(bigger[name]), name


def test_layout_counts_and_stratified_split(small):
    out, summary = small
    per_class = SMALL.n // len(CLASSES)
    n_test = round(per_class * SMALL.test_fraction)
    assert summary["counts"] == {
        "train": {c: per_class - n_test for c in CLASSES},
        "test": {c: n_test for c in CLASSES},
    }
    assert summary["out"] == str(out) and summary["n"] == SMALL.n and summary["seconds"] > 0
    for split in ("train", "test"):
        assert sorted(p.name for p in (out / split).iterdir()) == sorted(CLASSES)
        for label in CLASSES:
            files = sorted((out / split / label).iterdir())
            assert len(files) == summary["counts"][split][label]
            for f in files:
                index = int(re.fullmatch(rf"{label}_(\d{{5}})\.jpg", f.name).group(1))
                assert CLASSES[index % len(CLASSES)] == label  # round-robin labels
    assert sorted(p.name for p in out.iterdir()) == ["metadata.csv", "test", "train"]


def test_split_keeps_every_class_in_both_splits_for_tiny_n(tmp_path):
    summary = generate_dataset(tmp_path / "tiny", SynthConfig(n=6, size=32, test_fraction=0.05), progress=False)
    assert summary["counts"] == {"train": {c: 1 for c in CLASSES}, "test": {c: 1 for c in CLASSES}}


def test_metadata_rows_match_files_on_disk(small):
    out, _ = small
    rows = _metadata(out)
    assert tuple(rows[0].keys()) == METADATA_COLUMNS
    assert {row["file"] for row in rows} == {p.relative_to(out).as_posix() for p in out.glob("*/*/*.jpg")}
    assert len(rows) == SMALL.n
    for row in rows:
        split, label, _ = row["file"].split("/")
        assert (row["split"], row["label"]) == (split, label)
        assert 0 <= int(row["skin_tone"]) < len(SKIN_TONES) and row["tears"] in ("0", "1")
        with Image.open(out / row["file"]) as image:
            assert image.size == (SMALL.size, SMALL.size)
            assert image.mode == ("L" if row["grayscale"] == "1" else "RGB")
        for name in ("mouth_curve", "mouth_open", "brow_angle", "eye_open", "rotation", "scale"):
            assert len(row[name].partition(".")[2]) <= 4, (name, row[name])
        assert -20 <= float(row["rotation"]) <= 20


def test_grayscale_share_is_roughly_right(medium, tmp_path):
    out, summary = medium
    share = summary["grayscale"] / MEDIUM.n
    assert 0.12 < share < 0.28
    assert summary["grayscale"] == sum(row["grayscale"] == "1" for row in _metadata(out))
    assert generate_dataset(tmp_path / "none", SynthConfig(n=6, size=32, grayscale_share=0), progress=False)["grayscale"] == 0
    assert generate_dataset(tmp_path / "all", SynthConfig(n=6, size=32, grayscale_share=1), progress=False)["grayscale"] == 6


def test_classes_overlap_but_differ(medium):
    out, _ = medium
    rows = _metadata(out)

    def values(label: str, column: str) -> np.ndarray:
        return np.array([float(r[column]) for r in rows if r["label"] == label])

    curve = {label: values(label, "mouth_curve") for label in CLASSES}
    assert curve["happy"].mean() > curve["neutral"].mean() > curve["sad"].mean()
    assert curve["sad"].max() > curve["neutral"].min() and curve["neutral"].max() > curve["happy"].min()
    assert curve["sad"].max() > curve["happy"].min()  # even the extremes overlap
    assert values("sad", "brow_angle").mean() > values("neutral", "brow_angle").mean()
    assert values("neutral", "eye_open").mean() > values("sad", "eye_open").mean()
    assert values("sad", "tears").mean() > values("happy", "tears").mean()
    assert len({r["skin_tone"] for r in rows}) == len(SKIN_TONES)


def test_pixels_carry_the_class(medium):
    """A linear model on 16x16 edge maps of the face region beats chance (1/3), far from perfectly.

    Pose, clutter, blur and noise hide the small expression cues from a linear model
    (about 0.5 here); a small CNN on 1,440 such images reaches about 0.8.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    out, _ = medium
    rows = _metadata(out)
    features = np.stack([_face_edges(out / r["file"]) for r in rows])
    labels = np.array([CLASSES.index(r["label"]) for r in rows])
    accuracy = cross_val_score(LogisticRegression(C=0.01, max_iter=3000), features, labels, cv=5).mean()
    print(f"logistic regression on face edges: {accuracy:.3f}")
    assert 0.40 < accuracy < 0.95


def _face_edges(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        side = image.width
        face = image.convert("L").crop((int(0.2 * side), int(0.3 * side), int(0.8 * side), int(0.9 * side)))
        pixels = np.asarray(face.resize((16, 16), Image.Resampling.BOX), dtype=np.float32)
    edges = np.hypot(*np.gradient(pixels))
    return ((edges - edges.mean()) / (edges.std() + 1e-6)).ravel()


def test_only_the_face_depends_on_the_class():
    """From the same random stream the three classes share pose, background and noise; only the expression differs."""
    for seed in range(4):
        renders = [render_face(label, np.random.default_rng(seed), size=64, grayscale=False) for label in CLASSES]
        pixels = [np.asarray(image, dtype=np.int16) for image, _ in renders]
        for (a, pa), (b, pb) in itertools.combinations(zip(pixels, (p for _, p in renders)), 2):
            assert (pa["rotation"], pa["scale"], pa["skin_tone"]) == (pb["rotation"], pb["scale"], pb["skin_tone"])
            assert pa["mouth_curve"] != pb["mouth_curve"]
            changed = (np.abs(a - b).max(axis=2) > 24).mean()
            assert 0.002 < changed < 0.1


def test_render_face_is_deterministic_and_reports_parameters():
    image, params = render_face("sad", np.random.default_rng(5), size=64, grayscale=False)
    again, _ = render_face("sad", np.random.default_rng(5), size=64, grayscale=False)
    assert image.size == (64, 64) and image.mode == "RGB"
    assert np.array_equal(np.asarray(image), np.asarray(again))
    for key in ("label", "skin_tone", "grayscale", "mouth_curve", "mouth_open", "brow_angle", "eye_open", "tears", "rotation", "scale"):
        assert key in params
    assert params["label"] == "sad" and params["grayscale"] is False
    gray, gray_params = render_face("happy", np.random.default_rng(5), size=32, grayscale=True)
    assert gray.mode == "L" and gray.size == (32, 32) and gray_params["grayscale"] is True


def test_render_face_rejects_unknown_label():
    with pytest.raises(BabyfaceError, match="angry"):
        render_face("angry", np.random.default_rng(0))


def test_refuses_non_empty_folder_unless_overwrite(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    config = SynthConfig(n=9, size=32)
    with pytest.raises(OutputExistsError):
        generate_dataset(out, config, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    generate_dataset(out, config, overwrite=True, progress=False)
    generate_dataset(out, config.replace(n=6), overwrite=True, progress=False)  # stale images of n=9 go away
    assert {r["file"] for r in _metadata(out)} == {p.relative_to(out).as_posix() for p in out.glob("*/*/*.jpg")}
    assert (out / "notes.txt").read_text() == "mine"
    assert not list(out.rglob("*.tmp"))


@pytest.mark.parametrize(
    ("change", "option"),
    [
        ({"n": 5}, "--n:"),
        ({"test_fraction": 0.0}, "--test-fraction:"),
        ({"test_fraction": 1.0}, "--test-fraction:"),
        ({"grayscale_share": 1.5}, "--grayscale-share:"),
        ({"grayscale_share": -0.1}, "--grayscale-share:"),
        ({"size": 16}, "--size:"),
        ({"classes": ("happy", "angry")}, "--classes:"),
        ({"classes": ("sad", "sad")}, "--classes:"),
        ({"seed": -1}, "--seed:"),
        ({"style": "oil"}, "--style:"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path, change, option):
    with pytest.raises(BabyfaceError) as info:
        generate_dataset(tmp_path / "x", SynthConfig(**change), progress=False)
    message = str(info.value)
    assert option in message and "must be" in message and "\n" not in message
    assert not (tmp_path / "x").exists()  # validated before anything is written


def test_speed_sanity_report(tmp_path):
    """Not a timing assertion: the summary reports a consistent throughput (printed with -s)."""
    summary = generate_dataset(tmp_path / "speed", SynthConfig(n=24, size=128), progress=False)
    assert summary["seconds"] > 0
    assert summary["images_per_minute"] == pytest.approx(60 * 24 / summary["seconds"], rel=0.01)
    print(f"synthetic faces at 128px: {summary['images_per_minute']:.0f} images/minute")


def test_styles_draw_the_same_expression_in_a_look_told_apart_at_a_glance():
    """Same stream, same expression parameters in every style; a linear model on 8×8 colour thumbnails
    names the style of unseen images almost perfectly: the look alone is a shortcut to the source."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    features, styles = [], []
    for seed in range(20):
        renders = {style: render_face(CLASSES[seed % 3], np.random.default_rng(seed), size=32, grayscale=False, style=style)
                   for style in STYLES}
        expression = {name: renders["photo"][1][name] for name in ("mouth_curve", "mouth_open", "brow_angle", "eye_open", "tears")}
        for style, (image, params) in renders.items():
            assert {name: params[name] for name in expression} == expression
            features.append(np.asarray(image.resize((8, 8), Image.Resampling.BOX), dtype=np.float32).ravel() / 255)
            styles.append(style)
    accuracy = cross_val_score(LogisticRegression(max_iter=2000), np.stack(features), np.array(styles), cv=4).mean()
    assert accuracy > 0.95


def test_classes_option_generates_only_those_classes(tmp_path):
    summary = generate_dataset(tmp_path / "two", SynthConfig(n=8, size=32, classes=("happy", "sad"), style="studio"), progress=False)
    assert summary["counts"] == {"train": {"happy": 3, "sad": 3}, "test": {"happy": 1, "sad": 1}}
    assert sorted(p.name for p in (tmp_path / "two" / "train").iterdir()) == ["happy", "sad"]
    assert {r["label"] for r in _metadata(tmp_path / "two")} == {"happy", "sad"}


def test_photo_is_the_default_style():
    default, _ = render_face("happy", np.random.default_rng(3), size=32, grayscale=False)
    photo, _ = render_face("happy", np.random.default_rng(3), size=32, grayscale=False, style="photo")
    studio, _ = render_face("happy", np.random.default_rng(3), size=32, grayscale=False, style="studio")
    assert np.array_equal(np.asarray(default), np.asarray(photo))
    assert not np.array_equal(np.asarray(default), np.asarray(studio))


def test_cli_offers_every_style_and_parses_classes(tmp_path):
    from babyface.cli import build_parser, main

    synth = build_parser()._subparsers._group_actions[0].choices["synth"]
    assert next(a for a in synth._actions if a.dest == "style").choices == STYLES
    assert main(["synth", str(tmp_path / "s"), "--n", "6", "--size", "32", "--classes", "neutral, sad", "--style", "sketch", "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "s" / "train").iterdir()) == ["neutral", "sad"]


def test_different_synthetic_infants_are_not_copies_to_the_leakage_guard(tmp_path, caplog):
    """Faces drawn from one template (same feature geometry, identities told apart by colour alone) scored as copies
    of one photo: the demo warned that 18 of its 360 test images leaked. No pair of a few hundred faces may reach the
    threshold, while a resized, re-encoded, mirrored copy of a training image in the test split is still caught."""
    from PIL import ImageOps

    from babyface.data.duplicates import Signatures, near_pairs
    from babyface.data.leakage import check_leakage, file_signatures

    data = tmp_path / "data"
    generate_dataset(data, SynthConfig(n=600, seed=0, size=64), progress=False)
    train_paths, test_paths = (sorted((data / split).glob("*/*.jpg")) for split in ("train", "test"))
    train, train_kept = file_signatures(train_paths, progress=False)
    test, test_kept = file_signatures(test_paths, progress=False)
    assert near_pairs(Signatures.concat([train, test])) == []
    assert check_leakage(train, train_kept, test, test_kept, data) == 0
    assert "LEAKAGE" not in caplog.text

    copy = test_paths[0].parent / "copy_of_a_training_image.jpg"
    ImageOps.mirror(Image.open(train_paths[5]).resize((100, 100))).save(copy, quality=50)
    test, test_kept = file_signatures(test_paths + [copy], progress=False)
    assert check_leakage(train, train_kept, test, test_kept, data) == 1
    assert f"≈ {train_paths[5].relative_to(data).as_posix()}" in caplog.text
