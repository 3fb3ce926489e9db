"""Positive-vs-rest and negative-vs-neutral AUC with intervals, as infant-coding tools report them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from babyface.evaluation.affect import affect_aucs, format_aucs
from babyface.run import AucRecord

CLASSES = ["happy", "neutral", "sad"]


def noisy_probabilities(true: np.ndarray, strength: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(true), 3)) + strength * np.eye(3)[true]
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)


def test_both_aucs_match_sklearn_on_the_pairs_they_are_defined_on():
    true = np.repeat([0, 1, 2], 40)
    probs = noisy_probabilities(true, 1.5)
    aucs = affect_aucs(true, probs, CLASSES, n_resamples=200, seed=0)
    assert aucs["positive_vs_rest"]["auc"] == pytest.approx(roc_auc_score(true == 0, probs[:, 0]))
    pair = true > 0
    ratio = probs[pair, 2] / (probs[pair, 1] + probs[pair, 2])
    assert aucs["negative_vs_neutral"]["auc"] == pytest.approx(roc_auc_score(true[pair] == 2, ratio))
    assert aucs["negative_vs_neutral"]["positives"] == 40 and aucs["negative_vs_neutral"]["negatives"] == 40
    for record in aucs.values():
        low, high = record["auc_ci"]
        assert low < record["auc"] < high and high - low < 0.3


def test_a_better_model_has_a_higher_auc_and_chance_is_near_half():
    true = np.repeat([0, 1, 2], 200)
    good = affect_aucs(true, noisy_probabilities(true, 3.0), CLASSES, n_resamples=0)
    chance = affect_aucs(true, noisy_probabilities(true, 0.0), CLASSES, n_resamples=0)
    assert good["negative_vs_neutral"]["auc"] > 0.95
    assert abs(chance["negative_vs_neutral"]["auc"] - 0.5) < 0.1 and "auc_ci" not in chance["positive_vs_rest"]


def test_group_intervals_are_wider_when_groups_repeat_one_infant():
    true = np.repeat([0, 1, 2], 60)
    infant = np.arange(len(true)) % 9  # 20 photos of each of 9 infants, each of them in every class
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(len(true), 3)) * 0.3 + np.eye(3)[true] + rng.normal(size=(9, 3))[infant] * 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)  # one infant's faces look alike to the model
    by_image = affect_aucs(true, probs, CLASSES, n_resamples=300, seed=1)
    infants = [f"infant{i}" for i in infant]
    by_infant = affect_aucs(true, probs, CLASSES, n_resamples=300, seed=1, groups=infants)
    width = lambda r: r["auc_ci"][1] - r["auc_ci"][0]  # noqa: E731
    assert width(by_infant["positive_vs_rest"]) > width(by_image["positive_vs_rest"])
    assert by_infant["positive_vs_rest"]["n_groups"] == 9


def test_pairs_the_test_set_lacks_are_left_out_and_the_lines_read_well():
    true = np.repeat([0, 2], 30)  # happy and sad infants, no neutral ones
    aucs = affect_aucs(true, noisy_probabilities(true, 1.0), CLASSES, n_resamples=100)
    assert list(aucs) == ["positive_vs_rest"]
    assert affect_aucs(true, noisy_probabilities(true, 1.0), ["angry", "fear", "surprise"], n_resamples=0) == {}
    line = format_aucs({name: AucRecord.model_validate(r) for name, r in aucs.items()})[0]
    assert line.startswith("positive vs rest AUC ") and "(30 vs 30 faces" in line
