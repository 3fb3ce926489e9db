"""Face detection (detect_faces, FaceBox) and `babyface data crop`."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from babyface.cli import main
from babyface.data import faces
from babyface.data.faces import FaceBox, detect_faces
from babyface.data.synthetic import render_face
from babyface.errors import BabyfaceError

needs_mtcnn = pytest.mark.skipif(not __import__("importlib").util.find_spec("facenet_pytorch"), reason="facenet-pytorch not installed")


def scene(seed: int = 21) -> Image.Image:
    """A synthetic face (one MTCNN finds, score 0.99) pasted at (200, 80) on a plain 400×300 background."""
    face, _ = render_face("happy", np.random.default_rng(seed), size=160, grayscale=False)
    canvas = Image.new("RGB", (400, 300), (90, 120, 160))
    canvas.paste(face, (200, 80))
    return canvas


def test_square_box_with_margin_stays_inside_the_image() -> None:
    box = FaceBox(10, 20, 50, 80, 0.99)  # 40 wide, 60 tall
    assert box.square(0.0, 200, 200) == (0, 20, 60, 80)
    left, top, right, bottom = box.square(0.5, 200, 200)
    assert right - left == bottom - top == 120 and left == 0 and top == 0
    assert FaceBox(0, 0, 300, 300, 1).square(0.2, 100, 80) == (20, 0, 100, 80)  # centred, clipped to the short side


@needs_mtcnn
def test_mtcnn_finds_the_pasted_face_from_pil_and_numpy() -> None:
    image = scene()
    for given in (image, np.asarray(image)):
        found = detect_faces(given)
        assert len(found) == 1 and found[0].score >= 0.9
        assert 190 <= found[0].left and found[0].right <= 370 and 70 <= found[0].top and found[0].bottom <= 250
    assert detect_faces(Image.new("RGB", (300, 300), "white")) == []


def test_missing_dependency_and_unknown_detector_give_one_line_errors(monkeypatch) -> None:
    faces._mtcnn.cache_clear()
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)
    with pytest.raises(BabyfaceError, match="pip install facenet-pytorch==2.5.3"):
        detect_faces(scene())
    faces._mtcnn.cache_clear()
    with pytest.raises(BabyfaceError, match="use one of mtcnn, haar"):
        detect_faces(scene(), detector="yolo")


@needs_mtcnn
def test_crop_command_keeps_layout_and_lists_images_without_faces(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "happy").mkdir(parents=True)
    (src / "sad").mkdir()
    scene().save(src / "happy" / "baby.png")
    Image.new("RGB", (300, 200), "white").save(src / "sad" / "empty.jpg")
    (src / "sad" / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "out"
    assert main(["data", "crop", str(src), str(out), "--margin", "0.1", "--no-progress"]) == 0
    with open(out / "crops.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["file"] for r in rows] == ["happy/baby.png"]
    crop = Image.open(out / "happy" / "baby.png")
    assert crop.size[0] == crop.size[1] > 80
    assert (out / "no_face.txt").read_text() == "sad/empty.jpg\n"
    assert "broken.jpg" in (out / "unreadable.txt").read_text()
    # how the crops were cut, for `train` to record in the bundle (babyface.data.framing)
    assert json.loads((out / "framing.json").read_text()) == {"mode": "face", "detector": "mtcnn", "margin": 0.1, "min_score": 0.9}


@needs_mtcnn
def test_crop_all_faces_writes_one_crop_per_face(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for label in ("happy", "sad"):
        (src / label).mkdir(parents=True)
    face = scene().crop((200, 80, 360, 240))
    two = Image.new("RGB", (600, 300), (90, 120, 160))
    two.paste(face, (40, 70))
    two.paste(face, (380, 70))
    two.save(src / "happy" / "twins.jpg", quality=95)
    scene().save(src / "sad" / "one.jpg", quality=95)
    out = tmp_path / "out"
    assert main(["data", "crop", str(src), str(out), "--all-faces", "--no-progress"]) == 0
    with open(out / "crops.csv", newline="") as handle:
        files = sorted(r["file"] for r in csv.DictReader(handle))
    assert files == ["happy/twins.jpg", "happy/twins_face2.jpg", "sad/one.jpg"]


@pytest.mark.parametrize("size", [(1, 1), (12, 30), (19, 19)])
def test_images_too_small_for_mtcnn_have_no_face(size):
    pytest.importorskip("facenet_pytorch")
    from babyface.data.faces import detect_faces

    assert detect_faces(np.zeros((*size, 3), np.uint8)) == []


def test_detection_side_from_max_side_and_min_face() -> None:
    from babyface.data.faces import MIN_FACE_PIXELS, detection_side

    assert detection_side((480, 640), 320, 0.0) == 320  # no min_face: max_side alone
    assert detection_side((480, 640), 0, 0.1) == math.ceil(640 * MIN_FACE_PIXELS / 48)  # a 48-px face becomes MIN_FACE_PIXELS
    assert detection_side((480, 640), 200, 0.1) == 200  # max_side still caps it
    assert detection_side((3000, 4000), 640, 0.25) == math.ceil(4000 * MIN_FACE_PIXELS / 750)  # independent of resolution
    assert detection_side((300, 400), 0, 0.25) == detection_side((3000, 4000), 0, 0.25)


@needs_mtcnn
def test_min_face_finds_faces_above_it_and_not_below() -> None:
    image = scene()  # the face is about 160 px of the 300-px shorter side
    (near,) = detect_faces(image, min_face=0.3)
    (full,) = detect_faces(image)
    assert near.iou(full) > 0.7
    assert detect_faces(image, min_face=0.9) == []


@needs_mtcnn
def test_channels_last_detector_gives_the_same_boxes_as_nchw() -> None:
    import torch

    image = scene()
    fast = detect_faces(image)
    nets = (faces._mtcnn().pnet, faces._mtcnn().rnet, faces._mtcnn().onet)
    try:
        for net in nets:
            net.to(memory_format=torch.contiguous_format)
        plain = detect_faces(image)
    finally:
        for net in nets:
            net.to(memory_format=torch.channels_last)
    assert len(fast) == len(plain) == 1 and fast[0].iou(plain[0]) > 0.99 and abs(fast[0].score - plain[0].score) < 1e-4
