"""Comparing evaluated runs: a table of their test results, McNemar's test between each pair and, when the test
images' groups are known, a paired cluster bootstrap of the accuracy difference.

McNemar looks only at the test images on which exactly one of two models is right (b: only A, c: only B).
Under "equally accurate" each of those is a fair coin: exact two-sided binomial p for b + c < EXACT_BELOW,
else the chi-square approximation with continuity correction, (|b − c| − 1)² / (b + c) on 1 degree of freedom.
It treats every image as independent; when several images show one infant, the wins and losses come in clumps
and McNemar's p is too small. The paired cluster bootstrap (``metrics.paired_cluster_bootstrap``) resamples whole
groups for both models at once, so it is the one to trust when groups are known.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from babyface.bundle.single import read_metadata
from babyface.data.groups import resolve_groups
from babyface.errors import BabyfaceError
from babyface.metrics import interval_text, paired_cluster_bootstrap, quoted_interval
from babyface.models import create_model
from babyface.models.registry import count_params
from babyface.run import (
    EvaluationFiles,
    ModelMeta,
    PredictionRow,
    RunFolder,
    read_evaluation_metrics,
    read_predictions,
)

EXACT_BELOW = 25


def mcnemar(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> dict:
    """McNemar's test on paired right/wrong outcomes of two models on the same images."""
    a, b = np.asarray(a_correct, dtype=bool), np.asarray(b_correct, dtype=bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    if n < EXACT_BELOW:
        tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1))
        p_value, test, statistic = min(1.0, 2 * tail / 2**n), "exact binomial", None
    else:
        statistic = (abs(only_a - only_b) - 1) ** 2 / n
        p_value, test = math.erfc(math.sqrt(statistic / 2)), "chi-square, continuity-corrected"
    return {"only_a_right": only_a, "only_b_right": only_b, "test": test, "statistic": statistic, "p_value": p_value}


def read_prediction_rows(run: Path) -> dict[str, PredictionRow]:
    """file → its row of RUN/evaluation/predictions.csv."""
    return {row.file: row for row in read_predictions(_evaluated(run, EvaluationFiles.PREDICTIONS))}


def _evaluated(run: Path, name: str) -> Path:
    path = RunFolder(run).evaluation / name
    if not path.is_file():
        raise BabyfaceError(f"{path}: not found; run 'babyface evaluate {run} DATA' first")
    return path


def run_summary(run: Path) -> dict:
    """Model, parameters, test accuracy/macro-F1 with intervals, ECE and seconds per epoch of one run."""
    meta = read_metadata(run)
    metrics = read_evaluation_metrics(_evaluated(run, EvaluationFiles.METRICS).parent)
    return {"run": str(run), "model": meta.arch.name, "params": parameter_count(meta), "n": metrics.n,
            "accuracy": metrics.accuracy, "accuracy_ci": quoted_interval(metrics, "accuracy"),
            "macro_f1": metrics.macro_f1, "macro_f1_ci": quoted_interval(metrics, "macro_f1"), "ece": metrics.ece,
            "seconds_per_epoch": meta.metrics.seconds_per_epoch, "n_groups": metrics.n_groups,
            "intervals": "groups" if metrics.quote == "group" else "images", "data_root": metrics.data_root}


def parameter_count(meta: ModelMeta) -> int:
    """Parameters of the model in ``model.json`` (of an ensemble: of all its members), from its architecture alone."""
    if meta.is_ensemble:
        return sum(parameter_count(meta.model_copy(update={"arch": m.arch, "image_size": m.image_size}))
                   for m in meta.members)
    return count_params(create_model(meta.arch.name, len(meta.classes), meta.image_size, **meta.arch.kwargs))


def paired_rows(run_a: Path, run_b: Path) -> tuple[np.ndarray, np.ndarray, list[str], list[str] | None]:
    """(A right, B right, files, groups) per test image, aligned by file (runs evaluated on different images are
    refused); groups from the runs' predictions.csv (either run's, when only one was evaluated with --group-by),
    None when neither knows them."""
    a, b = read_prediction_rows(run_a), read_prediction_rows(run_b)
    if a.keys() != b.keys() or any(a[f].true != b[f].true for f in a):
        differ = len(a.keys() ^ b.keys()) or sum(a[f].true != b[f].true for f in a)
        raise BabyfaceError(f"{run_a} and {run_b} were evaluated on different test sets ({len(a)} vs {len(b)} images, "
                            f"{differ} file(s) or labels differ); evaluate both on the same DATA to compare them")
    files = sorted(a)
    groups_a, groups_b = [a[f].group for f in files], [b[f].group for f in files]
    if all(groups_a) and all(groups_b) and _partition(groups_a) != _partition(groups_b):
        raise BabyfaceError(f"{run_a} and {run_b} were evaluated with different --group-by groups; evaluate both with the "
                            "same --group-by, or pass --group-by (and --manifest) to compare")
    groups = groups_a if all(groups_a) else groups_b if all(groups_b) else None
    return np.array([a[f].correct for f in files]), np.array([b[f].correct for f in files]), files, groups


