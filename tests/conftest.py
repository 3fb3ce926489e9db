"""Shared fixtures for the data/config/bundle unit tests (CPU, fast)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def write_tiny_png() -> Callable[..., Path]:
    """``write_tiny_png(path, value=128, size=4)``: write a small solid-grey RGB PNG (parents created)."""

    def write(path: str | Path, value: int = 128, size: int = 4) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path, format="PNG")
        return path

    return write


@pytest.fixture(scope="session")
def perturb_batchnorm() -> Callable:
    """``perturb_batchnorm(model)``: random BatchNorm running statistics, so that tests notice when they are ignored."""

    def perturb(model):
        import torch

        with torch.no_grad():
            for name, buffer in model.named_buffers():
                if name.endswith("running_mean"):
                    buffer.normal_(0, 0.1)
                elif name.endswith("running_var"):
                    buffer.uniform_(0.5, 1.5)
        return model.eval()

    return perturb
