"""The ``babyface`` command line: parsing and printing only; the work happens in the library.

Config flags are generated from the typed config dataclasses, so every option has one name,
one default and one place where it is documented. Precedence: defaults < --config YAML < flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from babyface import __version__
from babyface.config import (
    EnsembleConfig,
    EvalConfig,
    ExplainConfig,
    ExportConfig,
    PredictConfig,
    ReportConfig,
    ServeConfig,
    TrainConfig,
    choices_for,
    from_dict,
    load_yaml,
    with_recipe,
)
from babyface.errors import BabyfaceError
from babyface.run import RunFolder

log = logging.getLogger("babyface")


# ---------------------------------------------------------------- config flags

def _leaf_fields(cls: type, prefix: str = "") -> list[tuple[str, str, Any]]:
    """(dest, flag, default) for every option of ``cls``, nested dataclasses flattened (``augment.enabled`` → ``--augment``)."""
    leaves = []
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        dest = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(default):
            leaves += _leaf_fields(type(default), dest + ".")
        else:
            name = prefix.rstrip(".").split(".")[-1] if f.name == "enabled" else f.name
            leaves.append((dest, "--" + name.replace("_", "-"), default))
    return leaves


def add_config_flags(parser: argparse.ArgumentParser, cls: type, positional: Sequence[str] = ()) -> None:
    parser.add_argument("--config", metavar="YAML", help="read options from a YAML file (flags override it)")
    for dest, flag, default in _leaf_fields(cls):
        if dest in positional or isinstance(default, (list, dict)):
            continue
        owner, option = _leaf_field(cls, dest)
        choices = choices_for(owner, option.name)
        text = option.metadata.get("help", "")
        kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS}
        if isinstance(default, bool):
            kwargs.update(action=argparse.BooleanOptionalAction, help=f"{text} (default: {default})".strip())
        else:
            kwargs.update(type=type(default), metavar=type(default).__name__.upper(), help=f"{text} (default: {default!r})".strip())
            if choices:
                kwargs.update(choices=choices, metavar=None)
        parser.add_argument(flag, **kwargs)


def _leaf_field(cls: type, dest: str) -> tuple[type, dataclasses.Field]:
    """The dataclass that holds option ``dest`` (``data_options.framing`` → DataConfig) and its field."""
    *parents, leaf = dest.split(".")
    for parent in parents:
        cls = type(getattr(cls(), parent))
    return cls, {f.name: f for f in dataclasses.fields(cls)}[leaf]


def add_sources_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", dest="sources", action="append", metavar="DATA",
                        help="another dataset to combine (repeatable); classes are matched by name after --label-map")


def build_config(cls: type, args: argparse.Namespace, **extra: Any):
    """Defaults < YAML (--config) < flags given on the command line < ``extra`` (positionals)."""
    values: dict[str, Any] = load_yaml(args.config) if getattr(args, "config", None) else {}
    for dest, _, _ in _leaf_fields(cls):
        if getattr(args, dest, None) is not None:  # flags not given are absent (SUPPRESS); positionals may be None
            _set_nested(values, dest, getattr(args, dest))
    values.update({k: v for k, v in extra.items() if v is not None})
    return from_dict(cls, with_recipe(values), where="options")


def _set_nested(values: dict, dest: str, value: Any) -> None:
    *parents, leaf = dest.split(".")
    for parent in parents:
        values = values.setdefault(parent, {})
        if not isinstance(values, dict):
            raise BabyfaceError(f"--config: '{parent}' must be a mapping of options (e.g. {parent}: {{{leaf}: ...}})")
    values[leaf] = value


def parse_model_args(pairs: Sequence[str] | None) -> dict[str, Any] | None:
    """``--model-arg stem=small --model-arg drop_rate=0.2`` → {'stem': 'small', 'drop_rate': 0.2}."""
    if not pairs:
        return None
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BabyfaceError(f"--model-arg {pair!r}: expected KEY=VALUE, e.g. --model-arg stem=small")
        parsed[key.strip()] = yaml.safe_load(value)
    return parsed


# ---------------------------------------------------------------- commands

def cmd_synth(args: argparse.Namespace) -> int:
    from babyface.data.synthetic import SynthConfig, generate_dataset

    classes = tuple(c.strip() for c in args.classes.split(",") if c.strip())
    config = SynthConfig(n=args.n, seed=args.seed, size=args.size, test_fraction=args.test_fraction,
                         grayscale_share=args.grayscale_share, classes=classes, style=args.style)
    summary = generate_dataset(args.out, config, overwrite=args.overwrite, progress=not args.quiet)
    print(f"wrote {summary.get('n', config.n)} synthetic faces to {args.out} (train/ test/ metadata.csv)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from babyface.run import default_run_folder
    from babyface.training.fit import fit
    from babyface.training.seeds import fit_seeds

    if args.resume:
        out = fit(resume_config(args), resume=True)
    else:
        if not args.data and not args.sources:
            raise BabyfaceError("train needs DATA (or --resume RUN to continue an interrupted run)")
        config = build_config(TrainConfig, args, data=args.data, sources=args.sources, model_args=parse_model_args(args.model_arg))
        if not config.out:
            config.out = str(default_run_folder(config.model))
        if config.seeds:
            out = fit_seeds(config)
            print((out / "summary.md").read_text(encoding="utf-8"))
            print(f"runs: {out}/seed*/  summary: {out / 'summary.json'}")
            return 0
        out = fit(config)
    print(f"run folder: {out}  (model.json, model.safetensors, history.csv, learning_curves.png, train.log)")
    return 0


def resume_config(args: argparse.Namespace) -> TrainConfig:
    """The interrupted run's own config.yaml; flags given now (e.g. more --epochs) override it."""
    run = Path(args.resume)
    saved = RunFolder(run).config
    if not saved.is_file():
        raise BabyfaceError(f"{run}: no config.yaml here; --resume takes the folder of an interrupted 'babyface train' run")
    args.config = str(saved)
    return build_config(TrainConfig, args, out=str(run), data=args.data)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from babyface.evaluation.evaluate import evaluate_run

    config = build_config(EvalConfig, args, run=args.run, data=args.data, sources=args.sources)
    metrics = evaluate_run(config)
    print(format_metrics(metrics))
    if "subgroups" in metrics:
        from babyface.evaluation.subgroups import format_subgroups

        print("\n" + format_subgroups(metrics["subgroups"]))
        print(f"subgroup results: {Path(metrics['out']) / 'subgroups.json'}")
    return 0


