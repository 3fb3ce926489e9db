"""Stratified, seeded splits that never move an image between train and test."""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np


def stratified_split(labels: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split indices into (kept, held_out) with about ``fraction`` of each class held out.

    Each class with at least two images keeps one and holds out at least one, so tiny classes still
    appear on both sides; the result is sorted and depends only on ``labels``, ``fraction`` and ``seed``.
    """
    if fraction <= 0:
        return list(range(len(labels))), []
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_class[label].append(index)
    kept: list[int] = []
    held: list[int] = []
    for label in sorted(by_class):
        indices = np.array(by_class[label])
        rng.shuffle(indices)
        n_held = int(round(fraction * len(indices)))
        if len(indices) >= 2:
            n_held = min(max(n_held, 1), len(indices) - 1)
        else:
            n_held = 0
        held.extend(indices[:n_held].tolist())
        kept.extend(indices[n_held:].tolist())
    return sorted(kept), sorted(held)
