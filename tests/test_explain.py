"""Grad-CAM on a toy model whose classes are driven by known image regions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from babyface.evaluation.explain import grad_cam, overlay_heatmap


class RedGreenModel(nn.Module):
    """Class 0 = how red the image is, class 1 = how green (1×1 conv detectors, then global average)."""

    def __init__(self):
        super().__init__()
        self.detect = nn.Sequential(nn.Conv2d(3, 2, 1, bias=False), nn.ReLU())
        with torch.no_grad():
            self.detect[0].weight.copy_(torch.tensor([[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0]]).view(2, 3, 1, 1))

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.detect

    def forward(self, x):
        return self.detect(x).mean(dim=(2, 3))


def red_top_left_green_bottom_right(size: int = 16) -> torch.Tensor:
    image = torch.zeros(1, 3, size, size)
    image[0, 0, : size // 2, : size // 2] = 1.0
    image[0, 1, size // 2 :, size // 2 :] = 1.0
    return image


def quadrant_means(cam: np.ndarray) -> tuple[float, float]:
    half = cam.shape[0] // 2
    return float(cam[:half, :half].mean()), float(cam[half:, half:].mean())


def test_grad_cam_highlights_the_region_that_drives_each_class():
    model = RedGreenModel()
    image = red_top_left_green_bottom_right()
    red_cam, logits = grad_cam(model, image, target=0)
    top_left, bottom_right = quadrant_means(red_cam)
    assert red_cam.max() == 1.0 and top_left > 0.9 and bottom_right == 0.0
    green_cam, _ = grad_cam(model, image, target=1)
    top_left, bottom_right = quadrant_means(green_cam)
    assert bottom_right > 0.9 and top_left == 0.0
    assert logits.shape == (1, 2)
    assert not any(m._forward_hooks for m in model.modules())  # the hook is removed again


def test_grad_cam_without_target_explains_the_predicted_class():
    model = RedGreenModel()
    image = red_top_left_green_bottom_right()
    image[0, 1] = 0  # only red is left, so class 0 wins
    cam, logits = grad_cam(model, image)
    assert int(logits.argmax()) == 0 and quadrant_means(cam)[0] > 0.9


def test_overlay_has_the_image_size_and_heat_where_the_map_is_high():
    image = Image.new("RGB", (150, 90), (128, 128, 128))
    cam = np.zeros((4, 4))
    cam[:2, :2] = 1.0
    overlay = overlay_heatmap(image, cam)
    assert overlay.shape == (90, 150, 3) and overlay.dtype == np.uint8
    hot, cold = overlay[5, 5], overlay[85, 145]
    assert hot[0] > hot[2] and cold[2] > cold[0]  # jet: red where high, blue where low


def test_grad_cam_explains_the_best_of_the_decision_classes():
    model = RedGreenModel()
    image = red_top_left_green_bottom_right()
    image[0, 1] = 0  # only red: class 0 has the highest logit, but decisions are over class 1 alone here
    cam, logits = grad_cam(model, image, among=[1])
    assert int(logits.argmax()) == 0 and cam.max() == 0.0  # class 1's map: nothing green drives it


def test_a_model_deciding_over_three_of_seven_classes_is_explained_over_those_three(tmp_path):
    from babyface.bundle.single import bundle_metadata, save_bundle
    from babyface.errors import BabyfaceError
    from babyface.evaluation.explain import Explainer
    from babyface.models import create_model

    torch.manual_seed(0)
    learned = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    model = create_model("cnn", len(learned), 32).eval()
    meta = bundle_metadata(model, learned, 32, [0.5] * 3, [0.25] * 3, decision_classes=["happy", "neutral", "sad"])
    save_bundle(tmp_path / "run", model, meta)
    explainer = Explainer(tmp_path / "run", device="cpu")
    explanation = explainer.explain_image(Image.new("RGB", (40, 40), (120, 90, 60)), "face")
    assert list(explanation.probabilities) == ["happy", "neutral", "sad"]
    assert sum(explanation.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert explanation.explained_class == explanation.predicted in {"happy", "neutral", "sad"}
    assert explainer.explain_image(Image.new("RGB", (40, 40)), "face", "sad").explained_class == "sad"
    with pytest.raises(BabyfaceError, match="decides over: happy, neutral, sad"):
        explainer.class_index("angry")
