"""Infants from elsewhere: each infant source held out in turn, the recipe trained on everything else, the peers beside.

Every variant is one `babyface cv --folds loso --hold-out ...` over the shared folders: FER2013 (both folders, one
source) is trained on in every fold, and each infant source is tested by a model that never saw any of its images:
the UTKFace infants (utk-infant-faces and utk-infant-smile together: one origin), the crying-infant crops, infant-web.
Per held-out source: recall of each class it has (with its count), macro-F1 over those classes with its 95% interval
over near-duplicate clusters (copies and adjacent frames of one photo resampled together), positive-vs-rest and
negative-vs-neutral AUC where the source has both sides. With --seeds of several seeds each seed's model is scored
too (the spread is the recipe's instability) and the fold's model is their ensemble. The peers (`fer`, `PyEmotion`)
never train on infants, so their score on a held-out source is their score on the whole source: read from the
prediction files `benchmarks/peer_fer.py` writes (--peers), same images, same scoring.

    PYTHONPATH=src .venv/bin/python benchmarks/cross_source.py --cry data/cry --budget \\
        --variant recipe= --variant ferplus='--relabel ../shared/data/fer2013-plus/labels.csv' \\
        --peers benchmarks/results/peers --out benchmarks/results/cross_source

--budget trains each fold on at most --budget-per-class images of each FER2013 class (every infant image is kept) for
--budget-epochs epochs (1,500 and 20: 12.5–14 minutes a variant of three folds on 2 cores); without it the recipe's own
data and epochs (about 40 minutes a variant). Variants are resumable (an interrupted one continues; a finished one
with the same --seeds is scored again from its files; more --seeds train only the new seeds). --adults-only NAME=ARGS
trains the recipe on FER2013 alone and scores it like the peers; --framing face re-frames the held-out images (each
face cut again with --face-margin), --tta flip averages each face with its mirror. Run alone: a second CPU-heavy
process distorts the times. The run folders hold weights trained on the shared data: never commit them.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MARGIN = 0.2  # babyface.config.DEFAULT_MARGIN, without importing babyface before --help
CLASSES = ("happy", "neutral", "sad")
FER_FOLDERS = ("fer2013-hsn", "fer2013-other")
INFANT_FOLDERS = ("infant-web", "utk-infant-smile", "utk-infant-faces")


@dataclass(frozen=True)
class HeldOut:
    """One fold of the benchmark: a name, the cv sources it holds out, the peer sets that are those images."""

    name: str
    sources: tuple[str, ...]
    peer_sets: tuple[str, ...]


def held_out_sources(cry: Path) -> list[HeldOut]:
    return [HeldOut("utk", ("utk-infant-faces", "utk-infant-smile"), ("utk",)),
            HeldOut("cry", (cry.resolve().name,), ("cry",)),
            HeldOut("infant-web", ("infant-web",), ("infant-web",))]


@dataclass
class Score:
    """What the table shows for one model on one held-out source."""

    model: str
    held_out: str
    n: int
    recall: dict[str, float]
    support: dict[str, int]
    macro_f1: float
    macro_f1_ci: list[float] | None
    auc_positive: float | None
    auc_negative: float | None
    extra: dict = field(default_factory=dict)


def score_rows(model: str, held_out: str, truths: list[str], probs: np.ndarray, groups: list[str] | None) -> Score:
    """Decisions (argmax over happy, neutral, sad), babyface's metrics and AUCs, intervals over ``groups``."""
    from babyface.evaluation.affect import affect_aucs
    from babyface.metrics import classification_metrics, quoted_interval

    true = np.array([CLASSES.index(t) for t in truths])
    pred = probs.argmax(axis=1)
    metrics = classification_metrics(true, pred, CLASSES, groups=groups, group_by="near-duplicates" if groups else "")
    aucs = affect_aucs(true, probs, CLASSES, n_resamples=0)
    present = [c for c in CLASSES if metrics["per_class"][c]["support"]]
    return Score(model, held_out, len(true), {c: metrics["per_class"][c]["recall"] for c in present},
                 {c: metrics["per_class"][c]["support"] for c in present}, metrics["macro_f1"],
                 quoted_interval(metrics, "macro_f1"),
                 aucs.get("positive_vs_rest", {}).get("auc"), aucs.get("negative_vs_neutral", {}).get("auc"))


