"""Batched augmentation of image tensors (CPU or GPU), same family and ranges as the reference pipeline.

The reference applied torchvision transforms one PIL image at a time: RandomHorizontalFlip,
RandomRotation(15), RandomAffine(shear=10, scale=(0.8, 1.2)), ColorJitter(0.2, 0.2, 0.2).
Here each sample gets its own random parameters, but the whole batch is warped with one
``affine_grid``/``grid_sample`` call and colour-jittered with a few tensor ops.

Parameters are drawn (``draw_params``) separately from being applied (``apply_params``) so that
distributed training can draw them for the whole global batch on every process, identically, and
apply each process's slice: the result then equals a single-process run with the same global batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from babyface.config import AugmentConfig
from babyface.data.decoded import luminance


@dataclass
class AugmentParams:
    """Per-sample random parameters of one batch; ``None`` where that transform is off."""

    theta: torch.Tensor | None  # n×2×3, output → input coordinates
    erase: torch.Tensor | None  # n×4 (x0, y0, x1, y1) in [0, 1]; an empty box where no erasing
    brightness: torch.Tensor | None  # n
    contrast: torch.Tensor | None
    saturation: torch.Tensor | None
    gray: torch.Tensor | None  # n, bool

    def __getitem__(self, index: slice) -> "AugmentParams":
        return AugmentParams(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[index] for f in fields(self)})


def augment_batch(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Augment a float batch B×3×H×W in [0, 1]; random draws come from ``generator`` (CPU) for reproducibility."""
    if not config.enabled:
        return x
    return apply_params(x, draw_params(x.shape[0], config, generator))


def draw_params(n: int, config: AugmentConfig, generator: torch.Generator) -> AugmentParams:
    geometric = (config.rotation or config.shear or config.hflip or config.crop_scale < 1
                 or not config.scale_min == config.scale_max == 1)
    return AugmentParams(
        theta=affine_matrices(n, config, generator) if geometric else None,
        erase=erase_boxes(n, config.erasing, generator) if config.erasing > 0 else None,
        brightness=_factors(n, config.brightness, generator),
        contrast=_factors(n, config.contrast, generator),
        saturation=_factors(n, config.saturation, generator),
        gray=(torch.rand(n, generator=generator) < config.grayscale) if config.grayscale > 0 else None,
    )


def apply_params(x: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    if params.theta is not None:
        theta = params.theta.to(device=x.device, dtype=x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if params.brightness is not None:
        x = (x * _per_sample(params.brightness, x)).clamp(0, 1)
    if params.contrast is not None:
        mean = luminance(x).mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * _per_sample(params.contrast, x) + mean).clamp(0, 1)
    if params.saturation is not None:
        gray = luminance(x)
        x = ((x - gray) * _per_sample(params.saturation, x) + gray).clamp(0, 1)
    if params.gray is not None:
        x = torch.where(params.gray.to(x.device).view(-1, 1, 1, 1), luminance(x).expand_as(x), x)
    if params.erase is not None:
        x = erase(x, params.erase)
    return x


def erase_boxes(n: int, probability: float, generator: torch.Generator) -> torch.Tensor:
    """Random-erasing rectangles (Zhong et al. 2017, torchvision's defaults): area 2–33% of the image,
    aspect ratio 0.3–3.3, placed at random; each image gets one with ``probability``, else an empty box."""
    area = _uniform(n, 0.02, 0.33, generator)
    log_ratio = _uniform(n, math.log(0.3), math.log(3.3), generator)
    width = (area * log_ratio.exp()).sqrt().clamp(max=1.0)
    height = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
    x0 = torch.rand(n, generator=generator, dtype=torch.float64) * (1 - width)
    y0 = torch.rand(n, generator=generator, dtype=torch.float64) * (1 - height)
    boxes = torch.stack([x0, y0, x0 + width, y0 + height], dim=1)
    boxes[torch.rand(n, generator=generator, dtype=torch.float64) >= probability] = 0.0
    return boxes


def erase(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Fill each image's box with that image's mean colour (neutral after normalisation, unlike black)."""
    height, width = x.shape[-2:]
    ys = (torch.arange(height, device=x.device, dtype=torch.float64) + 0.5) / height
    xs = (torch.arange(width, device=x.device, dtype=torch.float64) + 0.5) / width
    b = boxes.to(x.device).view(-1, 4, 1, 1)
    inside = ((xs.view(1, 1, -1) >= b[:, 0]) & (xs.view(1, 1, -1) < b[:, 2])
              & (ys.view(1, -1, 1) >= b[:, 1]) & (ys.view(1, -1, 1) < b[:, 3]))
    fill = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    return torch.where(inside.unsqueeze(1), fill, x)


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64) * (high - low) + low


def _factors(n: int, amount: float, generator: torch.Generator) -> torch.Tensor | None:
    return _uniform(n, max(0.0, 1 - amount), 1 + amount, generator) if amount > 0 else None


def _per_sample(factors: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return factors.to(device=like.device, dtype=like.dtype).view(-1, 1, 1, 1)


def affine_matrices(n: int, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Per-sample 2×3 matrices mapping output to input coordinates (what ``affine_grid`` wants)."""
    angle = torch.deg2rad(_uniform(n, -config.rotation, config.rotation, generator))
    shear = torch.deg2rad(_uniform(n, -config.shear, config.shear, generator))
    scale = _uniform(n, config.scale_min, config.scale_max, generator)
    flip = torch.where(torch.rand(n, generator=generator, dtype=torch.float64) < config.hflip, -1.0, 1.0)
    cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
    # forward map = rotate @ shear_x @ scale @ flip; its inverse sends each output pixel to its source
    forward = torch.zeros(n, 2, 2, dtype=torch.float64)
    forward[:, 0, 0] = cos * scale * flip
    forward[:, 0, 1] = (cos * tan - sin) * scale
    forward[:, 1, 0] = sin * scale * flip
    forward[:, 1, 1] = (sin * tan + cos) * scale
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, :, :2] = torch.linalg.inv(forward)
    if config.crop_scale < 1:
        theta = resized_crop(theta, config.crop_scale, generator)
    return theta


def resized_crop(theta: torch.Tensor, min_area: float, generator: torch.Generator) -> torch.Tensor:
    """Compose a random resized crop (area share U(min_area, 1), aspect ratio 3/4–4/3, random position)
    after the warp: the warped output coordinates are read from the crop instead of the whole image."""
    n = theta.shape[0]
    area = _uniform(n, min_area, 1.0, generator)
    log_ratio = _uniform(n, math.log(3 / 4), math.log(4 / 3), generator)
    crop = torch.stack([(area * log_ratio.exp()).sqrt(), (area / log_ratio.exp()).sqrt()], dim=1).clamp(max=1.0)
    offset = (torch.rand(n, 2, generator=generator, dtype=torch.float64) * 2 - 1) * (1 - crop)
    out = theta.clone()
    out[:, :, :2] = crop.unsqueeze(2) * theta[:, :, :2]
    out[:, :, 2] = crop * theta[:, :, 2] + offset
    return out

