"""Comparing evaluated runs: a table of their test results and McNemar's test between each pair.

McNemar looks only at the test images on which exactly one of two models is right (b: only A, c: only B).
Under "equally accurate" each of those is a fair coin: exact two-sided binomial p for b + c < EXACT_BELOW,
else the chi-square approximation with continuity correction, (|b − c| − 1)² / (b + c) on 1 degree of freedom.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from babyface.bundle.single import read_metadata
from babyface.errors import BabyfaceError
from babyface.evaluation.metrics import interval_text
from babyface.models import create_model
from babyface.models.registry import count_params
from babyface.run import Arch, EvaluationFiles, ModelMeta, RunFolder

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


def read_predictions(run: Path) -> dict[str, tuple[str, str]]:
    """file → (true, predicted) from RUN/evaluation/predictions.csv."""
    path = RunFolder(run).evaluation / EvaluationFiles.PREDICTIONS
    if not path.is_file():
        raise BabyfaceError(f"{path}: not found; run 'babyface evaluate {run} DATA' first")
    with open(path, newline="", encoding="utf-8") as handle:
        return {r["file"]: (r["true"], r["predicted"]) for r in csv.DictReader(handle)}


def run_summary(run: Path) -> dict:
    """Model, parameters, test accuracy/macro-F1 with intervals, ECE and seconds per epoch of one run."""
    meta = read_metadata(run)
    path = RunFolder(run).evaluation / EvaluationFiles.METRICS
    if not path.is_file():
        raise BabyfaceError(f"{path}: not found; run 'babyface evaluate {run} DATA' first")
    metrics = json.loads(path.read_text(encoding="utf-8"))
    return {"run": str(run), "model": meta.arch.name, "params": parameter_count(meta), "n": metrics["n"],
            "accuracy": metrics["accuracy"], "accuracy_ci": metrics.get("accuracy_ci"),
            "macro_f1": metrics["macro_f1"], "macro_f1_ci": metrics.get("macro_f1_ci"), "ece": metrics.get("ece"),
            "seconds_per_epoch": meta.metrics.get("seconds_per_epoch")}


def parameter_count(meta: ModelMeta) -> int:
    """Parameters of the model in ``model.json`` (of an ensemble: of all its members), from its architecture alone."""
    if meta.is_ensemble:
        return sum(parameter_count(meta.model_copy(update={"arch": Arch(**m["arch"]), "image_size": m["image_size"]}))
                   for m in meta.members)
    return count_params(create_model(meta.arch.name, len(meta.classes), meta.image_size, **meta.arch.kwargs))


def paired_outcomes(run_a: Path, run_b: Path) -> tuple[np.ndarray, np.ndarray]:
    """Right/wrong per test image for both runs, aligned by file; refuses runs evaluated on different images."""
    a, b = read_predictions(run_a), read_predictions(run_b)
    if a.keys() != b.keys() or any(a[f][0] != b[f][0] for f in a):
        differ = len(a.keys() ^ b.keys()) or sum(a[f][0] != b[f][0] for f in a)
        raise BabyfaceError(f"{run_a} and {run_b} were evaluated on different test sets ({len(a)} vs {len(b)} images, "
                            f"{differ} file(s) or labels differ); evaluate both on the same DATA to compare them")
    files = sorted(a)
    return (np.array([a[f][0] == a[f][1] for f in files]), np.array([b[f][0] == b[f][1] for f in files]))


def compare_runs(runs: Sequence[str | Path]) -> dict:
    runs = [Path(r) for r in runs]
    if len(runs) < 2:
        raise BabyfaceError("compare: give at least two run folders")
    tests = []
    for run_a, run_b in itertools.combinations(runs, 2):
        tests.append({"a": str(run_a), "b": str(run_b), **mcnemar(*paired_outcomes(run_a, run_b))})
    return {"runs": [run_summary(r) for r in runs], "mcnemar": tests}


def format_comparison(result: dict) -> str:
    width = max(len("run"), *(len(r["run"]) for r in result["runs"])) + 2
    lines = [f"{'run':<{width}}{'model':<10}{'params':>12}  {'accuracy [95% CI]':<24}{'macro-F1 [95% CI]':<24}{'ECE':>7}{'s/epoch':>9}"]
    for r in result["runs"]:
        ece = f"{r['ece']:.3f}" if r["ece"] is not None else "–"
        seconds = f"{r['seconds_per_epoch']:.1f}" if r["seconds_per_epoch"] is not None else "–"
        lines.append(f"{r['run']:<{width}}{r['model']:<10}{r['params']:>12,}  {interval_text(r['accuracy'], r['accuracy_ci']):<24}"
                     f"{interval_text(r['macro_f1'], r['macro_f1_ci']):<24}{ece:>7}{seconds:>9}")
    lines += ["", "McNemar's test (test images on which exactly one of the two is right):"]
    for t in result["mcnemar"]:
        lines.append(f"  {t['a']} vs {t['b']}: only first right {t['only_a_right']}, only second right {t['only_b_right']}, "
                     f"{t['test']} p = {t['p_value']:.4g}")
    return "\n".join(lines)
