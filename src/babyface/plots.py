"""Figures for the infant facial-emotion classifier: learning curves, confusion matrix, prediction grid.

Every figure is written with :func:`babyface.outputs.save_figure` (atomic PNG, 120 dpi, figure closed).
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.ticker import MaxNLocator, PercentFormatter  # noqa: E402

from babyface.outputs import save_figure  # noqa: E402

PathLike = str | os.PathLike

TRAIN_COLOUR = "#1f77b4"
VAL_COLOUR = "#ff7f0e"
F1_COLOUR = "#2ca02c"
BEST_COLOUR = "#555555"
CORRECT_COLOUR = "#1a9641"
WRONG_COLOUR = "#d7191c"
STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "figure.titlesize": 13,
    "figure.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _new_figure(width: float, height: float, title: str) -> plt.Figure:
    """A figure with the house style and constrained (tight) layout."""
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(width, height), layout="constrained")
        if title:
            fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------- learning curves


def _column(history: Sequence[dict], key: str) -> np.ndarray:
    """One metric over epochs as floats; a missing or ``None`` value becomes NaN (a gap in the line)."""
    return np.array([np.nan if row.get(key) is None else float(row[key]) for row in history], dtype=float)


def _epochs(history: Sequence[dict]) -> np.ndarray:
    """The epoch numbers, or 1..n when the rows do not all carry one."""
    epochs = _column(history, "epoch")
    return np.arange(1, len(history) + 1, dtype=float) if np.isnan(epochs).any() else epochs


def _best_epoch_index(val_macro_f1: np.ndarray) -> int | None:
    """Index of the highest validation macro-F1 (first one on ties), ``None`` when no epoch has a value."""
    if np.all(np.isnan(val_macro_f1)):
        return None
    return int(np.nanargmax(val_macro_f1))


def _mark_best_epoch(ax: Axes, epoch: float, label: str) -> None:
    ax.axvline(epoch, color=BEST_COLOUR, linestyle=":", linewidth=1.4, zorder=1, label=label)


def _style_epoch_axis(ax: Axes, epochs: np.ndarray) -> None:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=10, min_n_ticks=1))
    ax.set_xlim(epochs.min() - 0.5, epochs.max() + 0.5)
    ax.grid(True, alpha=0.3)


def _plot_series(ax: Axes, epochs: np.ndarray, values: np.ndarray, label: str, colour: str, **style) -> None:
    marker = "o" if len(epochs) <= 30 else None
    ax.plot(epochs, values, label=label, color=colour, marker=marker, markersize=3.5, linewidth=1.8, **style)


def plot_learning_curves(history: list[dict], path: PathLike, title: str = "") -> Path:
    """Loss panel (train vs validation) and accuracy panel (train/validation accuracy, validation macro-F1 dashed).

    The best epoch (highest validation macro-F1) gets a dotted vertical line on both panels and a label.
    """
    if not history:
        raise ValueError("plot_learning_curves: history is empty; train for at least one epoch")
    epochs = _epochs(history)
    val_f1 = _column(history, "val_macro_f1")
    best = _best_epoch_index(val_f1)

    fig = _new_figure(11.0, 4.6, title)
    with plt.rc_context(STYLE):
        loss_ax, acc_ax = fig.subplots(1, 2)
        _plot_series(loss_ax, epochs, _column(history, "train_loss"), "train", TRAIN_COLOUR)
        _plot_series(loss_ax, epochs, _column(history, "val_loss"), "validation", VAL_COLOUR)
        loss_ax.set(title="Loss", ylabel="cross-entropy loss")

        _plot_series(acc_ax, epochs, _column(history, "train_acc"), "train", TRAIN_COLOUR)
        _plot_series(acc_ax, epochs, _column(history, "val_acc"), "validation", VAL_COLOUR)
        _plot_series(acc_ax, epochs, val_f1, "validation macro-F1", F1_COLOUR, linestyle="--")
        acc_ax.set(title="Accuracy and macro-F1", ylabel="accuracy / macro-F1", ylim=(0.0, 1.02))
        acc_ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))

        for ax in (loss_ax, acc_ax):
            _style_epoch_axis(ax, epochs)
            if best is not None:
                _mark_best_epoch(ax, epochs[best], f"best epoch {epochs[best]:.0f} (val macro-F1 {val_f1[best]:.3f})")
        # Colours mean the same on both panels, so one legend below them serves both.
        fig.legend(*acc_ax.get_legend_handles_labels(), loc="outside lower center", ncols=4, frameon=False)
    return save_figure(fig, path)


# --------------------------------------------------------------------------- confusion matrix


def _row_normalise(cm: np.ndarray) -> np.ndarray:
    """Each row divided by its total; rows with no support stay 0 (no division warning)."""
    totals = cm.sum(axis=1, keepdims=True).astype(float)
    return np.divide(cm, totals, out=np.zeros(cm.shape, dtype=float), where=totals > 0)


def _cell_text(count: float, share: float, support: float) -> str:
    percent = f"{100 * share:.1f}%" if support > 0 else "–"
    return f"{count:.0f}\n{percent}"


def _annotate_cells(ax: Axes, cm: np.ndarray, shares: np.ndarray) -> None:
    support = cm.sum(axis=1)
    fontsize = 11 if len(cm) <= 8 else 8
    for (row, col), count in np.ndenumerate(cm):
        colour = "white" if shares[row, col] > 0.5 else "#222222"
        weight = "bold" if row == col else "normal"
        ax.text(col, row, _cell_text(count, shares[row, col], support[row]),
                ha="center", va="center", color=colour, fontsize=fontsize, fontweight=weight)


def _matrix_subtitle(cm: np.ndarray) -> str:
    total = cm.sum()
    if total == 0:
        return "no images"
    return f"{total:.0f} images, accuracy {100 * np.trace(cm) / total:.1f}%"


def plot_confusion_matrix(cm: np.ndarray, classes: list[str], path: PathLike, title: str = "") -> Path:
    """Rows = true class, columns = predicted; each cell shows its count and row percentage.

    Colour follows the row-normalised value (recall on the diagonal); rows with zero support show '–'.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(classes):
        raise ValueError(f"plot_confusion_matrix: matrix of shape {cm.shape} does not match {len(classes)} classes")
    shares = _row_normalise(cm)
    side = max(4.8, 1.05 * len(classes) + 2.6)

    fig = _new_figure(side + 0.9, side, title or "Confusion matrix")
    with plt.rc_context(STYLE):
        ax = fig.subplots()
        image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        colourbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
        colourbar.set_label("share of the true class")
        colourbar.formatter = PercentFormatter(xmax=1.0, decimals=0)
        colourbar.update_ticks()
        _annotate_cells(ax, cm, shares)

        ticks = np.arange(len(classes))
        support = cm.sum(axis=1)
        ax.set_xticks(ticks, labels=classes)
        ax.set_yticks(ticks, labels=[f"{name}\n(n={n:.0f})" for name, n in zip(classes, support)])
        ax.set(xlabel="predicted class", ylabel="true class", title=_matrix_subtitle(cm))
        ax.title.set_fontweight("normal")
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
    return save_figure(fig, path)


