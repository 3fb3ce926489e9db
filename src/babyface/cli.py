"""The ``babyface`` command line: parsing and printing only; the work happens in the library.

Every command's positionals and flags, their help, defaults and choices are generated from its pydantic config
model (``babyface.config``), so every option has one name, one default and one place where it is documented.
Precedence: defaults < recipe < --config YAML < flags < positionals.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import yaml
from pydantic.fields import FieldInfo

from babyface import __version__
from babyface.config import (
    AgreeConfig,
    AuditConfig,
    CodeConfig,
    CompareConfig,
    ConfigModel,
    CropConfig,
    CvConfig,
    DemoConfig,
    EnsembleConfig,
    EvalConfig,
    ExplainConfig,
    ExportConfig,
    MeasureConfig,
    ModelsConfig,
    PredictConfig,
    ReportConfig,
    ServeConfig,
    SplitConfig,
    SynthCommand,
    TrainConfig,
    WatchConfig,
    field_flag,
    from_dict,
    load_yaml,
    with_recipe,
)
from babyface.errors import BabyfaceError
from babyface.faces.registry import describe_detectors, detector_names
from babyface.run import EvaluationMetrics, RunFolder

C = TypeVar("C", bound=ConfigModel)

log = logging.getLogger("babyface")

# what ``option(choices_from=...)`` names: a registry's names and one line describing them, for the choices and help
REGISTRIES: dict[str, Callable[[], tuple[list[str], str]]] = {"detectors": lambda: (detector_names(), describe_detectors())}


# ---------------------------------------------------------------- options from the config models

@dataclass(frozen=True)
class Leaf:
    """One option of a command: a field of its config model, nested configs flattened (``augment.hflip``)."""

    dest: str
    name: str
    field: FieldInfo
    group: str | None

    @property
    def cli(self) -> dict[str, Any]:
        return self.field.json_schema_extra or {}  # type: ignore[return-value]

    @property
    def shape(self) -> type:
        """int, float, str, bool, list, tuple or dict: what the option holds, without Optional or Literal."""
        annotation = self.field.annotation
        optional = [a for a in typing.get_args(annotation) if a is not type(None)]
        if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(optional) == 1:
            annotation = optional[0]  # X | None: None is the default that says "auto"
        if typing.get_origin(annotation) is typing.Literal:
            return str
        return typing.get_origin(annotation) or annotation  # type: ignore[return-value]

    def argument(self) -> tuple[list[str], dict[str, Any]]:
        """The names and keyword arguments of ``add_argument`` for this option."""
        text = self.field.description or ""
        kwargs: dict[str, Any] = {"help": text.replace("%", "%%")}
        metavar = self.cli.get("metavar")
        if self.cli.get("choices_from"):
            kwargs["choices"], described = REGISTRIES[self.cli["choices_from"]]()
            kwargs["help"] += f": {described}".replace("%", "%%")
        elif typing.get_origin(self.field.annotation) is typing.Literal:
            kwargs["choices"] = typing.get_args(self.field.annotation)
        elif self.shape in (int, float, str):
            kwargs["type"] = self.shape
        if self.cli.get("positional"):
            nargs = self.cli["positional"]
            kwargs.update(metavar=metavar or self.name.upper(), **({} if nargs == "1" else {"nargs": nargs}))
            return [self.dest], kwargs
        if "type" in kwargs:
            metavar = metavar or {int: "N", float: "X", str: "TEXT"}[self.shape]
        kwargs.update(dest=self.dest, default=argparse.SUPPRESS, metavar=metavar)
        kwargs["help"] += f" (default: {default_text(self.field)})"
        if self.shape is bool:
            kwargs.update(action=argparse.BooleanOptionalAction)
            del kwargs["metavar"]
        elif self.shape in (list, dict):
            kwargs.update(action="append", default=None)
        if "bare" in self.cli:
            kwargs.update(nargs="?", const=self.cli["bare"])
        return [field_flag(self.name, self.field)], kwargs

    def from_command_line(self, value: Any) -> Any:
        return parse_model_args(value) if self.shape is dict else value


def leaves(cls: type[ConfigModel], prefix: str = "", group: str | None = None) -> list[Leaf]:
    """Every option of config model ``cls``; fields of a nested config inherit its help section unless they name one."""
    found = []
    for name, field in cls.model_fields.items():
        own = (field.json_schema_extra or {}).get("group", group)  # type: ignore[union-attr]
        if isinstance(field.annotation, type) and issubclass(field.annotation, ConfigModel):
            found += leaves(field.annotation, f"{prefix}{name}.", own)
        else:
            found.append(Leaf(prefix + name, name, field, own))
    return found


def default_text(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "off" if "bare" in (field.json_schema_extra or {}) else "auto"  # type: ignore[operator]
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple, dict)):
        return ",".join(map(str, value)) or "none"
    return str(value) if value != "" else "empty"


def add_config_flags(parser: argparse.ArgumentParser, cls: type[ConfigModel]) -> None:
    """Positionals, flags, help, defaults and choices of a command, all from its config model ``cls``."""
    parser.add_argument("--config", metavar="YAML", help="read options from a YAML file of name: value lines, nested as "
                        "in the config.yaml a run writes; flags given as well override it (default: empty)")
    groups = {title: parser.add_argument_group(title) for title in cls.help_groups}
    for leaf in leaves(cls):
        names, kwargs = leaf.argument()
        if leaf.group is None or leaf.cli.get("positional"):
            parser.add_argument(*names, **kwargs)
        else:
            if leaf.group not in groups:
                groups[leaf.group] = parser.add_argument_group(leaf.group)
            groups[leaf.group].add_argument(*names, **kwargs)


def build_config(cls: type[C], args: argparse.Namespace, **extra: Any) -> C:
    """Defaults < recipe < YAML (--config) < flags given on the command line < positionals < ``extra``."""
    values: dict[str, Any] = load_yaml(args.config) if getattr(args, "config", None) else {}
    for leaf in leaves(cls):
        if getattr(args, leaf.dest, None) is not None:  # flags not given are absent (SUPPRESS) or None
            _set_nested(values, leaf.dest, leaf.from_command_line(getattr(args, leaf.dest)))
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
    from babyface.tools.synthetic import generate_dataset

    config: SynthCommand = build_config(SynthCommand, args)
    if config.video:
        from babyface.tools.sessions import write_sessions

        sessions = write_sessions(config.out, config.videos, config.seconds, fps=config.video_fps, seed=config.seed,
                                  overwrite=config.overwrite, progress=config.progress)
        print(f"wrote {len(sessions)} scripted session(s) to {config.out}: session_NN.mp4 with the true codes in "
              "session_NN.truth.csv and .truth.eaf, and phases.csv")
        return 0
    summary = generate_dataset(config.out, config, overwrite=config.overwrite, progress=config.progress)
    print(f"wrote {summary.get('n', config.n)} synthetic faces to {config.out} (train/ test/ metadata.csv)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from babyface.experiments.seeds import fit_seeds
    from babyface.run import SeedsFolder, default_run_folder
    from babyface.training.fit import fit

    if args.resume:
        out = fit(resume_config(args), resume=True)
    else:
        config = build_config(TrainConfig, args)
        if not config.data and not config.sources:
            raise BabyfaceError("train needs DATA (or --resume RUN to continue an interrupted run)")
        if not config.out:
            config.out = str(default_run_folder(config.model))
        if config.seeds:
            seeds = SeedsFolder(fit_seeds(config))
            print(seeds.summary_md.read_text(encoding="utf-8"))
            print(f"runs: {seeds.path}/seed*/  summary: {seeds.summary_json}")
            return 0
        out = fit(config)
    print(f"run folder: {out}  (model.json, model.safetensors, history.csv, learning_curves.png, train.log)")
    return 0


def resume_config(args: argparse.Namespace, cls: type[C] = TrainConfig, saved_name: str = "config.yaml",  # type: ignore[assignment]
                  command: str = "train") -> C:
    """The interrupted run's own saved config; flags given now (e.g. more --epochs) override it."""
    run = Path(args.resume)
    saved = run / saved_name
    if not saved.is_file():
        raise BabyfaceError(f"{run}: no {saved_name} here; --resume takes the folder of an interrupted 'babyface {command}'")
    args.config = str(saved)
    return build_config(cls, args, out=str(run), data=args.data)


