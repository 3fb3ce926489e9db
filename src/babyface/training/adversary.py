"""A domain-adversarial source head (Ganin & Lempitsky 2015): ``--source-adversary WEIGHT``.

A small head reads the classifier's input features and guesses each image's source; a gradient-reversal
layer between them makes the backbone work *against* it, so the features carry as little of "which dataset
is this" as the task allows. The head exists only while training: it is not part of the model bundle.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from babyface.training.finetune import head_layer_names


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, strength: float) -> torch.Tensor:
        ctx.strength = strength
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.strength * grad, None


class SourceAdversary(nn.Module):
    """Guesses the source from the features entering ``model``'s classifier (captured by a forward hook)."""

    def __init__(self, model: nn.Module, num_sources: int, hidden: int = 128):
        super().__init__()
        classifier = _classifier(model)
        self.head = nn.Sequential(nn.Linear(classifier.in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_sources))
        self.features: torch.Tensor | None = None
        self._hook = classifier.register_forward_pre_hook(self._capture)

    def _capture(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self.features = inputs[0] if module.training and torch.is_grad_enabled() else None  # validation keeps nothing

    def loss(self, source_ids: torch.Tensor, strength: float) -> torch.Tensor:
        """Cross-entropy of the source guess for the batch just run through the model, gradients reversed."""
        if self.features is None:
            raise RuntimeError("SourceAdversary.loss called before a training forward pass of the model")
        logits = self.head(_ReverseGradient.apply(self.features.flatten(1).float(), strength))
        self.features = None
        return nn.functional.cross_entropy(logits, source_ids)

    def remove(self) -> None:
        self._hook.remove()


def adversary_strength(weight: float, progress: float) -> float:
    """DANN's schedule: 0 at the start, rising to ``weight`` (2 / (1 + e^(−10p)) − 1), so the classifier
    learns something before the backbone is asked to hide the source."""
    return weight * (2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0)


def _classifier(model: nn.Module) -> nn.Linear:
    name = next(iter(head_layer_names(model))).rsplit(".", 1)[0]
    return model.get_submodule(name)
