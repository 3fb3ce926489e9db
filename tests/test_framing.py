"""Framing: evaluate and predict classify the face square that `data crop` and `serve` cut (or, with --framing whole,
the whole image); the bundle records how its training images were framed, and a mismatch is warned about."""

from __future__ import annotations

import csv
import json
import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from babyface.cli import main
from babyface.config import DEFAULT_MARGIN, EvalConfig, TrainingCropDetection
from babyface.data.images import load_resized, resize_square
from babyface.evaluation import evaluate as evaluate_module
from babyface.evaluation.evaluate import evaluate_run
from babyface.faces import detectors as faces_module
from babyface.faces.detectors import FaceBox
from babyface.faces.framing import (
    FRAMING_FILE,
    Framing,
    decode_framed,
    framing_mismatch,
    load_framed,
    shared_framing,
    training_framing,
    write_framing_file,
)
from babyface.inference.classifier import Classifier
from babyface.run import ModelMeta
from tests.conftest import face_scene

RED_SQUARE = (200, 80, 280, 160)  # where ``scene`` pastes the stand-in "face"


def scene(face: bool = True) -> Image.Image:
    """A 400×300 striped canvas with (``face``) a red 80×80 square: the stand-in face that ``red_detector`` finds."""
    rgb = np.zeros((300, 400, 3), np.uint8)
    rgb[:, :, 2] = 160
    rgb[::8, :, 1] = 255  # stripes: the whole image and the face square look nothing alike at 64×64
    if face:
        left, top, right, bottom = RED_SQUARE
        rgb[top:bottom, left:right] = (230, 30, 30)
        rgb[top + 20:top + 40, left + 10:left + 70] = (250, 250, 250)
    return Image.fromarray(rgb)


class RedDetector:
    """Stands in for ``detect_faces``: the red square as a face; records the settings it was called with."""

    def __init__(self):
        self.calls: list[tuple[str, float]] = []

    def __call__(self, image, detector="mtcnn", min_score=0.9, max_side=0, min_face=0.0):
        self.calls.append((detector, min_score))
        rgb = np.asarray(image)
        ys, xs = np.nonzero((rgb[..., 0] > 200) & (rgb[..., 1] < 60))
        return [FaceBox(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1), 0.99)] if len(xs) else []


@pytest.fixture
def red_detector(monkeypatch) -> RedDetector:
    fake = RedDetector()
    monkeypatch.setattr(faces_module, "detect_faces", fake)  # face_squares, used by every framing path, looks it up there
    return fake


def expected_square(margin: float = DEFAULT_MARGIN) -> tuple[int, int, int, int]:
    return FaceBox(*RED_SQUARE, 1.0).square(margin, 400, 300)


def test_face_framing_cuts_the_face_square_and_falls_back_to_the_whole_image(tmp_path, red_detector, caplog) -> None:
    scene().save(tmp_path / "a.png")
    scene(face=False).save(tmp_path / "b.png")
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    with caplog.at_level(logging.INFO, logger="babyface"):
        framed = decode_framed(paths, None, 64, Framing(faces=TrainingCropDetection(margin=0.3)), progress=False)
    box = expected_square(0.3)
    assert framed.boxes == [box, None] and framed.face_found == [True, False] and framed.no_face == 1
    images = framed.decoded.images.permute(0, 2, 3, 1).numpy()
    assert np.array_equal(images[0], resize_square(scene().crop(box), 64))
    assert not np.array_equal(images[0], load_resized(paths[0], 64))  # not the whole image
    assert np.array_equal(images[1], load_resized(paths[1], 64))
    assert [r.message for r in caplog.records if "no face found" in r.message] == [
        "no face found in 1 of 2 image(s) (mtcnn, min score 0.9): those were classified whole (face_found false)"]
    whole = decode_framed(paths, None, 64, Framing("whole"), progress=False)
    assert whole.face_found == [None, None] and len(red_detector.calls) == 2  # whole: no detection
    assert np.array_equal(whole.decoded.images.permute(0, 2, 3, 1).numpy()[0], load_resized(paths[0], 64))


