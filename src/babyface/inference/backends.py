"""Inference backends behind ``Classifier``: PyTorch eager, or onnxruntime on a model exported by ``babyface export``.

Both take uint8 images N×3×S×S and return float32 logits N×C; temperature and class names always come from the
bundle's ``model.json``. An ONNX file is only run after checking, through its metadata, that it was exported from
the bundle's current weights.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from babyface.bundle import bundle_sha256, load_bundle, read_metadata
from babyface.data.cache import default_cache_dir
from babyface.errors import BabyfaceError, BundleError
from babyface.forward import index_batches, predict_logits
from babyface.hardware import choose_channels_last, choose_precision, layout_cache_file
from babyface.run import ModelMeta, RunFolder

log = logging.getLogger("babyface")

INT8_FILE = "model.int8.onnx"
ONNX_FORMAT = "babyface-onnx"
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
# keys of the ONNX file's metadata_props
KEY_FORMAT = "babyface_format"
KEY_WEIGHTS = "babyface_weights_sha256"
KEY_PRECISION = "babyface_precision"


class Backend(Protocol):
    name: str
    meta: ModelMeta
    precision: str  # fp32, bf16 (torch autocast) or int8 (a quantised ONNX file)

    def logits(self, images: torch.Tensor, batch_size: int) -> torch.Tensor: ...


class TorchBackend:
    """PyTorch eager in ``precision`` (fp32, or bf16 autocast: see babyface.hardware.choose_precision) and in the
    memory layout ``channels_last`` says (auto: whichever a few timed batches of ``batch_size`` show faster here)."""

    name = "torch"

    def __init__(self, run: str | os.PathLike, device: torch.device, precision: str = "fp32", channels_last: str = "off",
                 batch_size: int = 64):
        self.bundle = load_bundle(run, device)
        self.meta = self.bundle.meta
        self.device = device
        self.number_format = choose_precision(precision, device)
        size = self.meta.image_size
        self.channels_last, self.layout_reason = choose_channels_last(
            channels_last, self.bundle.model, (batch_size, 3, size, size), self.number_format, device, train=False,
            cache=layout_cache_file(default_cache_dir()))
        if self.channels_last:
            self.bundle.model.to(memory_format=torch.channels_last)

    @property
    def precision(self) -> str:
        return self.number_format.name

    def logits(self, images: torch.Tensor, batch_size: int) -> torch.Tensor:
        b = self.bundle
        return predict_logits(b.model, images, b.mean, b.std, self.device, batch_size, precision=self.number_format,
                              channels_last=self.channels_last)


class OnnxBackend:
    """onnxruntime (CPU) on an exported model; normalisation is inside the graph, which takes uint8 images."""

    name = "onnx"

    def __init__(self, run: str | os.PathLike, onnx_file: str | os.PathLike | None = None):
        self.meta = read_metadata(run)
        self.path = Path(onnx_file) if onnx_file else RunFolder(run).onnx
        self.session = open_session(self.path)
        check_exported_from(self.session, self.path, run)

    @property
    def precision(self) -> str:
        return self.session.get_modelmeta().custom_metadata_map.get(KEY_PRECISION, "fp32")

    def logits(self, images: torch.Tensor, batch_size: int) -> torch.Tensor:
        array = images.numpy()
        outputs = [self.session.run([OUTPUT_NAME], {INPUT_NAME: array[index.numpy()]})[0] for index in index_batches(len(array), batch_size)]
        return torch.from_numpy(np.concatenate(outputs)) if outputs else torch.empty(0, 0)


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def session_options(threads: int | None = None):
    """All graph optimisations; intra-op threads follow torch's thread count (OMP_NUM_THREADS) unless given."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: onnxruntime's warnings are not the user's business
    return options


def open_session(path: Path, threads: int | None = None):
    """An onnxruntime CPU session; BundleError for a missing or unreadable file."""
    if not onnxruntime_available():
        raise BabyfaceError("onnxruntime is not installed; pip install onnxruntime, or use --backend torch")
    import onnxruntime as ort

    if not path.is_file():
        raise BundleError(f"{path}: no ONNX model here; create it with 'babyface export RUN --format onnx' or use --backend torch")
    try:
        return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad protobufs and bad graphs
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise BundleError(f"{path}: not a loadable ONNX model ({reason}); re-export it with 'babyface export'") from None


def check_exported_from(session, path: Path, run: str | os.PathLike) -> None:
    """Refuse an ONNX file that was not exported by babyface from the run's current ``model.safetensors``."""
    props = session.get_modelmeta().custom_metadata_map
    if props.get(KEY_FORMAT) != ONNX_FORMAT:
        raise BundleError(f"{path}: not exported by babyface (no {KEY_FORMAT} metadata); export it with 'babyface export {run}'")
    if props.get(KEY_WEIGHTS) != bundle_sha256(run):
        raise BundleError(f"{path}: exported from other weights than {Path(run)}/model.safetensors (retrained?); "
                          f"re-export with 'babyface export {run} --overwrite'")


def open_backend(run: str | os.PathLike, backend: str, device: torch.device, onnx_file: str = "",
                 precision: str = "fp32", channels_last: str = "off", batch_size: int = 64) -> Backend:
    """'torch' (in ``precision``), 'onnx', or 'auto': onnx when RUN/model.onnx (or ``onnx_file``) exists, onnxruntime is
    importable and the device is the CPU; a stale or broken ONNX file under 'auto' is reported and torch is used instead."""
    if backend == "torch":
        return TorchBackend(run, device, precision, channels_last, batch_size)
    if backend == "onnx":
        return OnnxBackend(run, onnx_file or None)
    path = Path(onnx_file) if onnx_file else RunFolder(run).onnx
    if device.type == "cpu" and path.is_file() and onnxruntime_available():
        try:
            return OnnxBackend(run, path)
        except BundleError as exc:
            log.warning("WARNING: %s; using the PyTorch model instead", exc)
    return TorchBackend(run, device, precision, channels_last, batch_size)
