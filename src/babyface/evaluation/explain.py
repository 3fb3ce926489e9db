"""Grad-CAM explanations: which part of the face drove a prediction.

The class score's gradient is averaged over each channel of the model's ``gradcam_layer`` (the last conv
block of the CNN, layer4 of a ResNet) to weight that layer's activations; the positive part of the weighted
sum is the heatmap (Selvaraju et al. 2017). It is upsampled to the original image's size and blended over it.
At 64×64 input that layer is only 2×2 (ResNet, ImageNet stem) to 4×4 (CNN) cells, so the map is coarse.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
import torch
from PIL import Image
from torch import nn

from babyface.config import ExplainConfig
from babyface.data.images import display_path, load_rgb, resize_square
from babyface.errors import BabyfaceError, BundleError, ImageDecodeError
from babyface.forward import normalise
from babyface.inference.classifier import Classifier
from babyface.outputs import atomic_path, prepare_output_dir, write_json
from babyface.run import RunFolder

log = logging.getLogger("babyface")
OVERLAY_ALPHA = 0.45


def grad_cam(model: nn.Module, inputs: torch.Tensor, target: int | None = None,
             among: list[int] | None = None) -> tuple[np.ndarray, torch.Tensor]:
    """Heatmap (h×w of ``model.gradcam_layer``, scaled to 0..1) for one normalised 1×3×S×S input, and the logits.

    ``target`` is the class index to explain; None explains the predicted class, the highest logit among the indices
    ``among`` (the classes decisions are taken over) or among all.
    """
    captured: dict[str, torch.Tensor] = {}

    def keep_activation(_module, _inputs, output):
        captured["activation"] = output
        output.register_hook(lambda grad: captured.__setitem__("gradient", grad))

    handle = model.gradcam_layer.register_forward_hook(keep_activation)
    try:
        model.eval()
        with torch.enable_grad():
            logits = model(inputs)
            if target is None:
                candidates = among if among is not None else list(range(logits.shape[1]))
                target = candidates[int(logits[0, candidates].argmax())]
            model.zero_grad(set_to_none=True)
            logits[0, target].backward()
    finally:
        handle.remove()
    weights = captured["gradient"].mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * captured["activation"]).sum(dim=1))[0].detach().cpu().numpy()
    peak = cam.max()
    return (cam / peak if peak > 0 else cam), logits.detach().cpu()


def overlay_heatmap(image: Image.Image, cam: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """``cam`` upsampled (bilinear) to the image's own size, coloured (jet) and blended over it; HxWx3 uint8."""
    heat = Image.fromarray(np.uint8(np.clip(cam, 0, 1) * 255)).resize(image.size, Image.Resampling.BILINEAR)
    colours = matplotlib.colormaps["jet"](np.asarray(heat, dtype=float) / 255.0)[..., :3]
    blended = (1 - alpha) * np.asarray(image, dtype=float) / 255.0 + alpha * colours
    return np.uint8(np.clip(blended * 255 + 0.5, 0, 255))


@dataclass
class Explanation:
    file: str
    explained_class: str
    predicted: str
    confidence: float
    probabilities: dict[str, float]
    overlay: np.ndarray = field(repr=False)


class Explainer:
    """Loads a bundle once; ``explain`` gives a Grad-CAM overlay for one image file."""

    def __init__(self, run: str | os.PathLike, device: str = "auto"):
        self.classifier = Classifier(run, device=device, backend="torch", precision="fp32")  # gradients in fp32
        if self.classifier.meta.is_ensemble:
            raise BundleError(f"{run}: Grad-CAM explains one model and this is an ensemble; explain one of its members "
                              f"({RunFolder(run).members}/NAME)")
        self.bundle = self.classifier.bundle
        self.device = self.classifier.device

    def class_index(self, name: str | None) -> int | None:
        """The model's output index of ``name``, one of the classes it decides over (a 7-class model deciding over
        three explains those three)."""
        if name is None or name == "":
            return None
        if name not in self.classifier.classes:
            raise BabyfaceError(f"--class {name!r} is not one of the classes the model decides over: "
                                f"{', '.join(self.classifier.classes)}")
        return self.bundle.classes.index(name)

    def explain(self, path: str | os.PathLike, target_class: str | None = None) -> Explanation:
        return self.explain_image(load_rgb(path), display_path(path), target_class)

    def explain_image(self, original: Image.Image, name: str, target_class: str | None = None) -> Explanation:
        """Grad-CAM of an RGB image held in memory; ``name`` goes into the explanation's ``file``."""
        b = self.bundle
        pixels = torch.from_numpy(resize_square(original, b.image_size).copy()).permute(2, 0, 1)[None]
        target = self.class_index(target_class)
        decision = self.classifier.meta.decision_index
        cam, logits = grad_cam(b.model, normalise(pixels.to(self.device), b.mean, b.std), target, among=decision)
        probs = self.classifier.calibrate(logits if decision is None else logits[:, decision])[0].tolist()
        classes = self.classifier.classes
        best = int(np.argmax(probs))
        explained = classes[best] if target is None else b.classes[target]
        return Explanation(name, explained, classes[best], probs[best], dict(zip(classes, probs)),
                           overlay_heatmap(original, cam))


def explain_files(config: ExplainConfig, paths: Sequence[Path]) -> list[dict]:
    """Write OUT/<name>_<class>_gradcam.png per image and OUT/explanations.json; returns the records."""
    explainer = Explainer(config.run, config.device)
    explainer.class_index(config.target_class)  # a wrong --class fails before any work
    out = prepare_output_dir(config.out or RunFolder(config.run).explanations, overwrite=config.overwrite)
    records, used = [], set()
    for path in paths:
        try:
            explanation = explainer.explain(path, config.target_class or None)
        except ImageDecodeError as exc:
            log.warning("skipped %s", exc)
            continue
        target = out / _unique_name(f"{Path(path).stem}_{explanation.explained_class}_gradcam", used)
        save_png(explanation.overlay, target)
        records.append({**{k: v for k, v in explanation.__dict__.items() if k != "overlay"}, "overlay": target.name})
    write_json(out / "explanations.json", records)
    return records


def _unique_name(stem: str, used: set[str]) -> str:
    name, n = f"{stem}.png", 1
    while name in used:
        n += 1
        name = f"{stem}_{n}.png"
    used.add(name)
    return name


def save_png(pixels: np.ndarray, path: Path) -> Path:
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
    return path
