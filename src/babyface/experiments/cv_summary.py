"""Cross-validation results: each fold's evaluation, the pooled out-of-fold predictions (every image tested once, by
the model that never saw its group), their metrics with group-level intervals, a summary table, a plot and a report.

Reads what ``evaluate`` wrote in each fold (``metrics.json``, ``predictions.csv``); ``babyface.experiments.cv`` trains
and evaluates the folds and then calls :func:`summarise_cv`.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from babyface.errors import BabyfaceError
from babyface.evaluation.report import CSS, card, figure, interval_note, table
from babyface.metrics import classification_metrics, interval_text, quoted_interval
from babyface.outputs import write_csv, write_json, write_text
from babyface.plots import plot_confusion_matrix, plot_cv_folds
from babyface.run import (
    CvFolder,
    EvaluationFiles,
    EvaluationMetrics,
    PredictionRow,
    TestScores,
    read_evaluation_metrics,
    read_predictions,
)


@dataclass(frozen=True)
class FoldResult:
    """One evaluated fold: its number, what it held out, the model folder and its evaluation folder."""

    fold: int
    held_out: str
    model: Path
    evaluation: Path


def read_fold(result: FoldResult) -> tuple[EvaluationMetrics, list[PredictionRow]]:
    """(metrics.json, predictions.csv) of one fold's evaluation."""
    if not (result.evaluation / EvaluationFiles.METRICS).is_file():  # written last: the evaluation is complete
        raise BabyfaceError(f"{result.evaluation}: fold {result.fold} has no evaluation; continue with 'babyface cv --resume'")
    return read_evaluation_metrics(result.evaluation), read_predictions(result.evaluation / EvaluationFiles.PREDICTIONS)


def fold_row(result: FoldResult, metrics: EvaluationMetrics, out: Path) -> dict:
    """The summary table's row of one fold."""
    row = {"fold": result.fold, "held_out": result.held_out, "model": result.model.relative_to(out).as_posix(),
           "n": metrics.n, "n_groups": metrics.n_groups, "ece": metrics.ece}
    for key in ("accuracy", "macro_f1"):
        row.update({key: getattr(metrics, key), f"{key}_ci": quoted_interval(metrics, key), f"{key}_image_ci": getattr(metrics, f"{key}_ci")})
    return row


def summarise_cv(results: list[FoldResult], classes: list[str], out: Path, group_by: str, folds: str, title: str,
                 n_resamples: int = 1000, seed: int = 0, options: dict | None = None) -> dict:
    """Pool the folds' predictions (OUT/oof_predictions.csv), compute pooled and per-fold results, and write
    OUT/cv_summary.json, cv_summary.md, cv_folds.png, cv_confusion_matrix.png and report.html."""
    folder = CvFolder(out)
    per_fold, pooled_rows = [], []
    for result in results:
        metrics, rows = read_fold(result)
        per_fold.append(fold_row(result, metrics, out))
        pooled_rows += [(result.fold, row) for row in rows]
        classes = list(metrics.classes)  # the classes decisions are over (a --decide-over model learns more)
    files = [row.file for _, row in pooled_rows]
    if len(set(files)) != len(files):
        raise BabyfaceError(f"{out}: an image was tested by two folds; the folds overlap, start the cross-validation again")
    index = {name: i for i, name in enumerate(classes)}
    true = np.array([index[row.true] for _, row in pooled_rows])
    pred = np.array([index[row.predicted] for _, row in pooled_rows])
    groups = [row.group for _, row in pooled_rows] if group_by and all(row.group for _, row in pooled_rows) else None
    pooled = classification_metrics(true, pred, classes, n_resamples=n_resamples, seed=seed, groups=groups, group_by=group_by)
    _write_oof(folder.oof_predictions, pooled_rows, classes)
    summary = {
        "folds": folds, "group_by": group_by, "title": title, "classes": classes, "n": int(len(true)),
        "n_groups": pooled.get("n_groups"), "per_fold": per_fold,
        "mean_over_folds": {key: _mean_std([f[key] for f in per_fold]) for key in ("accuracy", "macro_f1")},
        "pooled": pooled,
        "quote": ("the pooled out-of-fold accuracy and macro-F1 with their group-level intervals" if groups is not None else
                  "the pooled out-of-fold accuracy and macro-F1 (image-level intervals: no --group-by was given)"),
    }
    write_json(folder.summary_json, summary)
    write_text(folder.summary_md, format_cv_summary(summary))
    shown = {key: pooled[key] for key in ("accuracy", "macro_f1")}
    shown.update({f"{key}_ci": quoted_interval(pooled, key) for key in ("accuracy", "macro_f1")})
    plot_cv_folds(per_fold, shown, folder.folds_png, title=f"{title}: per fold and pooled")
    plot_confusion_matrix(np.array(pooled["confusion_matrix"]), classes, folder.confusion_png,
                          title=f"{title}: every image out of fold")
    write_text(folder.report, render_cv_report(summary, out, options or {}))
    return summary