# --------------------------------------------------------------------------- babyface: one cv per variant


def cv_command(args: argparse.Namespace, variant: str, extra: list[str]) -> list[str]:
    shared = args.shared_data
    sources = [shared / FER_FOLDERS[1], *(shared / f for f in INFANT_FOLDERS), args.cry]
    command = [str(Path(sys.executable).with_name("babyface")), "cv", str(shared / FER_FOLDERS[0])]
    for source in sources:
        command += ["--data", str(source)]
    command += ["--recipe", "infant", "--folds", "loso", "--seeds", args.seeds, "--out", str(args.out / variant)]
    for fold in held_out_sources(args.cry):
        command += ["--hold-out", "+".join(fold.sources)]
    if args.budget:
        command += ["--max-per-class", str(args.budget_per_class), "--epochs", str(args.budget_epochs)]
    if not args.progress:
        command += ["--no-progress"]
    return command + extra


def run_variant(args: argparse.Namespace, variant: str, extra: list[str]) -> float:
    """Train and evaluate every fold of a variant (resuming an interrupted one); the seconds it took."""
    from babyface.config import load_yaml

    out = args.out / variant
    command = cv_command(args, variant, extra)
    if (out / "cv_summary.json").is_file() and str(load_yaml(out / "cv_config.yaml").get("seeds")) == args.seeds:
        print(f"{out}: finished already, scored again", flush=True)
        return 0.0
    if (out / "cv_config.yaml").is_file():
        command += ["--resume", str(out)] if "--resume" not in command else []
        command = [part for part in command if part != "--out"]
        command.remove(str(out))
    print("$", shlex.join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO)
    return time.perf_counter() - start


