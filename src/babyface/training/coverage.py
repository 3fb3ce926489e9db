"""Sources that cover different classes: who lacks what, a loss that learns nothing from the gaps, fair sampling.

When an infant set has happy and sad only and an adult set has all three classes, the only neutral faces are
adults, and "infant-looking ⇒ not neutral" is the cheapest rule a softmax can learn. With the missing-class
rule an image's softmax runs over the classes its source covers only ("partial-label" cross-entropy), so an
infant image says "happy rather than sad", never "not neutral". ``prior`` also adds each source's sampled
class prior to the logits while training (logit adjustment, Menon et al. 2021), so a class that is drawn
more often from one source does not become evidence for that source's look either.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

log = logging.getLogger("babyface")

MISSING_CLASS_RULES = ("auto", "restrict", "prior", "off")


@dataclass
class SourceCoverage:
    """Training images per (source, class); ``source_ids`` gives each training image's row."""

    sources: list[str]
    classes: list[str]
    counts: torch.Tensor  # S×C int64
    source_ids: torch.Tensor  # N: each training image's source (row)
    labels: torch.Tensor  # N: each training image's class

    @property
    def covers(self) -> torch.Tensor:
        """S×C bool: the classes each source has images of."""
        return self.counts > 0

    @property
    def uneven(self) -> bool:
        """True when some source lacks a class another source has."""
        return bool((~self.covers).any())

    def covered_names(self, source: int) -> list[str]:
        return [c for c, has in zip(self.classes, self.covers[source].tolist()) if has]

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {s: dict(zip(self.classes, row)) for s, row in zip(self.sources, self.counts.tolist())}


def source_coverage(labels: torch.Tensor, image_sources: list[str], classes: list[str]) -> SourceCoverage:
    """Count the training images of every (source, class); a single unnamed source is called 'data'."""
    names = sorted(set(image_sources))
    ids = torch.tensor([names.index(s) for s in image_sources], dtype=torch.long)
    counts = torch.zeros(len(names), len(classes), dtype=torch.long)
    counts.index_put_((ids, labels.long()), torch.ones(len(labels), dtype=torch.long), accumulate=True)
    return SourceCoverage([n or "data" for n in names], list(classes), counts, ids, labels.long())


def resolve_rule(rule: str, coverage: SourceCoverage) -> str:
    """'auto' → 'restrict' when sources cover different classes, else 'off' (plain cross-entropy)."""
    if rule == "auto":
        return "restrict" if coverage.uneven else "off"
    return rule


def resolve_balance(balance: str, coverage: SourceCoverage) -> str:
    """'auto' → 'source' (every class equally often, each source equally often within it) when sources
    cover different classes, else 'none' (the reference's plain shuffle)."""
    if balance == "auto":
        return "source" if coverage.uneven else "none"
    return balance


def sampling_weights(coverage: SourceCoverage, balance: str) -> torch.Tensor | None:
    """Per-image draw weights for one epoch (None: a plain shuffle).

    'sampler': every class equally often. 'source': every class equally often and, within a class, every
    source that has it equally often. Balancing (source, class) pairs instead would draw a class that few
    sources cover less often, and mostly from those sources: the confound again, through the sampler."""
    if balance not in ("sampler", "source"):
        return None
    labels = coverage.labels
    present = coverage.counts.sum(0) > 0
    if balance == "sampler":
        per_image = 1.0 / coverage.counts.sum(0).clamp_min(1).double()
        return per_image[labels] / present.sum()
    sources_per_class = coverage.covers.sum(0).clamp_min(1).double()
    cell = coverage.counts.clamp_min(1).double() * sources_per_class * present.sum()
    return 1.0 / cell[coverage.source_ids, labels]


def sampled_log_prior(coverage: SourceCoverage, weights: torch.Tensor | None) -> torch.Tensor:
    """S×C log of each source's class distribution as the sampler draws it; −inf for classes a source lacks."""
    mass = torch.zeros(coverage.counts.shape, dtype=torch.double)
    draws = torch.ones(len(coverage.source_ids), dtype=torch.double) if weights is None else weights.double()
    mass.index_put_((coverage.source_ids, coverage.labels), draws, accumulate=True)
    prior = mass / mass.sum(1, keepdim=True).clamp_min(1e-12)
    return prior.log().float()


