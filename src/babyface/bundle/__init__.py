"""Model bundles: one trained model (``single``) or several averaged (``ensemble``), loaded through one door.

``load_bundle`` and ``bundle_sha256`` decide here, and only here, whether a folder holds a single model or an
ensemble; ``single`` never imports ``ensemble``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from babyface.bundle.ensemble import ensemble_sha256, load_ensemble
from babyface.bundle.single import Bundle, load_single, read_metadata, weights_sha256
from babyface.run import RunFolder

__all__ = ["Bundle", "bundle_sha256", "load_bundle", "read_metadata"]


def load_bundle(folder: str | os.PathLike, device: torch.device | str = "cpu") -> Bundle:
    """The model in a run folder, single or ensemble, checked and ready for inference (eval mode on ``device``)."""
    meta = read_metadata(folder)
    if meta.is_ensemble:
        return load_ensemble(Path(folder), meta, device)
    return load_single(folder, meta, device)


def bundle_sha256(folder: str | os.PathLike) -> str:
    """SHA-256 of the weights (of an ensemble: of its members' names and hashes): what an export is tied to."""
    if not RunFolder(folder).weights.is_file() and read_metadata(folder).is_ensemble:
        return ensemble_sha256(folder)
    return weights_sha256(folder)
