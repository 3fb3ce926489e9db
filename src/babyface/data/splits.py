"""Stratified, seeded splits that never move an image between train and test."""

from __future__ import annotations

from collections import defaultdict
from typing import Hashable, Sequence

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


def group_stratified_split(labels: Sequence[int], groups: Sequence[str], fractions: dict[str, float], seed: int,
                           rest: str = "train") -> list[str]:
    """The split name of each index: whole groups go to one split, chosen so that each class comes close to
    ``fractions`` (e.g. {"test": 0.15, "val": 0.15}); the remainder is ``rest``.

    Groups are placed largest first (ties in a seeded random order), each into the split whose per-class
    quota it fills best, so a big group cannot overshoot a small split late in the run.
    """
    members: dict[str, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        members[group].append(index)
    class_totals = np.bincount(np.asarray(labels, dtype=np.int64), minlength=1).astype(float) if len(labels) else np.zeros(1)
    names = [name for name, share in fractions.items() if share > 0] + [rest]
    shares = [fractions[name] for name in names[:-1]] + [max(0.0, 1 - sum(fractions.values()))]
    deficit = np.outer(shares, class_totals)  # images still wanted per split and class
    order = list(members)
    np.random.default_rng(seed).shuffle(order)
    order.sort(key=lambda g: -len(members[g]))
    assigned = [rest] * len(labels)
    for group in order:
        counts = np.bincount([labels[i] for i in members[group]], minlength=len(class_totals)).astype(float)
        gain = (np.minimum(deficit, counts) / np.maximum(class_totals, 1)).sum(axis=1)
        overshoot = (np.maximum(counts - deficit, 0) / np.maximum(class_totals, 1)).sum(axis=1)
        choice = int(np.argmax(gain - overshoot))
        deficit[choice] -= counts
        for index in members[group]:
            assigned[index] = names[choice]
    return assigned


def group_stratified_folds(labels: Sequence[int], groups: Sequence[str], k: int, seed: int) -> list[int]:
    """The fold (0 … k-1) of each index for k-fold cross-validation: every group whole in one fold, each fold holding
    close to 1/k of each class, and no fold empty (needs at least k groups).

    Groups are placed largest first (ties in a seeded random order), each into the fold whose per-class quota it
    fills best without overshooting (as :func:`group_stratified_split`); among equally good folds the one furthest
    below its share wins, and the last groups go to folds still empty."""
    members: dict[str, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        members[group].append(index)
    if len(members) < k:
        raise ValueError(f"{len(members)} groups cannot fill {k} folds")
    labels = np.asarray(labels, dtype=np.int64)
    totals = np.bincount(labels, minlength=1).astype(float)
    scale = np.maximum(totals, 1)
    deficit = np.tile(totals / k, (k, 1))  # images each fold still wants, per class
    order = list(members)
    np.random.default_rng(seed).shuffle(order)
    order.sort(key=lambda g: -len(members[g]))
    fold_of = np.zeros(len(labels), dtype=np.int64)
    empty = np.ones(k, dtype=bool)
    for position, group in enumerate(order):
        counts = np.bincount(labels[members[group]], minlength=len(totals)).astype(float)
        score = (np.minimum(deficit, counts) / scale).sum(1) - (np.maximum(counts - deficit, 0) / scale).sum(1)
        score += 1e-9 * deficit.sum(1) / max(len(labels), 1)  # ties: the fold furthest below its share
        if len(order) - position <= empty.sum():  # as many groups left as empty folds: one each
            score[~empty] = -np.inf
        fold = int(np.argmax(score))
        deficit[fold] -= counts
        empty[fold] = False
        fold_of[members[group]] = fold
    return fold_of.tolist()


def limit_per_class(keys: Sequence[Hashable], limit: int, seed: int) -> list[int]:
    """Indices keeping at most ``limit`` items of each key (a class, or a (source, class) pair), chosen
    at random with ``seed``; sorted. ``limit`` 0 keeps everything."""
    if limit <= 0:
        return list(range(len(keys)))
    rng = np.random.default_rng(seed)
    by_key: dict[Hashable, list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        by_key[key].append(index)
    kept = [i for indices in by_key.values() for i in (rng.permutation(indices)[:limit] if len(indices) > limit else indices)]
    return sorted(int(i) for i in kept)
