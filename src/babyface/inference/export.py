"""``babyface export``: a run's model as one self-contained ONNX file (optionally int8), checked against PyTorch.

The graph takes uint8 images N×3×S×S (any N) and folds in the bundle's normalisation; temperature and class names
stay in ``model.json``. The ONNX metadata records the SHA-256 of ``model.safetensors`` so that a predictor can
refuse a file exported from other weights. Beside FILE.onnx, FILE.parity.json holds the comparison with PyTorch.
"""

from __future__ import annotations

import io
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from babyface.bundle import bundle_sha256, read_metadata
from babyface.bundle.single import Bundle
from babyface.config import ExportConfig
from babyface.data.decoded import decode_images
from babyface.errors import BabyfaceError, DataError, OutputExistsError
from babyface.forward import index_batches, normalise
from babyface.inference.backends import (
    INPUT_NAME,
    INT8_FILE,
    KEY_FORMAT,
    KEY_PRECISION,
    KEY_WEIGHTS,
    ONNX_FORMAT,
    OUTPUT_NAME,
    OnnxBackend,
    onnxruntime_available,
)
from babyface.inference.classifier import Classifier
from babyface.outputs import atomic_path, write_json
from babyface.run import RunFolder

OPSET = 17
PARITY_TOLERANCE = 1e-4  # max |logit difference| allowed between the fp32 ONNX model and PyTorch
INT8_AGREEMENT = 0.99  # least share of decisions an int8 model must share with fp32 on real images
CALIBRATION_BATCH = 16


class _UInt8Model(nn.Module):
    """uint8 images → logits, with the bundle's normalisation inside the graph."""

    def __init__(self, bundle: Bundle):
        super().__init__()
        self.model, self.mean, self.std = bundle.model, bundle.mean, bundle.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(normalise(images, self.mean, self.std))


def export_run(config: ExportConfig) -> dict:
    """Export (and with ``int8`` quantise) the bundle in ``config.run``; the parity record is also written as JSON."""
    _check_export_tools()
    out = Path(config.out) if config.out else (Path(config.run) / INT8_FILE if config.int8 else RunFolder(config.run).onnx)
    if out.exists() and not config.overwrite:
        raise OutputExistsError(f"{out}: already exists; pass --overwrite to replace it or choose another --out")
    size = read_metadata(config.run).image_size
    if config.calibration:
        calibration = calibration_images(config.calibration, size, config.calibration_images)
    else:
        calibration = validation_images(config.run, size, config.calibration_images)
        if calibration is None and config.int8:
            raise BabyfaceError(f"--int8: the validation images of {config.run} are not where it was trained; give "
                                "--calibration DATA (training images to calibrate the int8 ranges on)")
    result = export_onnx(config.run, out, calibration if config.int8 else None, calibration, config.parity_images)
    parity_file = write_json(out.with_suffix(".parity.json"), result["parity"])
    return {**result, "parity_file": str(parity_file)}


def export_onnx(run: str | Path, out: Path, calibration: torch.Tensor | None, parity_set: torch.Tensor | None = None,
                parity_images: int = 100) -> dict:
    """``run``'s model as ONNX at ``out`` (int8 when ``calibration`` images are given), written only when it agrees
    with PyTorch fp32 on ``parity_set`` (random images if None): fp32 within PARITY_TOLERANCE of its logits, int8 on
    at least INT8_AGREEMENT of its decisions. Returns the file and the parity record."""
    classifier = Classifier(run, device="cpu", backend="torch", precision="fp32", channels_last="off")
    bundle = classifier.bundle
    images, source = parity_images_of(parity_set, bundle.image_size, parity_images)
    precision = "fp32" if calibration is None else "int8"
    with atomic_path(out) as tmp:
        write_onnx(bundle, tmp, bundle_sha256(run))
        if calibration is not None:
            quantize_int8(tmp, tmp, calibration)
            tag_precision(tmp, "int8")
        parity = compare_with_torch(classifier, OnnxBackend(run, tmp), images)
        parity.update(precision=precision, source=source, onnx=str(out))
        if precision == "fp32":
            parity.update(tolerance=PARITY_TOLERANCE, passed=parity["max_abs_logit_diff"] < PARITY_TOLERANCE)
            if not parity["passed"]:
                raise BabyfaceError(f"{out}: ONNX logits differ from PyTorch by {parity['max_abs_logit_diff']:.2e} "
                                    f"(> {PARITY_TOLERANCE}); the file was not written. Please report this with the model name")
        elif source != "random":
            parity.update(min_agreement=INT8_AGREEMENT, passed=parity["top1_agreement"] >= INT8_AGREEMENT)
            if not parity["passed"]:
                raise ParityError(f"{out}: the int8 model agrees with fp32 on {parity['top1_agreement']:.1%} of "
                                  f"{len(images)} {source} images (< {INT8_AGREEMENT:.0%}); the file was not written: "
                                  "use the fp32 export (without --int8)")
    return {"onnx": str(out), "precision": precision, "parity": parity}


