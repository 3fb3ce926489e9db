"""babyface.data.scan.scan_dataset: layouts, classes, counts, ignored files and one-line DataErrors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from babyface.data.scan import scan_dataset
from babyface.errors import DataError


def make_tree(root: Path, write_tiny_png, spec: dict[str, int], suffix: str = ".png") -> None:
    """``spec`` maps a class folder (relative to root) to how many images to write in it."""
    for folder, count in spec.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            write_tiny_png(root / folder / f"img{i:02d}{suffix}", value=10 * i)


def data_error(root: Path) -> str:
    with pytest.raises(DataError) as info:
        scan_dataset(root)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_babyface_layout(tmp_path: Path, write_tiny_png) -> None:
    make_tree(tmp_path, write_tiny_png, {
        "train/sad": 3, "train/happy": 5, "train/neutral": 4,
        "test/sad": 1, "test/happy": 2, "test/neutral": 2,
    })
    scan = scan_dataset(tmp_path)
    assert scan.layout == "babyface"
    assert scan.classes == ["happy", "neutral", "sad"]
    assert scan.train.classes == scan.test.classes == scan.classes
    assert scan.train.counts() == {"happy": 5, "neutral": 4, "sad": 3}
    assert scan.test.counts() == {"happy": 2, "neutral": 2, "sad": 1}
    for split, folder in ((scan.train, "train"), (scan.test, "test")):
        for sample in split.samples:
            assert sample.path.is_file()
            assert sample.path.parent.name == scan.classes[sample.label]
            assert sample.path.parent.parent == tmp_path / folder
    assert scan.train.ignored == [] and scan.test.ignored == []


def test_folders_layout(tmp_path: Path, write_tiny_png) -> None:
    make_tree(tmp_path, write_tiny_png, {"b": 2, "a": 3, "c": 1})
    scan = scan_dataset(tmp_path)
    assert scan.layout == "folders"
    assert scan.classes == ["a", "b", "c"]
    assert scan.test is None
    assert scan.train.counts() == {"a": 3, "b": 2, "c": 1}
    assert len(scan.train.samples) == 6


def test_accepts_str_path_and_mixed_extensions(tmp_path: Path, write_tiny_png) -> None:
    make_tree(tmp_path, write_tiny_png, {"a": 1, "b": 1})
    write_tiny_png(tmp_path / "a" / "UPPER.JPG")
    write_tiny_png(tmp_path / "b" / "x.webp")
    scan = scan_dataset(str(tmp_path))
    assert scan.train.counts() == {"a": 2, "b": 2}


def test_images_in_class_subfolders_are_found(tmp_path: Path, write_tiny_png) -> None:
    make_tree(tmp_path, write_tiny_png, {"a": 1, "b": 1, "a/session1": 2, "a/session1/deeper": 3})
    scan = scan_dataset(tmp_path)
    assert scan.classes == ["a", "b"]  # sub-folders are not classes
    assert scan.train.counts() == {"a": 6, "b": 1}
    deep = [s for s in scan.train.samples if "deeper" in s.path.parts]
    assert len(deep) == 3 and all(s.label == 0 for s in deep)


def test_non_image_files_are_ignored_and_listed(tmp_path: Path, write_tiny_png) -> None:
    make_tree(tmp_path, write_tiny_png, {"a": 2, "b": 2})
    (tmp_path / "a" / "README.txt").write_text("notes")
    (tmp_path / "b" / "labels.csv").write_text("x,y")
    scan = scan_dataset(tmp_path)
    assert scan.train.counts() == {"a": 2, "b": 2}
    assert all(s.path.suffix == ".png" for s in scan.train.samples)
    ignored = scan.train.ignored
    assert any(p.endswith(os.path.join("a", "README.txt")) for p in ignored)
    assert any(p.endswith(os.path.join("b", "labels.csv")) for p in ignored)


def test_hidden_files_and_folders_are_skipped(tmp_path: Path, write_tiny_png) -> None:
    make_tree(tmp_path, write_tiny_png, {"a": 1, "b": 1})
    write_tiny_png(tmp_path / "a" / ".hidden.png")
    write_tiny_png(tmp_path / "a" / ".cache" / "thumb.png")
    write_tiny_png(tmp_path / ".git" / "obj.png")  # a hidden folder at class level is not a class
    (tmp_path / "a" / ".DS_Store").write_bytes(b"\0")
    scan = scan_dataset(tmp_path)
    assert scan.classes == ["a", "b"]
    assert scan.train.counts() == {"a": 1, "b": 1}
    assert not any(name.startswith(".") for s in scan.train.samples for name in s.path.parts[len(tmp_path.parts):])
    assert not any(".DS_Store" in p or ".hidden" in p for p in scan.train.ignored)


@pytest.mark.timeout(20)
def test_symlink_loop_does_not_hang(tmp_path: Path, write_tiny_png) -> None:
    make_tree(tmp_path, write_tiny_png, {"a": 2, "b": 1})
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a", target_is_directory=True)
    (tmp_path / "a" / "up").symlink_to(tmp_path, target_is_directory=True)
    scan = scan_dataset(tmp_path)
    assert scan.train.counts() == {"a": 2, "b": 1}


def test_stray_file_at_class_level_is_ignored(tmp_path: Path, write_tiny_png) -> None:
    make_tree(tmp_path, write_tiny_png, {"a": 1, "b": 1})
    write_tiny_png(tmp_path / "stray.png")
    (tmp_path / "notes.txt").write_text("x")
    scan = scan_dataset(tmp_path)
    assert scan.classes == ["a", "b"]
    assert scan.train.counts() == {"a": 1, "b": 1}
    assert any(p.endswith("stray.png") for p in scan.train.ignored)
    assert any(p.endswith("notes.txt") for p in scan.train.ignored)


def test_class_named_like_image_file_but_file_is_not_a_class(tmp_path: Path, write_tiny_png) -> None:
    make_tree(tmp_path, write_tiny_png, {"a": 1, "b": 1})
    (tmp_path / "c").write_text("I am a file, not a class folder")
    scan = scan_dataset(tmp_path)
    assert scan.classes == ["a", "b"]
    assert any(p.endswith(os.sep + "c") for p in scan.train.ignored)


def test_scan_is_deterministic_and_sorted(tmp_path: Path, write_tiny_png) -> None:
    make_tree(tmp_path, write_tiny_png, {"b": 4, "a": 4})
    first = scan_dataset(tmp_path).train.samples
    second = scan_dataset(tmp_path).train.samples
    assert [(s.path, s.label) for s in first] == [(s.path, s.label) for s in second]
    for label in (0, 1):
        paths = [s.path for s in first if s.label == label]
        assert paths == sorted(paths)


# ---------------------------------------------------------------- errors


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    message = data_error(missing)
    assert str(missing) in message and "not found" in message
    assert "train/<class>" in message and "README" in message


def test_file_instead_of_folder(tmp_path: Path) -> None:
    (tmp_path / "data.zip").write_bytes(b"PK")
    message = data_error(tmp_path / "data.zip")
    assert str(tmp_path / "data.zip") in message and "not a folder" in message


@pytest.mark.parametrize(("present", "missing"), [("train", "test"), ("test", "train")])
def test_one_split_without_the_other(tmp_path: Path, write_tiny_png, present: str, missing: str) -> None:
    make_tree(tmp_path, write_tiny_png, {f"{present}/a": 1, f"{present}/b": 1})
    message = data_error(tmp_path)
    assert str(tmp_path) in message and f"no {missing}/" in message


def test_no_class_folders(tmp_path: Path, write_tiny_png) -> None:
    write_tiny_png(tmp_path / "loose.png")
    message = data_error(tmp_path)
    assert str(tmp_path) in message and "no class folders" in message


def test_empty_dataset_folder(tmp_path: Path) -> None:
    assert "no class folders" in data_error(tmp_path)


def test_only_one_class(tmp_path: Path, write_tiny_png) -> None:
    make_tree(tmp_path, write_tiny_png, {"happy": 3})
    message = data_error(tmp_path)
    assert str(tmp_path) in message and "happy" in message and "2 classes" in message


def test_empty_class_folder(tmp_path: Path, write_tiny_png) -> None:
    make_tree(tmp_path, write_tiny_png, {"a": 2, "b": 0})
    (tmp_path / "b" / "README.txt").write_text("no images yet")
    message = data_error(tmp_path)
    assert str(tmp_path / "b") in message and "no images" in message


def test_train_test_class_mismatch(tmp_path: Path, write_tiny_png) -> None:
    make_tree(tmp_path, write_tiny_png, {
        "train/happy": 1, "train/neutral": 1, "train/sad": 1,
        "test/happy": 1, "test/sad": 1, "test/angry": 1,
    })
    message = data_error(tmp_path)
    assert str(tmp_path / "test") in message
    assert "['angry', 'happy', 'sad']" in message and "['happy', 'neutral', 'sad']" in message


def test_test_split_with_one_class_fails(tmp_path: Path, write_tiny_png) -> None:
    make_tree(tmp_path, write_tiny_png, {"train/a": 1, "train/b": 1, "test/a": 1})
    message = data_error(tmp_path)
    assert str(tmp_path / "test") in message


def test_class_folder_that_is_a_file_with_too_few_classes(tmp_path: Path, write_tiny_png) -> None:
    make_tree(tmp_path, write_tiny_png, {"a": 2})
    (tmp_path / "b").write_text("should have been a folder")
    message = data_error(tmp_path)
    assert "only one class" in message


def test_non_utf8_file_names(tmp_path: Path, write_tiny_png) -> None:
    make_tree(tmp_path, write_tiny_png, {"a": 1, "b": 1})
    raw_dir = os.fsencode(tmp_path / "a")
    write_tiny_png(os.fsdecode(os.path.join(raw_dir, b"\xff\xfe.png")))
    (Path(os.fsdecode(os.path.join(raw_dir, b"notes-\xff.txt")))).write_text("x")
    scan = scan_dataset(tmp_path)
    assert scan.train.counts() == {"a": 2, "b": 1}
    assert len(scan.train.ignored) == 1
    for shown in scan.train.ignored:
        shown.encode("utf-8")  # printable


def test_a_class_folder_whose_name_would_reach_the_terminal_raw_is_refused_at_scan(tmp_path: Path) -> None:
    from PIL import Image

    from babyface.data.scan import scan_dataset
    from babyface.errors import DataError

    for name in ("happy", "sad\x1b[31m"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / name / "a.png")
    with pytest.raises(DataError, match=r"not 1 to 64 printable characters.*rename the folder") as info:
        scan_dataset(tmp_path)
    assert "\x1b" not in str(info.value)
