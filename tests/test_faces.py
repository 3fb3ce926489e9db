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
from babyface.errors import BabyfaceError
from babyface.faces import mtcnn
from babyface.faces.detectors import FaceBox, detect_faces
from babyface.tools.synthetic import render_face

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
    mtcnn._mtcnn.cache_clear()
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)
    with pytest.raises(BabyfaceError, match="pip install facenet-pytorch==2.5.3"):
        detect_faces(scene())
    mtcnn._mtcnn.cache_clear()
    with pytest.raises(BabyfaceError, match="use one of blazeface, mtcnn, haar"):
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
    # how the crops were cut, for `train` to record in the bundle (babyface.faces.framing)
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


@needs_mtcnn
def test_crop_accepts_a_folder_of_one_class(tmp_path: Path) -> None:
    (tmp_path / "scenes" / "sad").mkdir(parents=True)  # like photos of crying infants: one class to crop, nothing to classify
    scene().save(tmp_path / "scenes" / "sad" / "crying.jpg", quality=95)
    assert main(["data", "crop", str(tmp_path / "scenes"), str(tmp_path / "out"), "--no-progress"]) == 0
    assert [p.name for p in (tmp_path / "out" / "sad").iterdir()] == ["crying.jpg"]


@pytest.mark.parametrize("size", [(1, 1), (12, 30), (19, 19)])
def test_images_too_small_for_mtcnn_have_no_face(size):
    pytest.importorskip("facenet_pytorch")
    from babyface.faces.detectors import detect_faces

    assert detect_faces(np.zeros((*size, 3), np.uint8)) == []


def test_detection_side_from_max_side_and_min_face() -> None:
    from babyface.faces.detectors import MIN_FACE_PIXELS, detection_side

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
    nets = (mtcnn._mtcnn().pnet, mtcnn._mtcnn().rnet, mtcnn._mtcnn().onet)
    try:
        for net in nets:
            net.to(memory_format=torch.contiguous_format)
        plain = detect_faces(image)
    finally:
        for net in nets:
            net.to(memory_format=torch.channels_last)
    assert len(fast) == len(plain) == 1 and fast[0].iou(plain[0]) > 0.99 and abs(fast[0].score - plain[0].score) < 1e-4


# ---------------------------------------------------------------- BlazeFace (onnxruntime, ships with babyface)

def test_blazeface_anchors_follow_mediapipes_grid() -> None:
    from babyface.faces import blazeface

    centres = blazeface.anchors()
    assert centres.shape == (896, 2)
    assert np.allclose(centres[:2], 0.5 / 16) and np.allclose(centres[2], [1.5 / 16, 0.5 / 16])  # 2 per 16×16 cell
    assert np.allclose(centres[512:518], 0.5 / 8) and np.allclose(centres[-1], 7.5 / 8)  # then 6 per 8×8 cell


def test_blazeface_finds_the_pasted_face_in_mtcnns_box_convention() -> None:
    image = scene()
    (face,) = detect_faces(image, "blazeface")
    assert face.score >= 0.5 and isinstance(face.left, float)
    assert 190 <= face.left and face.right <= 380 and 60 <= face.top and face.bottom <= 260
    assert face.bottom - face.top > 1.15 * (face.right - face.left)  # reshaped to MTCNN's taller box
    assert detect_faces(Image.new("RGB", (300, 300), "white"), "blazeface") == []
    assert detect_faces(image, "blazeface", min_face=0.9) == []  # 160-px face on a 300-px side
    if __import__("importlib").util.find_spec("facenet_pytorch"):
        (mtcnn,) = detect_faces(image, "mtcnn")
        assert face.iou(mtcnn) > 0.6


def test_blazeface_retries_a_face_that_fills_the_frame_inside_a_grey_border(monkeypatch) -> None:
    from babyface.faces import blazeface

    face, _ = render_face("happy", np.random.default_rng(21), size=160, grayscale=False)
    rgb = np.asarray(face)
    borders = []
    real = blazeface._detect_once
    monkeypatch.setattr(blazeface, "_detect_once", lambda rgb, score, border=0.0: [] if not border else
                        borders.append((border, score)) or real(rgb, score, border))
    (left, top, right, bottom, score), = blazeface.detect(rgb)
    assert borders == [(blazeface.RETRY_BORDER, blazeface.RETRY_MIN_SCORE)] and score >= blazeface.RETRY_MIN_SCORE
    assert -10 <= left < right <= 170 and -10 <= top < bottom <= 170 and right - left > 60  # in the image's coordinates


