"""The group-level (cluster) bootstrap: exact against a naive loop, equal to the image-level one when every group is one
image, wider when the images of a group are right or wrong together; the paired version for comparing two models."""

from __future__ import annotations

import numpy as np
import pytest

from babyface.evaluation.compare import mcnemar
from babyface.metrics import (
    bootstrap_scores,
    classification_metrics,
    cluster_bootstrap_scores,
    group_codes,
    group_interval,
    group_resample_weights,
    groups_text,
    paired_cluster_bootstrap,
    percentile_interval,
    quoted_interval,
    t_multiplier,
)

CLASSES = ["happy", "neutral", "sad"]


def independent_predictions(n: int = 300, accuracy: float = 0.7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Balanced classes, each image right with probability ``accuracy`` (else another class), independently."""
    rng = np.random.default_rng(seed)
    true = np.arange(n) % 3
    right = rng.random(n) < accuracy
    pred = np.where(right, true, (true + rng.integers(1, 3, n)) % 3)
    return true, pred


def correlated_predictions(n_groups: int = 20, size: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Each group all right or all wrong (perfectly correlated within a group)."""
    rng = np.random.default_rng(seed)
    true = np.arange(n_groups * size) % 3
    right = np.repeat(rng.random(n_groups) < 0.6, size)
    pred = np.where(right, true, (true + 1) % 3)
    return true, pred, [f"infant{i}" for i in range(n_groups) for _ in range(size)]


def test_weights_draw_every_group_count_once_per_resample():
    weights = group_resample_weights(7, 50, np.random.default_rng(0))
    assert weights.shape == (50, 7) and (weights.sum(1) == 7).all() and (weights >= 0).all()
    assert group_codes(["b", "a", "b", "c"]).tolist() == [1, 0, 1, 2]


def test_cluster_bootstrap_equals_a_naive_loop_over_drawn_groups():
    true, pred, groups = correlated_predictions(n_groups=6, size=3)
    true[::4] = 2  # not all-or-nothing any more, so macro-F1 varies within a group
    codes = group_codes(groups)
    fast = cluster_bootstrap_scores(true, pred, groups, 3, n_resamples=150, seed=4)
    rng = np.random.default_rng(4)
    naive = []
    for start in range(0, 150, 100):  # the same draws, in the same chunks
        draws = rng.integers(0, 6, size=(min(100, 150 - start), 6))
        for row in draws:
            index = np.concatenate([np.flatnonzero(codes == g) for g in row])
            naive.append(np.mean(true[index] == pred[index]))
    np.testing.assert_allclose(fast["accuracy"], naive)


def test_one_image_per_group_matches_the_image_level_bootstrap_in_distribution():
    true, pred = independent_predictions(600)
    image = bootstrap_scores(true, pred, 3, n_resamples=4000, seed=1)["accuracy"]
    group = cluster_bootstrap_scores(true, pred, [str(i) for i in range(len(true))], 3, n_resamples=4000, seed=2)["accuracy"]
    assert abs(image.mean() - group.mean()) < 0.003
    assert 0.9 < group.std() / image.std() < 1.1
    np.testing.assert_allclose(np.percentile(group, [2.5, 97.5]), np.percentile(image, [2.5, 97.5]), atol=0.01)


def test_correlated_groups_give_a_much_wider_group_interval():
    true, pred, groups = correlated_predictions()
    metrics = classification_metrics(true, pred, CLASSES, n_resamples=1000, groups=groups, group_by="infant")
    image_width = np.diff(metrics["accuracy_ci"])[0]
    group_width = np.diff(metrics["accuracy_group_ci"])[0]
    assert group_width > 2.5 * image_width
    low, high = metrics["accuracy_group_ci"]
    assert low <= metrics["accuracy"] <= high
    assert metrics["n_groups"] == 20 and metrics["quote"] == "group"
    assert metrics["group_ci"]["group_by"] == "infant" and metrics["group_ci"]["groups"] == 20
    assert quoted_interval(metrics, "accuracy") == metrics["accuracy_group_ci"]
    assert quoted_interval(metrics, "macro_f1") == metrics["macro_f1_group_ci"]
    assert groups_text(metrics) == "20 infant groups"
    metrics["group_ci"]["group_by"] = "group"
    assert groups_text(metrics) == "20 groups"
    metrics["group_ci"]["group_by"] = "near-duplicates"
    assert groups_text(metrics) == "20 near-duplicate clusters"


def test_without_groups_the_image_level_interval_is_quoted():
    true, pred = independent_predictions(90)
    metrics = classification_metrics(true, pred, CLASSES, n_resamples=200)
    assert "accuracy_group_ci" not in metrics and "quote" not in metrics
    assert quoted_interval(metrics, "accuracy") == metrics["accuracy_ci"]
    with pytest.raises(ValueError):
        classification_metrics(true, pred, CLASSES, n_resamples=200, groups=["a"] * 10)


def test_cluster_bootstrap_is_seeded():
    true, pred, groups = correlated_predictions()
    first = cluster_bootstrap_scores(true, pred, groups, 3, 300, seed=5)["macro_f1"]
    np.testing.assert_array_equal(first, cluster_bootstrap_scores(true, pred, groups, 3, 300, seed=5)["macro_f1"])
    assert not np.array_equal(first, cluster_bootstrap_scores(true, pred, groups, 3, 300, seed=6)["macro_f1"])


def test_paired_cluster_bootstrap_of_identical_models_finds_no_difference():
    true, pred, groups = correlated_predictions()
    right = true == pred
    result = paired_cluster_bootstrap(right, right, groups, n_resamples=500)
    assert result["difference"] == 0 and result["difference_ci"] == [0.0, 0.0] and result["p_value"] == 1.0
    assert result["groups"] == 20


def test_paired_cluster_bootstrap_is_more_cautious_than_mcnemar_on_correlated_images():
    # B beats A on 3 of 20 infants, all 10 images of each: McNemar sees 30 independent wins, the groups see 3
    groups = [f"infant{i}" for i in range(20) for _ in range(10)]
    a = np.ones(200, dtype=bool)
    b = a.copy()
    a[:30] = False
    cluster = paired_cluster_bootstrap(a, b, groups, n_resamples=2000, seed=0)
    assert cluster["difference"] == pytest.approx(-0.15)
    low, high = cluster["difference_ci"]
    assert low < -0.15 < high and high < 0.05
    assert mcnemar(a, b)["p_value"] < 1e-6 < cluster["p_value"]
    clear = paired_cluster_bootstrap(np.zeros(200, bool), np.ones(200, bool), groups, n_resamples=999)
    assert clear["p_value"] == 0 and clear["difference_ci"] == [-1.0, -1.0]


@pytest.mark.parametrize("seed", range(6))
def test_paired_p_value_is_below_5_percent_exactly_when_the_interval_excludes_0(seed):
    rng = np.random.default_rng(seed)
    groups = [f"g{i}" for i in range(25) for _ in range(6)]
    a = rng.random(150) < 0.7
    b = np.where(rng.random(150) < 0.15 * seed / 5, True, a)  # B is A with more images right, more so for larger seeds
    result = paired_cluster_bootstrap(a, b, groups, n_resamples=1000, seed=seed)
    low, high = result["difference_ci"]
    assert (result["p_value"] < 0.05) == (not low <= 0 <= high)


def test_few_groups_widen_the_interval_and_one_group_gives_none():
    assert t_multiplier(13) == pytest.approx(2.27, abs=0.01)
    assert t_multiplier(30) == pytest.approx(2.08, abs=0.01) and t_multiplier(3000) == pytest.approx(1.961, abs=0.001)
    values = np.random.default_rng(0).normal(0.6, 0.05, 2000)
    low, high = group_interval(values, 0.6, 13, 130)
    raw = percentile_interval(values)
    assert low < raw[0] and high > raw[1] and 0 < low < 0.6 < high < 1
    assert (high - low) / (raw[1] - raw[0]) == pytest.approx(2.27 / 1.96, rel=0.05)
    assert group_interval(np.ones(100), 1.0, 13, 130) == [1.0, 1.0]
    assert group_interval(np.r_[np.ones(99), 0.9], 1.0, 13, 130)[1] == 1.0  # always contains the estimate
    assert group_interval(values, 0.6, 1, 130) is None
    true, pred = independent_predictions(30)
    metrics = classification_metrics(true, pred, CLASSES, n_resamples=200, groups=["one"] * 30)
    assert metrics["accuracy_group_ci"] is None and metrics["n_groups"] == 1
    assert quoted_interval(metrics, "accuracy") is None
