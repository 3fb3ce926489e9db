"""``babyface cv``: k-fold (or leave-one-source-out) cross-validation, one ordinary training per fold.

```
OUT/
  cv_config.yaml        the options (the train options plus --folds), read again by --resume
  folds.csv             every image: file (relative to the data root), label, its group (a column named after
                        --group-by), source, fold
  splits/foldK.csv      fold K's split file (file, split): its images test, the others train (--split-file of its run)
  foldK/                a run folder, as 'babyface train' writes it, with evaluation/ (with --seeds: seedN/ + ensemble/)
  oof_predictions.csv   every image once, predicted by the fold that did not train on it
  cv_summary.json, cv_summary.md, cv_folds.png, cv_confusion_matrix.png, report.html
```

Resumable fold by fold: a fold whose model.json exists is not trained again, an interrupted one continues from its
checkpoint, and one whose evaluation/metrics.json (which evaluate writes last) is newer than its model.json is not
evaluated again. The file names are ``babyface.run.CvFolder``'s. Under torchrun every process trains each fold together (as
``babyface train`` does) and only rank 0 writes the plan, evaluates and summarises.
"""

from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

from babyface.bundle.ensemble import create_ensemble
from babyface.config import (
    CvConfig,
    EnsembleConfig,
    EvalConfig,
    TrainConfig,
    data_sources,
    from_dict,
    load_yaml,
    parse_seeds,
    save_yaml,
    to_dict,
)
from babyface.data.folds import FoldPlan, all_samples, plan_folds, relative_file
from babyface.data.groups import NEAR_DUPLICATES, resolve_groups
from babyface.data.images import display_path
from babyface.data.relabel import relabel_scan
from babyface.data.sources import load_label_map, scan_sources
from babyface.errors import BabyfaceError, DataError
from babyface.evaluation.evaluate import evaluate_run
from babyface.experiments.cv_summary import FoldResult, summarise_cv
from babyface.outputs import prepare_output_dir, write_csv
from babyface.run import CvFolder, EvaluationFiles, RunFolder, SeedsFolder
from babyface.training.distributed import barrier, init_distributed, shutdown
from babyface.training.fit import fit

log = logging.getLogger("babyface")


def group_column(group_by: str) -> str:
    """The folds.csv column holding each image's group: named after --group-by, so that evaluate's printout and
    metrics.json say what the groups are."""
    if group_by == NEAR_DUPLICATES:
        return "near_duplicate_cluster"
    return group_by if group_by and group_by not in ("file", "label", "source", "fold") else "group"


def run_cv(config: CvConfig, resume: bool = False) -> Path:
    """Plan the folds, train and evaluate each (skipping what is done), pool and summarise; returns OUT. Under torchrun
    one process group serves every fold's training (rank 0 evaluates while the others wait at the next fold)."""
    info, _ = init_distributed(config.device)
    try:
        out = _run_cv(config, resume, info.is_main)
        barrier(info)
        return out
    finally:
        shutdown(info)


def _run_cv(config: CvConfig, resume: bool, main: bool) -> Path:
    out = Path(config.out)
    folder = CvFolder(out.resolve())
    if main and not resume and folder.config.is_file() and not config.overwrite:
        raise BabyfaceError(f"{out}: holds a cross-validation already; continue it with 'babyface cv --resume {out}', or "
                            "pass --overwrite to start it again")
    plan = make_plan(config)  # before anything is written: bad input leaves OUT as it was
    group_by = config.data_options.group_by
    column = group_column(group_by)
    if resume:
        check_same_plan(plan, folder.folds)
        warn_if_options_changed(config, folder.config)
    elif main:
        prepare_output_dir(out, overwrite=config.overwrite)
        for stale in [*folder.fold_folders(), folder.splits]:  # an earlier cross-validation in OUT (--overwrite)
            shutil.rmtree(stale, ignore_errors=True)
        save_yaml(config, folder.config)
        write_csv(folder.folds, ["file", "label", column, "source", "fold"],
                  ([r.file, r.label, r.group, r.source, r.fold] for r in plan.rows))
        for fold in range(1, plan.count + 1):
            write_csv(folder.split_file(fold), ["file", "split"], plan.split_rows(fold))
    log.info("cross-validation: %d images, %d folds (%s)%s; results in %s", len(plan.rows), plan.count,
             "leave one source out" if config.folds == "loso" else "k-fold",
             f", whole {group_by} groups" if group_by else ", images one by one (no --group-by)", out)
    if not group_by:
        log.warning("WARNING: no --group-by: if several images show the same infant (or come from one video) they land "
                    "in different folds, and both the scores and their intervals come out too good; pass --group-by "
                    "COLUMN --manifest CSV, or --group-by near-duplicates")
    grouped = {"group_by": column, "manifest": str(folder.folds)} if group_by else {}
    results = []
    for fold in range(1, plan.count + 1):
        log.info("fold %d of %d%s", fold, plan.count, f" (leaves out {plan.held_out[fold - 1]})" if config.folds == "loso" else "")
        fold_out = CvFolder(out).fold(fold)
        fold_config = config.fold_config(out=str(fold_out), data_options={"split_file": str(folder.split_file(fold)), **grouped})
        model = train_fold(fold_config, fold_out, main)
        if main:
            evaluation = evaluate_fold(config, model, grouped)
            results.append(FoldResult(fold, plan.held_out[fold - 1], model, evaluation))
    if main:
        title = f"{config.model} on {' + '.join(Path(p).name for p in data_sources(config))}"
        summarise_cv(results, plan.classes, out, group_by, config.folds, title, config.bootstrap, config.seed, config.to_dict())
    return out


