"""McNemar's test against hand computations and scipy."""

from __future__ import annotations

import math

import pytest

from babyface.evaluation.compare import mcnemar


def outcomes(both: int, only_a: int, only_b: int, neither: int) -> tuple[list[bool], list[bool]]:
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return a, b


def test_exact_p_value_matches_hand_computation():
    # b = 1, c = 6: p = 2 · (C(7,0) + C(7,1)) / 2^7 = 2 · 8 / 128 = 0.125
    result = mcnemar(*outcomes(20, 1, 6, 3))
    assert (result["only_a_right"], result["only_b_right"]) == (1, 6)
    assert result["test"] == "exact binomial" and result["p_value"] == pytest.approx(0.125)
    assert mcnemar(*outcomes(5, 0, 0, 5))["p_value"] == 1.0
    assert mcnemar(*outcomes(0, 3, 3, 0))["p_value"] == 1.0  # symmetric: capped at 1


def test_large_counts_use_continuity_corrected_chi_square():
    result = mcnemar(*outcomes(100, 10, 30, 5))
    statistic = (abs(10 - 30) - 1) ** 2 / 40
    assert result["statistic"] == pytest.approx(statistic)
    assert result["p_value"] == pytest.approx(math.erfc(math.sqrt(statistic / 2)))
    scipy_stats = pytest.importorskip("scipy.stats")
    assert result["p_value"] == pytest.approx(scipy_stats.chi2.sf(statistic, 1))
    small = mcnemar(*outcomes(10, 2, 9, 0))
    assert small["p_value"] == pytest.approx(scipy_stats.binomtest(2, 11, 0.5).pvalue)
