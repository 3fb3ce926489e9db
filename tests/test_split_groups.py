"""Group-aware stratified splits, `babyface data split`, DATA/val in training, and the train/evaluate leakage guard."""

from __future__ import annotations

import csv
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from babyface.cli import main
from babyface.data.splits import group_stratified_split
from babyface.tools.split import layout_file
from babyface.tools.synthetic import SynthConfig, generate_dataset


def test_group_split_keeps_groups_whole_and_close_to_targets() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 8, 300)
    groups = [f"g{g}" for g, size in enumerate(sizes) for _ in range(size)]
    labels = [int(g[1:]) % 3 for g in groups]
    assigned = group_stratified_split(labels, groups, {"test": 0.15, "val": 0.15}, seed=1)
    splits_of = defaultdict(set)
    for group, split in zip(groups, assigned):
        splits_of[group].add(split)
    assert all(len(s) == 1 for s in splits_of.values())
    for label in range(3):
        counts = Counter(s for s, y in zip(assigned, labels) if y == label)
        total = sum(counts.values())
        assert abs(counts["test"] / total - 0.15) < 0.03 and abs(counts["val"] / total - 0.15) < 0.03, counts
    assert group_stratified_split(labels, groups, {"test": 0.15, "val": 0.15}, seed=1) == assigned


def test_group_split_without_groups_is_per_image_and_seeded() -> None:
    labels = [0] * 50 + [1] * 50
    first = group_stratified_split(labels, [str(i) for i in range(100)], {"test": 0.2}, seed=3)
    assert Counter(first) == {"train": 80, "test": 20}
    assert first != group_stratified_split(labels, [str(i) for i in range(100)], {"test": 0.2}, seed=4)


@pytest.fixture(scope="module")
def folders_data(tmp_path_factory) -> Path:
    """60 synthetic faces as DATA/<class>/ plus a flipped copy and a rotated copy of two of them."""
    tiny = tmp_path_factory.mktemp("split") / "synth"
    generate_dataset(tiny, SynthConfig(n=60, seed=5, size=64), progress=False)
    data = tiny.parent / "folders"
    for path in tiny.glob("*/*/*.jpg"):
        (data / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, data / path.parent.name / path.name)
    for name, make in (("happy_00000", ImageOps.mirror), ("sad_00002", lambda im: im.rotate(12))):
        label = name.split("_")[0]
        with Image.open(data / label / f"{name}.jpg") as im:
            make(im.convert("RGB")).save(data / label / f"{name}_copy.jpg", quality=90)
    return data


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_split_command_near_duplicates_links_and_layout(folders_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["data", "split", str(folders_data), str(out), "--group-by", "near-duplicates", "--seed", "2", "--no-progress"]) == 0
    rows = read_rows(out / "layout.csv")
    assert len(rows) == 62 and {r["split"] for r in rows} == {"train", "val", "test"}
    by_source = {r["source"]: r for r in rows}
    for name in ("happy/happy_00000", "sad/sad_00002"):
        original, copy = by_source[f"{name}.jpg"], by_source[f"{name}_copy.jpg"]
        assert original["group"] == copy["group"] and original["split"] == copy["split"]
    first = rows[0]
    assert (out / first["file"]).stat().st_ino == (folders_data / first["source"]).stat().st_ino  # a hard link
    assert sorted(p.name for p in out.iterdir()) == ["layout.csv", "test", "train", "val"]  # not a second kind of splits.csv
    assert layout_file(out) == out / "layout.csv"


def test_the_layout_of_an_earlier_split_is_found_under_its_old_name(tmp_path: Path) -> None:
    assert layout_file(tmp_path) is None
    (tmp_path / "splits.csv").write_text("file,split,label,group,source\n")
    assert layout_file(tmp_path) == tmp_path / "splits.csv"
    (tmp_path / "layout.csv").write_text("file,split,label,group,source\n")
    assert layout_file(tmp_path) == tmp_path / "layout.csv"  # the current name wins


