"""Shared fixtures for the data/config/bundle unit tests (CPU, fast)."""

from __future__ import annotations

import io
import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    # make test runs the suite in two pytest-xdist workers on the 2 cores: each worker, and the CLI processes it
    # starts, computes on one thread, so that their threads do not fight over the cores (set before torch loads)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(autouse=True, scope="session")
def private_decode_cache(tmp_path_factory) -> Path:
    """Training in tests (and the CLI they start) caches decoded images in a temporary folder, not ~/.cache."""
    import os

    folder = tmp_path_factory.mktemp("decode-cache")
    previous = os.environ.get("BABYFACE_CACHE_DIR")
    os.environ["BABYFACE_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("BABYFACE_CACHE_DIR", None)
    else:
        os.environ["BABYFACE_CACHE_DIR"] = previous


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
def untrained_run(tmp_path_factory) -> Path:
    """A run folder holding an untrained (seeded) 64×64 CNN bundle: enough for serving and video tests."""
    import torch

    from babyface.bundle.single import bundle_metadata, save_bundle
    from babyface.models import create_model

    torch.manual_seed(0)
    model = create_model("cnn", 3, 64).eval()
    folder = tmp_path_factory.mktemp("untrained") / "run"
    save_bundle(folder, model, bundle_metadata(model, ["happy", "neutral", "sad"], 64, [0.5] * 3, [0.25] * 3))
    return folder


FACE_SEED = 21  # a synthetic face MTCNN finds with a score ≥ 0.95 here, shrunk as serve shrinks it, and at 640×480


def face_scene(seed: int = FACE_SEED, size: tuple[int, int] = (400, 300), at: tuple[int, int] = (200, 80)) -> Image.Image:
    """A synthetic face (one MTCNN finds at FACE_SEED) pasted onto a plain background."""
    from babyface.tools.synthetic import render_face

    face, _ = render_face("happy", np.random.default_rng(seed), size=160, grayscale=False)
    canvas = Image.new("RGB", size, (90, 120, 160))
    canvas.paste(face, at)
    return canvas


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


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """60 synthetic faces (48 train, 12 test) at 64×64 in the BabyFace layout."""
    from babyface.tools.synthetic import SynthConfig, generate_dataset

    out = tmp_path_factory.mktemp("tiny") / "data"
    generate_dataset(out, SynthConfig(n=60, seed=3, size=64), progress=False)
    return out


def local_client(app):
    """FastAPI's TestClient addressing the app as 127.0.0.1 (a token-less server answers only to IP addresses)."""
    from fastapi.testclient import TestClient

    return TestClient(app, base_url="http://127.0.0.1")


def png_claiming(width: int, height: int, mode: str = "L") -> bytes:
    """A valid tiny PNG of ``mode`` whose IHDR claims ``width``×``height`` (a decompression-bomb header: Pillow
    reads the size, decoding would fail or explode)."""
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new(mode, (8, 8), 0).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)
