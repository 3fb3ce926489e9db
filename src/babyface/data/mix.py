"""MixUp (Zhang et al. 2018) and CutMix (Yun et al. 2019) on whole batches.

Each batch is mixed with itself reversed (as timm does), so no extra random permutation is needed,
and the loss is λ·loss(own label) + (1 − λ)·loss(partner's label). The coefficient and the CutMix box
come from the training generator, so runs repeat exactly; under DDP every process draws the same
values and mixes within its own slice of the global batch.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch


def mix_batch(images: torch.Tensor, mixup: float, cutmix: float, generator: torch.Generator) -> tuple[torch.Tensor, float]:
    """(mixed images, λ): each image is λ of itself and 1 − λ of its partner in the reversed batch
    (λ = 1: unmixed). With both alphas set, each batch uses one of them at random."""
    use_cutmix = cutmix > 0 and (mixup <= 0 or bool(torch.rand(1, generator=generator) < 0.5))
    alpha = cutmix if use_cutmix else mixup
    if alpha <= 0 or len(images) < 2:
        return images, 1.0
    lam = _beta(alpha, generator)
    partner = images.flip(0)
    if use_cutmix:
        return _paste_box(images, partner, lam, generator)
    return lam * images + (1 - lam) * partner, lam


def mixed_loss(loss_fn: Callable[..., torch.Tensor], logits: torch.Tensor, labels: torch.Tensor, lam: float,
               *per_image: torch.Tensor) -> torch.Tensor:
    """The loss matching ``mix_batch``: λ·loss(own label) + (1 − λ)·loss(partner's label); plain loss when unmixed.
    ``per_image`` tensors (e.g. each image's source) are passed on after the labels and follow them to the partner."""
    loss = loss_fn(logits, labels, *per_image)
    if lam == 1.0:
        return loss
    return lam * loss + (1 - lam) * loss_fn(logits, labels.flip(0), *(t.flip(0) for t in per_image))


def _beta(alpha: float, generator: torch.Generator) -> float:
    """A Beta(α, α) draw seeded from ``generator`` (torch's Beta distribution takes no generator)."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def _paste_box(images: torch.Tensor, partner: torch.Tensor, lam: float, generator: torch.Generator) -> tuple[torch.Tensor, float]:
    """Paste a box of area share 1 − λ from ``partner``; λ is corrected for the box clipped at the border."""
    height, width = images.shape[-2:]
    cut = (1 - lam) ** 0.5
    cy, cx = (torch.rand(2, generator=generator) * torch.tensor([height, width])).long().tolist()
    h, w = int(height * cut), int(width * cut)
    y0, y1 = max(cy - h // 2, 0), min(cy + h // 2, height)
    x0, x1 = max(cx - w // 2, 0), min(cx + w // 2, width)
    mixed = images.clone()
    mixed[..., y0:y1, x0:x1] = partner[..., y0:y1, x0:x1]
    return mixed, 1 - (y1 - y0) * (x1 - x0) / (height * width)