def test_split_command_manifest_copy_and_no_val(folders_data: Path, tmp_path: Path, capsys) -> None:
    files = sorted(p.relative_to(folders_data).as_posix() for p in folders_data.glob("*/*.jpg"))
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,infant\n" + "".join(f"{f},baby{i // 6}\n" for i, f in enumerate(files[:-3])) + "happy/gone.jpg,x\n")
    out = tmp_path / "out"
    assert main(["data", "split", str(folders_data), str(out), "--val", "0", "--test", "0.25", "--copy",
                 "--group-by", "infant", "--manifest", str(manifest), "--no-progress"]) == 0
    assert "3 file(s) have no infant" in capsys.readouterr().err
    rows = read_rows(out / "layout.csv")
    assert {r["split"] for r in rows} == {"train", "test"} and not (out / "val").exists()
    splits_of = defaultdict(set)
    for r in rows:
        splits_of[r["group"]].add(r["split"])
    assert all(len(s) == 1 for s in splits_of.values())
    assert (out / rows[0]["file"]).stat().st_ino != (folders_data / rows[0]["source"]).stat().st_ino  # --copy
    assert main(["data", "split", str(folders_data), str(tmp_path / "o2"), "--group-by", "age", "--manifest", str(manifest)]) == 2
    assert "no column 'age'" in capsys.readouterr().err
    assert main(["data", "split", str(folders_data), str(tmp_path / "o3"), "--group-by", "infant"]) == 2
    assert "--manifest" in capsys.readouterr().err


# ---------------------------------------------------------------- training with val/, groups, leakage guard

TRAIN_FAST = ["--model", "cnn", "--epochs", "1", "--image-size", "32", "--no-progress", "--no-augment"]


def test_train_uses_data_val_and_grouped_validation(folders_data: Path, tmp_path: Path) -> None:
    split = tmp_path / "split"
    assert main(["data", "split", str(folders_data), str(split), "--no-progress"]) == 0
    assert main(["train", str(split), "--out", str(tmp_path / "run"), *TRAIN_FAST]) == 0
    recorded = Counter(r["split"] for r in read_rows(tmp_path / "run" / "splits.csv"))
    on_disk = Counter(r["split"] for r in read_rows(split / "layout.csv"))
    assert recorded == on_disk  # val is DATA/val, not a share of train

    assert main(["train", str(folders_data), "--out", str(tmp_path / "grouped"), "--group-by", "near-duplicates",
                 "--val-fraction", "0.5", *TRAIN_FAST]) == 0
    rows = {r["file"]: r["split"] for r in read_rows(tmp_path / "grouped" / "splits.csv")}
    for name in ("happy/happy_00000", "sad/sad_00002"):
        assert rows[f"{name}.jpg"] == rows[f"{name}_copy.jpg"]


@pytest.fixture(scope="module")
def leaky_data(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("leaky") / "data"
    generate_dataset(data, SynthConfig(n=60, seed=6, size=64), progress=False)
    source = sorted((data / "train" / "sad").glob("*.jpg"))[0]
    with Image.open(source) as im:
        ImageOps.mirror(im.convert("L")).save(data / "test" / "sad" / "leaked.jpg")
    return data


def test_train_and_evaluate_warn_about_leakage_and_refuse_with_strict(leaky_data: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", str(leaky_data), "--out", str(run), *TRAIN_FAST]) == 0
    err = capsys.readouterr().err
    assert "LEAKAGE: 1 of 13 test image(s)" in err and "test/sad/leaked.jpg" in err
    assert main(["evaluate", str(run), str(leaky_data), "--no-progress"]) == 0
    assert "LEAKAGE: 1 of 13" in capsys.readouterr().err
    # the default face framing compares files (above); whole images as trained compares the decoded images
    assert main(["evaluate", str(run), str(leaky_data), "--no-progress", "--strict", "--overwrite", "--framing", "whole"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "stopped by --strict" in err
    assert main(["train", str(leaky_data), "--out", str(tmp_path / "strict"), "--strict", *TRAIN_FAST]) == 2
    capsys.readouterr()
    assert main(["train", str(leaky_data), "--out", str(tmp_path / "off"), "--strict", "--no-leakage-check", *TRAIN_FAST]) == 0
    assert "LEAKAGE" not in capsys.readouterr().err
