"""Missing-class-aware training: the restricted loss, class-first sampling, the coverage table, the source adversary."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from babyface.models import create_model
from babyface.training.adversary import SourceAdversary, adversary_strength
from babyface.training.coverage import (
    MissingClassLoss,
    coverage_report,
    missing_class_log_prior,
    resolve_balance,
    resolve_rule,
    sampled_log_prior,
    sampling_weights,
    source_coverage,
)
from babyface.training.objective import epoch_order

CLASSES = ["happy", "neutral", "sad"]


def adult_infant(adult: tuple[int, int, int] = (40, 40, 40), infant: tuple[int, int, int] = (10, 0, 30)):
    """An 'adult' source with every class and an 'infant' source without neutral."""
    labels, sources = [], []
    for name, counts in (("adult", adult), ("infant", infant)):
        for label, n in enumerate(counts):
            labels += [label] * n
            sources += [name] * n
    return source_coverage(torch.tensor(labels), sources, CLASSES)


def test_coverage_counts_images_per_source_and_class():
    coverage = adult_infant()
    assert coverage.sources == ["adult", "infant"] and coverage.uneven
    assert coverage.to_dict()["infant"] == {"happy": 10, "neutral": 0, "sad": 30}
    assert coverage.covered_names(1) == ["happy", "sad"]
    assert not source_coverage(torch.tensor([0, 1, 2]), [""] * 3, CLASSES).uneven


def test_auto_rules_switch_on_only_when_sources_cover_different_classes():
    even = source_coverage(torch.tensor([0, 1, 2, 0, 1, 2]), ["a"] * 3 + ["b"] * 3, CLASSES)
    assert resolve_rule("auto", adult_infant()) == "restrict" and resolve_rule("auto", even) == "off"
    assert resolve_balance("auto", adult_infant()) == "source" and resolve_balance("auto", even) == "none"
    assert resolve_rule("prior", even) == "prior" and resolve_balance("sampler", adult_infant()) == "sampler"


def test_restricted_loss_is_cross_entropy_over_the_covered_classes_and_ignores_the_missing_one():
    coverage = adult_infant()
    loss_fn = MissingClassLoss(missing_class_log_prior(coverage, "restrict", None))
    logits = torch.randn(4, 3, requires_grad=True)
    labels, sources = torch.tensor([0, 2, 1, 2]), torch.tensor([1, 1, 0, 0])
    loss = loss_fn(logits, labels, sources)
    expected = (nn.functional.cross_entropy(logits[:2][:, [0, 2]], torch.tensor([0, 1]), reduction="sum")
                + nn.functional.cross_entropy(logits[2:], labels[2:], reduction="sum")) / 4
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert torch.all(logits.grad[:2, 1] == 0)  # an infant image says nothing about 'neutral'
    assert torch.all(logits.grad[2:, 1] != 0)  # an adult image does


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_with_every_class_covered_it_equals_torch_cross_entropy(smoothing):
    coverage = source_coverage(torch.tensor([0, 1, 2]), [""] * 3, CLASSES)
    weight = torch.tensor([0.5, 1.0, 2.0])
    loss_fn = MissingClassLoss(missing_class_log_prior(coverage, "restrict", None), weight, smoothing)
    logits, labels = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    reference = nn.CrossEntropyLoss(weight=weight, label_smoothing=smoothing)(logits, labels)
    assert loss_fn(logits, labels, torch.zeros(6, dtype=torch.long)).item() == pytest.approx(reference.item(), rel=1e-5)


def test_smoothing_spreads_only_over_covered_classes():
    coverage = adult_infant()
    loss_fn = MissingClassLoss(missing_class_log_prior(coverage, "restrict", None), label_smoothing=0.2)
    logits = torch.zeros(1, 3)
    assert loss_fn(logits, torch.tensor([0]), torch.tensor([1])).item() == pytest.approx(math.log(2))
    assert math.isfinite(loss_fn(torch.randn(8, 3), torch.tensor([0, 2] * 4), torch.tensor([1] * 8)).item())


def test_source_balancing_draws_classes_equally_and_sources_equally_within_a_class():
    coverage = adult_infant(adult=(400, 300, 100), infant=(10, 0, 90))
    order = epoch_order(len(coverage.labels), sampling_weights(coverage, "source"), torch.Generator().manual_seed(0))
    labels, sources = coverage.labels[order], coverage.source_ids[order]
    shares = torch.bincount(labels, minlength=3).float() / len(order)
    assert torch.allclose(shares, torch.full((3,), 1 / 3), atol=0.05)  # neutral is not drawn less for having one source
    happy = labels == 0
    assert 0.4 < (sources[happy] == 1).float().mean().item() < 0.6  # 10 infant happy faces, half of the happy draws
    assert torch.all(sources[labels == 1] == 0)


def test_prior_adjustment_uses_the_sampled_class_prior_of_each_source():
    coverage = adult_infant(adult=(40, 40, 40), infant=(10, 0, 30))
    prior = sampled_log_prior(coverage, sampling_weights(coverage, "source")).exp()
    # class-first sampling: adult neutral is drawn from adults only, adult happy/sad shared with infants
    assert prior[0].tolist() == pytest.approx([0.25, 0.5, 0.25], abs=1e-6)
    assert prior[1].tolist() == pytest.approx([0.5, 0.0, 0.5], abs=1e-6)
    plain = sampled_log_prior(coverage, None).exp()
    assert plain[1].tolist() == pytest.approx([0.25, 0.0, 0.75], abs=1e-6)


def test_report_says_which_source_lacks_which_class_and_what_was_done():
    lines = coverage_report(adult_infant(), "restrict", "source")
    text = "\n".join(lines)
    assert "infant" in lines[3] and "lacks neutral: softmax over happy, sad only" in lines[3]
    assert "all classes: plain cross-entropy" in lines[2]
    assert "neutral comes from adult only" in text and "within a class every source" in text
    off = "\n".join(coverage_report(adult_infant(), "off", "none"))
    assert "NOT handled" in off


def test_a_one_class_source_is_reported_and_trained_with_plain_cross_entropy():
    coverage = adult_infant(infant=(0, 0, 30))
    assert "covers only sad: plain cross-entropy over all classes" in "\n".join(coverage_report(coverage, "restrict", "source"))
    for rule in ("restrict", "prior"):
        loss_fn = MissingClassLoss(missing_class_log_prior(coverage, rule, None))
        logits = torch.randn(5, 3, requires_grad=True)
        labels, infant = torch.full((5,), 2), torch.ones(5, dtype=torch.long)
        loss = loss_fn(logits, labels, infant)
        loss.backward()
        assert loss.item() == pytest.approx(nn.functional.cross_entropy(logits, labels).item(), rel=1e-5)
        assert torch.all(logits.grad[:, :2] > 0)  # it pushes happy and neutral down: crying is not neutral


def test_adversary_reverses_the_gradient_reaching_the_backbone():
    torch.manual_seed(0)
    model = create_model("resnet18", 3, 32)
    adversary = SourceAdversary(model, num_sources=2)
    model.train()
    adversary.train()
    x, sources = torch.randn(4, 3, 32, 32), torch.tensor([0, 0, 1, 1])

    def backbone_grad(strength: float) -> torch.Tensor:
        model.zero_grad()
        model(x)
        adversary.loss(sources, strength).backward()
        return next(model.parameters()).grad.clone()

    forward, reversed_ = backbone_grad(-1.0), backbone_grad(1.0)  # strength −1 is plain backpropagation
    assert torch.allclose(reversed_, -forward, atol=1e-6) and forward.abs().sum() > 0
    assert adversary_strength(0.5, 0.0) == 0 and adversary_strength(0.5, 1.0) == pytest.approx(0.5, abs=1e-3)
    model.eval()
    with torch.no_grad():
        model(x)
    assert adversary.features is None  # validation passes keep nothing
    model.train()
    adversary.remove()
    model(x)
    assert adversary.features is None
