"""A throw-away untrained bundle (the CNN unless told otherwise) for speed benchmarks (speed does not depend on the
weights)."""

from __future__ import annotations

from pathlib import Path

import torch

from babyface.bundle.single import bundle_metadata, save_bundle
from babyface.models import create_model


def untrained_bundle(folder: Path, arch: str = "cnn") -> Path:
    torch.manual_seed(0)
    model = create_model(arch, 3, 64).eval()
    return save_bundle(folder, model, bundle_metadata(model, ["happy", "neutral", "sad"], 64, [0.5] * 3, [0.25] * 3))