class ParityError(BabyfaceError):
    """An exported model that disagrees with PyTorch fp32 more than allowed."""


def _check_export_tools() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise BabyfaceError("export needs the onnx package; pip install onnx onnxruntime") from None
    if not onnxruntime_available():
        raise BabyfaceError("export needs onnxruntime for its parity check; pip install onnxruntime")


def write_onnx(bundle: Bundle, path: Path, weights_hash: str) -> None:
    """One self-contained fp32 file (TorchScript exporter: no side file of weights), dynamic batch axis."""
    import onnx

    buffer = io.BytesIO()
    example = torch.zeros(1, 3, bundle.image_size, bundle.image_size, dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter announces that dynamo is the default
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # constants (mean, std, input size) are meant to be baked in
        torch.onnx.export(_UInt8Model(bundle).eval(), (example,), buffer, dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    model = onnx.load_from_string(buffer.getvalue())
    set_metadata(model, {KEY_FORMAT: ONNX_FORMAT, KEY_WEIGHTS: weights_hash, KEY_PRECISION: "fp32"})
    onnx.save(model, str(path))


def set_metadata(model, values: dict[str, str]) -> None:
    props = {p.key: p.value for p in model.metadata_props} | values
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)


def tag_precision(path: Path, precision: str) -> None:
    import onnx

    model = onnx.load(str(path))
    set_metadata(model, {KEY_PRECISION: precision})
    onnx.save(model, str(path))


def quantize_int8(source: Path, out: Path, images: torch.Tensor) -> None:
    """Static QDQ quantisation: int8 weights per output channel, uint8 activations with MinMax ranges from ``images``."""
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_static

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared))  # shape inference and graph optimisation before quantising
        quantize_static(str(prepared), str(out), _ImageReader(images), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


class _ImageReader:
    """onnxruntime's CalibrationDataReader protocol over uint8 images, in batches."""

    def __init__(self, images: torch.Tensor):
        self._batches: Iterator = iter(images[index].numpy() for index in index_batches(len(images), CALIBRATION_BATCH))

    def get_next(self) -> dict | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def validation_images(run: str | Path, size: int, limit: int = 200) -> torch.Tensor | None:
    """Up to ``limit`` of the run's validation images (spread over the split manifest), decoded at ``size``; None when
    the run has no manifest or its images are no longer where it was trained."""
    manifest = RunFolder(run).split_manifest()
    paths = [p for p in manifest.paths("val") if p.is_file()] if manifest is not None else []
    if not paths:
        return None
    paths = paths[:: max(1, len(paths) // limit)][:limit]
    decoded = decode_images(paths, None, size, progress=False, desc="decode validation")
    return decoded.images if len(decoded) else None


def calibration_images(data: str, size: int, limit: int) -> torch.Tensor:
    """Up to ``limit`` images evenly spread over DATA/train (or over every image under DATA), decoded at ``size``."""
    from babyface.inference.classifier import collect_inputs

    root = Path(data)
    paths = collect_inputs([root / "train" if (root / "train").is_dir() else root])
    paths = paths[:: max(1, len(paths) // limit)][:limit]
    decoded = decode_images(paths, None, size, progress=False, desc="decode calibration")
    if len(decoded) == 0:
        raise DataError(f"{data}: none of the calibration images could be decoded; give a folder of training images")
    return decoded.images


def parity_images_of(calibration: torch.Tensor | None, size: int, n: int) -> tuple[torch.Tensor, str]:
    if calibration is not None:
        return calibration[:n], "calibration"
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, size, size), generator=generator, dtype=torch.uint8), "random"


def compare_with_torch(classifier: Classifier, onnx: OnnxBackend, images: torch.Tensor) -> dict:
    """The ONNX model's logits against the PyTorch classifier's on the same uint8 images (every class the model learned)."""
    expected = classifier.backend.logits(images, classifier.batch_size)
    actual = onnx.logits(images, batch_size=64)
    diff = float((expected - actual).abs().max())
    return {"images": len(images), "max_abs_logit_diff": diff, "top1_agreement": float((expected.argmax(1) == actual.argmax(1)).float().mean())}
