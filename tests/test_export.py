"""babyface export and the onnxruntime backend: parity with PyTorch, int8, the bundle check, backend choice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402

from babyface.bundle.single import bundle_metadata, save_bundle  # noqa: E402
from babyface.cli import main  # noqa: E402
from babyface.config import ExportConfig, TrainConfig  # noqa: E402
from babyface.errors import BabyfaceError, BundleError  # noqa: E402
from babyface.inference import export  # noqa: E402
from babyface.inference.backends import INT8_FILE, KEY_FORMAT, OnnxBackend, TorchBackend, open_backend  # noqa: E402
from babyface.inference.classifier import Classifier, collect_inputs  # noqa: E402
from babyface.inference.export import export_run  # noqa: E402
from babyface.models import create_model  # noqa: E402
from babyface.run import ONNX_FILE  # noqa: E402
from babyface.training.fit import fit  # noqa: E402

CLASSES = ["happy", "neutral", "sad"]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def random_bundle(perturb_batchnorm):
    """``random_bundle(folder, arch, size=32)``: a saved bundle with random weights and BatchNorm statistics."""

    def make(folder: Path, arch: str, size: int = 32) -> Path:
        torch.manual_seed(0)
        model = perturb_batchnorm(create_model(arch, len(CLASSES), size))
        return save_bundle(folder, model, bundle_metadata(model, CLASSES, size, [0.5, 0.4, 0.3], [0.25, 0.2, 0.15], temperature=1.5))

    return make


def test_an_equalizing_model_exports_with_parity(tmp_path: Path, perturb_batchnorm):
    torch.manual_seed(0)
    model = perturb_batchnorm(create_model("xception-mini", len(CLASSES), 32, contrast="equalize"))
    run = save_bundle(tmp_path / "eq", model, bundle_metadata(model, CLASSES, 32, [0.5] * 3, [0.25] * 3))
    export_run(ExportConfig(run=str(run)))
    assert json.loads((run / "model.parity.json").read_text())["passed"]
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    assert torch.allclose(OnnxBackend(run).logits(images, 4), TorchBackend(run, CPU).logits(images, 4), atol=1e-4)


@pytest.fixture(scope="module")
def trained_run(tiny_data: Path, tmp_path_factory) -> Path:
    """A CNN trained for 2 epochs, exported to fp32 ONNX through the CLI."""
    out = tmp_path_factory.mktemp("export") / "cnn"
    fit(TrainConfig(data=str(tiny_data), out=str(out), model="cnn", epochs=2, seed=1, progress=False))
    assert main(["export", str(out), "--format", "onnx"]) == 0
    return out


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("babyface: error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize("arch", ["cnn", "resnet18", "xception-mini"])
def test_export_matches_pytorch_for_any_batch(arch: str, tmp_path: Path, random_bundle):
    run = random_bundle(tmp_path / arch, arch)
    result = export_run(ExportConfig(run=str(run)))
    parity = json.loads((run / "model.parity.json").read_text())
    assert result["onnx"] == str(run / ONNX_FILE) and parity["passed"] and parity["max_abs_logit_diff"] < 1e-4
    assert parity["images"] == 100 and parity["source"] == "random"
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    expected = TorchBackend(run, CPU).logits(images, 64)
    for batch_size in (1, 5):
        assert torch.allclose(OnnxBackend(run).logits(images, batch_size), expected, atol=1e-4)


def test_cli_export_prints_and_stores_parity(trained_run: Path, capsys):
    assert main(["export", str(trained_run), "--out", str(trained_run / "copy.onnx")]) == 0
    printed = capsys.readouterr().out
    assert "max |logit difference|" in printed and "copy.parity.json" in printed
    assert json.loads((trained_run / "copy.parity.json").read_text())["passed"]
    assert main(["export", str(trained_run), "--out", str(trained_run / "copy.onnx")]) == 2
    assert "--overwrite" in one_line_error(capsys)


def test_predict_onnx_backend_matches_torch(trained_run: Path, tiny_data: Path, capsys):
    files = collect_inputs([tiny_data / "test"])
    torch_preds, _ = Classifier(trained_run, backend="torch").predict_files(files)
    onnx_predictor = Classifier(trained_run, backend="onnx")
    onnx_preds, _ = onnx_predictor.predict_files(files)
    assert onnx_predictor.backend.name == "onnx"
    assert [p.label for p in onnx_preds] == [p.label for p in torch_preds]
    for a, b in zip(onnx_preds, torch_preds):
        assert max(abs(a.probabilities[c] - b.probabilities[c]) for c in CLASSES) < 1e-4
    assert main(["predict", str(trained_run), str(tiny_data / "test"), "--backend", "onnx", "--format", "json"]) == 0
    cli_preds = json.loads(capsys.readouterr().out)
    assert [p["label"] for p in cli_preds] == [p.label for p in torch_preds]


def test_int8_export_that_disagrees_with_fp32_is_refused_in_one_line(trained_run: Path, tiny_data: Path, capsys,
                                                                   monkeypatch):
    monkeypatch.setattr(export, "INT8_AGREEMENT", 1.01)
    assert main(["export", str(trained_run), "--int8", "--calibration", str(tiny_data), "--calibration-images", "40",
                 "--out", str(trained_run / "refused.onnx")]) == 2
    assert "use the fp32 export" in one_line_error(capsys) and not (trained_run / "refused.onnx").exists()


def test_int8_export_mostly_agrees_with_fp32(trained_run: Path, tiny_data: Path, capsys, monkeypatch):
    monkeypatch.setattr(export, "INT8_AGREEMENT", 0.0)  # this 2-epoch model's near-uniform outputs flip under int8
    assert main(["export", str(trained_run), "--int8", "--calibration", str(tiny_data), "--calibration-images", "40"]) == 0
    assert "int8 ONNX model" in capsys.readouterr().out
    int8 = Classifier(trained_run, backend="onnx", onnx_file=str(trained_run / INT8_FILE))
    assert int8.backend.precision == "int8"
    images = torch.randint(0, 256, (40, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    agreement = (int8.logits(images).argmax(1) == Classifier(trained_run, backend="onnx").logits(images).argmax(1)).float().mean()
    assert agreement >= 0.7


def test_int8_calibrates_on_the_runs_own_validation_images_by_default(trained_run: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(export, "INT8_AGREEMENT", 0.0)
    out = tmp_path / "val.int8.onnx"
    assert main(["export", str(trained_run), "--int8", "--out", str(out)]) == 0
    parity = json.loads(out.with_suffix(".parity.json").read_text())
    validation = sum(1 for row in (trained_run / "splits.csv").read_text().splitlines() if ",val," in row)
    assert parity["source"] == "calibration" and parity["images"] == validation and parity["precision"] == "int8"


def test_int8_without_validation_images_needs_calibration(trained_run: Path, tmp_path: Path, capsys):
    bundle_only = tmp_path / "bundle"
    bundle_only.mkdir()
    for name in ("model.json", "model.safetensors"):
        (bundle_only / name).write_bytes((trained_run / name).read_bytes())
    assert main(["export", str(bundle_only), "--int8"]) == 2
    assert "--calibration" in one_line_error(capsys)


def test_corrupt_onnx_is_refused(trained_run: Path, tmp_path: Path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf" * 10)
    assert main(["predict", str(trained_run), str(trained_run / "learning_curves.png"), "--backend", "onnx", "--onnx", str(bad)]) == 2
    assert "bad.onnx: not a loadable ONNX model" in one_line_error(capsys)


def test_onnx_from_other_weights_is_refused(trained_run: Path, tmp_path: Path, capsys, random_bundle):
    other = random_bundle(tmp_path / "other", "cnn", size=64)
    export_run(ExportConfig(run=str(other)))
    with pytest.raises(BundleError, match="exported from other weights"):
        OnnxBackend(trained_run, other / ONNX_FILE)
    assert main(["predict", str(trained_run), str(trained_run / "learning_curves.png"), "--backend", "onnx",
                 "--onnx", str(other / ONNX_FILE)]) == 2
    assert "re-export" in one_line_error(capsys)


def test_onnx_not_made_by_babyface_is_refused(trained_run: Path, tmp_path: Path):
    model = onnx.load(str(trained_run / ONNX_FILE))
    del model.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(model, str(foreign))
    with pytest.raises(BundleError, match=f"not exported by babyface.*{KEY_FORMAT}"):
        OnnxBackend(trained_run, foreign)


def test_auto_backend_choice(trained_run: Path, tmp_path: Path, caplog):
    assert open_backend(trained_run, "auto", CPU).name == "onnx"
    plain = Path(shutil.copytree(trained_run, tmp_path / "plain", ignore=shutil.ignore_patterns("*.onnx")))
    assert open_backend(plain, "auto", CPU).name == "torch"
    (plain / ONNX_FILE).write_bytes(b"garbage")
    assert open_backend(plain, "auto", CPU).name == "torch"
    assert "not a loadable ONNX model" in caplog.text and "using the PyTorch model instead" in caplog.text
    with pytest.raises(BabyfaceError):
        open_backend(plain, "onnx", CPU)
