"""The figures infant-coding tools publish: positive affect against the rest, and negative against neutral, as ROC AUC.

Baby FaceReader's validation on infant video reports these two (positive vs rest 0.81, negative vs neutral 0.58), so
a babyface model can be put beside it. Both are threshold-free: they say how well the model's probabilities rank the
faces, not how good its decisions are. Negative vs neutral uses only the faces labelled one of the two and scores
each by p(negative) / (p(negative) + p(neutral)), the model's answer when it must choose between them.
Intervals: a bootstrap of the images (stratified by the two labels) or, with groups, of whole groups (infants).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from babyface.metrics import CONFIDENCE, group_codes, group_resample_weights, percentile_interval
from babyface.run import AucRecord

POSITIVE, NEGATIVE, NEUTRAL = "happy", "sad", "neutral"


def affect_aucs(true: np.ndarray, probs: np.ndarray, classes: Sequence[str], n_resamples: int = 1000, seed: int = 0,
                groups: Sequence[str] | None = None) -> dict:
    """``positive_vs_rest`` and ``negative_vs_neutral``: AUC, 95% interval, the two counts; a pair whose classes the
    test set lacks is left out."""
    true, probs = np.asarray(true, dtype=int), np.asarray(probs, dtype=float)
    names = list(classes)
    result = {}
    if POSITIVE in names:
        positive = names.index(POSITIVE)
        result["positive_vs_rest"] = _auc_record(true == positive, probs[:, positive], n_resamples, seed, groups,
                                                 f"{POSITIVE} vs the rest, scored by p({POSITIVE})")
    if NEGATIVE in names and NEUTRAL in names:
        negative, neutral = names.index(NEGATIVE), names.index(NEUTRAL)
        kept = np.isin(true, [negative, neutral])
        score = probs[kept, negative] / np.clip(probs[kept, negative] + probs[kept, neutral], 1e-12, None)
        kept_groups = None if groups is None else np.asarray(groups)[kept].tolist()
        result["negative_vs_neutral"] = _auc_record(true[kept] == negative, score, n_resamples, seed, kept_groups,
                                                    f"{NEGATIVE} vs {NEUTRAL} faces only, scored by "
                                                    f"p({NEGATIVE}) / (p({NEGATIVE}) + p({NEUTRAL}))")
    return {name: record for name, record in result.items() if record is not None}


def _auc_record(positive: np.ndarray, score: np.ndarray, n_resamples: int, seed: int, groups: Sequence[str] | None,
                what: str) -> dict | None:
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    record = {"auc": float(roc_auc_score(positive, score)), "positives": n_pos, "negatives": n_neg, "what": what}
    if n_resamples:
        weights = (_group_weights(groups, n_resamples, seed) if groups is not None
                   else _stratified_weights(positive, n_resamples, seed))
        values = np.array([_weighted_auc(positive, score, w) for w in weights])
        record["auc_ci"] = percentile_interval(values[np.isfinite(values)])
        record["ci"] = {"method": "cluster bootstrap over groups" if groups is not None else
                        "percentile bootstrap, stratified by the two labels", "resamples": n_resamples,
                        "confidence": CONFIDENCE, "seed": seed}
        if groups is not None:
            record["n_groups"] = int(group_codes(groups).max()) + 1
    return record


def _stratified_weights(positive: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """n_resamples × n: how often each image is drawn when each label is drawn with replacement to its own count."""
    rng = np.random.default_rng(seed)
    weights = np.zeros((n_resamples, len(positive)))
    for label in (True, False):
        members = np.flatnonzero(positive == label)
        draws = members[rng.integers(0, len(members), size=(n_resamples, len(members)))]
        for row, drawn in enumerate(draws):
            weights[row] += np.bincount(drawn, minlength=len(positive))
    return weights


def _group_weights(groups: Sequence[str], n_resamples: int, seed: int) -> np.ndarray:
    codes = group_codes(groups)
    return group_resample_weights(int(codes.max()) + 1, n_resamples, np.random.default_rng(seed))[:, codes]


def _weighted_auc(positive: np.ndarray, score: np.ndarray, weight: np.ndarray) -> float:
    drawn = weight > 0
    if positive[drawn].all() or not positive[drawn].any():
        return float("nan")  # a resample with one label only has no AUC
    return float(roc_auc_score(positive[drawn], score[drawn], sample_weight=weight[drawn]))


def format_aucs(aucs: Mapping[str, AucRecord]) -> list[str]:
    """One line per pair: 'positive vs rest AUC 0.912 [0.88, 0.94] (96 vs 118)'."""
    lines = []
    for name, r in aucs.items():
        interval = f" [{r.auc_ci[0]:.3f}, {r.auc_ci[1]:.3f}]" if r.auc_ci else ""
        lines.append(f"{name.replace('_', ' ')} AUC {r.auc:.3f}{interval} ({r.positives} vs {r.negatives} faces; {r.what})")
    return lines