def format_metrics(metrics: dict) -> str:
    from babyface.evaluation.metrics import interval_text

    calibration = metrics["calibration"]
    tta = f" (TTA: {metrics['tta']})" if metrics.get("tta", "none") != "none" else ""
    framing = metrics.get("framing", {})
    no_face = f", no face found in {framing['no_face']} (classified whole)" if framing.get("no_face") else ""
    lines = [f"{metrics['model']}{tta} on {metrics['data']}: n={metrics['n']}, framing {framing.get('mode', 'whole')}{no_face}",
             f"accuracy {interval_text(metrics['accuracy'], metrics.get('accuracy_ci'), 4)}  "
             f"macro-F1 {interval_text(metrics['macro_f1'], metrics.get('macro_f1_ci'), 4)}  (95% bootstrap intervals)",
             f"ECE ({calibration['bins']} bins) {calibration['ece_before']:.4f} at T=1, "
             f"{calibration['ece_after']:.4f} at T={calibration['temperature']:.3f}",
             f"{'class':<12}{'precision':>10}{'recall':>10}{'f1 [95% interval]':>26}{'support':>9}"]
    for name, row in metrics["per_class"].items():
        f1 = interval_text(row["f1"], row.get("f1_ci"))
        lines.append(f"{name:<12}{row['precision']:>10.3f}{row['recall']:>10.3f}{f1:>26}{row['support']:>9d}")
    for source, row in metrics.get("per_source", {}).items():
        lines.append(f"  source {source}: n={row['n']}  accuracy {interval_text(row['accuracy'], row.get('accuracy_ci'), 4)}  "
                     f"macro-F1 {interval_text(row['macro_f1'], row.get('macro_f1_ci'), 4)}")
    lines.append(f"results: {metrics['out']}")
    return "\n".join(lines)