def test_predict_classifies_the_face_square_and_reports_face_found(tmp_path, untrained_run, red_detector, capsys) -> None:
    scene().save(tmp_path / "a.png")
    scene(face=False).save(tmp_path / "b.png")
    assert main(["predict", str(untrained_run), str(tmp_path), "--format", "json", "--device", "cpu",
                 "--min-score", "0.5", "--detector", "haar"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["face_found"] for r in rows] == [True, False] and set(red_detector.calls) == {("haar", 0.5)}
    classifier = Classifier(untrained_run, device="cpu", backend="torch")
    crop = resize_square(scene().crop(expected_square()), 64)
    assert rows[0]["probabilities"] == pytest.approx(dict(zip(classifier.classes, classifier.classify_crops([crop])[0].tolist())), abs=1e-6)
    assert main(["predict", str(untrained_run), str(tmp_path), "--format", "csv", "--framing", "whole", "--device", "cpu"]) == 0
    table = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [r["face_found"] for r in table] == ["", ""]
    whole = classifier.classify_crops([load_resized(tmp_path / "a.png", 64)])[0]
    assert float(table[0]["p_happy"]) == pytest.approx(float(whole[0]), abs=1e-5)


def test_evaluate_classifies_and_shows_face_squares(tmp_path, untrained_run, red_detector, monkeypatch) -> None:
    data = tmp_path / "data"
    for label, face in (("happy", True), ("sad", True), ("sad", False)):
        (data / label).mkdir(parents=True, exist_ok=True)
        scene(face).save(data / label / f"{label}_{face}.png")
    shown = []
    monkeypatch.setattr(evaluate_module, "plot_prediction_grid", lambda images, *args, **kwargs: shown.extend(images))
    metrics = evaluate_run(EvalConfig(run=str(untrained_run), data=str(data), out=str(tmp_path / "e"), device="cpu",
                                      bootstrap=0, progress=False))
    assert metrics["framing"] == {**Framing().record(), "no_face": 1, "trained_on": None}
    with open(tmp_path / "e" / "predictions.csv", newline="") as handle:
        rows = {r["file"]: r for r in csv.DictReader(handle)}
    assert {f: r["face_found"] for f, r in rows.items()} == {"happy/happy_True.png": "true", "sad/sad_True.png": "true",
                                                             "sad/sad_False.png": "false"}
    expected = Classifier(untrained_run, device="cpu").classify_crops([resize_square(scene().crop(expected_square()), 64)])[0]
    assert float(rows["happy/happy_True.png"]["p_sad"]) == pytest.approx(float(expected[2]), abs=1e-5)
    tile = load_framed(data / "happy" / "happy_True.png", expected_square(), evaluate_module.GRID_TILE_SIZE)
    assert any(np.array_equal(image, tile) for image in shown)  # the grid shows the crop the model saw


def test_training_framing_from_data_crop_folders_or_as_declared(tmp_path) -> None:
    cropped, plain = tmp_path / "cropped", tmp_path / "plain"
    cropped.mkdir(), plain.mkdir()
    face = Framing("face", TrainingCropDetection(detector="haar", margin=0.3, min_score=0.8))
    write_framing_file(cropped, face)
    assert training_framing("auto", [cropped]) == {"mode": "face", "detector": "haar", "margin": 0.3, "min_score": 0.8}
    assert training_framing("auto", [plain]) == training_framing("auto", [cropped, plain]) == {"mode": "whole"}
    assert training_framing("whole", [cropped]) == {"mode": "whole"}
    assert training_framing("face", [plain]) == Framing().record()  # declared: data crop's defaults
    assert training_framing("face", [plain, cropped], 0.0)["margin"] == 0.0  # --face-margin: what inference cuts with
    assert training_framing("face", [plain], 0.0) == {**Framing().record(), "margin": 0.0}
    assert training_framing("auto", [plain], 0.0) == training_framing("whole", [cropped], 0.0) == {"mode": "whole"}
    (plain / FRAMING_FILE).write_text("not json")
    assert training_framing("auto", [plain]) == {"mode": "whole"}


def test_data_split_keeps_framing_json(tmp_path, write_tiny_png) -> None:
    src = tmp_path / "crops"
    for i in range(4):
        for label in ("happy", "sad"):
            write_tiny_png(src / label / f"{i}.png", value=40 * i + (label == "sad"), size=8)
    write_framing_file(src, Framing(faces=TrainingCropDetection(margin=0.25)))
    assert main(["data", "split", str(src), str(tmp_path / "split"), "--test", "0.25", "--val", "0", "--no-progress"]) == 0
    assert json.loads((tmp_path / "split" / FRAMING_FILE).read_text())["margin"] == 0.25


def recorded(framing: dict | None) -> ModelMeta:
    """A bundle's metadata that records ``framing`` (None: a bundle from before framing was recorded)."""
    return ModelMeta(format="babyface-bundle", format_version=1, arch={"name": "cnn"}, classes=["a", "b"], image_size=32,
                     mean=[0.5] * 3, std=[0.25] * 3, framing=framing)


def test_mismatch_messages_say_what_to_do() -> None:
    face, whole = recorded(Framing().record()), recorded({"mode": "whole"})
    assert framing_mismatch(face, Framing(), "run") is None
    assert framing_mismatch(whole, Framing("whole"), "run") is None
    assert framing_mismatch(recorded(None), Framing(), "run") is None  # old bundle: unknown, no warning
    assert "pass --framing whole" in framing_mismatch(whole, Framing(), "run")
    assert "drop --framing whole" in framing_mismatch(face, Framing("whole"), "run")
    assert "--margin 0.2" in framing_mismatch(face, Framing(faces=TrainingCropDetection(margin=0.4)), "run")
    assert framing_mismatch(recorded({"mode": "face"}), Framing(), "run") is None  # missing settings: defaults


def test_auto_margin_cuts_faces_as_the_bundle_was_trained() -> None:
    """--margin auto (the default) becomes the margin the bundle's faces were cut with, in photos and in videos; a
    whole-image bundle or one that records nothing gets 0.2; a given --margin is kept, with the mismatch warning."""
    from babyface.config import FaceDetection, VideoOptions
    from babyface.video.analysis import VideoAnalyser

    tight = recorded(Framing(faces=TrainingCropDetection(margin=0.0)).record())
    assert Framing("auto", FaceDetection()).for_bundle(tight).faces.margin == 0.0
    assert Framing("face", FaceDetection()).for_bundle(tight).record()["margin"] == 0.0
    assert framing_mismatch(tight, Framing("auto", FaceDetection()).for_bundle(tight), "run") is None
    for other in (recorded({"mode": "whole"}), recorded(None)):
        assert Framing("auto", FaceDetection()).for_bundle(other).faces.margin == DEFAULT_MARGIN
    given = Framing("auto", FaceDetection(margin=0.3)).for_bundle(tight)
    assert given.faces.margin == 0.3 and "--margin 0.0" in framing_mismatch(tight, given, "run")

    class Resolved:  # what VideoAnalyser reads of a Classifier: Classifier.faces_for, on a bundle cut tight
        framing = Framing("auto", FaceDetection()).for_bundle(tight)
        image_size = 32
        faces_for = Classifier.faces_for
    assert VideoAnalyser(Resolved(), FaceDetection(), VideoOptions(), 25.0).faces.cut_margin == 0.0
    assert Resolved().faces_for(FaceDetection(margin=0.3)).margin == 0.3  # a given --margin is kept
    assert VideoAnalyser(None, FaceDetection(), VideoOptions(), 25.0).faces.cut_margin == DEFAULT_MARGIN


def test_ensemble_framing_is_its_members_when_they_agree() -> None:
    face, whole = recorded(Framing().record()), recorded({"mode": "whole"})
    assert shared_framing([face, face]) == Framing().record()
    assert shared_framing([face, whole]) is None and shared_framing([recorded(None), recorded(None)]) is None


def test_train_records_framing_and_evaluate_warns_once_on_mismatch(tiny_data, tmp_path, capsys) -> None:
    data = tmp_path / "crops"
    shutil.copytree(tiny_data, data)
    write_framing_file(data, Framing())  # as `babyface data crop` leaves its output
    run = tmp_path / "run"
    assert main(["train", str(data), "--epochs", "1", "--image-size", "32", "--no-augment", "--out", str(run), "--no-progress"]) == 0
    assert json.loads((run / "model.json").read_text())["framing"] == Framing().record()
    capsys.readouterr()
    assert main(["evaluate", str(run), str(data), "--framing", "whole", "--bootstrap", "0", "--no-progress"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "drop --framing whole" in warnings[0]


@pytest.mark.skipif(not __import__("importlib").util.find_spec("facenet_pytorch"), reason="facenet-pytorch not installed")
def test_real_mtcnn_predict_frames_a_photo_as_serve_does(tmp_path, untrained_run) -> None:
    """A small face in a large canvas: predict's default classifies the same square as serve's face path."""
    image = face_scene(size=(640, 480), at=(400, 250))
    image.save(tmp_path / "scene.png")
    classifier = Classifier(untrained_run, device="cpu")
    (prediction,), _ = classifier.predict_files([tmp_path / "scene.png"])
    (served,) = classifier.predict_faces(image)
    assert prediction.face_found and served.face_detected
    assert prediction.probabilities == pytest.approx(served.probabilities, abs=1e-6)
    (whole,), _ = classifier.predict_files([tmp_path / "scene.png"], framing=Framing("whole"))
    assert whole.probabilities != pytest.approx(served.probabilities, abs=1e-4)


def test_framing_follows_the_bundle_unless_given(tiny_data, tmp_path, capsys) -> None:
    """A run trained on tight crops (no framing.json: model.json records whole) is evaluated and used whole by default;
    one trained on `data crop` output with face squares; an explicit --framing wins, with the one warning."""
    tight, cropped = tmp_path / "tight", tmp_path / "cropped"
    shutil.copytree(tiny_data, tight)
    shutil.copytree(tiny_data, cropped)
    write_framing_file(cropped, Framing())
    runs = {}
    for name, data in (("tight", tight), ("cropped", cropped)):
        runs[name] = tmp_path / f"run-{name}"
        assert main(["train", str(data), "--epochs", "1", "--image-size", "32", "--no-augment", "--out", str(runs[name]),
                     "--no-progress"]) == 0
    assert Classifier(runs["tight"], device="cpu").framing.mode == "whole"
    assert Classifier(runs["cropped"], device="cpu").framing.mode == "face"
    capsys.readouterr()
    assert main(["evaluate", str(runs["tight"]), str(tight), "--bootstrap", "0", "--no-progress"]) == 0
    assert not [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    metrics = json.loads((runs["tight"] / "evaluation" / "metrics.json").read_text())
    assert metrics["framing"]["mode"] == "whole" and metrics["framing"]["trained_on"] == {"mode": "whole"}
    image = next((tight / "test" / "happy").iterdir())
    assert main(["predict", str(runs["tight"]), str(image), "--format", "json", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["face_found"] is None  # classified whole: no face looked for
    assert main(["evaluate", str(runs["tight"]), str(tight), "--framing", "face", "--out", str(tmp_path / "e"),
                 "--bootstrap", "0", "--no-progress"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["framing"]["mode"] == "face"
    assert any("pass --framing whole" in line for line in warnings)
    from babyface.tools.synthetic import write_scripted_face_video

    clip = write_scripted_face_video(tmp_path / "clip.mp4", [("open", 0.5)], fps=10)
    assert main(["predict", str(runs["tight"]), str(clip), "--device", "cpu", "--out", str(tmp_path / "v"),
                 "--no-progress"]) == 0
    assert not [line for line in capsys.readouterr().err.splitlines() if "framing" in line.lower()]  # videos: always detected