# --------------------------------------------------------------------------- prediction grid


def _frame_tile(ax: Axes, colour: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_edgecolor(colour)
        spine.set_linewidth(4)


def _draw_tile(ax: Axes, image: np.ndarray, true: str, pred: str, confidence: float) -> None:
    image = np.asarray(image)
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="antialiased")
    colour = CORRECT_COLOUR if true == pred else WRONG_COLOUR
    ax.set_title(f"true: {true}\npred: {pred} ({confidence:.2f})", color=colour, fontsize=9,
                 fontweight="bold", linespacing=1.2)
    _frame_tile(ax, colour)


def _grid_title(title: str, true: Sequence[str], pred: Sequence[str]) -> str:
    correct = sum(t == p for t, p in zip(true, pred))
    summary = f"{correct} of {len(true)} shown are right (green), {len(true) - correct} wrong (red)"
    return f"{title}\n{summary}" if title else summary


def plot_prediction_grid(images: list[np.ndarray], true: list[str], pred: list[str], confidences: list[float],
                         path: PathLike, title: str = "", ncols: int = 6) -> Path:
    """Tiles of HxWx3 uint8 images titled 'true: X / pred: Y (conf)'; green title and frame if right, red if wrong."""
    count = len(images)
    if count < 1:
        raise ValueError("plot_prediction_grid: no images to show")
    if not len(true) == len(pred) == len(confidences) == count:
        raise ValueError("plot_prediction_grid: images, true, pred and confidences must have the same length")
    ncols = max(1, min(ncols, count))
    nrows = math.ceil(count / ncols)

    fig = _new_figure(2.1 * ncols, 2.45 * nrows + 0.5, _grid_title(title, true, pred))
    with plt.rc_context(STYLE):
        axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
        for ax, image, t, p, c in zip(axes, images, true, pred, confidences):
            _draw_tile(ax, image, t, p, float(c))
        for ax in axes[count:]:
            ax.axis("off")
    return save_figure(fig, path)


# --------------------------------------------------------------------------- grid sample selection


def _round_robin(groups: list[list[int]], k: int) -> list[int]:
    """Take one from each group in turn until ``k`` are taken or all groups are empty."""
    picked: list[int] = []
    depth = 0
    while len(picked) < k and any(depth < len(group) for group in groups):
        picked.extend(group[depth] for group in groups if depth < len(group))
        depth += 1
    return picked[:k]