def cmd_predict(args: argparse.Namespace) -> int:
    from babyface.data.framing import Framing, warn_if_framing_differs
    from babyface.inference.classifier import Classifier, collect_inputs, format_predictions
    from babyface.io import write_text
    from babyface.video import analyse_videos, is_video_file

    config = build_config(PredictConfig, args, run=args.run, inputs=args.inputs)
    classifier = Classifier(config.run, device=config.device, batch_size=config.batch_size, min_confidence=config.min_confidence,
                          backend=config.backend, onnx_file=config.onnx, tta=config.tta)
    videos = [i for i in config.inputs if is_video_file(i)]
    images = [i for i in config.inputs if not is_video_file(i)]
    framing = Framing.from_config(config)
    warn_if_framing_differs(classifier.meta, framing if images else dataclasses.replace(framing, mode="face"), config.run)
    for summary in analyse_videos(classifier, videos, config):
        print(f"{summary['video']}: {summary['frames']} frames, {summary['faces']} face(s), {summary['frames_per_second']} frames/s; "
              f"timeline.csv and timeline.png in {summary['out']}" + (f"; annotated video {summary['annotated']}" if summary["annotated"] else ""))
    if not images:
        return 0
    predictions, skipped = classifier.predict_files(collect_inputs(images), strict=config.strict, framing=framing)
    text = format_predictions(predictions, classifier.classes, config.format)
    if config.output:
        write_text(config.output, text)
        print(f"{len(predictions)} prediction(s) written to {config.output}")
    else:
        sys.stdout.write(text)
    if skipped:
        print(f"{len(skipped)} file(s) skipped (not decodable); see the warnings above", file=sys.stderr)
    return 0 if predictions else 1


def cmd_export(args: argparse.Namespace) -> int:
    from babyface.inference.export import export_run

    result = export_run(build_config(ExportConfig, args, run=args.run))
    parity = result["parity"]
    print(f"{result['precision']} ONNX model: {result['onnx']}")
    print(f"parity with PyTorch on {parity['images']} {parity['source']} images: max |logit difference| "
          f"{parity['max_abs_logit_diff']:.2e}, same top class for {parity['top1_agreement']:.1%}  ({result['parity_file']})")
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    from babyface.bundle.ensemble import create_ensemble

    out = create_ensemble(build_config(EnsembleConfig, args, runs=args.runs))
    print(f"ensemble of {len(args.runs)} runs: {out}  (use it wherever a RUN is accepted)")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from babyface.evaluation.explain import explain_files
    from babyface.inference.classifier import collect_inputs

    config = build_config(ExplainConfig, args, run=args.run, inputs=args.inputs)
    records = explain_files(config, collect_inputs(config.inputs))
    for r in records:
        print(f"{r['file']}: predicted {r['predicted']} ({r['confidence']:.2f}), Grad-CAM of {r['explained_class']} -> {r['overlay']}")
    out = config.out or RunFolder(config.run).explanations
    print(f"{len(records)} Grad-CAM overlay(s) in {out}")
    return 0 if records else 1


