"""Test-time augmentation (--tta flip): the mean of the calibrated probabilities of each image and its mirror."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from babyface.config import PredictConfig, from_dict
from babyface.errors import BabyfaceError
from babyface.forward import logits_with_tta
from babyface.inference.calibration import calibrated_probabilities, negative_log_likelihood
from babyface.inference.classifier import Classifier

TEMPERATURE = 1.7


class ColumnWeights(nn.Module):
    """Logits from column-weighted pixel sums: mirror-symmetric weights give a mirror-invariant model."""

    def __init__(self, symmetric: bool):
        super().__init__()
        weights = torch.linspace(-1, 1, 8).abs() if symmetric else torch.linspace(-1, 1, 8)
        self.register_buffer("columns", weights)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255
        column_sums = (x * self.columns).sum(dim=(2, 3))  # N×3
        return torch.stack([column_sums[:, 0], column_sums[:, 1] - column_sums[:, 2], -column_sums[:, 0]], dim=1)


def images(n: int = 6) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("symmetric", [True, False])
def test_flip_averages_image_and_mirror(symmetric: bool):
    model, x = ColumnWeights(symmetric), images()
    plain = calibrated_probabilities(logits_with_tta(model, x, "none"), TEMPERATURE)
    tta = calibrated_probabilities(logits_with_tta(model, x, "flip"), TEMPERATURE)
    mirrored = calibrated_probabilities(model(x.flip(-1)), TEMPERATURE)
    assert torch.allclose(tta, (plain + mirrored) / 2, atol=1e-6)
    assert torch.allclose(tta.sum(1), torch.ones(len(x)), atol=1e-6)
    # a mirror-symmetric model gains nothing from its mirror; any other model's probabilities change
    assert torch.allclose(tta, plain, atol=1e-6) == symmetric


def test_nll_of_views_is_that_of_their_mean_probabilities():
    views = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 1, 0])
    mean = calibrated_probabilities(views, TEMPERATURE)
    assert negative_log_likelihood(views, labels, TEMPERATURE) == pytest.approx(float(-mean[range(5), labels].log().mean()), abs=1e-6)


def test_unknown_tta_is_a_clear_error():
    with pytest.raises(BabyfaceError, match="--tta: must be one of none, flip"):
        from_dict(PredictConfig, {"tta": "rotate"})
    with pytest.raises(BabyfaceError, match="--tta"):
        logits_with_tta(ColumnWeights(True), images(), "rotate")


@pytest.fixture(scope="module")
def exported_untrained_run(untrained_run: Path, tmp_path_factory) -> Path:
    """A copy of the untrained CNN run with an fp32 model.onnx (skips without onnx/onnxruntime)."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from babyface.config import ExportConfig
    from babyface.inference.export import export_run

    run = Path(shutil.copytree(untrained_run, tmp_path_factory.mktemp("tta") / "run"))
    export_run(ExportConfig(run=str(run)))
    return run


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_predictor_tta_on_a_real_bundle(backend: str, exported_untrained_run: Path):
    x = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    plain = Classifier(exported_untrained_run, device="cpu", backend=backend)
    flip = Classifier(exported_untrained_run, device="cpu", backend=backend, tta="flip")
    assert flip.backend.name == backend
    expected = (plain.probabilities(x) + plain.probabilities(x.flip(-1))) / 2
    assert torch.allclose(flip.probabilities(x), expected, atol=1e-6)
    assert not torch.allclose(flip.probabilities(x), plain.probabilities(x), atol=1e-4)  # the CNN is not mirror-symmetric
    symmetric = torch.cat([x[..., :32], x[..., :32].flip(-1)], dim=-1)  # images equal to their own mirror
    assert torch.allclose(flip.probabilities(symmetric), plain.probabilities(symmetric), atol=1e-6)
