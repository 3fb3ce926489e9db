"""int8 and bf16 inference: static int8 calibrated on a run's validation images, parity that refuses a model that
disagrees, and serve's start-up choice of the fastest back end that agrees with fp32."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

from babyface.config import TrainConfig  # noqa: E402
from babyface.hardware import choose_precision  # noqa: E402
from babyface.inference import export, selection  # noqa: E402
from babyface.inference.backends import OnnxBackend  # noqa: E402
from babyface.inference.classifier import Classifier  # noqa: E402
from babyface.inference.selection import choose_serving_classifier, validation_images  # noqa: E402
from babyface.training.fit import fit  # noqa: E402


@pytest.fixture(scope="module")
def run_with_validation(tiny_data: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("select") / "cnn"
    return fit(TrainConfig(data=str(tiny_data), out=str(out), model="cnn", epochs=2, seed=1, progress=False))


def maker(run):
    def make(**options):
        return Classifier(run, device="cpu", **options)
    return make


def test_validation_images_are_the_runs_own(run_with_validation):
    images = validation_images(run_with_validation, 64)
    assert images is not None and images.shape[1:] == (3, 64, 64) and len(images) > 0


def test_int8_calibrated_on_validation_images_agrees_with_fp32_and_says_so(run_with_validation, tmp_path):
    images = validation_images(run_with_validation, 64)
    result = export.export_onnx(run_with_validation, tmp_path / "m.int8.onnx", images, images)
    parity = result["parity"]
    assert result["precision"] == "int8" and parity["passed"] and parity["top1_agreement"] >= export.INT8_AGREEMENT
    assert OnnxBackend(run_with_validation, tmp_path / "m.int8.onnx").precision == "int8"


def test_an_int8_model_that_disagrees_is_never_written(run_with_validation, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "INT8_AGREEMENT", 1.01)  # no model can agree on 101%
    images = validation_images(run_with_validation, 64)
    with pytest.raises(export.ParityError, match="use the fp32 export"):
        export.export_onnx(run_with_validation, tmp_path / "bad.int8.onnx", images, images)
    assert not (tmp_path / "bad.int8.onnx").exists()


def test_serve_picks_the_fastest_back_end_that_agrees(run_with_validation, tmp_path):
    classifier, candidates = choose_serving_classifier(str(run_with_validation), tmp_path, maker(run_with_validation))
    names = [c.name for c in candidates]
    assert names[0] == "torch fp32" and "onnx fp32" in names and "onnx int8" in names
    assert ("torch bf16" in names) == (choose_precision("auto", classifier.device, warn=False).name == "bf16")
    usable = [c for c in candidates if c.usable]
    chosen = min(usable, key=lambda c: c.ms_per_batch)
    assert classifier is chosen.classifier
    assert all(c.agreement >= selection.MIN_AGREEMENT for c in usable)


def test_back_ends_that_disagree_are_measured_but_not_served(run_with_validation, tmp_path, monkeypatch):
    monkeypatch.setattr(selection, "MIN_AGREEMENT", 1.01)
    classifier, candidates = choose_serving_classifier(str(run_with_validation), tmp_path, maker(run_with_validation))
    assert classifier.backend.name == "torch" and classifier.backend.precision == "fp32"
    assert all("not used" in c.note for c in candidates[1:])


def test_without_validation_images_only_exact_back_ends_are_tried(untrained_run, tmp_path):
    classifier, candidates = choose_serving_classifier(str(untrained_run), tmp_path, maker(untrained_run))
    tried = {c.name for c in candidates if c.usable}
    assert tried <= {"torch fp32", "onnx fp32"} and classifier.backend.precision == "fp32"
    assert all("not tried" in c.note for c in candidates if c.name in ("torch bf16", "onnx int8"))


def test_fixed_precision_skips_int8(run_with_validation, tmp_path):
    _, candidates = choose_serving_classifier(str(run_with_validation), tmp_path, maker(run_with_validation), precision="fp32")
    assert [c.name for c in candidates] == ["torch fp32", "onnx fp32"]
