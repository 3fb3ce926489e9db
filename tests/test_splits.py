"""babyface.data.splits.stratified_split: seeded, disjoint, complete and stratified."""

from __future__ import annotations

from collections import Counter

import pytest

from babyface.data.splits import stratified_split

# 3 unbalanced classes, interleaved so that index order and class order differ
LABELS = [i % 3 for i in range(60)] + [0] * 25 + [2] * 7


def test_deterministic_per_seed() -> None:
    assert stratified_split(LABELS, 0.2, seed=7) == stratified_split(LABELS, 0.2, seed=7)
    assert stratified_split(list(LABELS), 0.2, seed=7) == stratified_split(tuple(LABELS), 0.2, seed=7)


def test_different_seeds_give_different_splits() -> None:
    held = {tuple(stratified_split(LABELS, 0.2, seed=seed)[1]) for seed in range(5)}
    assert len(held) == 5


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5, 0.9])
@pytest.mark.parametrize("seed", [0, 1])
def test_disjoint_complete_sorted(fraction: float, seed: int) -> None:
    kept, held = stratified_split(LABELS, fraction, seed)
    assert not set(kept) & set(held)
    assert sorted(kept + held) == list(range(len(LABELS)))
    assert kept == sorted(kept) and held == sorted(held)
    assert all(isinstance(i, int) for i in kept + held)


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.3, 0.5])
def test_per_class_proportions(fraction: float) -> None:
    _, held = stratified_split(LABELS, fraction, seed=3)
    totals = Counter(LABELS)
    held_counts = Counter(LABELS[i] for i in held)
    for label, n in totals.items():
        assert abs(held_counts[label] - fraction * n) <= 1, (label, held_counts[label], fraction * n)


def test_class_with_two_images_has_one_on_each_side() -> None:
    labels = [0] * 20 + [1, 1]
    for fraction in (0.05, 0.2, 0.9):
        kept, held = stratified_split(labels, fraction, seed=0)
        assert sum(labels[i] == 1 for i in kept) == 1
        assert sum(labels[i] == 1 for i in held) == 1


def test_small_fraction_still_holds_out_one_per_class() -> None:
    labels = [0] * 10 + [1] * 10
    kept, held = stratified_split(labels, 0.01, seed=0)
    assert Counter(labels[i] for i in held) == {0: 1, 1: 1}


def test_class_with_one_image_stays_in_kept() -> None:
    labels = [0] * 10 + [1] + [2] * 10
    for seed in range(3):
        kept, held = stratified_split(labels, 0.5, seed)
        assert 10 in kept and 10 not in held


def test_fraction_zero_holds_out_nothing() -> None:
    kept, held = stratified_split(LABELS, 0.0, seed=0)
    assert held == [] and kept == list(range(len(LABELS)))


def test_empty_labels() -> None:
    assert stratified_split([], 0.2, seed=0) == ([], [])