def cmd_report(args: argparse.Namespace) -> int:
    from babyface.evaluation.report import build_report

    report, model_card = build_report(build_config(ReportConfig, args, run=args.run))
    print(f"report: {report}\nmodel card: {model_card}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from babyface.evaluation.compare import compare_runs, format_comparison
    from babyface.io import write_json

    result = compare_runs(args.runs)
    print(format_comparison(result))
    if args.output:
        write_json(args.output, result)
        print(f"comparison written to {args.output}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from babyface.serve.app import serve

    serve(build_config(ServeConfig, args, run=args.run))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from babyface.models import list_models, model_info

    print(f"{'model':<10}{'params':>13}{'GFLOPs':>10}  description   (at {args.image_size}×{args.image_size}, {args.num_classes} classes)")
    for name in list_models():
        info = model_info(name, num_classes=args.num_classes, image_size=args.image_size)
        print(f"{name:<10}{info['params']:>13,}{info['flops'] / 1e9:>10.3f}  {info['description']}")
    return 0


def cmd_data_audit(args: argparse.Namespace) -> int:
    from babyface.data.audit import AuditConfig, audit_dataset, write_audit

    config = AuditConfig(data=args.data, out=args.out or str(Path(args.data) / "audit"), manifest=args.manifest or "",
                         group_by=args.group_by or "", threshold=args.threshold, max_sheets=args.max_sheets,
                         overwrite=args.overwrite, progress=args.progress)
    report = audit_dataset(config)
    out = write_audit(report, config.out, config)
    print(f"{report.stats['images']} images, {report.stats['unreadable']} unreadable; duplicate clusters: "
          f"{report.count('leakage')} leakage, {report.count('conflict')} conflicting labels, {report.count('duplicate')} within a class"
          + (f"; {len(report.group_leakage)} {config.group_by} groups in more than one split" if config.group_by else ""))
    print(f"report: {out / 'audit.md'}  (audit.json, sheets/)")
    return 1 if args.strict and report.has_leakage_or_conflict else 0


def cmd_data_split(args: argparse.Namespace) -> int:
    from babyface.data.regroup import SplitConfig, split_dataset

    config = SplitConfig(data=args.data, out=args.out, test=args.test, val=args.val, group_by=args.group_by or "",
                         manifest=args.manifest or "", copy=args.copy, seed=args.seed, progress=args.progress)
    summary = split_dataset(config)
    counts = ", ".join(f"{key} {n}" for key, n in summary["counts"].items())
    print(f"{summary['groups']} groups kept whole; {counts}; splits.csv in {summary['out']}")
    return 0


def cmd_data_crop(args: argparse.Namespace) -> int:
    from babyface.data.crop import CropConfig, crop_faces

    config = CropConfig(src=args.src, out=args.out, margin=args.margin, all_faces=args.all_faces, min_score=args.min_score,
                        detector=args.detector, overwrite=args.overwrite, progress=args.progress)
    summary = crop_faces(config)
    print(f"{summary['crops']} face crop(s) from {summary['images']} images; {summary['no_face']} without a face "
          f"(no_face.txt), {summary['unreadable']} unreadable; crops.csv in {summary['out']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from babyface.demo import DemoConfig, run_demo

    config = DemoConfig(out=args.out, n=args.n, seed=args.seed, cnn_epochs=args.cnn_epochs, resnet_epochs=args.resnet_epochs,
                        overwrite=args.overwrite, device=args.device)
    run_demo(config)
    return 0


# ---------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="babyface", description="Infant facial emotion recognition (happy / neutral / sad).")
    parser.add_argument("--version", action="version", version=f"babyface {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = command("synth", cmd_synth, "generate synthetic infant faces in the BabyFace layout")
    p.add_argument("out", help="output folder (must be empty or new)")
    p.add_argument("--n", type=int, default=1800, help="number of images (default: 1800)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives byte-identical images (default: 0)")
    p.add_argument("--size", type=int, default=128, help="image side in pixels (default: 128)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="share of each class written to OUT/test (default: 0.2)")
    p.add_argument("--grayscale-share", type=float, default=0.2, help="share of images saved in grayscale (default: 0.2)")
    p.add_argument("--classes", default="happy,neutral,sad",
                   help="comma-separated classes to generate, a subset of happy,neutral,sad (default: all three); "
                        "images take the classes in turn, e.g. --classes happy,sad for a source without neutral faces")
    p.add_argument("--style", choices=("photo", "studio", "sketch"), default="photo",
                   help="rendering: photo (default: cluttered backgrounds, natural skin tones, lighting, noise), "
                        "studio (the same faces on a plain teal backdrop under an amber cast) or sketch (blue ink on "
                        "plain paper, posterised, outlined): a look easy to tell apart, to simulate a second data source")
    p.add_argument("--overwrite", action="store_true", help="replace the contents of a non-empty OUT")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = command("train", cmd_train, "train a model on DATA and write a run folder with the model bundle")
    p.add_argument("data", nargs="?", help="DATA/train/<class>/ + DATA/test/<class>/, or DATA/<class>/")
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run from RUN/checkpoint.pt")
    add_sources_flag(p)
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="model option, e.g. stem=small (repeatable)")
    add_config_flags(p, TrainConfig, positional=("data",))

    p = command("evaluate", cmd_evaluate, "evaluate a trained run on a test set")
    p.add_argument("run", help="run folder written by 'babyface train'")
    p.add_argument("data", nargs="?", help="DATA (uses DATA/test) or a folder of class folders (default: the run's own data)")
    add_sources_flag(p)
    add_config_flags(p, EvalConfig, positional=("run", "data"))

    p = command("predict", cmd_predict, "predict the emotion in image files or folders, or of every face over time in videos")
    p.add_argument("run", help="run folder written by 'babyface train'")
    p.add_argument("inputs", nargs="+", help="image files and/or folders, or video files (.mp4, .avi, .mov, .mkv, ...)")
    add_config_flags(p, PredictConfig, positional=("run", "inputs"))

    p = command("export", cmd_export, "export a run's model to ONNX (optionally int8), checked against PyTorch")
    p.add_argument("run", help="run folder written by 'babyface train'")
    add_config_flags(p, ExportConfig, positional=("run",))

    p = command("ensemble", cmd_ensemble, "combine runs into one model that averages their calibrated probabilities")
    p.add_argument("runs", nargs="+", help="two or more run folders with the same classes")
    add_config_flags(p, EnsembleConfig, positional=("runs",))

    p = command("explain", cmd_explain, "Grad-CAM heatmaps over images: which region drove the prediction")
    p.add_argument("run", help="run folder written by 'babyface train'")
    p.add_argument("inputs", nargs="+", help="image files and/or folders")
    p.add_argument("--class", dest="target_class", metavar="NAME", default=argparse.SUPPRESS, help="explain this class (default: the predicted one)")
    add_config_flags(p, ExplainConfig, positional=("run", "inputs", "target_class"))

    p = command("report", cmd_report, "one self-contained report.html and a model_card.md for an evaluated run")
    p.add_argument("run", help="run folder written by 'babyface train' and evaluated with 'babyface evaluate'")
    add_config_flags(p, ReportConfig, positional=("run",))

    p = command("compare", cmd_compare, "compare evaluated runs: results table and McNemar's test on the same test set")
    p.add_argument("runs", nargs="+", help="two or more run folders, each evaluated with 'babyface evaluate'")
    p.add_argument("--output", metavar="FILE", help="also write the comparison as JSON")

    p = command("serve", cmd_serve, "a web page and JSON API: drop photos or use the webcam, see each face's emotion")
    p.add_argument("run", help="run folder written by 'babyface train'")
    add_config_flags(p, ServeConfig, positional=("run",))

    p = command("models", cmd_models, "list registered models with parameters and FLOPs")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--num-classes", type=int, default=3)

    add_data_commands(sub)

    p = command("demo", cmd_demo, "synthesise a dataset, train the CNN and ResNet-18, evaluate both, print a results table")
    p.add_argument("--out", default="demo_out")
    p.add_argument("--n", type=int, default=1800)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cnn-epochs", type=int, default=None)
    p.add_argument("--resnet-epochs", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo in --out")
    return parser


def add_data_commands(sub) -> None:
    from babyface.data.duplicates import DEFAULT_THRESHOLD
    from babyface.data.faces import DEFAULT_DETECTOR, DEFAULT_MARGIN, DEFAULT_MIN_SCORE, DETECTORS

    data = sub.add_parser("data", help="audit, split and crop datasets", description="audit, split and crop datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")

    def command(name: str, func: Callable, help: str) -> argparse.ArgumentParser:
        p = data_sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="(default: True)")
        return p

    p = command("audit", cmd_data_audit, "report image statistics and duplicates within classes, across classes and across splits")
    p.add_argument("data", help="DATA/train|val|test/<class>/ or DATA/<class>/")
    p.add_argument("--out", help="report folder (default: DATA/audit)")
    p.add_argument("--manifest", help="CSV with a 'file' column (relative to DATA) and a group column")
    p.add_argument("--group-by", help="manifest column of groups that must not span splits, e.g. identity_group")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help=f"near-duplicate score (default: {DEFAULT_THRESHOLD})")
    p.add_argument("--max-sheets", type=int, default=20, help="contact sheets per kind of finding (default: 20)")
    p.add_argument("--strict", action="store_true", help="exit 1 when there is leakage or a conflicting label")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier report in --out")

    p = command("split", cmd_data_split, "write a stratified train/val/test layout in which every group stays whole in one split")
    p.add_argument("data", help="DATA/<class>/ (or a BabyFace layout, whose splits are pooled first)")
    p.add_argument("out", help="new or empty output folder")
    p.add_argument("--test", type=float, default=0.15, help="share of each class for test (default: 0.15)")
    p.add_argument("--val", type=float, default=0.15, help="share of each class for val; 0 = no val/ (default: 0.15)")
    p.add_argument("--group-by", help="manifest column of groups (e.g. identity_group), or 'near-duplicates'")
    p.add_argument("--manifest", help="CSV with 'file' (relative to DATA) and the --group-by column")
    p.add_argument("--copy", action="store_true", help="copy files instead of hard-linking them")
    p.add_argument("--seed", type=int, default=0)

    p = command("crop", cmd_data_crop, "cut square face crops out of photos, keeping the class layout")
    p.add_argument("src", help="SRC/<class>/ or a BabyFace layout of whole-scene photos")
    p.add_argument("out", help="new or empty output folder")
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN, help=f"added on each side, as a share of the face size (default: {DEFAULT_MARGIN})")
    p.add_argument("--all-faces", action="store_true", help="one crop per face instead of the largest only")
    p.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE, help=f"detector confidence to accept a face (default: {DEFAULT_MIN_SCORE})")
    p.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR, help=f"(default: {DEFAULT_DETECTOR})")
    p.add_argument("--overwrite", action="store_true", help="replace the contents of a non-empty OUT")


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (it may be swapped after setup, e.g. by a caller capturing it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging() -> None:
    if not any(isinstance(h, _CurrentStderr) for h in log.handlers):
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        return args.func(args)
    except BabyfaceError as exc:
        print(f"babyface: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("babyface: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
