"""One FaceDetection and one VideoOptions model nested into every command, the detector registry, and the one
detect -> crop -> classify chain (Classifier.predict_faces) that serve plugs its micro-batcher into."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from babyface.cli import build_config, build_parser, main
from babyface.config import (
    CropConfig,
    EvalConfig,
    FaceDetection,
    MeasureConfig,
    PredictConfig,
    ServeConfig,
    TrainingCropDetection,
    VideoOptions,
    WatchConfig,
    from_dict,
)
from babyface.errors import BabyfaceError
from babyface.faces import registry
from babyface.faces.boxes import FaceBox
from babyface.faces.registry import FaceDetector, register_detector
from babyface.inference.classifier import Classifier
from babyface.video.analysis import VideoAnalyser

FACE_COMMANDS = (EvalConfig, PredictConfig, MeasureConfig, ServeConfig, WatchConfig, CropConfig)


def test_every_command_shares_one_set_of_face_defaults() -> None:
    """Only the detector differs, on purpose: data crop and evaluate cut faces as the training crops were cut."""
    for cls in FACE_COMMANDS:
        faces = cls().faces
        expected = TrainingCropDetection() if cls in (EvalConfig, CropConfig) else FaceDetection()
        assert faces == expected, cls.__name__
        assert faces.model_dump(exclude={"detector"}) == FaceDetection().model_dump(exclude={"detector"}), cls.__name__
    assert PredictConfig().video == MeasureConfig().video == WatchConfig().video == VideoOptions()


def test_face_and_video_options_keep_their_flags_and_yaml_takes_them_nested_or_flat(tmp_path) -> None:
    parser = build_parser()
    args = parser.parse_args(["watch", "run", "0", "--detect-size", "320", "--min-face", "0.1", "--every", "2",
                              "--detector", "mtcnn", "--margin", "0.3", "--detect-every", "3", "--night", "off"])
    config = build_config(WatchConfig, args)
    assert config.faces == FaceDetection(detector="mtcnn", margin=0.3, detect_size=320, min_face=0.1)
    assert config.video == VideoOptions(every=2, detect_every=3, night="off")
    nested, flat = tmp_path / "nested.yaml", tmp_path / "flat.yaml"
    nested.write_text("faces:\n  detect_size: 320\n  margin: 0.3\nvideo:\n  every: 2\n")
    flat.write_text("detect_size: 320\nmargin: 0.3\nevery: 2\n")  # as before the options were grouped
    for path in (nested, flat):
        config = build_config(PredictConfig, parser.parse_args(["predict", "run", "a.jpg", "--config", str(path)]))
        assert (config.faces.detect_size, config.faces.margin, config.video.every) == (320, 0.3, 2), path.name
    # a partial mapping keeps the command's own defaults: evaluate still cuts with MTCNN
    assert from_dict(EvalConfig, {"faces": {"margin": 0.3}}).faces == TrainingCropDetection(margin=0.3)


def test_face_option_errors_name_the_flag_and_a_misspelt_key_is_refused() -> None:
    with pytest.raises(BabyfaceError, match="--detect-size: must be 0 or >= 32"):
        ServeConfig(faces={"detect_size": 16})
    with pytest.raises(BabyfaceError, match="--min-face: must be >= 0 and < 1"):
        from_dict(WatchConfig, {"min_face": 1.5})
    with pytest.raises(BabyfaceError, match="unknown option.*detect_sise"):
        from_dict(PredictConfig, {"faces": {"detect_sise": 320}})


def test_predict_faces_takes_its_classify_step_from_the_caller(untrained_run) -> None:
    classifier = Classifier(untrained_run, device="cpu", backend="torch", precision="fp32")
    image = Image.new("RGB", (120, 90), (90, 120, 160))  # no face: the whole image is the one square
    seen = []

    def classify(crops):
        seen.append(len(crops))
        return torch.tensor([[0.1, 0.2, 0.7]] * len(crops))

    (face,) = classifier.predict_faces(image, FaceDetection(), classify=classify)
    assert seen == [1] and face.box == (0, 0, 120, 90) and not face.face_detected
    assert face.label == classifier.classes[2] and face.probabilities[classifier.classes[2]] == pytest.approx(0.7)
    (own,) = classifier.predict_faces(image)
    assert own.probabilities == pytest.approx(dict(zip(classifier.classes, classifier.classify_crops(
        classifier.find_faces(image).crops)[0].tolist())))


@pytest.fixture
def toy_detector(monkeypatch):
    """A detector registered in one module-sized class, as a new one would be: it finds a fixed box."""
    monkeypatch.setattr(registry, "_DETECTORS", dict(registry._DETECTORS))

    @register_detector("toy")
    class Toy(FaceDetector):
        description = "finds one face at (20, 10)-(60, 50) in every image"
        min_score = 0.3
        alignment = (1.0, 1.5, 0.0)  # its box, 1.5 times taller, is MTCNN's
        detect_every = 4
        calls: list[tuple[tuple[int, ...], float]] = []

        def detect(self, rgb, min_score, min_face=0.0):
            Toy.calls.append((rgb.shape, min_score))
            return [FaceBox(20, 10, 60, 50, 0.4), FaceBox(0, 0, 10, 10, 0.2)]  # the second is under its min score

    return Toy


def test_a_registered_detector_is_a_choice_and_runs_through_the_chain(toy_detector, untrained_run, tmp_path, capsys) -> None:
    assert "toy" in registry.detector_names()
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert "toy (finds one face at" in capsys.readouterr().out
    faces = FaceDetection(detector="toy", margin=0.0, detect_size=80)
    classifier = Classifier(untrained_run, device="cpu", backend="torch", precision="fp32")
    (face,) = classifier.predict_faces(np.zeros((100, 160, 3), np.uint8), faces)
    # shrunk to 80 px for detection (a factor 2); aligned to 40x60 and scaled back, 80x120 about (80, 60): the square
    # of its longer side, clipped to the image's 100-px height
    assert toy_detector.calls[-1] == ((50, 80, 3), 0.3)
    assert face.face_detected and face.detector_score == pytest.approx(0.4) and face.box == (30, 0, 130, 100)
    assert VideoAnalyser(classifier, faces, VideoOptions(), fps=10).detect_every == 4
    Image.new("RGB", (160, 100)).save(tmp_path / "a.png")
    assert main(["predict", str(untrained_run), str(tmp_path / "a.png"), "--framing", "face", "--detector", "toy",
                 "--format", "json", "--device", "cpu"]) == 0
    assert '"face_found": true' in capsys.readouterr().out


def test_an_unknown_detector_from_a_yaml_file_is_a_one_line_error(untrained_run) -> None:
    config = from_dict(PredictConfig, {"run": str(untrained_run), "detector": "yolo"})
    with pytest.raises(BabyfaceError, match="--detector 'yolo': use one of blazeface, mtcnn, haar"):
        VideoAnalyser(None, config.faces, config.video, fps=10)
