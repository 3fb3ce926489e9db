"""One self-contained HTML report and a model card for a trained, evaluated run.

Reads what train and evaluate wrote (model.json, history.csv, splits.csv, evaluation/*), adds Grad-CAMs of
the most confident mistakes, and inlines every figure as a base64 PNG so that report.html opens anywhere.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from babyface.bundle.single import read_metadata
from babyface.config import ReportConfig
from babyface.data.images import load_rgb
from babyface.errors import BabyfaceError, ImageDecodeError, OutputExistsError
from babyface.evaluation.affect import format_aucs
from babyface.metrics import groups_text, interval_text, quoted_interval
from babyface.outputs import write_text
from babyface.run import (
    MODEL_CARD_FILE,
    REPORT_FILE,
    DataRecord,
    EvaluationFiles,
    EvaluationMetrics,
    PredictionRow,
    RunFolder,
    TestScores,
    read_evaluation_metrics,
    read_predictions,
)

log = logging.getLogger("babyface")

CSS = """
body { font: 15px/1.5 -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; color: #1d2330;
       max-width: 1080px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin-top: 40px; border-bottom: 2px solid #e3e7ee;
  padding-bottom: 4px; } h3 { font-size: 16px; margin-bottom: 6px; }
.lede { color: #5a6475; margin: 0 0 16px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { flex: 1 1 180px; background: #f5f7fa; border-radius: 8px; padding: 12px 16px; }
.card .value { font-size: 24px; font-weight: 600; } .card .label { color: #5a6475; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { padding: 5px 12px; text-align: right; border-bottom: 1px solid #e3e7ee; white-space: nowrap; }
th { background: #f5f7fa; } th:first-child, td:first-child { text-align: left; }
tr.small td { color: #8a93a3; } .neg { color: #c0392b; } .pos { color: #1e8449; }
img.figure { max-width: 100%; border: 1px solid #e3e7ee; border-radius: 6px; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 14px; }
.gallery figure { margin: 0; background: #f5f7fa; border-radius: 8px; padding: 8px; }
.gallery img { width: 105px; height: 105px; object-fit: contain; image-rendering: auto; background: #fff; }
.gallery figcaption { font-size: 13px; } .note { color: #5a6475; font-size: 13px; }
.warning { background: #fff4e5; border-left: 4px solid #e67e22; padding: 8px 14px; border-radius: 4px; }
.row { display: flex; flex-wrap: wrap; gap: 40px; align-items: flex-start; } .row > div { flex: 1 1 300px; }
img.narrow { max-width: 520px; }
pre { background: #f5f7fa; padding: 12px; border-radius: 6px; font-size: 12px; overflow-x: auto; }
"""


# --------------------------------------------------------------------------- collecting the facts


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def collect_facts(run: Path, eval_dir: Path) -> dict:
    """Everything the report and the model card show, read from the run and evaluation folders."""
    folder = RunFolder(run)
    meta = read_metadata(run)
    if not (eval_dir / EvaluationFiles.METRICS).is_file():
        raise BabyfaceError(f"{eval_dir}: no {EvaluationFiles.METRICS}; run 'babyface evaluate {run} DATA' first (or pass --eval DIR)")
    manifest = folder.split_manifest()
    splits = Counter((row.split, row.label) for row in manifest.rows) if manifest else Counter()
    predictions = eval_dir / EvaluationFiles.PREDICTIONS
    return {"run": run, "eval": eval_dir, "meta": meta, "metrics": read_evaluation_metrics(eval_dir), "splits": splits,
            "history": read_csv_rows(folder.history), "subgroups": read_json(eval_dir / EvaluationFiles.SUBGROUPS),
            "predictions": read_predictions(predictions) if predictions.is_file() else []}


def confident_mistakes(predictions: list[PredictionRow], n: int) -> list[PredictionRow]:
    """The ``n`` wrong predictions with the highest probability for the predicted class."""
    return sorted((r for r in predictions if not r.correct), key=lambda r: -r.confidence)[:n]


def gallery_items(facts: dict, n: int, device: str) -> list[dict]:
    """Original and Grad-CAM (of the predicted class) for each confident mistake whose file can be found."""
    from babyface.evaluation.explain import Explainer

    mistakes = confident_mistakes(facts["predictions"], n)
    if not mistakes or facts["meta"].is_ensemble:  # Grad-CAM explains one model, not an ensemble
        return []
    explainer = Explainer(facts["run"], device)
    root = Path(facts["metrics"].data_root)
    items = []
    for row in mistakes:
        path = root / row.file if (root / row.file).is_file() else Path(row.file)
        try:
            explanation = explainer.explain(path)
            original = np.asarray(load_rgb(path))
        except (ImageDecodeError, OSError) as exc:
            log.warning("gallery: skipped %s (%s)", row.file, exc)
            continue
        items.append({"row": row, "original": original, "overlay": explanation.overlay})
    return items


# --------------------------------------------------------------------------- HTML


def png_data_uri(source: Path | np.ndarray) -> str:
    """A PNG file or an HxWx3 array as a data: URI."""
    if isinstance(source, Path):
        data = source.read_bytes()
    else:
        buffer = io.BytesIO()
        Image.fromarray(source).save(buffer, format="PNG")
        data = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure(path: Path, alt: str, css: str = "figure") -> str:
    if not path.is_file():
        return f'<p class="note">({html.escape(path.name)} not found)</p>'
    return f'<img class="{css}" src="{png_data_uri(path)}" alt="{html.escape(alt)}">'


def table(header: list[str], rows: list[list], row_classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def gap_cell(gap: float) -> str:
    css = "neg" if gap < -0.005 else "pos" if gap > 0.005 else ""
    return f'<span class="{css}">{gap:+.3f}</span>'


def card(value: str, label: str) -> str:
    return f'<div class="card"><div class="value">{value}</div><div class="label">{html.escape(label)}</div></div>'


def section_summary(facts: dict) -> str:
    m: EvaluationMetrics = facts["metrics"]
    cal = m.calibration
    cards = [card(f"{m.accuracy:.1%}", f"test accuracy, 95% CI {ci_text(m, 'accuracy', percent=True)}"),
             card(f"{m.macro_f1:.3f}", f"test macro-F1, 95% CI {ci_text(m, 'macro_f1')}"),
             card(f"{cal.ece_after:.3f}", f"test ECE at T = {cal.temperature:.2f} ({cal.ece_before:.3f} at T = 1)"),
             card(str(m.n), "test images" + (f" of {m.n_groups} groups" if m.quote == "group" else ""))]
    return f'<div class="cards">{"".join(cards)}</div><p class="note">{html.escape(interval_note(m))}</p>'


def interval_note(metrics: TestScores) -> str:
    """Which intervals the numbers carry and which to quote (report, model card and cross-validation summary)."""
    if metrics.quote == "group":
        return (f"The accuracy and macro-F1 intervals resample whole groups ({groups_text(metrics.model_dump())}): quote "
                "these, because images of one infant or one video are not independent. Resampling images instead, as if "
                f"independent, gives accuracy {ci_text(metrics, 'accuracy', True, 'image')} and macro-F1 "
                f"{ci_text(metrics, 'macro_f1', level='image')}; per-class intervals resample images.")
    return ("The intervals resample test images, which treats them as independent: when several images show the same "
            "infant or come from one video they are too narrow; evaluate with --group-by (a manifest column, or "
            "near-duplicates) to get intervals over whole groups.")


def ci_text(metrics: TestScores, key: Literal["accuracy", "macro_f1"], percent: bool = False, level: str = "quoted") -> str:
    """'71.0% – 78.3%': the quoted interval of ``key`` (group-level when groups are known), or the image-level one."""
    interval = quoted_interval(metrics, key) if level == "quoted" else getattr(metrics, f"{key}_ci")
    if not interval:
        return "not computed"
    return f"{interval[0]:.1%} – {interval[1]:.1%}" if percent else f"{interval[0]:.3f} – {interval[1]:.3f}"


def section_config(facts: dict) -> str:
    meta, training = facts["meta"], facts["meta"].training
    keys = ["model", "model_args", "epochs", "batch_size", "optimizer", "lr", "weight_decay", "scheduler",
            "label_smoothing", "class_balance", "seed"]
    config = meta.training_config().to_dict() if training else {}  # an ensemble records no training config
    rows = [[html.escape(k), html.escape(str(config[k]))] for k in keys if k in config]
    rows.append(["best epoch", html.escape(_known(meta.metrics.best_epoch, ""))])
    rows.append(["temperature", f"{meta.temperature:.3f}"])
    if meta.is_ensemble:
        rows.append(["ensemble of", html.escape(", ".join(f"{m.name} ({m.arch.name}, T = {m.temperature:.3f})"
                                                          for m in meta.members))])
    full = html.escape(json.dumps(training, indent=2))
    return (table(["option", "value"], rows) +
            f"<details><summary>full training configuration</summary><pre>{full}</pre></details>")


def section_data(facts: dict) -> str:
    classes = facts["meta"].classes
    splits = [s for s in ("train", "val", "test") if any(facts["splits"][(s, c)] for c in classes)]
    rows = [[html.escape(c), *(str(facts["splits"][(s, c)]) for s in splits), str(sum(facts["splits"][(s, c)] for s in splits))]
            for c in classes]
    rows.append(["<b>all</b>", *(f"<b>{sum(facts['splits'][(s, c)] for c in classes)}</b>" for s in splits),
                 f"<b>{sum(facts['splits'].values())}</b>"])
    data = facts["meta"].data
    note = (f'<p class="note">Data: {html.escape(data.root or "?")}; {data.skipped or 0} undecodable '
            f'file(s) skipped in training. Evaluated on {html.escape(facts["metrics"].data)}.</p>')
    return table(["class", *splits, "total"], rows) + note


def section_per_class(facts: dict) -> str:
    rows = [[html.escape(name), interval_text(r.precision, r.precision_ci), interval_text(r.recall, r.recall_ci),
             interval_text(r.f1, r.f1_ci), str(r.support)] for name, r in facts["metrics"].per_class.items()]
    return table(["class", "precision [95% CI]", "recall [95% CI]", "F1 [95% CI]", "support"], rows)


def section_calibration(facts: dict) -> str:
    cal, val = facts["metrics"].calibration, facts["meta"].calibration
    rows = [[f"test ECE ({cal.bins} bins)", f"{cal.ece_before:.4f}", f"{cal.ece_after:.4f}"],
            ["test NLL", f"{cal.nll_before:.4f}", f"{cal.nll_after:.4f}"]]
    if val.nll_before is not None and val.nll_after is not None:
        rows.append(["validation NLL (where T was fitted)", f"{val.nll_before:.4f}", f"{val.nll_after:.4f}"])
    text = (f"<p>Temperature scaling divides the logits by T = {cal.temperature:.3f}, fitted on the validation "
            "split; it changes confidences, never the predicted class.</p>")
    return text + table(["", "before (T = 1)", "after"], rows) + figure(facts["eval"] / EvaluationFiles.RELIABILITY_PNG,
                                                                       "reliability diagram")


def section_subgroups(facts: dict) -> str:
    result = facts["subgroups"]
    if not result:
        return ('<p class="note">Not evaluated by subgroup. Run <code>babyface evaluate RUN DATA --metadata CSV '
                '--by COLUMN</code> to add this section.</p>')
    parts = [f'<p class="note">{result["matched"]} test images matched in {html.escape(result["metadata"])}'
             f'{", " + str(result["unmatched"]) + " without a row" if result["unmatched"] else ""}. Grey rows: fewer than '
             f'{result["small_group"]} images, too few to trust. Gap = group minus overall.</p>']
    for column, groups in result["columns"].items():
        rows = [[html.escape(v), str(g["n"]), interval_text(g["accuracy"], g["accuracy_ci"]), gap_cell(g["accuracy_gap"]),
                 interval_text(g["macro_f1"], g["macro_f1_ci"]), gap_cell(g["macro_f1_gap"])] for v, g in groups.items()]
        parts.append(f"<h3>by {html.escape(column)}</h3>" + table(
            [column, "n", "accuracy [95% CI]", "gap", "macro-F1 [95% CI]", "gap"], rows,
            ["small" if g["small"] else "" for g in groups.values()]))
    return "".join(parts)


def section_gallery(items: list[dict]) -> str:
    if not items:
        return '<p class="note">No mistakes to show (or their image files were not found).</p>'
    figures = []
    for item in items:
        row = item["row"]
        caption = (f"<b>{html.escape(row.true)}</b> predicted as <b>{html.escape(row.predicted)}</b> "
                   f"({row.confidence:.2f})<br><span class='note'>{html.escape(row.file)}</span>")
        figures.append(f'<figure><img src="{png_data_uri(item["original"])}" alt="image"> '
                       f'<img src="{png_data_uri(item["overlay"])}" alt="Grad-CAM"><figcaption>{caption}</figcaption></figure>')
    return ('<p>Left: the image; right: Grad-CAM of the predicted class (red = regions that pushed the model towards its '
            f'wrong answer).</p><div class="gallery">{"".join(figures)}</div>')


def render_row(sections: list[tuple[str, str]]) -> str:
    """One section, or several side by side (they wrap on a narrow window)."""
    parts = [f"<div><h2>{html.escape(name)}</h2>{content}</div>" for name, content in sections]
    return parts[0] if len(parts) == 1 else f'<div class="row">{"".join(parts)}</div>'


def render_html(facts: dict, gallery: list[dict]) -> str:
    meta, m = facts["meta"], facts["metrics"]
    title = f"babyface report: {meta.arch.name} ({facts['run'].name})"
    sections = [
        [("Summary", section_summary(facts))],
        [("Configuration", section_config(facts)), ("Dataset", section_data(facts))],
        [("Learning curves", figure(RunFolder(facts["run"]).learning_curves, "learning curves"))],
        [("Confusion matrix", figure(facts["eval"] / EvaluationFiles.CONFUSION_PNG, "confusion matrix", "figure narrow")),
         ("Per-class results", section_per_class(facts))],
        [("Calibration", section_calibration(facts))],
        [("Subgroups", section_subgroups(facts))],
        [("Most confident mistakes", section_gallery(gallery))],
    ]
    body = "".join(render_row(row) for row in sections)
    how = f"cluster bootstrap over {m.n_groups} groups" if m.quote == "group" else "stratified bootstrap over images"
    lede = (f"Classes {_classes_text(meta)}; {m.n} test images; 95% intervals: {how}, "
            f"{m.resamples} resamples. babyface {html.escape(str(meta.babyface_version))}.")
    warning = ('<p class="warning">Research software, <b>not a clinical tool</b>: a facial expression is not an emotion, '
               "and these numbers hold only for data like the test set.</p>")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f'<body><h1>{html.escape(title)}</h1><p class="lede">{lede}</p>{warning}{body}</body></html>\n')


# --------------------------------------------------------------------------- model card


INPUT_COLOUR = {"rgb": " in colour", "gray": " of luminance only (trained with --color gray: colour is ignored)",
                "mixed": " (ensemble members in colour and in luminance only)"}


def _classes_text(meta) -> str:
    decided = ", ".join(meta.decides_over)
    if not meta.decision_classes:
        return decided
    return f"{decided} (decisions over these; it also learned {', '.join(c for c in meta.classes if c not in meta.decides_over)})"


def render_model_card(facts: dict) -> str:
    meta, m = facts["meta"], facts["metrics"]
    cal, data = m.calibration, meta.data
    lines = [
        f"# Model card: {meta.arch.name} ({facts['run'].name})", "",
        "## Intended use",
        f"Research on infant facial expression: classifies a face photo as {_classes_text(meta)}. For "
        "developmental-psychology and affective-computing research and for prototyping baby-monitor features.", "",
        "**Not a clinical tool**: a facial expression is not an emotion, and predictions must not drive care "
        "decisions or any judgement about an individual child.", "",
        "## Training data",
        f"{_known(data.train)} training and {_known(data.val)} validation images from `{data.root or '?'}` "
        f"({data.skipped or 0} skipped), resized to {meta.image_size}×{meta.image_size}; test set: {m.data} "
        f"({m.n} images).", *final_fit_lines(data), *source_lines(data), *compute_lines(meta, m), "",
        "## Metrics (test set, 95% bootstrap intervals)",
        f"- accuracy {interval_text(m.accuracy, quoted_interval(m, 'accuracy'))}",
        f"- macro-F1 {interval_text(m.macro_f1, quoted_interval(m, 'macro_f1'))}",
        f"- {interval_note(m)}",
        f"- expected calibration error ({cal.bins} bins) {cal.ece_before:.3f} before, "
        f"{cal.ece_after:.3f} after temperature scaling (T = {cal.temperature:.3f})",
        *(f"- {line}" for line in format_aucs(m.affect_auc)), "",
        "| class | precision | recall | F1 | support |", "|---|---|---|---|---|",
        *(f"| {name} | {interval_text(r.precision, r.precision_ci)} | {interval_text(r.recall, r.recall_ci)} "
          f"| {interval_text(r.f1, r.f1_ci)} | {r.support} |" for name, r in m.per_class.items()), "",
        "## Subgroup results", *model_card_subgroups(facts["subgroups"]), "",
        "## Limitations and known biases",
        "- Accuracy holds only for images like the test set; infants of other ages, ethnicities, lighting and camera "
        "set-ups may see lower accuracy. Measure it with `babyface evaluate --metadata CSV --by COLUMN`.",
        "- The reference BabyFace data is about 70% White infants and mostly frames of a few videos; adjacent frames "
        "on both sides of a random split inflate test accuracy.",
        "- Subgroups with fewer than 30 test images give intervals too wide to conclude anything.",
        f"- Input is {meta.image_size}×{meta.image_size} pixels{INPUT_COLOUR[meta.color]}: fine "
        "detail of eyes and brows is lost.",
        "- Confidence is calibrated on the validation split only; recalibrate on data from a new setting.",
    ]
    return "\n".join(lines) + "\n"


def _known(value: int | None, unknown: str = "?") -> str:
    return unknown if value is None else str(value)


def final_fit_lines(data: DataRecord) -> list[str]:
    """The model to keep was trained on every image but the validation share: its accuracy comes from elsewhere."""
    if data.test != 0:
        return []
    return ["", "No test share was held out (`--test-fraction 0`): the model learned from every image but the "
                "validation share, so the metrics below are on images other than its training data only if the test "
                "set came from elsewhere. Its accuracy on infants of sources it never saw is measured by "
                "`benchmarks/cross_source.py` (docs/results.md)."]


def source_lines(data: DataRecord) -> list[str]:
    """The training images of each source and class, and what was done where a source lacks a class."""
    coverage = data.coverage
    if not coverage:
        return []
    classes = list(next(iter(coverage.values())))
    lines = ["", f"Sources (training images per class; missing-class rule `{data.missing_classes or '?'}`, "
                 f"sampler `{data.class_balance or '?'}`):", "",
             "| source | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    lines += [f"| {name} | " + " | ".join(str(row.get(c, 0) or "—") for c in classes) + " |" for name, row in coverage.items()]
    return lines


def compute_lines(meta, metrics: EvaluationMetrics) -> list[str]:
    """How the model was trained and evaluated to compute: number format, layout, hardware."""
    lines = []
    if meta.compute is not None:
        c = meta.compute
        lines.append(f"Trained in {c.precision} ({c.precision_reason}), {'channels-last' if c.channels_last else 'NCHW'}, "
                     f"on {c.device}: {c.hardware}. Weights are stored in fp32.")
    if metrics.precision:
        lines.append(f"Evaluated with the {metrics.backend} back end in {metrics.precision}.")
    return ["", *lines] if lines else []


def model_card_subgroups(result: dict | None) -> list[str]:
    if not result:
        return ["Not evaluated by subgroup (no `--by` evaluation found)."]
    lines = []
    for column, groups in result["columns"].items():
        lines += ["", f"By `{column}`:", "", "| group | n | accuracy | gap | macro-F1 | gap |", "|---|---|---|---|---|---|"]
        lines += [f"| {v}{' (small)' if g['small'] else ''} | {g['n']} | {interval_text(g['accuracy'], g['accuracy_ci'])} | "
                  f"{g['accuracy_gap']:+.3f} | {interval_text(g['macro_f1'], g['macro_f1_ci'])} | {g['macro_f1_gap']:+.3f} |"
                  for v, g in groups.items()]
    return lines


def build_report(config: ReportConfig) -> tuple[Path, Path]:
    """Write report.html and model_card.md into ``config.out`` (default: the run folder)."""
    run = Path(config.run)
    facts = collect_facts(run, Path(config.eval) if config.eval else RunFolder(run).evaluation)
    out = Path(config.out) if config.out else run
    report, model_card = out / REPORT_FILE, out / MODEL_CARD_FILE
    if report.exists() and not config.overwrite:
        raise OutputExistsError(f"{report}: exists; pass --overwrite to replace it or choose another --out")
    gallery = gallery_items(facts, config.gallery, config.device)
    write_text(report, render_html(facts, gallery))
    write_text(model_card, render_model_card(facts))
    return report, model_card
