"""Classification metrics (scikit-learn) over a fixed list of classes, with bootstrap intervals.

Two intervals: the image-level one resamples test images (stratified by true class), which assumes that images are
independent; the group-level (cluster) one resamples whole groups (an infant, a video, a cluster of near-duplicates),
which is the honest one when several images share an identity. When groups are known, quote the group-level one.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95
_CHUNK = 100  # resamples per vectorised block: bounds memory at 100 × n indices


def macro_f1(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Macro-F1 over the classes present in ``y_true`` (absent classes would count as 0 and drag it down)."""
    if len(y_true) == 0:
        return 0.0
    present = sorted(set(int(y) for y in y_true))
    return float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str],
                           n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                           groups: Sequence[str] | None = None, group_by: str = "") -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (rows = truth),
    each score with a 95% stratified bootstrap interval (``n_resamples=0``: no intervals).

    With ``groups`` (one name per image; ``group_by`` says what they are) accuracy and macro-F1 also get the
    group-level interval (:func:`add_group_intervals`), and ``quote`` says that it is the one to report."""
    labels = list(range(len(classes)))
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
        for i, name in enumerate(classes)
    }
    metrics = {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_f1": macro_f1(y_true, y_pred),
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "classes": list(classes),
    }
    if n_resamples and len(y_true):
        add_intervals(metrics, y_true, y_pred, n_resamples, seed)
        if groups is not None:
            add_group_intervals(metrics, y_true, y_pred, groups, n_resamples, seed, group_by)
    return metrics


# --------------------------------------------------------------------------- bootstrap intervals


def stratified_resamples(y_true: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """n_resamples × n indices; each resample draws every true class with replacement to its own count."""
    columns = []
    for label in np.unique(y_true):
        members = np.flatnonzero(y_true == label)
        columns.append(members[rng.integers(0, len(members), size=(n_resamples, len(members)))])
    return np.concatenate(columns, axis=1)


def confusion_matrices(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, indices: np.ndarray) -> np.ndarray:
    """One confusion matrix (rows = truth) per row of ``indices``: B × C × C counts."""
    cells = num_classes * num_classes
    codes = y_true[indices] * num_classes + y_pred[indices] + np.arange(len(indices))[:, None] * cells
    return np.bincount(codes.ravel(), minlength=len(indices) * cells).reshape(len(indices), num_classes, num_classes)


def scores_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, macro-F1 (over classes with support) and per-class precision/recall/F1 from ... × C × C matrices.

    Same definitions as scikit-learn with ``zero_division=0``; works on one matrix or a stack of them.
    """
    cm = np.asarray(cm, dtype=float)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support, predicted = cm.sum(-1), cm.sum(-2)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denominator = support + predicted
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    present = support > 0
    return {
        "accuracy": tp.sum(-1) / cm.sum((-2, -1)),
        "macro_f1": (f1 * present).sum(-1) / present.sum(-1),
        "precision": precision, "recall": recall, "f1": f1,
    }


