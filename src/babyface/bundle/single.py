"""A trained model as a self-contained bundle: ``model.safetensors`` + ``model.json``.

Loading rebuilds the architecture from the JSON metadata and reads tensors with safetensors:
nothing is ever unpickled, so a bundle from an untrusted source cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from babyface import __version__
from babyface.errors import BabyfaceError, BundleError
from babyface.models import create_model
from babyface.outputs import atomic_path, write_json
from babyface.run import (
    BUNDLE_FORMAT,
    FORMAT_VERSION,
    MAX_META_BYTES,
    META_FILE,
    WEIGHTS_FILE,
    ModelMeta,
    RunFolder,
    parse_model_meta,
)

REQUIRED_KEYS = ("format", "format_version", "arch", "classes", "image_size", "mean", "std")


@dataclass
class Bundle:
    model: nn.Module
    meta: ModelMeta
    path: Path

    @property
    def classes(self) -> list[str]:
        return list(self.meta.classes)

    @property
    def image_size(self) -> int:
        return self.meta.image_size

    @property
    def mean(self) -> list[float]:
        return list(self.meta.mean)

    @property
    def std(self) -> list[float]:
        return list(self.meta.std)

    @property
    def temperature(self) -> float:
        return self.meta.temperature


def bundle_metadata(model: nn.Module, classes: list[str], image_size: int, mean: list[float], std: list[float], **extra: Any) -> ModelMeta:
    """The ModelMeta of a freshly trained ``model``; ``extra`` adds recorded facts (data, training, metrics, ...)."""
    return ModelMeta.model_validate({
        "format": BUNDLE_FORMAT,
        "format_version": FORMAT_VERSION,
        "babyface_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "arch": {"name": model.arch_name, "kwargs": dict(model.arch_kwargs)},
        "classes": list(classes),
        "image_size": int(image_size),
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "temperature": 1.0,
        **extra,
    })


def save_bundle(folder: str | os.PathLike, model: nn.Module, meta: ModelMeta, state_dict: dict | None = None) -> Path:
    """Write weights then metadata, each atomically (metadata last: a bundle with JSON is complete)."""
    folder = RunFolder(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in (state_dict or model.state_dict()).items()}
    with atomic_path(folder.weights) as tmp:
        save_file(state, str(tmp), metadata={"format": BUNDLE_FORMAT, "format_version": str(FORMAT_VERSION)})
    write_json(folder.meta, meta.to_json())
    return folder.path


def read_metadata(folder: str | os.PathLike) -> ModelMeta:
    """``model.json`` of a bundle, validated: a one-line BundleError for a missing, foreign, old or damaged bundle."""
    folder = Path(folder)
    meta_path = RunFolder(folder).meta
    if not folder.is_dir():
        raise BundleError(f"{folder}: model folder not found; pass the --out folder of a 'babyface train' run")
    if not meta_path.is_file():
        _missing_files(folder)
    values = _read_json(meta_path)
    if not isinstance(values, dict) or values.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{meta_path}: not a babyface model bundle (format is not {BUNDLE_FORMAT!r})")
    if values.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{meta_path}: bundle format version {values.get('format_version')!r} is not supported by babyface {__version__} "
            f"(reads version {FORMAT_VERSION}); use a matching babyface version"
        )
    missing = [key for key in REQUIRED_KEYS if key not in values]
    if missing:
        raise BundleError(f"{meta_path}: model metadata lacks {', '.join(missing)}; the bundle is incomplete")
    meta = parse_model_meta(values, meta_path)
    if not meta.is_ensemble and not (folder / WEIGHTS_FILE).is_file():
        _missing_files(folder)
    return meta


def _read_json(path: Path) -> Any:
    """The JSON in ``path``, read no further than MAX_META_BYTES (a model.json is a few KB); BundleError for anything else."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_META_BYTES + 1)
        if len(raw) > MAX_META_BYTES:
            raise BundleError(
                f"{path}: larger than {MAX_META_BYTES >> 20} MiB, far more than any model metadata; "
                "the bundle is damaged, retrain or restore it"
            )
        return json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: bad JSON, or a 5000-digit number
        raise BundleError(f"{path}: corrupt model metadata ({exc.__class__.__name__}); retrain or restore the bundle") from None


def _missing_files(folder: Path) -> None:
    raise BundleError(f"{folder}: no {META_FILE} + {WEIGHTS_FILE} here; not a babyface model (did training finish?)")


def weights_sha256(folder: str | os.PathLike) -> str:
    """SHA-256 of a single model's ``model.safetensors``: ties an exported model to the exact weights it came from."""
    digest = hashlib.sha256()
    with open(Path(folder) / WEIGHTS_FILE, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_single(folder: str | os.PathLike, meta: ModelMeta, device: torch.device | str = "cpu") -> Bundle:
    """Rebuild one model from its checked ``model.json`` and load ``model.safetensors``; BundleError on anything inconsistent.

    The architecture is built on the meta device and checked against the weights' header first, so no memory is
    taken for a model.json that does not describe the weights beside it (a lie about image_size can ask for 17 GB).
    """
    folder = Path(folder)
    model = _architecture_on_meta_device(meta, folder)
    model.load_state_dict(_read_weights(folder / WEIGHTS_FILE, model.state_dict(), folder), assign=True)
    model.to(device).eval()
    return Bundle(model, meta, folder)


def _architecture_on_meta_device(meta: ModelMeta, folder: Path) -> nn.Module:
    """The architecture ``meta`` describes, on the meta device: shapes without storage."""
    try:
        with torch.device("meta"):
            return create_model(meta.arch.name, num_classes=len(meta.classes), image_size=meta.image_size, **meta.arch.kwargs)
    except (BabyfaceError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise BundleError(f"{folder / META_FILE}: cannot rebuild the architecture ({exc})") from None


def _read_weights(path: Path, expected: dict[str, torch.Tensor], folder: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``path``, once its header matches ``expected`` (names and shapes), each finite and of the
    expected dtype."""
    try:
        with safe_open(str(path), framework="pt") as weights:
            _check_shapes(expected, {key: tuple(weights.get_slice(key).get_shape()) for key in weights.keys()}, folder)
            return {key: _finite(key, weights.get_tensor(key), path).to(expected[key].dtype) for key in weights.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BundleError(
            f"{path}: not a valid safetensors file ({reason}); the bundle is corrupt, retrain or restore it"
        ) from None


def _finite(key: str, tensor: torch.Tensor, path: Path) -> torch.Tensor:
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        raise BundleError(
            f"{path}: weight {key} holds NaN or infinite values; the bundle is corrupt (did training diverge?), retrain or restore it"
        )
    return tensor


def _check_shapes(expected: dict[str, torch.Tensor], shapes: dict[str, tuple[int, ...]], folder: Path) -> None:
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise BundleError(
            f"{folder}: weights do not match the architecture in {META_FILE} ({detail}); the bundle is inconsistent"
        )
    for key, tensor in expected.items():
        if shapes[key] != tuple(tensor.shape):
            raise BundleError(
                f"{folder}: weight {key} has shape {shapes[key]}, the architecture needs {tuple(tensor.shape)}; "
                "the metadata does not match the weights"
            )
