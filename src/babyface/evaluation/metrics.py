"""Classification metrics (scikit-learn) over a fixed list of classes."""

from __future__ import annotations

from typing import Sequence

import numpy as np
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
                           n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (rows = truth),
    each score with a 95% stratified bootstrap interval (``n_resamples=0``: no intervals)."""
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


def interval_text(value: float, interval: Sequence[float] | None, digits: int = 3) -> str:
    """'0.812 [0.771, 0.850]': a score with its 95% interval (the score alone when there is none)."""
    if not interval:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