def _mean_std(values: list[float]) -> dict:
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0}


def _write_oof(path: Path, rows: list[tuple[int, PredictionRow]], classes: list[str]) -> None:
    """Every image once, with the fold that tested it (the probabilities as each fold's predictions.csv wrote them)."""
    columns = ["file", "fold", "true", "predicted", *(f"p_{c}" for c in classes), "group"]
    write_csv(path, columns, ([row.file, fold, row.true, row.predicted, *(f"{row.probabilities[c]:.6f}" for c in classes),
                               row.group] for fold, row in rows))


def _groups_text(row: dict) -> str:
    return str(row["n_groups"]) if row.get("n_groups") is not None else "–"


def summary_table_rows(summary: dict) -> list[list[str]]:
    """The rows shared by the markdown summary and the report: one per fold, pooled, mean ± std over folds."""
    rows = [[str(f["fold"]), f["held_out"], str(f["n"]), _groups_text(f), interval_text(f["accuracy"], f["accuracy_ci"]),
             interval_text(f["macro_f1"], f["macro_f1_ci"])] for f in summary["per_fold"]]
    pooled = summary["pooled"]
    rows.append(["pooled", "every image, out of fold", str(pooled["n"]), _groups_text(pooled),
                 interval_text(pooled["accuracy"], quoted_interval(pooled, "accuracy")),
                 interval_text(pooled["macro_f1"], quoted_interval(pooled, "macro_f1"))])
    mean = summary["mean_over_folds"]
    rows.append(["mean ± std", "over folds", "", "", f"{mean['accuracy']['mean']:.3f} ± {mean['accuracy']['std']:.3f}",
                 f"{mean['macro_f1']['mean']:.3f} ± {mean['macro_f1']['std']:.3f}"])
    return rows


HEADER = ["fold", "tests", "images", "groups", "accuracy [95% CI]", "macro-F1 [95% CI]"]


def format_cv_summary(summary: dict) -> str:
    """Markdown: the table, which numbers to quote and how the intervals were made."""
    lines = [f"# Cross-validation: {summary['title']}", "",
             f"{len(summary['per_fold'])} folds ({'leave one source out' if summary['folds'] == 'loso' else 'k-fold'}"
             + (f", whole {summary['group_by']} groups" if summary["group_by"] else ", images one by one") + "). "
             f"Quote {summary['quote']}.", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in summary_table_rows(summary)]
    lines += ["", interval_note(TestScores.model_validate(summary["pooled"])), ""]
    return "\n".join(lines)


def render_cv_report(summary: dict, out: Path, options: dict) -> str:
    """One self-contained HTML page: pooled cards, the fold table, the fold plot, the pooled confusion matrix and the
    options every fold was trained with."""
    pooled = summary["pooled"]
    title = f"babyface cross-validation: {summary['title']}"

    def ci(key: str) -> str:
        interval = quoted_interval(pooled, key)
        return f"{interval[0]:.3f} – {interval[1]:.3f}" if interval else "not computed"

    cards = [card(f"{pooled['accuracy']:.1%}", f"pooled out-of-fold accuracy, 95% CI {ci('accuracy')}"),
             card(f"{pooled['macro_f1']:.3f}", f"pooled out-of-fold macro-F1, 95% CI {ci('macro_f1')}"),
             card(str(pooled["n"]), "images, each tested once" + (f", {pooled['n_groups']} groups" if pooled.get("n_groups") else "")),
             card(str(len(summary["per_fold"])), "folds" + (" (one per source)" if summary["folds"] == "loso" else ""))]
    body = (f'<div class="cards">{"".join(cards)}</div><p class="note">{html.escape(interval_note(TestScores.model_validate(pooled)))}</p>'
            f"<h2>Folds</h2>{table(HEADER, [[html.escape(c) for c in row] for row in summary_table_rows(summary)])}"
            '<p class="note">Each fold is a run folder (OUT/foldK) with its own evaluation/; '
            "<code>babyface report OUT/foldK</code> reports on one of them.</p>"
            f"<h2>Per fold and pooled</h2>{figure(CvFolder(out).folds_png, 'accuracy and macro-F1 per fold')}"
            f"<h2>Confusion matrix, every image out of fold</h2>{figure(CvFolder(out).confusion_png, 'confusion matrix', 'figure narrow')}"
            f"<h2>Options</h2><details><summary>every fold was trained with these options (cv_config.yaml)</summary>"
            f"<pre>{html.escape(json.dumps(options, indent=2))}</pre></details>")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f'<body><h1>{html.escape(title)}</h1><p class="lede">Quote {html.escape(summary["quote"])}.</p>{body}</body></html>\n')