class MissingClassLoss(nn.Module):
    """Cross-entropy over the classes each image's source covers, optionally logit-adjusted by the source prior.

    ``log_prior`` is S×C: 0 (``restrict``) or log π_s(c) (``prior``) where source s has class c, −inf where it
    does not. With every class covered and zeros it equals ``nn.CrossEntropyLoss`` (label smoothing included)."""

    def __init__(self, log_prior: torch.Tensor, weight: torch.Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.register_buffer("log_prior", log_prior)
        self.register_buffer("weight", weight if weight is not None else torch.empty(0))
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, source_ids: torch.Tensor) -> torch.Tensor:
        offset = self.log_prior[source_ids]
        allowed = torch.isfinite(offset)
        log_p = (logits + offset).log_softmax(1).masked_fill(~allowed, 0.0)
        class_weight = self.weight if self.weight.numel() else torch.ones(logits.shape[1], device=logits.device)
        image_weight = class_weight[labels]
        loss = -log_p.gather(1, labels[:, None])[:, 0] * image_weight
        if self.label_smoothing:  # as torch's: the uniform target's term is weighted class by class
            uniform = -(log_p * class_weight).sum(1) / allowed.sum(1)
            loss = (1 - self.label_smoothing) * loss + self.label_smoothing * uniform
        return loss.sum() / image_weight.sum().clamp_min(1e-12)


def missing_class_log_prior(coverage: SourceCoverage, rule: str, weights: torch.Tensor | None) -> torch.Tensor:
    """The S×C offsets of ``MissingClassLoss`` for 'restrict' (0 / −inf) or 'prior' (log prior / −inf)."""
    offsets = sampled_log_prior(coverage, weights) if rule == "prior" else torch.zeros(coverage.counts.shape)
    offsets = offsets.masked_fill(~coverage.covers, float("-inf"))
    offsets[coverage.covers.sum(1) == 1] = 0.0  # a one-class source: plain cross-entropy, or it would teach nothing
    return offsets


def coverage_report(coverage: SourceCoverage, rule: str, balance: str) -> list[str]:
    """Lines of the table ``train`` prints: images per source and class, and what was done about gaps."""
    width = max(len(s) for s in coverage.sources + ["source"])
    header = f"{'source':<{width}}  " + "  ".join(f"{c:>8}" for c in coverage.classes) + "  rule"
    lines = ["training images per source and class, and the rule for classes a source lacks:", header]
    for row, name in enumerate(coverage.sources):
        cells = "  ".join(f"{n:>8}" if n else f"{'—':>8}" for n in coverage.counts[row].tolist())
        lines.append(f"{name:<{width}}  {cells}  {_rule_for_source(coverage, row, rule)}")
    lines += _class_notes(coverage)
    lines.append(f"sampler: {_balance_text(balance)}")
    return lines


def _rule_for_source(coverage: SourceCoverage, row: int, rule: str) -> str:
    covered = coverage.covered_names(row)
    missing = [c for c in coverage.classes if c not in covered]
    if not missing:
        return "all classes: plain cross-entropy" + (" (logit-adjusted by its class prior)" if rule == "prior" else "")
    if rule == "off":
        return f"lacks {', '.join(missing)}: NOT handled (--missing-classes off); its images teach 'not {'/'.join(missing)}'"
    if len(covered) == 1:
        return (f"covers only {covered[0]}: plain cross-entropy over all classes (restricted to its one class it would "
                f"add no loss; the source adversary and the other sources keep its look from meaning {covered[0]})")
    adjusted = ", logit-adjusted by its class prior" if rule == "prior" else ""
    return f"lacks {', '.join(missing)}: softmax over {', '.join(covered)} only{adjusted}"


def _class_notes(coverage: SourceCoverage) -> list[str]:
    if len(coverage.sources) < 2:
        return []
    notes = []
    for c, name in enumerate(coverage.classes):
        having = [s for s, has in zip(coverage.sources, coverage.covers[:, c].tolist()) if has]
        if len(having) == 1:
            notes.append(f"note: {name} comes from {having[0]} only: what the model learns about it must carry over from that source")
    return notes


def _balance_text(balance: str) -> str:
    return {
        "source": "every class equally often, and within a class every source that has it equally often (--class-balance source)",
        "sampler": "every class equally often (--class-balance sampler)",
        "loss": "plain shuffle, loss weighted by inverse class frequency (--class-balance loss)",
    }.get(balance, "plain shuffle (--class-balance none)")
