"""benchmarks/night.py's transforms on synthetic faces: the night style is seeded, grey, darker and flatter, and the
CLAHE fix gives an infrared-like image its contrast back (no model, no real image)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cv2", reason="the night transforms need OpenCV: pip install 'opencv-python-headless>=4.8,<5'")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import night  # noqa: E402
from babyface.tools.synthetic import render_face  # noqa: E402


def face(seed: int = 0, size: int = 128) -> np.ndarray:
    image, _ = render_face("happy", np.random.default_rng(seed), size=size, grayscale=False)
    return np.asarray(image.convert("RGB"))


def test_night_style_is_deterministic_with_a_seed():
    rgb = face()
    first = night.night(rgb, np.random.default_rng(7))
    again = night.night(rgb, np.random.default_rng(7))
    other = night.night(rgb, np.random.default_rng(8))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    by_name = night.condition_image(rgb, "ir", night.file_rng(0, "a.jpg"))
    assert np.array_equal(by_name, night.condition_image(rgb, "ir", night.file_rng(0, "a.jpg")))


def test_night_style_is_gray_dark_and_flat_at_the_same_size():
    rgb = face()
    ir = night.night(rgb, np.random.default_rng(0))
    assert ir.shape == rgb.shape and ir.dtype == np.uint8
    assert np.array_equal(ir[..., 0], ir[..., 1]) and np.array_equal(ir[..., 1], ir[..., 2])
    day = night.luminance(rgb)
    smooth = night.night(rgb, np.random.default_rng(0), night.NightStyle(night.IR.contrast, night.IR.gamma, night.IR.blur, 0.0))
    assert smooth[..., 0].std() < 0.7 * day.std()  # contrast ×0.5 (gamma stretches it back a little)
    assert ir[..., 0].mean() < day.mean()  # gamma 1.6 darkens


def test_gray_condition_keeps_the_luminance():
    rgb = face()
    gray = night.condition_image(rgb, "gray", np.random.default_rng(0))
    assert gray.shape == rgb.shape
    assert np.abs(gray[..., 0].astype(float) - night.luminance(rgb)).max() <= 0.5 + 1e-3


def test_clahe_raises_the_contrast_of_an_ir_image():
    rgb = face(seed=3)
    ir = night.night(rgb, np.random.default_rng(0))
    fixed = night.clahe(ir)
    assert fixed.shape == ir.shape and fixed.dtype == np.uint8
    assert np.array_equal(fixed[..., 0], fixed[..., 2])  # still grey
    assert fixed[..., 0].std() > ir[..., 0].std() * 1.2
    assert night.condition_image(rgb, "ir+clahe", np.random.default_rng(0)).std() > ir.std()


def test_stretch_spans_the_grey_range():
    ir = night.night(face(seed=1), np.random.default_rng(0))
    stretched = night.stretch(ir)
    low, high = np.percentile(stretched[..., 0], [1, 99])
    assert low <= 2 and high >= 253
    assert stretched[..., 0].std() > ir[..., 0].std()


def test_denoise_then_clahe_applies_the_fixes_in_order():
    rgb = face(seed=2)
    ir = night.condition_image(rgb, "ir", night.file_rng(0, "b.jpg"))
    both = night.condition_image(rgb, "ir+denoise+clahe", night.file_rng(0, "b.jpg"))
    assert np.array_equal(both, night.clahe(night.denoise(ir)))
    # the blur takes most of the sensor noise out: pixel-to-pixel differences shrink
    assert np.abs(np.diff(night.denoise(ir)[..., 0].astype(float), axis=1)).mean() < 0.5 * np.abs(np.diff(ir[..., 0].astype(float), axis=1)).mean()


# ---------------------------------------------------------------- babyface's night mode (babyface.data.night)


def test_grey_frames_look_infrared_and_colour_frames_do_not():
    from babyface.data.night import looks_infrared, night_active

    rgb = face()
    grey = night.to_gray(rgb)
    assert looks_infrared(grey) and looks_infrared(night.night(rgb, np.random.default_rng(0)))
    assert not looks_infrared(rgb)
    assert night_active("auto", grey) and not night_active("auto", rgb)
    assert night_active("on", rgb) and not night_active("off", grey)


def test_the_stretch_gives_a_flat_face_its_contrast_back_and_leaves_a_blank_one():
    from babyface.data.night import stretch_contrast

    ir = night.night(face(), np.random.default_rng(0))
    stretched = stretch_contrast(ir)
    assert stretched.shape == ir.shape and stretched.std() > 1.5 * ir.std()
    blank = np.full((32, 32, 3), 90, np.uint8)
    assert np.array_equal(stretch_contrast(blank), blank)


def test_video_analysis_at_night_detects_on_a_denoised_frame_and_classifies_stretched_faces(monkeypatch):
    from babyface.config import PredictConfig
    from babyface.data.night import for_detection, stretch_contrast
    from babyface.faces.detectors import FaceBox
    from babyface.video import analysis as video

    seen: list[np.ndarray] = []
    monkeypatch.setattr(video, "detect_faces", lambda rgb, *args, **kwargs: seen.append(rgb) or [FaceBox(20, 20, 100, 100, 0.9)])

    class Recorder:
        image_size, classes = 48, ["happy", "neutral", "sad"]
        crops: list[np.ndarray] = []

        def faces_for(self, faces):
            return faces

        def classify_crops(self, crops):
            import torch

            self.crops += crops
            return torch.full((len(crops), 3), 1 / 3)

        def label(self, probs):
            return "happy", 1 / 3, {c: 1 / 3 for c in self.classes}

        def infant_probabilities(self, crops):
            return None  # no infant-vs-adult model

    ir = night.night(face(size=128), np.random.default_rng(0))
    for mode, denoised in (("on", True), ("auto", True), ("off", False)):
        seen.clear()
        recorder = Recorder()
        recorder.crops = []
        config = PredictConfig(night=mode, detector="blazeface")
        analyser = video.VideoAnalyser(recorder, config.faces, config.video, fps=10)
        boxes = analyser.detect(ir)
        analyser.rows([(0, ir)], boxes, boxes)
        assert np.array_equal(seen[0], for_detection(ir)) is denoised, mode
        plain = video.square_crop(ir, FaceBox(20, 20, 100, 100, 0.9).square(0.2, 128, 128), 48)
        assert np.array_equal(recorder.crops[0], stretch_contrast(plain) if denoised else plain), mode
