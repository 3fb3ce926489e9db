"""Bootstrap intervals, expected calibration error and temperature scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, precision_recall_fscore_support

from babyface.config import parse_seeds
from babyface.errors import BabyfaceError
from babyface.experiments.seeds import summarise_seeds
from babyface.inference.calibration import (
    calibrated_probabilities,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
)
from babyface.metrics import (
    bootstrap_scores,
    classification_metrics,
    confusion_matrices,
    scores_from_confusion,
    stratified_resamples,
)

CLASSES = ["happy", "neutral", "sad"]


def noisy_predictions(n: int, accuracy: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 3, n)
    wrong = rng.random(n) > accuracy
    pred = np.where(wrong, (true + rng.integers(1, 3, n)) % 3, true)
    return true, pred


def test_scores_from_confusion_match_scikit_learn():
    true, pred = noisy_predictions(200, 0.6)
    cm = confusion_matrices(true, pred, 3, np.arange(200)[None, :])[0]
    scores = scores_from_confusion(cm)
    precision, recall, f1, _ = precision_recall_fscore_support(true, pred, labels=[0, 1, 2], zero_division=0)
    assert scores["accuracy"] == pytest.approx(np.mean(true == pred))
    assert scores["macro_f1"] == pytest.approx(f1_score(true, pred, average="macro"))
    np.testing.assert_allclose(scores["precision"], precision)
    np.testing.assert_allclose(scores["recall"], recall)
    np.testing.assert_allclose(scores["f1"], f1)


def test_resamples_keep_each_class_count():
    true = np.array([0] * 5 + [1] * 3 + [2] * 12)
    indices = stratified_resamples(true, 50, np.random.default_rng(0))
    assert indices.shape == (50, 20)
    for row in indices:
        assert np.bincount(true[row], minlength=3).tolist() == [5, 3, 12]


def test_interval_contains_estimate_and_narrows_with_more_data():
    widths = []
    for n in (60, 600, 6000):
        true, pred = noisy_predictions(n, 0.7, seed=n)
        metrics = classification_metrics(true, pred, CLASSES, seed=1)
        for key in ("accuracy", "macro_f1"):
            low, high = metrics[f"{key}_ci"]
            assert low <= metrics[key] <= high
        for row in metrics["per_class"].values():
            assert row["f1_ci"][0] <= row["f1"] <= row["f1_ci"][1]
        widths.append(metrics["accuracy_ci"][1] - metrics["accuracy_ci"][0])
    assert widths[0] > widths[1] > widths[2]
    assert metrics["ci"]["resamples"] == 1000


def test_bootstrap_is_seeded_and_has_1000_resamples():
    true, pred = noisy_predictions(100, 0.7)
    a, b = bootstrap_scores(true, pred, 3, seed=4), bootstrap_scores(true, pred, 3, seed=4)
    assert a["accuracy"].shape == (1000,) and a["f1"].shape == (1000, 3)
    np.testing.assert_array_equal(a["macro_f1"], b["macro_f1"])
    assert classification_metrics(true, pred, CLASSES, n_resamples=0).get("accuracy_ci") is None


def calibrated_sample(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities whose top class is right exactly as often as its probability says (in expectation)."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet([1, 1, 1], n)
    labels = np.array([rng.choice(3, p=p) for p in probs])
    return probs, labels


def test_ece_of_calibrated_probabilities_is_near_zero_and_of_overconfident_ones_large():
    probs, labels = calibrated_sample(20000)
    assert expected_calibration_error(probs, labels) < 0.02
    sharpened = np.eye(3)[probs.argmax(1)] * 0.99 + 0.01 / 3  # claims 99% but is right far less often
    assert expected_calibration_error(sharpened, labels) > 0.2


def test_ece_hand_computed():
    probs = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.2, 0.5, 0.3], [0.2, 0.5, 0.3]])
    labels = np.array([0, 1, 1, 1])
    # bin of 0.9: accuracy 0.5, gap 0.4; bin of 0.5: accuracy 1.0, gap 0.5; each holds half the images
    assert expected_calibration_error(probs, labels) == pytest.approx(0.5 * 0.4 + 0.5 * 0.5)
    bins = reliability_bins(probs, labels)
    assert bins["count"].sum() == 4 and len(bins["count"]) == 15


def overconfident_logits(n: int = 3000, seed: int = 0, scale: float = 4.0) -> tuple[torch.Tensor, torch.Tensor]:
    probs, labels = calibrated_sample(n, seed)
    return torch.from_numpy(np.log(probs) * scale).float(), torch.from_numpy(labels)


def test_temperature_fit_lowers_nll_and_ece_of_overconfident_logits():
    logits, labels = overconfident_logits()
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(4.0, rel=0.15)  # undoes the ×4 sharpening
    assert negative_log_likelihood(logits, labels, temperature) < negative_log_likelihood(logits, labels) - 0.1
    before = expected_calibration_error(calibrated_probabilities(logits).numpy(), labels.numpy())
    after = expected_calibration_error(calibrated_probabilities(logits, temperature).numpy(), labels.numpy())
    assert after < before / 3
    # scaling never changes the predicted class
    assert torch.equal(calibrated_probabilities(logits, temperature).argmax(1), logits.argmax(1))


def test_temperature_fit_without_data_is_one():
    assert fit_temperature(torch.empty(0, 3), torch.empty(0, dtype=torch.long)) == 1.0


def test_seed_list_parsing_and_summary():
    assert parse_seeds("0, 1,2") == [0, 1, 2]
    for bad in ("a,b", "1,1", ""):
        with pytest.raises(BabyfaceError, match="--seeds"):
            parse_seeds(bad)
    summary = summarise_seeds([{"seed": 0, "val_macro_f1": 0.5, "val_acc": 0.6}, {"seed": 1, "val_macro_f1": 0.7, "val_acc": 0.6}])
    assert summary["metrics"]["val_macro_f1"]["mean"] == pytest.approx(0.6)
    assert summary["metrics"]["val_macro_f1"]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1), abs=1e-6)
    assert summary["metrics"]["val_acc"]["std"] == 0.0