def fold_folders(out: Path) -> dict[str, Path]:
    """Held-out source name → fold folder, from the cv's folds.csv (the folds' order is --hold-out's)."""
    with open(out / "folds.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    sources: dict[int, list[str]] = {}
    for row in rows:
        if int(row["fold"]):
            sources.setdefault(int(row["fold"]), [])
            if row["source"] not in sources[int(row["fold"])]:
                sources[int(row["fold"])].append(row["source"])
    return {"+".join(sorted(names)): out / f"fold{fold}" for fold, names in sources.items()}


def folds_groups(out: Path) -> dict[Path, str]:
    """Each image's near-duplicate cluster, by its resolved path (how peers' files are matched to it)."""
    from babyface.config import load_yaml

    config = load_yaml(out / "cv_config.yaml")
    root = Path(os.path.commonpath([os.path.abspath(p) for p in [config["data"], *config["sources"]]]))
    groups = {}
    with open(out / "folds.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            groups[(root / row["file"]).resolve()] = row.get("near_duplicate_cluster", "")
    return groups


def evaluated_models(fold: Path) -> dict[str, Path]:
    """The fold's scored models: the run itself, or with seeds each seedN and the ensemble."""
    if (fold / "model.json").is_file():
        return {"": fold}
    models = {f"seed {p.name[4:]}": p for p in sorted(fold.glob("seed[0-9]*")) if (p / "model.json").is_file()}
    if (fold / "ensemble" / "model.json").is_file():
        models["ensemble"] = fold / "ensemble"
    return models if len(models) > 1 else {"": model for model in models.values()}


def view_name(framing: str, margin: float, tta: str) -> str:
    """How a view is named in folders and table rows: '' for cv's own (whole, no TTA), else e.g. 'face-m0-flip'."""
    face = f"face-m{margin:g}" if framing == "face" and margin != DEFAULT_MARGIN else framing
    return "-".join(part for part in (face if framing != "whole" else "", tta if tta != "none" else "") if part)


def evaluate_if_needed(model: Path, cv_out: Path, framing: str, margin: float, tta: str) -> Path:
    """The predictions of ``model`` on its held-out source, framed as ``framing`` (faces cut with ``margin``) and with
    test-time augmentation ``tta`` (cv itself evaluates whole, without)."""
    view = view_name(framing, margin, tta)
    out = model / ("evaluation" + (f"-{view}" if view else ""))
    if not (out / "metrics.json").is_file():
        babyface = str(Path(sys.executable).with_name("babyface"))
        subprocess.run([babyface, "evaluate", str(model), "--framing", framing, "--margin", str(margin), "--tta", tta,
                        "--no-progress", "--overwrite",
                        "--out", str(out), "--group-by", "near_duplicate_cluster", "--manifest", str(cv_out / "folds.csv")],
                       check=True, cwd=REPO)
    return out / "predictions.csv"


def babyface_scores(args: argparse.Namespace, variant: str) -> list[Score]:
    from babyface.run import read_predictions

    out = args.out / variant
    folds = fold_folders(out)
    scores = []
    for held in held_out_sources(args.cry):
        fold = folds.get("+".join(sorted(held.sources)))
        if fold is None:
            continue
        views = [(item, f, t) for item in evaluated_models(fold).items() for f in args.framing for t in args.tta]
        for (label, model), framing, tta in views:
            rows = read_predictions(evaluate_if_needed(model, out, framing, args.face_margin, tta))
            probs = np.array([[row.probabilities[c] for c in CLASSES] for row in rows])
            face = f"face framing{'' if args.face_margin == DEFAULT_MARGIN else f' margin {args.face_margin:g}'}"
            shown = ", ".join(part for part in (label, "" if framing == "whole" else face,
                                                "" if tta == "none" else f"{tta} TTA") if part)
            name = f"babyface {variant}" + (f" ({shown})" if shown else "")
            scores.append(score_rows(name, held.name, [row.true for row in rows], probs, [row.group for row in rows]))
    return scores


# --------------------------------------------------------------------------- adults only: no infant trained on


def trained_model(run: Path) -> Path | None:
    """The model a train run left: its ensemble, its one seed's run, or the run itself."""
    candidates = [run / "ensemble", *sorted(run.glob("seed[0-9]*")), run]
    return next((c for c in candidates if (c / "model.json").is_file()), None)


def adults_only(args: argparse.Namespace, name: str, extra: list[str], groups: dict[Path, str]) -> tuple[str, float, list[Score]]:
    """The recipe trained on FER2013 alone (no infant source at all), scored on every held-out source like the peers:
    whether the infant sources teach more than their confounds. Returns (command, seconds, scores)."""
    from babyface.run import read_evaluation_metrics, read_predictions

    babyface = str(Path(sys.executable).with_name("babyface"))
    run = args.out / name
    command = [babyface, "train", str(args.shared_data / FER_FOLDERS[0]), "--data", str(args.shared_data / FER_FOLDERS[1]),
               "--recipe", "infant", "--seeds", args.seeds, "--out", str(run), "--overwrite"]
    if args.budget:
        command += ["--max-per-class", str(args.budget_per_class), "--epochs", str(args.budget_epochs)]
    command += [*([] if args.progress else ["--no-progress"]), *extra]
    start = time.perf_counter()
    if not args.score_only and trained_model(run) is None:
        print("$", shlex.join(command), flush=True)
        subprocess.run(command, check=True, cwd=REPO)
    seconds = time.perf_counter() - start
    model = trained_model(run)
    if model is None:
        raise SystemExit(f"{run}: no trained model; run without --score-only")
    scores = []
    for held in held_out_sources(args.cry):
        folders = [args.cry if source == args.cry.resolve().name else args.shared_data / source for source in held.sources]
        out = model / f"evaluation-{held.name}"
        if not (out / "metrics.json").is_file():
            data = [str(folders[0]), *(part for folder in folders[1:] for part in ("--data", str(folder)))]
            subprocess.run([babyface, "evaluate", str(model), *data, "--framing", "whole", "--no-progress", "--overwrite",
                            "--out", str(out)], check=True, cwd=REPO)
        root = Path(read_evaluation_metrics(out).data_root)
        rows = read_predictions(out / "predictions.csv")
        probs = np.array([[row.probabilities[c] for c in CLASSES] for row in rows])
        found = [groups.get((root / row.file).resolve(), "") or row.file for row in rows]
        scores.append(score_rows(f"babyface {name}", held.name, [row.true for row in rows], probs, found))
    return shlex.join(command), seconds, scores


# --------------------------------------------------------------------------- peers


def peer_scores(args: argparse.Namespace, groups: dict[Path, str]) -> list[Score]:
    """fer and PyEmotion on every held-out source, from peer_fer.py's prediction files (each --peer-framing), grouped
    like babyface's predictions where their files are found in the cv's folds."""
    scores = []
    for peer, framing in [(peer, framing) for peer in ("fer", "pyemotion") for framing in args.peer_framing
                          if not (peer == "pyemotion" and framing == "bare")]:
        for held in held_out_sources(args.cry):
            rows = []
            for name in held.peer_sets:
                path = args.peers / f"pred-{peer}-{framing}-{name}.csv"
                if path.is_file():
                    with open(path, newline="", encoding="utf-8") as handle:
                        rows += list(csv.DictReader(handle))
            if not rows:
                continue
            probs = np.array([[float(row[f"p_{c}"]) for c in CLASSES] for row in rows])
            found = [groups.get(Path(row["file"]).resolve(), "") for row in rows]
            row_groups = [g or row["file"] for g, row in zip(found, rows)]
            scores.append(score_rows(f"{peer} ({framing})", held.name, [row["truth"] for row in rows], probs, row_groups))
    return scores


# --------------------------------------------------------------------------- the table


def cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def score_cells(score: Score) -> list[str]:
    recall = " / ".join(f"{c[0]} {score.recall[c]:.2f} ({score.support[c]})" for c in CLASSES if c in score.recall)
    interval = f" [{score.macro_f1_ci[0]:.2f}, {score.macro_f1_ci[1]:.2f}]" if score.macro_f1_ci else ""
    return [f"{score.macro_f1:.3f}{interval}", recall, cell(score.auc_positive), cell(score.auc_negative)]


def table_markdown(scores: list[Score]) -> str:
    header = ["held-out source", "model", "n", "macro-F1 [95% CI]", "recall (n)", "AUC pos / rest", "AUC neg / neutral"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in dict.fromkeys(s.held_out for s in scores):
        for score in [s for s in scores if s.held_out == name]:
            lines.append("| " + " | ".join([name, score.model, str(score.n), *score_cells(score)]) + " |")
    return "\n".join(lines)


def summary_markdown(scores: list[Score]) -> str:
    """Per model: the worst class recall over the sources (the target: ≥ 0.75 where a source has ≥ 20 of a class)
    and the mean macro-F1; per variant with seeds, the seeds' macro-F1 spread on each source."""
    lines = ["| model | mean macro-F1 | worst recall (≥ 20 faces) | seeds' macro-F1 spread per source |", "|---|---|---|---|"]
    models = list(dict.fromkeys(s.model for s in scores if "(seed" not in s.model))
    for model in models:
        own = [s for s in scores if s.model == model]
        worst = min(((s.recall[c], f"{s.held_out} {c}") for s in own for c in s.recall if s.support[c] >= 20), default=None)
        base, _, view = model.partition(" (ensemble")  # view: ", flip TTA)" etc., seeds are scored in the same view
        seed_name = re.compile(re.escape(base) + r" \(seed \d+" + re.escape(view.removesuffix(")")) + r"\)")
        spread = []
        for held in dict.fromkeys(s.held_out for s in own):
            seeds = [s.macro_f1 for s in scores if seed_name.fullmatch(s.model) and s.held_out == held]
            if len(seeds) > 1:
                spread.append(f"{held} {max(seeds) - min(seeds):.3f}")
        lines.append(f"| {model} | {np.mean([s.macro_f1 for s in own]):.3f} | "
                     f"{'–' if worst is None else f'{worst[0]:.2f} ({worst[1]})'} | {', '.join(spread) or '–'} |")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=ARGS",
                        help="a recipe variant: a name and the extra 'babyface cv' options it adds to --recipe infant, "
                             "e.g. ferplus='--relabel ../shared/data/fer2013-plus/labels.csv' (repeatable; "
                             "NAME= alone is the recipe as it is)")
    parser.add_argument("--adults-only", action="append", default=[], metavar="NAME=ARGS",
                        help="also train the recipe on FER2013 alone (no infant source), with these extra train options, "
                             "and score it on every held-out source like the peers (repeatable)")
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data",
                        help="the folder holding fer2013-hsn, fer2013-other, infant-web, utk-infant-smile, utk-infant-faces")
    parser.add_argument("--cry", type=Path, required=True,
                        help="the crying-infant face crops, made by: babyface data crop ../shared/data/infant-cry-scenes CRY")
    parser.add_argument("--seeds", default="0", help="seeds of every fold's training, e.g. 0,1,2 (an ensemble of them "
                                                     "is the fold's model; each seed is scored too)")
    parser.add_argument("--budget", action="store_true", help="the budget version: a sample of FER2013, fewer epochs")
    parser.add_argument("--budget-per-class", type=int, default=1500, help="with --budget: FER2013 images per class")
    parser.add_argument("--budget-epochs", type=int, default=20, help="with --budget: epochs of every fold")
    parser.add_argument("--framing", action="append", choices=("whole", "face"),
                        help="how babyface frames the held-out images (repeatable; default whole, as cv evaluates): "
                             "whole (the crop as it is) or face (the detector's face square, cut again)")
    parser.add_argument("--face-margin", type=float, default=DEFAULT_MARGIN,
                        help="with --framing face: added around each detected face on every side, as a share of its "
                             f"size (default {DEFAULT_MARGIN}, as 'babyface data crop' cuts training crops)")
    parser.add_argument("--tta", action="append", choices=("none", "flip"),
                        help="babyface's test-time augmentation on the held-out images (repeatable; default none, as cv "
                             "evaluates): none, or flip (each face and its mirror averaged)")
    parser.add_argument("--peers", type=Path, default=None, help="peer_fer.py's --out folder with the peers' predictions "
                                                                 "on sets named utk, cry and infant-web")
    parser.add_argument("--peer-framing", action="append", choices=("whole", "faces", "bare"),
                        help="which of peer_fer.py's framings to show (repeatable; default all three): whole (the crop as "
                             "it is, as evaluate frames it), faces (the largest MTCNN face, with each peer's own margin) "
                             "or bare (fer only: the image straight into its model, its best framing on FER2013)")
    parser.add_argument("--score-only", action="store_true", help="train nothing: score the variants' folders as they are")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "cross_source",
                        help="one cv folder per variant, and cross_source.md / cross_source.json")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    from babyface.hardware import describe_hardware

    args = parse_args(argv)
    args.peer_framing = args.peer_framing or ["whole", "faces", "bare"]
    args.framing = args.framing or ["whole"]
    args.tta = args.tta or ["none"]
    variants = [v.partition("=") for v in args.variant] or [("recipe", "=", "")]
    hardware = describe_hardware()
    print(hardware, flush=True)
    scores, seconds, commands = [], {}, {}
    for name, _, extra in variants:
        commands[name] = shlex.join(cv_command(args, name, shlex.split(extra)))
        if not args.score_only:
            seconds[name] = run_variant(args, name, shlex.split(extra)) or seconds.get(name, 0.0)
        scores += babyface_scores(args, name)
    groups = folds_groups(args.out / variants[0][0]) if variants else {}
    for name, _, extra in (v.partition("=") for v in args.adults_only):
        commands[name], took, found = adults_only(args, name, shlex.split(extra), groups)
        scores += found
        seconds.update({name: took} if not args.score_only else {})
    if args.peers is not None and variants:
        scores += peer_scores(args, groups)
    scores.sort(key=lambda s: [h.name for h in held_out_sources(args.cry)].index(s.held_out))
    report = "\n".join([
        "# Infants from elsewhere: each infant source held out", "",
        f"{hardware}. Settings: {'budget (' + str(args.budget_per_class) + ' FER2013 images per class, ' + str(args.budget_epochs) + ' epochs)' if args.budget else 'the recipe as it is'}, seeds {args.seeds}.",
        "", table_markdown(scores), "", summary_markdown(scores), "",
        *(f"- `{name}` ({seconds[name]:.0f} s): `{command}`" if name in seconds else f"- `{name}`: `{command}`"
          for name, command in commands.items()), ""])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cross_source.md").write_text(report, encoding="utf-8")
    (args.out / "cross_source.json").write_text(json.dumps({"hardware": hardware, "commands": commands, "seconds": seconds,
                                                            "scores": [asdict(s) for s in scores]}, indent=2), encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
