"""What a training step minimises and how its images are drawn: the class loss (missing-class-aware when sources
cover different classes), the sampler's draw weights, and with --source-adversary the reversed source guess."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from babyface.config import TrainConfig, adversary_weight
from babyface.data.decoded import DecodedImages
from babyface.data.mix import mixed_loss
from babyface.training.adversary import SourceAdversary, adversary_strength
from babyface.training.coverage import (
    MissingClassLoss,
    SourceCoverage,
    coverage_report,
    missing_class_log_prior,
    resolve_balance,
    resolve_rule,
    sampling_weights,
    source_coverage,
)
from babyface.training.prepare import PreparedData

log = logging.getLogger("babyface")


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 (absent classes get 0)."""
    counts = torch.bincount(labels, minlength=num_classes).double()
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp_min(1)), torch.zeros_like(counts))
    return weights.float()


def epoch_order(n: int, weights: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
    """Shuffled indices for one epoch; with draw ``weights`` (a balancing sampler) drawn with replacement."""
    if weights is not None:
        return torch.multinomial(weights.double(), n, replacement=True, generator=generator)
    return torch.randperm(n, generator=generator)


@dataclass
class Objective:
    """How training images are drawn and what a step minimises: the class loss (missing-class-aware when
    sources cover different classes) and, with --source-adversary, the reversed source guess."""

    loss_fn: nn.Module
    coverage: SourceCoverage
    weights: torch.Tensor | None = None  # sampler draw weights per training image; None: plain shuffle
    source_aware: bool = False  # loss_fn takes each image's source after its label
    adversary: SourceAdversary | None = None
    adversary_weight: float = 0.0
    rule: str = "off"  # the missing-class rule in force (see coverage.resolve_rule)
    balance: str = "none"  # the sampler in force (see coverage.resolve_balance)

    def summary(self) -> dict:
        """What the bundle records about how sources and their missing classes were handled."""
        return {"coverage": self.coverage.to_dict(), "missing_classes": self.rule, "class_balance": self.balance,
                "source_adversary": self.adversary_weight if self.adversary is not None else 0.0}

    @classmethod
    def plain(cls, data: DecodedImages, loss_fn: nn.Module | None = None) -> "Objective":
        """One source, a plain shuffle, ``loss_fn`` (default cross-entropy): the reference's training step."""
        classes = [str(c) for c in range(int(data.labels.max()) + 1)]
        return cls(loss_fn or nn.CrossEntropyLoss(), source_coverage(data.labels, [""] * len(data), classes))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, sources: torch.Tensor, lam: float,
             progress: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(what to minimise, the class loss alone): history.csv reports the class loss, comparable with or without
        the adversary's source term."""
        class_loss = mixed_loss(self.loss_fn, logits, labels, lam, *([sources] if self.source_aware else []))
        if self.adversary is None:
            return class_loss, class_loss
        return class_loss + self.adversary.loss(sources, adversary_strength(self.adversary_weight, progress)), class_loss


def build_objective(config: TrainConfig, data: PreparedData, model: nn.Module, device: torch.device) -> Objective:
    """The loss, sampler weights and optional source adversary for ``data``; logs the coverage table."""
    coverage = source_coverage(data.train.labels, [data.sources.get(p, "") for p in data.train.paths], data.classes)
    rule = resolve_rule(config.missing_classes, coverage)
    balance = resolve_balance(config.class_balance, coverage)
    weights = sampling_weights(coverage, balance)
    class_weight = class_weights(data.train.labels, len(data.classes)).to(device) if balance == "loss" else None
    if rule == "off":
        loss_fn: nn.Module = nn.CrossEntropyLoss(weight=class_weight, label_smoothing=config.label_smoothing)
    else:
        loss_fn = MissingClassLoss(missing_class_log_prior(coverage, rule, weights), class_weight, config.label_smoothing)
    if coverage.uneven or len(coverage.sources) > 1:
        for line in coverage_report(coverage, rule, balance):
            log.info(line)
    adversary, strength = _source_adversary(config, coverage, model, device)
    return Objective(loss_fn.to(device), coverage, weights, rule != "off", adversary, strength, rule, balance)


def _source_adversary(config: TrainConfig, coverage: SourceCoverage, model: nn.Module,
                      device: torch.device) -> tuple[SourceAdversary | None, float]:
    """--source-adversary's head and weight; no head with one source, which leaves nothing to tell apart."""
    strength = adversary_weight(config.source_adversary, coverage.uneven)
    if strength <= 0:
        return None, strength
    if len(coverage.sources) < 2:
        log.warning("--source-adversary ignored: it needs at least two sources (--data) to tell apart")
        return None, strength
    log.info("source adversary: weight %g (a gradient-reversal head hides which source an image came from)", strength)
    return SourceAdversary(model, len(coverage.sources)).to(device), strength


def decision_view(logits: torch.Tensor | None, labels: torch.Tensor, index: list[int] | None):
    """The logits of the decision classes for the images labelled with one of them, labels renumbered; as given
    when decisions are over every class."""
    if logits is None or index is None:
        return logits, labels
    position = torch.full((logits.shape[1],), -1, dtype=torch.long)
    position[torch.tensor(index)] = torch.arange(len(index))
    kept = position[labels] >= 0
    return logits[kept][:, index], position[labels[kept]]