def _spread_over_classes(indices: np.ndarray, labels: np.ndarray, k: int, rng: np.random.Generator,
                         priority: np.ndarray | None = None) -> list[int]:
    """Up to ``k`` of ``indices`` spread evenly over ``labels``: random within a class, or by descending priority."""
    groups = []
    for label in np.unique(labels[indices]):
        members = rng.permutation(indices[labels[indices] == label])
        if priority is not None:
            members = members[np.argsort(-priority[members], kind="stable")]
        groups.append([int(i) for i in members])
    return _round_robin(groups, k)


def select_grid_samples(true: list[int], pred: list[int], confidence: list[float], n: int = 18,
                        seed: int = 0) -> list[int]:
    """Indices for the prediction grid: up to half mistakes (most confident first), the rest correct ones.

    Both parts are spread over the true classes; when there are too few of one kind the other fills in.
    The same inputs and seed give the same answer; the result is ordered by true class, correct before wrong.
    """
    true_arr, pred_arr = np.asarray(true, dtype=int), np.asarray(pred, dtype=int)
    conf_arr = np.asarray(confidence, dtype=float)
    if not len(true_arr) == len(pred_arr) == len(conf_arr):
        raise ValueError("select_grid_samples: true, pred and confidence must have the same length")
    n = min(max(n, 0), len(true_arr))
    rng = np.random.default_rng(seed)
    is_wrong = true_arr != pred_arr
    wrong, correct = np.flatnonzero(is_wrong), np.flatnonzero(~is_wrong)

    n_wrong = max(min(len(wrong), n // 2), n - len(correct))  # up to half, more only if correct ones run out
    picked = _spread_over_classes(wrong, true_arr, n_wrong, rng, priority=conf_arr)
    picked += _spread_over_classes(correct, true_arr, n - n_wrong, rng)
    return sorted(picked, key=lambda i: (true_arr[i], bool(is_wrong[i]), i))


# --------------------------------------------------------------------------- reliability diagram


def _draw_reliability(ax: Axes, bins: dict, label: str, ece: float) -> None:
    """Accuracy per confidence bin as bars, the gap to the diagonal shaded red; empty bins left blank."""
    edges = np.asarray(bins["edges"])
    width = np.diff(edges)
    filled = np.asarray(bins["count"]) > 0
    accuracy, confidence = np.asarray(bins["accuracy"]), np.asarray(bins["confidence"])
    ax.bar(edges[:-1][filled], accuracy[filled], width=width[filled], align="edge", color=TRAIN_COLOUR,
           edgecolor="white", linewidth=0.8, label="accuracy in bin")
    ax.bar(edges[:-1][filled], (confidence - accuracy)[filled], bottom=accuracy[filled], width=width[filled], align="edge",
           color=WRONG_COLOUR, alpha=0.3, edgecolor=WRONG_COLOUR, linewidth=0.6, label="gap to confidence")
    ax.plot([0, 1], [0, 1], linestyle="--", color=BEST_COLOUR, linewidth=1.2, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top-class probability)", ylabel="accuracy",
           title=f"{label}: ECE {ece:.3f}")
    ax.grid(True, alpha=0.3)


def plot_reliability_diagram(panels: Sequence[tuple[str, dict, float]], path: PathLike, title: str = "") -> Path:
    """One reliability diagram per (label, bins, ECE) panel side by side, e.g. before and after temperature scaling.

    ``bins`` is :func:`babyface.inference.calibration.reliability_bins` output; a histogram of confidences sits under each.
    """
    if not panels:
        raise ValueError("plot_reliability_diagram: no panels to draw")
    fig = _new_figure(4.6 * len(panels), 5.4, title or "Reliability diagram")
    with plt.rc_context(STYLE):
        axes = fig.subplots(2, len(panels), height_ratios=[4, 1], squeeze=False)
        for column, (label, bins, ece) in enumerate(panels):
            _draw_reliability(axes[0, column], bins, label, ece)
            edges = np.asarray(bins["edges"])
            axes[1, column].bar(edges[:-1], bins["count"], width=np.diff(edges), align="edge", color=BEST_COLOUR, alpha=0.6)
            axes[1, column].set(xlim=(0, 1), xlabel="confidence", ylabel="images")
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=3, frameon=False)
    return save_figure(fig, path)



# --------------------------------------------------------------------------- video timeline

CLASS_COLOURS = {"happy": "#e8a317", "neutral": "#7b8794", "sad": "#3e7cb1"}
MAX_TIMELINE_PANELS = 12


MEASURE_COLOURS = {"eye_open_left": "#2a9d8f", "eye_open_right": "#8ab17d", "smile": "#e8a317", "brow_lower": "#3e7cb1",
                   "frown": "#6a4c93", "mouth_open": "#d1495b"}