def cmd_cv(args: argparse.Namespace) -> int:
    from babyface.experiments.cv import run_cv
    from babyface.run import CvFolder, default_run_folder

    if args.resume:
        out = run_cv(resume_config(args, CvConfig, CvFolder(args.resume).config.name, "cv"), resume=True)
    else:
        config = build_config(CvConfig, args)
        if not config.data and not config.sources:
            raise BabyfaceError("cv needs DATA (or --resume OUT to continue an interrupted cross-validation)")
        if not config.out:
            config.out = str(default_run_folder(f"cv-{config.model}"))
        out = run_cv(config)
    folder = CvFolder(out)
    print(folder.summary_md.read_text(encoding="utf-8"))
    print(f"folds: {out}/fold*/  summary: {folder.summary_json}  plot: {folder.folds_png}  report: {folder.report}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from babyface.evaluation.evaluate import evaluate_run
    from babyface.run import EvaluationFiles, read_evaluation_metrics

    config = build_config(EvalConfig, args)
    result = evaluate_run(config)
    out = Path(result["out"])
    print(format_metrics(read_evaluation_metrics(out), out))  # what metrics.json holds, as every reader sees it
    if "subgroups" in result:
        from babyface.evaluation.subgroups import format_subgroups

        print("\n" + format_subgroups(result["subgroups"]))
        print(f"subgroup results: {out / EvaluationFiles.SUBGROUPS}")
    return 0


def format_metrics(metrics: EvaluationMetrics, out: Path) -> str:
    """What ``evaluate`` prints: metrics.json in a few lines."""
    from babyface.evaluation.affect import format_aucs
    from babyface.metrics import interval_text, quoted_interval

    calibration, framing = metrics.calibration, metrics.framing
    tta = f" (TTA: {metrics.tta})" if metrics.tta != "none" else ""
    no_face = f", no face found in {framing.no_face} (classified whole)" if framing and framing.no_face else ""
    lines = [f"{metrics.model}{tta} on {metrics.data}: n={metrics.n}, framing {framing.mode if framing else 'whole'}{no_face}",
             f"accuracy {interval_text(metrics.accuracy, metrics.accuracy_ci, 4)}  "
             f"macro-F1 {interval_text(metrics.macro_f1, metrics.macro_f1_ci, 4)}  (95% bootstrap intervals"
             + (", images resampled as if independent)" if metrics.quote == "group" else ")"),
             *group_interval_lines(metrics),
             f"ECE ({calibration.bins} bins) {calibration.ece_before:.4f} at T=1, "
             f"{calibration.ece_after:.4f} at T={calibration.temperature:.3f}",
             f"{'class':<12}{'precision':>10}{'recall':>10}{'f1 [95% interval]':>26}{'support':>9}"]
    for name, row in metrics.per_class.items():
        f1 = interval_text(row.f1, row.f1_ci)
        lines.append(f"{name:<12}{row.precision:>10.3f}{row.recall:>10.3f}{f1:>26}{row.support:>9d}")
    lines += format_aucs(metrics.affect_auc)
    for source, scores in metrics.per_source.items():
        groups = f", {scores.n_groups} groups" if scores.quote == "group" else ""
        recall = " / ".join(f"{r.recall:.2f}" if r.support else "—" for r in scores.per_class.values())
        aucs = "".join(f"  {name.split('_')[0]}-AUC {r.auc:.3f}" for name, r in scores.affect_auc.items())
        lines.append(f"  source {source}: n={scores.n}{groups}  accuracy "
                     f"{interval_text(scores.accuracy, quoted_interval(scores, 'accuracy'), 4)}  "
                     f"macro-F1 {interval_text(scores.macro_f1, quoted_interval(scores, 'macro_f1'), 4)}  "
                     f"recall {'/'.join(scores.per_class)} {recall}{aucs}")
    lines.append(f"results: {out}")
    return "\n".join(lines)


def group_interval_lines(metrics: EvaluationMetrics) -> list[str]:
    """The group-level intervals of ``evaluate``'s metrics, when groups were known, and that they are the ones to quote."""
    from babyface.metrics import groups_text, interval_text

    if metrics.quote != "group":
        return []
    return [f"accuracy {interval_text(metrics.accuracy, metrics.accuracy_group_ci, 4)}  "
            f"macro-F1 {interval_text(metrics.macro_f1, metrics.macro_f1_group_ci, 4)}  (95% intervals over "
            f"{groups_text(metrics.model_dump())}, whole groups resampled: quote these, images of one group are not independent)"]


def cmd_predict(args: argparse.Namespace) -> int:
    from babyface.faces.framing import Framing, warn_if_framing_differs
    from babyface.inference.classifier import Classifier, collect_inputs, format_predictions
    from babyface.outputs import write_text
    from babyface.video.analysis import VideoAnalysis, analyse_videos, is_video_file

    config = build_config(PredictConfig, args)
    framing = Framing.from_config(config)
    classifier = Classifier(config.run, device=config.device, batch_size=config.batch_size, min_confidence=config.min_confidence,
                            backend=config.backend, onnx_file=config.onnx, tta=config.tta, framing=framing,
                            precision=config.precision)
    videos = [i for i in config.inputs if is_video_file(i)]
    images = [i for i in config.inputs if not is_video_file(i)]
    if images:  # a video's faces are always found by detection: its framing is never the photos' question
        warn_if_framing_differs(classifier.meta, classifier.framing, config.run)
    for summary in analyse_videos(classifier, videos, VideoAnalysis.of(config), config.progress, measure=config.measures):
        print_video_summary(summary)
    if not images:
        return 0
    paths = collect_inputs(images)
    predictions, skipped = classifier.predict_files(paths, strict=config.strict, progress=config.progress)
    refuse_non_finite(predictions)
    if config.measures:
        attach_measures(predictions, paths, config, classifier.framing.mode)
    text = format_predictions(predictions, classifier.classes, config.format)
    if config.output:
        write_text(config.output, text)
        print(f"{len(predictions)} prediction(s) written to {config.output}")
    else:
        sys.stdout.write(text)
    if skipped:
        print(f"{len(skipped)} file(s) skipped (not decodable); see the warnings above", file=sys.stderr)
    return 0 if predictions else 1


def cmd_code(args: argparse.Namespace) -> int:
    from babyface.video.corpus import CODED, SKIPPED, code_corpus

    config = build_config(CodeConfig, args)
    corpus = code_corpus(config)
    print(f"{corpus.count(CODED)} video(s) coded, {corpus.count(SKIPPED)} kept from an earlier run, "
          f"{len(corpus.failed)} failed; per video codes.csv, .eaf (ELAN), .boris (BORIS), .opf (Datavyu) and "
          f"timeline.csv in {corpus.out}/<video>/; summary.csv and report.html in {corpus.out}")
    if corpus.agreement is not None:
        pooled = corpus.agreement.pooled
        interval = f" [{pooled.kappa_ci[0]:.3f}, {pooled.kappa_ci[1]:.3f}]" if pooled.kappa_ci else ""
        kappa = "-" if pooled.kappa is None else f"{pooled.kappa:.3f}"
        print(f"agreement with {', '.join(config.reference)} over {len(corpus.agreement.videos)} video(s): kappa "
              f"{kappa}{interval}; agreement.json and agreement.md in {corpus.out / 'agreement'}")
    for failed in corpus.failed:
        print(f"failed: {failed.video}: {failed.error}", file=sys.stderr)
    return min(len(corpus.failed), 100)


def cmd_agree(args: argparse.Namespace) -> int:
    from babyface.video.agreement import agree, agreement_markdown

    config = build_config(AgreeConfig, args)
    report = agree(config)
    sys.stdout.write(agreement_markdown(report, ", ".join(config.codes), ", ".join(config.reference)))
    if config.out:
        print(f"agreement.json and agreement.md in {config.out}")
    return 0


def print_video_summary(summary: dict) -> None:
    print(f"{summary['video']}: {summary['frames']} frames, {summary['faces']} face(s), {summary['frames_per_second']} frames/s; "
          f"timeline.csv and timeline.png in {summary['out']}" + (f"; annotated video {summary['annotated']}" if summary["annotated"] else "")
          + (f"; {summary['measured']}" if summary.get("measured") else ""))


def attach_measures(predictions: Sequence[Any], paths: Sequence[Path], config: PredictConfig, framing: str) -> None:
    """Each prediction gets the measures of its photo's largest face (the one classified), or none when it was skipped;
    ``framing`` is how the photos were classified (face or whole, --framing auto resolved for the run)."""
    from babyface.measures.photos import measure_photos

    rows, _, tally = measure_photos(paths, config.faces, framing, strict=config.strict)
    largest = {row.file: row.measures for row in rows if row.face == 0}
    for prediction in predictions:
        prediction.measures = largest.get(prediction.file)
    print(tally.summary(), file=sys.stderr)


def cmd_measure(args: argparse.Namespace) -> int:
    from babyface.inference.classifier import collect_inputs
    from babyface.measures.photos import format_measures, measure_photos
    from babyface.outputs import write_text
    from babyface.video.analysis import VideoAnalysis, analyse_videos, is_video_file

    config = build_config(MeasureConfig, args)
    videos = [i for i in config.inputs if is_video_file(i)]
    images = [i for i in config.inputs if not is_video_file(i)]
    unsmoothed = VideoAnalysis(config.faces, config.video, smooth=1, out=config.out, overwrite=config.overwrite)
    for summary in analyse_videos(None, videos, unsmoothed, config.progress, measure=True):
        print_video_summary(summary)
    if not images:
        return 0
    rows, skipped, tally = measure_photos(collect_inputs(images), config.faces, config.framing, strict=config.strict)
    text = format_measures(rows, config.format)
    if config.output:
        write_text(config.output, text)
        print(f"measures of {len(rows)} face(s) written to {config.output}")
    else:
        sys.stdout.write(text)
    print(tally.summary() + (f"; {len(skipped)} file(s) skipped (not decodable)" if skipped else ""), file=sys.stderr)
    return 0 if rows else 1


def refuse_non_finite(predictions: Sequence[Any]) -> None:
    """BabyfaceError for the first prediction whose probabilities are not all finite: NaN is not JSON, nor an answer."""
    bad = next((p for p in predictions if not all(map(math.isfinite, p.probabilities.values()))), None)
    if bad is not None:
        raise BabyfaceError(f"{bad.file}: the model gave non-finite probabilities (NaN); try --precision fp32, "
                            "or retrain or restore the bundle")


def cmd_export(args: argparse.Namespace) -> int:
    from babyface.inference.export import export_run

    result = export_run(build_config(ExportConfig, args))
    parity = result["parity"]
    print(f"{result['precision']} ONNX model: {result['onnx']}")
    print(f"parity with PyTorch on {parity['images']} {parity['source']} images: max |logit difference| "
          f"{parity['max_abs_logit_diff']:.2e}, same top class for {parity['top1_agreement']:.1%}  ({result['parity_file']})")
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    from babyface.bundle.ensemble import create_ensemble

    config = build_config(EnsembleConfig, args)
    out = create_ensemble(config)
    print(f"ensemble of {len(config.runs)} runs: {out}  (use it wherever a RUN is accepted)")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from babyface.evaluation.explain import explain_files
    from babyface.inference.classifier import collect_inputs

    config = build_config(ExplainConfig, args)
    records = explain_files(config, collect_inputs(config.inputs))
    for r in records:
        print(f"{r['file']}: predicted {r['predicted']} ({r['confidence']:.2f}), Grad-CAM of {r['explained_class']} -> {r['overlay']}")
    out = config.out or RunFolder(config.run).explanations
    print(f"{len(records)} Grad-CAM overlay(s) in {out}")
    return 0 if records else 1


def cmd_report(args: argparse.Namespace) -> int:
    from babyface.evaluation.report import build_report

    report, model_card = build_report(build_config(ReportConfig, args))
    print(f"report: {report}\nmodel card: {model_card}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from babyface.evaluation.compare import compare_runs, format_comparison
    from babyface.outputs import write_json

    config = build_config(CompareConfig, args)
    result = compare_runs(config.runs, config.group_by, config.manifest, config.bootstrap, config.seed)
    print(format_comparison(result))
    if config.output:
        write_json(config.output, result)
        print(f"comparison written to {config.output}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from babyface.serve.app import serve

    serve(build_config(ServeConfig, args))
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from babyface.watch import watch

    counts = watch(build_config(WatchConfig, args))
    print(f"watched {counts['frames']} frame(s): {counts['faces']} face(s), {counts['events']} event(s)", file=sys.stderr)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from babyface.models import list_models, model_info

    config = build_config(ModelsConfig, args)
    print(f"{'model':<10}{'params':>13}{'GFLOPs':>10}  description   (at {config.image_size}×{config.image_size}, {config.num_classes} classes)")
    for name in list_models():
        info = model_info(name, num_classes=config.num_classes, image_size=config.image_size)
        print(f"{name:<10}{info['params']:>13,}{info['flops'] / 1e9:>10.3f}  {info['description']}")
    return 0


def cmd_data_audit(args: argparse.Namespace) -> int:
    from babyface.tools.audit import AuditConfig, audit_dataset, write_audit

    config = build_config(AuditConfig, args)
    config.out = config.out or str(Path(config.data) / "audit")
    report = audit_dataset(config)
    out = write_audit(report, config.out, config)
    print(f"{report.stats['images']} images, {report.stats['unreadable']} unreadable; duplicate clusters: "
          f"{report.count('leakage')} leakage, {report.count('conflict')} conflicting labels, {report.count('duplicate')} within a class"
          + (f"; {len(report.group_leakage)} {config.group_by} groups in more than one split" if config.group_by else ""))
    print(f"report: {out / 'audit.md'}  (audit.json, sheets/)")
    return 1 if config.strict and report.has_leakage_or_conflict else 0


def cmd_data_split(args: argparse.Namespace) -> int:
    from babyface.tools.split import SplitConfig, split_dataset

    config = build_config(SplitConfig, args)
    summary = split_dataset(config)
    counts = ", ".join(f"{key} {n}" for key, n in summary["counts"].items())
    print(f"{summary['groups']} groups kept whole; {counts}; every image's split in {summary['layout']}")
    return 0


def cmd_data_crop(args: argparse.Namespace) -> int:
    from babyface.tools.crop import CropConfig, crop_faces

    config = build_config(CropConfig, args)
    summary = crop_faces(config)
    print(f"{summary['crops']} face crop(s) from {summary['images']} images; {summary['no_face']} without a face "
          f"(no_face.txt), {summary['unreadable']} unreadable; crops.csv in {summary['out']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from babyface.tools.demo import DemoConfig, run_demo

    config = build_config(DemoConfig, args)
    run_demo(config)
    return 0


# ---------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="babyface", description="Infant facial emotion recognition (happy / neutral / sad).")
    parser.add_argument("--version", action="version", version=f"babyface {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable, config: type[ConfigModel], help: str, parent: Any = sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help, description=help)
        p.set_defaults(func=func, config_model=config)
        add_config_flags(p, config)
        return p

    p = command("synth", cmd_synth, SynthCommand, "generate synthetic infant faces in the BabyFace layout")
    p.add_argument("--quiet", dest="progress", action="store_false", default=argparse.SUPPRESS,
                   help="no progress bar, the same as --no-progress (default: off)")
    p = command("train", cmd_train, TrainConfig, "train a model on DATA and write a run folder with the model bundle")
    p.add_argument("--resume", metavar="RUN", help="continue the interrupted run in RUN from RUN/checkpoint.pt with its "
                   "own config.yaml; flags given as well override it, e.g. more --epochs (default: empty = a new run)")
    p = command("cv", cmd_cv, CvConfig, "cross-validation: one training per fold (any train option), whole --group-by "
                "groups per fold, pooled out-of-fold results with group-level intervals, a summary, a plot and a report")
    p.add_argument("--resume", metavar="OUT", help="continue the interrupted cross-validation in OUT with its own "
                   "cv_config.yaml: finished folds are kept, an interrupted one continues from its checkpoint (default: "
                   "empty = a new cross-validation)")
    command("evaluate", cmd_evaluate, EvalConfig, "evaluate a trained run on a test set")
    command("predict", cmd_predict, PredictConfig,
            "predict the emotion in image files or folders, or of every face over time in videos")
    command("code", cmd_code, CodeConfig, "code a corpus of videos as a lab does: the infant's affect every epoch "
            "(positive / neutral / negative / uncodable) as CSV, ELAN, BORIS and Datavyu files, with per-episode summaries; "
            "the exit status is the number of videos that failed")
    command("agree", cmd_agree, AgreeConfig, "agreement between two codings of the same videos (babyface's and a "
            "coder's, or two coders'): time-unit kappa with a tolerance, percent and per-code agreement, confusion, "
            "intervals over videos")
    command("measure", cmd_measure, MeasureConfig, "measure each face in photos and videos: eye openness, smile, brow "
            "lowering, frown, mouth opening, head pose (Baby FACS action-unit proxies; no trained run needed)")
    command("export", cmd_export, ExportConfig, "export a run's model to ONNX (optionally int8), checked against PyTorch")
    command("ensemble", cmd_ensemble, EnsembleConfig, "combine runs into one model that averages their calibrated probabilities")
    command("explain", cmd_explain, ExplainConfig, "Grad-CAM heatmaps over images: which region drove the prediction")
    command("report", cmd_report, ReportConfig, "one self-contained report.html and a model_card.md for an evaluated run")
    command("compare", cmd_compare, CompareConfig, "compare evaluated runs on the same test set: results table, McNemar's test and, with groups, a paired "
            "group bootstrap")
    command("serve", cmd_serve, ServeConfig, "a web page and JSON API: drop photos or use the webcam, see each face's emotion")
    command("watch", cmd_watch, WatchConfig, "baby monitor: follow the faces in a camera, video file or stream until "
                                             "stopped, with JSON-line events when a label changes or stays sad")
    command("models", cmd_models, ModelsConfig, "list registered models with parameters and FLOPs")

    data = sub.add_parser("data", help="audit, split and crop datasets", description="audit, split and crop datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    command("audit", cmd_data_audit, AuditConfig,
            "report image statistics and duplicates within classes, across classes and across splits", data_sub)
    command("split", cmd_data_split, SplitConfig,
            "write a stratified train/val/test layout in which every group stays whole in one split", data_sub)
    command("crop", cmd_data_crop, CropConfig, "cut square face crops out of photos, keeping the class layout", data_sub)

    command("demo", cmd_demo, DemoConfig,
            "synthesise a dataset, train the fast recipe's model (xception-mini; --models adds resnet18 or cnn), evaluate it "
            "on the synthetic test faces, print a results table")
    return parser


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