@pytest.mark.parametrize("shape", [(1, 1, 3), (5, 300, 3), (2000, 3000, 3), (64, 64)])
def test_blazeface_takes_images_of_any_shape(shape) -> None:
    assert detect_faces(np.full(shape, 128, np.uint8), "blazeface") == []


def test_missing_blazeface_model_is_a_one_line_error(monkeypatch, tmp_path) -> None:
    from babyface.faces import blazeface

    blazeface.session.cache_clear()
    monkeypatch.setattr(blazeface, "MODEL_FILE", tmp_path / "gone.onnx")
    try:
        with pytest.raises(BabyfaceError, match="gone.onnx: cannot load the BlazeFace model.*--detector mtcnn"):
            detect_faces(scene(), "blazeface")
    finally:
        blazeface.session.cache_clear()


INFANT_THUMBS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "infant-thumbs"


@pytest.mark.skipif(not INFANT_THUMBS.is_dir(), reason="../shared/data/infant-thumbs is not present")
def test_blazeface_finds_real_infant_faces() -> None:
    from babyface.data.images import is_image_file, load_rgb

    files = sorted(p for p in INFANT_THUMBS.rglob("*") if is_image_file(p))
    found = sum(bool(detect_faces(load_rgb(p), "blazeface")) for p in files)
    assert found >= 0.9 * len(files), f"{found} of {len(files)}"  # 39 of 39 when written (MTCNN: 31)


def test_blazeface_retries_the_end_squares_of_a_wide_frame(monkeypatch) -> None:
    from babyface.faces import blazeface

    face, _ = render_face("happy", np.random.default_rng(21), size=160, grayscale=False)
    frame = np.full((240, 640, 3), 90, np.uint8)
    frame[40:200, 450:610] = np.asarray(face)
    real, seen = blazeface._detect_once, []
    # only the 240×240 end squares are looked at for real, as if the whole frame and its bordered copy found nothing
    monkeypatch.setattr(blazeface, "_detect_once", lambda rgb, score, border=0.0: seen.append(rgb.shape[:2]) or
                        (real(rgb, score, border) if rgb.shape[:2] == (240, 240) else []))
    (left, top, right, bottom, _), = blazeface.detect(frame)
    assert seen == [(240, 640), (240, 640), (240, 240), (240, 240)]
    assert 440 <= left < right <= 620 and 30 <= top < bottom <= 210  # in the frame's coordinates
    assert blazeface._detect_in_end_squares(np.zeros((240, 260, 3), np.uint8), 0.5) == []  # nearly square: no squares


def test_blazeface_eyes_follow_a_rotation_of_the_face() -> None:
    from babyface.faces import blazeface

    image = scene()
    found = blazeface.eyes(np.asarray(image))
    assert found is not None
    (rx, ry), (lx, ly) = found
    assert 190 <= rx < lx <= 380 and 60 <= min(ry, ly) and max(ry, ly) <= 260  # the subject's right eye on the left
    level = np.degrees(np.arctan2(ly - ry, lx - rx))
    (rx, ry), (lx, ly) = blazeface.eyes(np.asarray(image.rotate(15, center=(280, 160), fillcolor=(90, 120, 160))))
    turned = np.degrees(np.arctan2(ly - ry, lx - rx))
    assert abs((level - turned) - 15) < 5  # PIL turns counter-clockwise: the eye line tilts up to the right
    assert blazeface.eyes(np.full((300, 300, 3), 255, np.uint8)) is None


def test_crop_carries_the_source_manifest_so_crops_split_by_photo(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sad").mkdir(parents=True)
    scene().save(src / "sad" / "a.png")
    scene().rotate(5).save(src / "sad" / "a_copy.png")
    (src / "manifest.csv").write_text("file,label,stem,score\nsad/a.png,sad,photo1,x\nsad/a_copy.png,sad,photo1,y\n")
    out = tmp_path / "out"
    assert main(["data", "crop", str(src), str(out), "--detector", "blazeface", "--no-progress"]) == 0
    with open(out / "crops.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["stem"] for r in rows] == ["photo1", "photo1"] and all(r["label"] == "sad" for r in rows)
    assert all(float(r["score"]) > 0 for r in rows)  # crops.csv's own column wins over the manifest's
    split = tmp_path / "split"
    assert main(["data", "split", str(out), str(split), "--test", "0.5", "--val", "0", "--group-by", "stem",
                 "--manifest", str(out / "crops.csv"), "--no-progress"]) == 0
    placed = {p.parent.parent.name for p in split.rglob("*.png")}
    assert len(placed) == 1  # one photo's crops on one side: a one-class folder splits too