def plot_timeline(rows: Sequence[dict], classes: Sequence[str], path: PathLike, title: str = "",
                  measures: bool = False) -> Path:
    """Smoothed class probabilities over time, one panel per face id (the most seen faces when there are many); with
    ``measures``, under each a panel of the face measures in MEASURE_COLOURS (rows' ``measures``; gaps where a face
    was skipped). Without classes, only the measures."""
    by_face: dict[int, list[dict]] = {}
    for row in rows:
        by_face.setdefault(row["face_id"], []).append(row)
    faces = sorted(sorted(by_face, key=lambda f: -len(by_face[f]))[:MAX_TIMELINE_PANELS])
    kinds = (["classes"] if classes else []) + (["measures"] if measures else [])
    panels = [(face, kind) for face in faces for kind in kinds]
    fig = _new_figure(9, 1.2 + 2.0 * max(len(panels), 1), title or ("emotion over time" if classes else "face measures over time"))
    with plt.rc_context(STYLE):
        axes = np.atleast_1d(fig.subplots(max(len(panels), 1), 1, sharex=True, squeeze=False)[:, 0])
        for ax, (face, kind) in zip(axes, panels):
            times = [r["time"] for r in by_face[face]]
            if kind == "classes":
                for name in classes:
                    ax.plot(times, [r["probabilities"][name] for r in by_face[face]], label=name, color=CLASS_COLOURS.get(name), lw=1.6)
                ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            else:
                for name, colour in MEASURE_COLOURS.items():
                    values = [r["measures"][name] if r.get("measures") else np.nan for r in by_face[face]]
                    ax.plot(times, values, label=name.replace("_", " "), color=colour, lw=1.3)
            ax.set_title(f"face {face}" + (" · measures" if kind == "measures" else ""), loc="left")
            ax.set_ylim(0, 1)
        if not faces:
            axes[0].text(0.5, 0.5, "no face found", ha="center", va="center", transform=axes[0].transAxes)
        for kind in kinds:
            first = next(ax for ax, (_, k) in zip(axes, panels) if k == kind) if panels else axes[0]
            first.legend(loc="upper right" if kind == "classes" else "center right", ncols=len(classes) if kind == "classes" else 3,
                         frameon=False, fontsize=8)
        axes[-1].set_xlabel("time (s)")
    return save_figure(fig, path)


# --------------------------------------------------------------------------- cross-validation


def plot_cv_folds(folds: Sequence[dict], pooled: dict, path: PathLike, title: str = "") -> Path:
    """Accuracy and macro-F1 of each fold (points with their 95% intervals) beside the pooled out-of-fold value (a line)
    and its 95% interval (a band). ``folds``: dicts with ``accuracy``, ``accuracy_ci``, ``macro_f1``, ``macro_f1_ci``;
    ``pooled``: the same keys."""
    if not folds:
        raise ValueError("plot_cv_folds: no folds to draw")
    positions = np.arange(1, len(folds) + 1)
    by_source = all(str(f.get("held_out", "")).startswith("source ") for f in folds)
    fig = _new_figure(max(6.0, 3.0 + (1.6 if by_source else 0.9) * len(folds)), 4.4,
                      textwrap.shorten(title or "Cross-validation", 90, placeholder=" …"))
    with plt.rc_context(STYLE):
        axes = fig.subplots(1, 2, sharey=True)
        for ax, key, name, colour in ((axes[0], "accuracy", "Accuracy", TRAIN_COLOUR), (axes[1], "macro_f1", "Macro-F1", F1_COLOUR)):
            values = np.array([f[key] for f in folds], dtype=float)
            intervals = [f.get(f"{key}_ci") or [f[key], f[key]] for f in folds]
            errors = np.abs(np.array(intervals, dtype=float).T - values)
            ax.errorbar(positions, values, yerr=errors, fmt="o", color=colour, capsize=4, label="fold [95% CI]")
            interval = pooled.get(f"{key}_ci")
            if interval:
                ax.axhspan(interval[0], interval[1], color=BEST_COLOUR, alpha=0.15, label="pooled 95% CI")
            ax.axhline(pooled[key], color=BEST_COLOUR, linestyle="--", label="pooled out-of-fold")
            ax.set(title=f"{name} (pooled {pooled[key]:.3f})", xlabel="held-out source" if by_source else "fold",
                   xticks=positions, xlim=(0.4, len(folds) + 0.6), ylim=(0.0, 1.02))
            if by_source:  # leave-one-source-out: name what each fold tested
                ax.set_xticklabels([textwrap.fill(f["held_out"].removeprefix("source ").replace("+", " + "), 14)
                                    for f in folds], fontsize=8)
            ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3, frameon=False)
    return save_figure(fig, path)