def make_plan(config: CvConfig) -> FoldPlan:
    """Every image of the sources (all their splits pooled), its group and its fold."""
    opts = config.data_options
    label_map = load_label_map(opts.label_map) if opts.label_map else None
    scan = scan_sources(data_sources(config), label_map, opts.test_fraction, config.seed)
    if opts.relabel:
        scan = relabel_scan(scan, opts.relabel, opts.min_votes)
    samples = all_samples(scan)
    files = [relative_file(sample, scan.root) for sample in samples]
    groups = resolve_groups(scan.root, files, [s.path for s in samples], opts.group_by, opts.manifest, config.progress)
    where = display_path(opts.manifest) if opts.manifest else display_path(scan.root)
    plan = plan_folds(scan, groups, config.folds, config.seed, opts.group_by, where, config.hold_out)
    if opts.group_by == NEAR_DUPLICATES:
        log.info("near-duplicate clusters: %d groups for %d images", len(set(groups)), len(groups))
    return plan


def check_same_plan(plan: FoldPlan, folds_csv: Path) -> None:
    """On --resume: the folds planned now must be those the cross-validation started with."""
    if not folds_csv.is_file():
        raise BabyfaceError(f"{folds_csv.parent}: no {folds_csv.name}; --resume takes the --out folder of an interrupted 'babyface cv'")
    with open(folds_csv, newline="", encoding="utf-8") as handle:
        before = {(r["file"], r["label"], r["fold"]) for r in csv.DictReader(handle)}
    now = {(r.file, r.label, str(r.fold)) for r in plan.rows}
    if before != now:
        raise DataError(f"{folds_csv}: the images, labels or groups changed since this cross-validation started "
                        f"({len(before ^ now)} assignment(s) differ); start a new one with another --out, or --overwrite")


def warn_if_options_changed(config: CvConfig, saved: Path) -> None:
    """On --resume with options other than those the cross-validation started with: the finished folds keep theirs."""
    before, now = to_dict(from_dict(CvConfig, load_yaml(saved), str(saved))), to_dict(config)
    changed = sorted(key for key in now if key not in ("progress", "device", "overwrite") and now[key] != before.get(key))
    if changed:
        log.warning("WARNING: resuming with options other than those of %s (%s): folds trained already keep theirs, the "
                    "others use the new ones", display_path(saved), ", ".join(changed))


def train_or_resume(config: TrainConfig) -> Path:
    """A finished run is kept, an interrupted one continues from its checkpoint, anything else is trained afresh."""
    run = RunFolder(config.out)
    if run.meta.is_file():
        log.info("%s: trained already, kept", config.out)
        return run.path
    if run.checkpoint.is_file():
        log.info("%s: interrupted earlier, resuming from its checkpoint", config.out)
        return fit(config, resume=True)
    return fit(config.replace(overwrite=True))


def train_fold(config: TrainConfig, folder: Path, main: bool = True) -> Path:
    """Train one fold (one run per --seeds seed, and their ensemble) and return the folder of the model to evaluate."""
    if not config.seeds:
        return train_or_resume(config)
    seeds = SeedsFolder(folder)
    runs = [train_or_resume(config.replace(seed=seed, seeds="", out=str(seeds.seed(seed)))) for seed in parse_seeds(config.seeds)]
    if len(runs) == 1:
        return runs[0]
    ensemble = seeds.ensemble
    if main and not ensemble_is_current(ensemble, runs):
        create_ensemble(EnsembleConfig(runs=[str(r) for r in runs], out=str(ensemble), overwrite=True))
    return ensemble


def ensemble_is_current(ensemble: Path, runs: list[Path]) -> bool:
    """Whether ``ensemble`` holds exactly ``runs`` as they are now: a --resume with more --seeds, or a seed trained
    again, makes it stale (its members are copies)."""
    meta, members = RunFolder(ensemble).meta, ensemble / "members"
    if not meta.is_file() or not members.is_dir():
        return False
    names = sorted(p.name for p in members.iterdir() if p.is_dir())
    return names == sorted(r.name for r in runs) and all(
        RunFolder(r).meta.stat().st_mtime <= meta.stat().st_mtime for r in runs)


def evaluate_fold(config: CvConfig, model: Path, grouped: dict) -> Path:
    """Evaluate a fold's model on its own test split, framed as the model records (images as given when it was trained
    on them as given; faces cut again where it declares face framing, as --recipe infant does); an evaluation completed
    after the model was written is kept: its metrics.json, which evaluate writes last."""
    evaluation = RunFolder(model).evaluation
    if evaluation_complete(evaluation, RunFolder(model).meta):
        return evaluation
    opts = config.data_options
    evaluate_run(EvalConfig(run=str(model), framing="auto", bootstrap=config.bootstrap, seed=config.seed,
                            device=config.device, progress=config.progress, overwrite=True, strict=opts.strict,
                            leakage_check=opts.leakage_check, group_by=grouped.get("group_by", "none"),
                            manifest=grouped.get("manifest", "")))
    return evaluation


def evaluation_complete(evaluation: Path, model_meta: Path) -> bool:
    """Whether ``evaluation`` holds a complete evaluation of the model whose model.json is ``model_meta``: metrics.json,
    the completion marker (evaluate writes it last, atomically), is there and newer than the model."""
    metrics = evaluation / EvaluationFiles.METRICS
    return metrics.is_file() and metrics.stat().st_mtime >= model_meta.stat().st_mtime
