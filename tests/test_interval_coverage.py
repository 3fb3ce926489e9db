"""A small run of benchmarks/interval_coverage.py: on simulated test sets whose infants are recognised unevenly, the
group-level interval keeps close to its 95% coverage and the image-level one falls far below it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import interval_coverage  # noqa: E402


def test_true_accuracy_by_quadrature_matches_monte_carlo():
    import numpy as np

    population = interval_coverage.Population(accuracy=0.8, spread=1.5)
    z = np.random.default_rng(0).standard_normal(400_000)
    assert population.true_accuracy() == pytest.approx(np.mean(1 / (1 + np.exp(-(np.log(4) + 1.5 * z)))), abs=0.002)
    assert interval_coverage.Population(accuracy=0.8, spread=0).true_accuracy() == pytest.approx(0.8)


def test_group_level_interval_covers_and_image_level_does_not():
    result = interval_coverage.coverage(interval_coverage.Population(spread=1.5), n_groups=30, n_sets=60, resamples=400)
    assert result["group_coverage"] >= 0.85
    assert result["image_coverage"] <= result["group_coverage"] - 0.15
    assert result["group_width"] > 1.5 * result["image_width"]
    table = interval_coverage.format_table([result])
    assert table.count("\n") == 2 and "| 30 |" in table