def _partition(groups: list[str]) -> list[int]:
    """Which images share a group, whatever the groups are called."""
    first: dict[str, int] = {}
    return [first.setdefault(g, i) for i, g in enumerate(groups)]


def compare_runs(runs: Sequence[str | Path], group_by: str = "", manifest: str = "", n_resamples: int = 1000,
                 seed: int = 0, progress: bool = False) -> dict:
    """The results table of ``runs``, McNemar's test per pair and, with groups (``group_by``, else those evaluate
    recorded), a paired cluster bootstrap per pair; ``trust`` says which of the two tests to believe."""
    runs = [Path(r) for r in runs]
    if len(runs) < 2:
        raise BabyfaceError("compare: give at least two run folders")
    summaries = [run_summary(r) for r in runs]
    tests, paired = [], []
    for run_a, run_b in itertools.combinations(runs, 2):
        a, b, files, groups = paired_rows(run_a, run_b)
        if group_by:
            root = Path(summaries[runs.index(run_a)]["data_root"] or ".")
            groups = resolve_groups(root, files, [root / f for f in files], group_by, manifest, progress)
        elif manifest:
            raise BabyfaceError(f"--manifest {manifest}: say which of its columns holds each image's group with --group-by COLUMN")
        tests.append({"a": str(run_a), "b": str(run_b), **mcnemar(a, b)})
        if groups is not None and len(set(groups)) >= 2:
            paired.append({"a": str(run_a), "b": str(run_b), "group_by": group_by or "as evaluated",
                           **paired_cluster_bootstrap(a, b, groups, n_resamples, seed)})
    trust = ("paired cluster bootstrap: McNemar treats the images of one group as independent, so its p is too small"
             if paired else "McNemar (no groups known: evaluate with --group-by, or pass --group-by here, if several "
                            "images show the same infant)")
    return {"runs": summaries, "mcnemar": tests, "paired_bootstrap": paired, "trust": trust}


def format_comparison(result: dict) -> str:
    width = max(len("run"), *(len(r["run"]) for r in result["runs"])) + 2
    lines = [f"{'run':<{width}}{'model':<10}{'params':>12}  {'accuracy [95% CI]':<24}{'macro-F1 [95% CI]':<24}{'ECE':>7}"
             f"{'s/epoch':>9}  intervals over"]
    for r in result["runs"]:
        ece = f"{r['ece']:.3f}" if r["ece"] is not None else "–"
        seconds = f"{r['seconds_per_epoch']:.1f}" if r["seconds_per_epoch"] is not None else "–"
        over = f"{r['n_groups']} groups" if r.get("intervals") == "groups" else f"{r['n']} images"
        lines.append(f"{r['run']:<{width}}{r['model']:<10}{r['params']:>12,}  {interval_text(r['accuracy'], r['accuracy_ci']):<24}"
                     f"{interval_text(r['macro_f1'], r['macro_f1_ci']):<24}{ece:>7}{seconds:>9}  {over}")
    lines += ["", "McNemar's test (test images on which exactly one of the two is right; treats images as independent):"]
    for t in result["mcnemar"]:
        lines.append(f"  {t['a']} vs {t['b']}: only first right {t['only_a_right']}, only second right {t['only_b_right']}, "
                     f"{t['test']} p = {t['p_value']:.4g}")
    if result.get("paired_bootstrap"):
        lines += ["", "Paired cluster bootstrap (accuracy of the first minus the second, whole groups resampled for both):"]
        for t in result["paired_bootstrap"]:
            lines.append(f"  {t['a']} vs {t['b']}: {interval_text(t['difference'], t['difference_ci'])} over {t['groups']} "
                         f"groups, p = {t['p_value']:.4g}")
    lines += ["", f"Trust: {result['trust']}."]
    return "\n".join(lines)
