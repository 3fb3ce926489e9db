"""Batched augmentation of image tensors (CPU or GPU), same family and ranges as the reference pipeline.

The reference applied torchvision transforms one PIL image at a time: RandomHorizontalFlip,
RandomRotation(15), RandomAffine(shear=10, scale=(0.8, 1.2)), ColorJitter(0.2, 0.2, 0.2).
Here each sample gets its own random parameters, but the whole batch is warped with one
``affine_grid``/``grid_sample`` call and colour-jittered with a few tensor ops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import AugmentConfig

GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def augment_batch(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Augment a float batch B×3×H×W in [0, 1]; random draws come from ``generator`` (CPU) for reproducibility."""
    if not config.enabled:
        return x
    x = random_affine(x, config, generator)
    x = colour_jitter(x, config, generator)
    return random_grayscale(x, config.grayscale, generator)


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64) * (high - low) + low


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
    return theta


def random_affine(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    if config.rotation == 0 and config.shear == 0 and config.scale_min == config.scale_max == 1 and config.hflip == 0:
        return x
    theta = affine_matrices(x.shape[0], config, generator).to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _per_sample(n: int, amount: float, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    factors = _uniform(n, max(0.0, 1 - amount), 1 + amount, generator)
    return factors.to(device=like.device, dtype=like.dtype).view(n, 1, 1, 1)


def to_gray(x: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(GRAY_WEIGHTS, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def colour_jitter(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    if config.brightness > 0:
        x = (x * _per_sample(n, config.brightness, generator, x)).clamp(0, 1)
    if config.contrast > 0:
        mean = to_gray(x).mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * _per_sample(n, config.contrast, generator, x) + mean).clamp(0, 1)
    if config.saturation > 0:
        gray = to_gray(x)
        x = ((x - gray) * _per_sample(n, config.saturation, generator, x) + gray).clamp(0, 1)
    return x


def random_grayscale(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    if p <= 0:
        return x
    chosen = (torch.rand(x.shape[0], generator=generator) < p).to(x.device).view(-1, 1, 1, 1)
    return torch.where(chosen, to_gray(x).expand_as(x), x)

