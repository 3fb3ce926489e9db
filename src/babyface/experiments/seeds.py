"""Several seeds of one recipe: one run each, a mean ± std summary, and an ensemble of their models."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from babyface.bundle import read_metadata
from babyface.bundle.ensemble import create_ensemble
from babyface.config import EnsembleConfig, TrainConfig, parse_seeds
from babyface.outputs import prepare_output_dir, write_json, write_text
from babyface.run import SeedsFolder
from babyface.training.fit import fit, trains_who
from babyface.training.who import fit_who, share_who

log = logging.getLogger("babyface")


SUMMARY_METRICS = ("val_macro_f1", "val_acc", "val_loss", "best_epoch", "seconds_per_epoch")


def fit_seeds(config: TrainConfig) -> Path:
    """One run per seed in ``config.seeds`` (OUT/seed0, OUT/seed1, …), OUT/summary.json + summary.md (mean ± std
    across seeds of each run's best validation metrics) and OUT/ensemble, a bundle averaging the seeds' models."""
    out = prepare_output_dir(config.out, overwrite=config.overwrite)
    folder, runs = SeedsFolder(out), []
    for seed in parse_seeds(config.seeds):
        log.info("seed %d: training into %s", seed, folder.seed(seed))
        run = fit(config.replace(seed=seed, seeds="", out=str(folder.seed(seed)), overwrite=True), who=False)
        runs.append({"seed": seed, "run": run.name, **read_metadata(run).metrics.model_dump()})
    summary = summarise_seeds(runs)
    write_json(folder.summary_json, summary)
    write_text(folder.summary_md, format_seed_summary(summary))
    if len(runs) > 1:  # averaging the seeds' models was the most reliable gain measured (README: the infant recipe)
        create_ensemble(EnsembleConfig(runs=[str(out / r["run"]) for r in runs], out=str(folder.ensemble)))
    if trains_who(config):  # one infant-vs-adult model for every seed and the ensemble
        share_who(fit_who(config, out, fit), [out / r["run"] for r in runs] + ([folder.ensemble] if len(runs) > 1 else []))
    return out


def summarise_seeds(runs: list[dict]) -> dict:
    """Mean and sample standard deviation (0 for one seed) of each metric in SUMMARY_METRICS across runs."""
    metrics = {}
    for key in SUMMARY_METRICS:
        values = np.array([r[key] for r in runs if r.get(key) is not None], dtype=float)
        if len(values):
            std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            metrics[key] = {"mean": round(float(values.mean()), 6), "std": round(std, 6), "values": values.tolist()}
    return {"seeds": [r["seed"] for r in runs], "runs": runs, "metrics": metrics}


def format_seed_summary(summary: dict) -> str:
    lines = [f"Best validation metrics across seeds {', '.join(map(str, summary['seeds']))} (mean ± sample std)", "",
             "| metric | mean ± std | per seed |", "|---|---|---|"]
    for key, m in summary["metrics"].items():
        lines.append(f"| {key} | {m['mean']:.4f} ± {m['std']:.4f} | {', '.join(f'{v:.4g}' for v in m['values'])} |")
    return "\n".join(lines) + "\n"