def bootstrap_scores(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int,
                     n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict[str, np.ndarray]:
    """Scores of ``n_resamples`` bootstrap resamples, stratified by true class (each key: B or B × C values)."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    rng = np.random.default_rng(seed)
    blocks = []
    for start in range(0, n_resamples, _CHUNK):
        indices = stratified_resamples(y_true, min(_CHUNK, n_resamples - start), rng)
        blocks.append(scores_from_confusion(confusion_matrices(y_true, y_pred, num_classes, indices)))
    return {key: np.concatenate([b[key] for b in blocks]) for key in blocks[0]}


def percentile_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> list[float]:
    """The central ``confidence`` share of ``values`` (percentile bootstrap interval), along the first axis."""
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail], axis=0)
    return [low.tolist(), high.tolist()]


def add_intervals(metrics: dict, y_true: np.ndarray, y_pred: np.ndarray, n_resamples: int, seed: int) -> dict:
    """Add ``accuracy_ci``, ``macro_f1_ci`` and per-class ``*_ci`` (95% stratified bootstrap) to ``metrics``."""
    scores = bootstrap_scores(y_true, y_pred, len(metrics["classes"]), n_resamples, seed)
    for key in ("accuracy", "macro_f1"):
        metrics[f"{key}_ci"] = percentile_interval(scores[key])
    for key in ("precision", "recall", "f1"):
        low, high = percentile_interval(scores[key])
        for i, row in enumerate(metrics["per_class"].values()):
            row[f"{key}_ci"] = [low[i], high[i]]
    metrics["ci"] = {"method": "percentile bootstrap, stratified by true class", "resamples": n_resamples,
                     "confidence": CONFIDENCE, "seed": seed}
    return metrics


def group_codes(groups: Sequence[str]) -> np.ndarray:
    """0 … G-1 per image, one code per distinct group name."""
    return np.unique(np.asarray(groups, dtype=str), return_inverse=True)[1].reshape(-1)


def group_resample_weights(n_groups: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """n_resamples × n_groups: how often each group is drawn when ``n_groups`` groups are drawn with replacement."""
    draws = rng.integers(0, n_groups, size=(n_resamples, n_groups)) + np.arange(n_resamples)[:, None] * n_groups
    return np.bincount(draws.ravel(), minlength=n_resamples * n_groups).reshape(n_resamples, n_groups)


def cluster_bootstrap_scores(y_true: Sequence[int], y_pred: Sequence[int], groups: Sequence[str], num_classes: int,
                             n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict[str, np.ndarray]:
    """Scores of ``n_resamples`` cluster-bootstrap resamples: each draws as many groups as there are, with replacement,
    and keeps every image of each drawn group (a group drawn twice counts twice). Vectorised: one confusion matrix
    per group, and each resample's matrix is their sum weighted by how often each group was drawn."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    codes = group_codes(groups)
    n_groups, cells = int(codes.max()) + 1, num_classes * num_classes
    per_group = np.bincount(codes * cells + y_true * num_classes + y_pred, minlength=n_groups * cells).reshape(n_groups, cells)
    rng = np.random.default_rng(seed)
    blocks = []
    for start in range(0, n_resamples, _CHUNK):
        weights = group_resample_weights(n_groups, min(_CHUNK, n_resamples - start), rng)
        blocks.append(scores_from_confusion((weights @ per_group).reshape(-1, num_classes, num_classes)))
    return {key: np.concatenate([b[key] for b in blocks]) for key in blocks[0]}


GROUP_METHOD = ("cluster bootstrap: whole groups drawn with replacement; interval = logit(score) ± t(G-1) × "
                "sqrt(G/(G-1)) × the bootstrap standard deviation of logit(score), back-transformed")


def t_multiplier(n_groups: int, confidence: float = CONFIDENCE) -> float:
    """What multiplies a cluster-bootstrap standard deviation to give the half-width of a ``confidence`` interval:
    Student's t with G-1 degrees of freedom (the spread is estimated from only G groups) times sqrt(G/(G-1)) (the
    bootstrap's variance is (G-1)/G of the true one). 2.27 for 13 groups, 2.08 for 30, 1.97 for 300 (1.96 = normal)."""
    return float(np.sqrt(n_groups / (n_groups - 1)) * stats.t.ppf((1 + confidence) / 2, n_groups - 1))


def group_interval(values: np.ndarray, estimate: float, n_groups: int, n_images: int,
                   confidence: float = CONFIDENCE) -> list[float] | None:
    """The group-level interval of a score in [0, 1] from its cluster-bootstrap ``values``: symmetric on the logit
    scale (empirical logit, clipped at 0.5 / n_images from 0 and 1), so that it stays within [0, 1] and follows the
    skew of scores near 1; always contains ``estimate``. None for fewer than 2 groups (one group says nothing about
    others). On simulated test sets of 8 to 100 infants it covered the true accuracy 95% of the time, the plain
    percentile interval 87-93% (benchmarks/interval_coverage.py)."""
    if n_groups < 2:
        return None
    eps = 0.5 / max(n_images, 1)

    def logit(x):
        x = np.clip(x, eps, 1 - eps)
        return np.log(x / (1 - x))

    half = t_multiplier(n_groups, confidence) * float(np.std(logit(np.asarray(values, dtype=float)), ddof=1))
    if half == 0:  # every resample scored the same
        return [float(estimate), float(estimate)]
    centre = float(logit(estimate))
    low, high = (1 / (1 + np.exp(-(centre + side * half))) for side in (-1, 1))
    return [float(min(low, estimate)), float(max(high, estimate))]


def add_group_intervals(metrics: dict, y_true: np.ndarray, y_pred: np.ndarray, groups: Sequence[str], n_resamples: int,
                        seed: int, group_by: str = "") -> dict:
    """Add ``accuracy_group_ci``, ``macro_f1_group_ci`` (None for a single group), ``n_groups``, ``group_ci`` (how)
    and ``quote: "group"``: the group-level intervals are the ones to report."""
    if len(groups) != len(y_true):
        raise ValueError(f"{len(groups)} group names for {len(y_true)} images")
    scores = cluster_bootstrap_scores(y_true, y_pred, groups, len(metrics["classes"]), n_resamples, seed)
    n_groups = int(len(set(groups)))
    for key in ("accuracy", "macro_f1"):
        metrics[f"{key}_group_ci"] = group_interval(scores[key], metrics[key], n_groups, len(y_true))
    metrics["n_groups"] = n_groups
    metrics["group_ci"] = {"method": GROUP_METHOD, "group_by": group_by, "groups": n_groups, "resamples": n_resamples,
                           "confidence": CONFIDENCE, "seed": seed}
    metrics["quote"] = "group"
    return metrics


def groups_text(metrics: dict) -> str:
    """'13 identity_group groups', '13 groups' (a column called group) or '13 near-duplicate clusters'."""
    by = (metrics.get("group_ci") or {}).get("group_by") or "group"
    if by in ("near-duplicates", "near_duplicate_cluster"):
        return f"{metrics.get('n_groups')} near-duplicate clusters"
    return f"{metrics.get('n_groups')} {'' if by == 'group' else by + ' '}groups"


def quoted_interval(metrics: Mapping | object, key: str) -> list[float] | None:
    """The interval of ``key`` (accuracy, macro_f1) to report: the group-level one when groups are known. ``metrics``
    is a dict from :func:`classification_metrics` or a record with the same fields (``babyface.run.TestScores``)."""
    fields = metrics if isinstance(metrics, Mapping) else vars(metrics)
    return fields.get(f"{key}_group_ci") if fields.get("quote") == "group" else fields.get(f"{key}_ci")


def paired_cluster_bootstrap(a_correct: Sequence[bool], b_correct: Sequence[bool], groups: Sequence[str],
                             n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """Accuracy of A minus accuracy of B on the same images, with a 95% interval and a two-sided p-value, from a
    paired cluster bootstrap: both models are scored on the same resampled groups, which keeps the correlation of the
    images within a group and between the two models. The bootstrap standard deviation of the difference, times
    sqrt(G/(G-1)), is the standard error of a t-test with G-1 degrees of freedom (as :func:`t_multiplier`), so that
    p < 0.05 exactly when the 95% interval excludes 0. Needs at least 2 groups."""
    a, b = np.asarray(a_correct, dtype=float), np.asarray(b_correct, dtype=float)
    codes = group_codes(groups)
    n_groups = int(codes.max()) + 1
    if n_groups < 2:
        raise ValueError("a paired cluster bootstrap needs at least 2 groups")
    per_group = np.stack([np.bincount(codes, weights=a - b, minlength=n_groups),
                          np.bincount(codes, minlength=n_groups).astype(float)], axis=1)
    rng = np.random.default_rng(seed)
    blocks = []
    for start in range(0, n_resamples, _CHUNK):
        sums = group_resample_weights(n_groups, min(_CHUNK, n_resamples - start), rng) @ per_group
        blocks.append(sums[:, 0] / sums[:, 1])
    estimate = float(a.mean() - b.mean())
    error = float(np.std(np.concatenate(blocks), ddof=1)) * np.sqrt(n_groups / (n_groups - 1))
    if error > 0:
        p_value = float(2 * stats.t.sf(abs(estimate) / error, n_groups - 1))
    else:  # every resample gives the same difference
        p_value = 1.0 if estimate == 0 else 0.0
    half = float(stats.t.ppf((1 + CONFIDENCE) / 2, n_groups - 1)) * error
    return {"difference": estimate, "difference_ci": [max(-1.0, estimate - half), min(1.0, estimate + half)],
            "p_value": p_value, "groups": n_groups, "resamples": n_resamples, "seed": seed,
            "test": "paired cluster bootstrap of the accuracy difference (t with G-1 degrees of freedom)"}


def interval_text(value: float, interval: Sequence[float] | None, digits: int = 3) -> str:
    """'0.812 [0.771, 0.850]': a score with its 95% interval (the score alone when there is none)."""
    if not interval:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
