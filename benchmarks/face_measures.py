"""Face measures on held-out infants, beside the CNN and Baby FaceReader 9: how well MediaPipe's blendshape measures
(``babyface.measures``, named after Baby FACS action units) rank held-out infant faces, against the trained CNN on the
same images, and whether the two together beat the CNN alone.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/face_measures.py \\
        [--sets NAME=PATH ...] [--run /work/exp/runs/final] [--limit N] [--out benchmarks/results/face_measures]

Every image of the test sets (folders of class folders; default: the held-out test folders of the final run, which it
never trained on) gets
- the measures of its largest face: BlazeFace finds it (the whole image is measured when it finds none, counted), the
  landmark model confirms it or skips it (counted; a skipped face has no measures and is left out of the measures'
  AUCs, so every measure's AUC sits beside the CNN's AUC on the same images);
- the CNN's calibrated probabilities, the image classified whole as the bundle's model.json records its training
  framing (``Classifier``'s own default would be the face square), with flip test-time augmentation.

AUCs (threshold-free; a measure is used as it is, higher = the first class, never flipped after the fact):
- positive vs rest: happy against neutral + sad, scored by ``smile`` (AU12) and the CNN's p(happy); all sets pooled, and per set that has both sides;
- negative vs neutral: sad against neutral only, scored by ``brow_lower`` (AU3+4), ``frown`` (AU15),
  ``mouth_stretch`` (AU20), ``mouth_open`` (AU26/27), ``eye_squeeze`` (AU7), ``brow_raise`` (AU1) and the CNN's
  p(sad) / (p(sad) + p(neutral)); on utkf alone (one source, both classes) and pooled over cry + utk + utkf, where
  most sad faces are cry crops (cut from scene photos) and every neutral one a UTKFace crop: there class and source
  go together (labelled so);
- happy vs neutral and happy vs sad (smile and the CNN), PyAFAR's two published comparisons.
Intervals: percentile bootstrap, 2,000 resamples stratified by the two labels, seeded, of the images; the same
resamples score the measure and the CNN, so Δ (measure − CNN) has a paired interval. The groups of each set's
splits.csv (identity groups in infant-web, source photos in cry, near-duplicates in the utk sets) also give a
cluster-bootstrap interval (JSON; the widest change is printed).

Fusion: sklearn's LogisticRegression (standardised inputs, C = 1) on the CNN's log-probabilities and the ten measures
(no head pose) against the CNN alone, out of fold over the pooled measured images (StratifiedGroupKFold, 5 folds,
seeded, the groups above kept within one fold). A second logistic regression on the CNN's log-probabilities only is
the control: it learns the pooled sets' class mix and recalibrates, which fusion gets for free. Δ intervals: paired
bootstrap of the out-of-fold predictions, of images (stratified by class) and of groups.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from babyface.measures.facial import MEASURES

REPO = Path(__file__).resolve().parents[1]
EXP = Path("/work/exp")
DEFAULT_SETS = {"iw": EXP / "iw" / "test", "cry": EXP / "cry" / "test", "utk": EXP / "utk" / "test", "utkf": EXP / "utkf" / "test"}
DEFAULT_RUN = EXP / "runs" / "final"
CLASSES = ("happy", "neutral", "sad")
DETECTOR = "blazeface"
RESAMPLES = 2000
SEED = 0
FOLDS = 5
FUSION_MEASURES = tuple(m.name for m in MEASURES)  # every 0..1 measure (the head pose is left out)
POSITIVE_SCORES = ("smile",)
NEGATIVE_SCORES = ("brow_lower", "frown", "mouth_stretch", "mouth_open", "eye_squeeze", "brow_raise")
CNN_POSITIVE, CNN_NEGATIVE = "CNN p(happy)", "CNN p(sad)/(p(sad)+p(neutral))"
CONTROL, FUSED = "LR on CNN log-probs (control)", "LR on CNN log-probs + measures (fused)"

# Published figures, as their abstracts state them.
# Zaharieva, Salvadori, Messinger, Visser & Colonnesi (2024), "Automated facial expression measurement in a longitudinal
# sample of 4- and 8-month-olds: Baby FaceReader 9 and manual coding of affective expressions", Behavior Research
# Methods 56(6), 5709-5731, doi:10.3758/s13428-023-02301-3: 58 infants at 4 and 8 months, face-to-face interaction
# video, manual micro-coding of positive / negative / neutral.
# Trinhammer, Egmose, Krogh, Stuart, Væver, Brandt & Graßhof (2026), "Evaluating Open-Source Solutions for Computerized
# Inference of Infant Facial Affect", Developmental Science 29(2), e70156, doi:10.1111/desc.70156: PyAFAR's action
# units into XGBoost (supervised, trained on their own coded frames), 71 four-month-olds, IFA coding scheme. Their two
# figures are positive vs NEUTRAL and positive vs NEGATIVE, not Baby FaceReader's two comparisons.
PUBLISHED = (
    ("Baby FaceReader 9", "58 infants, 4 and 8 months, interaction video", "positive vs rest", "emotion output (valence)", 0.81),
    ("Baby FaceReader 9", "58 infants, 4 and 8 months, interaction video", "positive vs rest", "smiling AU12 alone", 0.86),
    ("Baby FaceReader 9", "58 infants, 4 and 8 months, interaction video", "negative vs neutral", "emotion output (valence)", 0.58),
    ("Baby FaceReader 9", "58 infants, 4 and 8 months, interaction video", "negative vs neutral", "brow lowering AU3+4 alone", 0.79),
    ("PyAFAR + XGBoost", "71 four-month-olds, interaction video", "positive vs neutral", "AUs → XGBoost (trained)", 0.78),
    ("PyAFAR + XGBoost", "71 four-month-olds, interaction video", "positive vs negative", "AUs → XGBoost (trained)", 0.76),
)


@dataclass
class Image:
    """One test image: where it is, its class, its group, and what the measures and the CNN made of it."""

    set: str
    file: Path
    truth: str
    group: str
    detected: bool = False
    skipped: str = ""  # "" measured; too_small / not_confirmed: the landmark model's tally reason
    measures: dict | None = None
    probs: np.ndarray | None = None  # happy, neutral, sad


# --------------------------------------------------------------------------- test images


def parse_sets(texts: list[str]) -> dict[str, Path]:
    from babyface.errors import DataError

    sets = {}
    for text in texts:
        name, sep, path = text.partition("=")
        if not sep or not name or not path:
            raise DataError(f"--sets {text!r}: write NAME=PATH")
        sets[name] = Path(path)
    return sets


def every_kth(items: list, limit: int) -> list:
    """About ``limit`` items spread over the whole (class-sorted) list, so that a quick run still sees every class."""
    if not limit or limit >= len(items):
        return items
    return [items[i * len(items) // limit] for i in range(limit)]


def split_groups(folder: Path) -> dict[str, str]:
    """Resolved file path → group, from the layout.csv (splits.csv before) that ``data split`` wrote beside a prepared
    test folder (empty when there is none)."""
    from babyface.tools.split import layout_file

    splits = layout_file(folder.parent)
    if splits is None:
        return {}
    with open(splits, newline="", encoding="utf-8") as handle:
        return {os.path.realpath(folder.parent / row["file"]): row["group"] for row in csv.DictReader(handle) if row.get("group")}


def load_images(sets: dict[str, Path], limit: int = 0) -> tuple[list[Image], dict[str, str]]:
    """Every image of the sets with a happy / neutral / sad class folder; and per set where its groups came from."""
    from babyface.data.scan import scan_class_folders

    images, group_source = [], {}
    for name, folder in sets.items():
        if not folder.is_dir():
            print(f"skip {name}: {folder} not found")
            continue
        split = scan_class_folders(folder, min_classes=1)
        groups = split_groups(folder)
        group_source[name] = "splits.csv" if groups else "none (each image its own group)"
        kept = [(s.path, split.classes[s.label]) for s in split.samples if split.classes[s.label] in CLASSES]
        for path, truth in every_kth(kept, limit):
            group = groups.get(os.path.realpath(path), f"file={Path(path).name}")
            images.append(Image(name, Path(path), truth, f"{name}:{group}"))
    return images, group_source


# --------------------------------------------------------------------------- measures and the CNN


def measure_face(rgb: np.ndarray, detect_on: np.ndarray | None = None) -> tuple[bool, str, dict | None]:
    """(a face detected, skip reason or "", the measures of the largest face or None) for an H×W×3 uint8 image:
    BlazeFace at its own threshold (on ``detect_on`` when given, e.g. a denoised copy), the whole image when it finds
    no face."""
    from babyface.measures.photos import Tally, face_boxes_of, measure_rgb

    boxes, detected = face_boxes_of(rgb if detect_on is None else detect_on, DETECTOR, None, "face")
    tally = Tally()
    found = measure_rgb(rgb, boxes[:1], tally)[0]
    if found is None:
        return detected, next(iter(tally.counts)), None
    return detected, "", found[2]


def bundle_framing(classifier):
    """The framing the bundle was trained with (model.json), to classify test images the same way."""
    from babyface.faces.framing import Framing

    record = classifier.meta.framing or {"mode": "face"}
    if record.get("mode") == "whole":
        return Framing("whole")
    return Framing("face", record.get("detector", DETECTOR), record.get("margin", 0.2), record.get("min_score"))


def open_classifier(run: Path):
    from babyface.inference.classifier import Classifier

    classifier = Classifier(run, device="cpu", tta="flip")
    missing = [c for c in CLASSES if c not in classifier.classes]
    if missing:
        raise SystemExit(f"{run}: the model does not decide over {missing}")
    return classifier


def probability_rows(classifier, probabilities: dict[str, float] | np.ndarray) -> np.ndarray:
    if isinstance(probabilities, dict):
        return np.array([probabilities[c] for c in CLASSES])
    return np.array([probabilities[classifier.classes.index(c)] for c in CLASSES])


def measure_all(images: list[Image], classifier) -> None:
    from babyface.data.images import load_rgb

    framing = bundle_framing(classifier)
    predictions, skipped = classifier.predict_files([i.file for i in images], framing=framing)
    if skipped:
        raise SystemExit(f"could not decode {skipped[:3]}")
    for image, prediction in zip(images, predictions):
        image.probs = probability_rows(classifier, prediction.probabilities)
    for number, image in enumerate(images, 1):
        image.detected, image.skipped, image.measures = measure_face(np.asarray(load_rgb(image.file)))
        if number % 100 == 0 or number == len(images):
            print(f"  measured {number}/{len(images)}", flush=True)


# --------------------------------------------------------------------------- AUCs with paired bootstrap intervals


def score_of(name: str, measures: dict) -> float:
    return sum(measures[part] for part in name.split("+"))


def resample_weights(strata: np.ndarray, n_resamples: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """n_resamples × n: how often each image is drawn. Without groups every stratum (label) is drawn with replacement
    to its own count; with groups, whole groups are drawn (as many as there are)."""
    rng = np.random.default_rng(seed)
    n = len(strata)
    if groups is not None:
        codes = np.unique(groups, return_inverse=True)[1].reshape(-1)
        g = int(codes.max()) + 1
        draws = rng.integers(0, g, size=(n_resamples, g)) + np.arange(n_resamples)[:, None] * g
        return np.bincount(draws.ravel(), minlength=n_resamples * g).reshape(n_resamples, g)[:, codes].astype(float)
    weights = np.zeros((n_resamples, n))
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        draws = rng.integers(0, len(members), size=(n_resamples, len(members))) + np.arange(n_resamples)[:, None] * len(members)
        counts = np.bincount(draws.ravel(), minlength=n_resamples * len(members)).reshape(n_resamples, len(members))
        weights[:, members] += counts
    return weights


def weighted_aucs(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The ROC AUC (ties count half) under each row of ``weights`` (a row of ones: the plain AUC); NaN without both labels."""
    pos, neg = score[positive], score[~positive]
    beats = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    wp, wn = weights[:, positive], weights[:, ~positive]
    den = wp.sum(1) * wn.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, ((wp @ beats) * wn).sum(1) / den, np.nan)


def auc(positive: np.ndarray, score: np.ndarray) -> float:
    return float(weighted_aucs(positive, score, np.ones((1, len(score))))[0])


def interval(values: np.ndarray) -> list[float]:
    from babyface.metrics import percentile_interval

    return percentile_interval(values[np.isfinite(values)])


def paired_auc(positive: np.ndarray, score: np.ndarray, reference: np.ndarray | None, weights: dict[str, np.ndarray]) -> dict:
    """AUC of ``score`` (and of ``reference`` on the same images, and their difference) with an interval per weighting."""
    record = {"auc": auc(positive, score), "positives": int(positive.sum()), "negatives": int((~positive).sum())}
    if np.ptp(score) == 0:
        record["constant"] = float(score[0])  # the same value on every face: an AUC of 0.5 that says nothing
    if reference is not None:
        record["reference_auc"] = auc(positive, reference)
        record["delta"] = record["auc"] - record["reference_auc"]
    for kind, w in weights.items():
        values = weighted_aucs(positive, score, w)
        record[f"ci_{kind}"] = interval(values)
        if reference is not None:
            ref = weighted_aucs(positive, reference, w)
            record[f"reference_ci_{kind}"] = interval(ref)
            record[f"delta_ci_{kind}"] = interval(values - ref)
    return record


@dataclass(frozen=True)
class Comparison:
    name: str  # positive_vs_rest, negative_vs_neutral, ...
    pool: str  # a label for the table
    sets: tuple[str, ...]
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    scores: tuple[str, ...]
    cnn: str
    note: str = ""


def comparisons(set_names: list[str], images: list[Image]) -> list[Comparison]:
    """Every (comparison, pool) whose two sides the loaded sets have."""
    have = {name: {i.truth for i in images if i.set == name} for name in set_names}
    out = []

    def add(name, pool, sets, positive, negative, scores, cnn, note=""):
        present = {c for s in sets for c in have.get(s, ())}
        if any(c in present for c in positive) and any(c in present for c in negative):
            out.append(Comparison(name, pool, tuple(s for s in sets if s in have), positive, negative, scores, cnn, note))

    add("positive_vs_rest", "all sets pooled", tuple(set_names), ("happy",), ("neutral", "sad"), POSITIVE_SCORES, CNN_POSITIVE)
    for name in set_names:
        add("positive_vs_rest", name, (name,), ("happy",), ("neutral", "sad"), POSITIVE_SCORES, CNN_POSITIVE)
    for name in set_names:
        if {"sad", "neutral"} <= have[name]:
            add("negative_vs_neutral", name, (name,), ("sad",), ("neutral",), NEGATIVE_SCORES, CNN_NEGATIVE)
    confounded = tuple(s for s in ("cry", "utk", "utkf") if s in have)
    if len(confounded) > 1:
        add("negative_vs_neutral", " + ".join(confounded) + " (source-confounded)", confounded, ("sad",), ("neutral",),
            NEGATIVE_SCORES, CNN_NEGATIVE, "sad mostly cry crops, neutral all UTKFace crops (utk, utkf): class and source go together")
    add("happy_vs_neutral", "all sets pooled", tuple(set_names), ("happy",), ("neutral",), ("smile",), CNN_POSITIVE)
    add("happy_vs_sad", "all sets pooled", tuple(set_names), ("happy",), ("sad",), ("smile",), CNN_POSITIVE)
    return out


def cnn_score(name: str, probs: np.ndarray) -> np.ndarray:
    happy, neutral, sad = probs[:, 0], probs[:, 1], probs[:, 2]
    if name == CNN_POSITIVE:
        return happy
    return sad / np.clip(sad + neutral, 1e-12, None)


def score_comparison(comp: Comparison, images: list[Image], n_resamples: int, seed: int) -> dict:
    chosen = [i for i in images if i.set in comp.sets and i.truth in comp.positive + comp.negative]
    positive = np.array([i.truth in comp.positive for i in chosen])
    probs = np.stack([i.probs for i in chosen])
    cnn = cnn_score(comp.cnn, probs)
    groups = np.array([i.group for i in chosen])
    everyone = {"image": resample_weights(positive, n_resamples, seed), "group": resample_weights(positive, n_resamples, seed, groups)}
    result = {"comparison": comp.name, "pool": comp.pool, "sets": list(comp.sets), "note": comp.note,
              "cnn_name": comp.cnn, "cnn_all": paired_auc(positive, cnn, None, everyone), "images": len(chosen),
              "groups": int(len(set(groups))), "scores": {}}
    used = np.array([i.measures is not None for i in chosen])
    if used.any() and positive[used].any() and not positive[used].all():
        weights = {kind: w[:, used] for kind, w in everyone.items()}
        for name in comp.scores:
            values = np.array([score_of(name, i.measures) for i, u in zip(chosen, used) if u])
            result["scores"][name] = paired_auc(positive[used], values, cnn[used], weights)
    return result


# --------------------------------------------------------------------------- fusion


def fusion_features(images: list[Image], kind: str) -> np.ndarray:
    logp = np.log(np.clip(np.stack([i.probs for i in images]), 1e-6, None))
    measures = np.array([[i.measures[m] for m in FUSION_MEASURES] for i in images])
    return {"cnn": logp, "measures": measures, "fused": np.hstack([logp, measures])}[kind]


def out_of_fold(images: list[Image], kind: str, folds: int, seed: int) -> np.ndarray:
    """Out-of-fold probabilities N×3 of a logistic regression on ``kind``'s features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = fusion_features(images, kind)
    y = np.array([CLASSES.index(i.truth) for i in images])
    groups = np.array([i.group for i in images])
    out = np.zeros((len(images), len(CLASSES)))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(x, y, groups):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
        model.fit(x[train], y[train])
        out[np.ix_(test, model.classes_)] = model.predict_proba(x[test])
    return out


def weighted_scores(y: np.ndarray, probs: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, macro-F1 (over the classes present), recall per class and the two affect AUCs under each weight row."""
    pred = probs.argmax(1)
    k = len(CLASSES)
    pair = np.zeros((len(y), k * k))
    pair[np.arange(len(y)), y * k + pred] = 1
    cm = (weights @ pair).reshape(-1, k, k)
    total = cm.sum((1, 2))
    support, predicted, right = cm.sum(2), cm.sum(1), np.diagonal(cm, axis1=1, axis2=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = right / support
        f1 = np.where(support + predicted > 0, 2 * right / (support + predicted), 0.0)
    present = np.array([np.any(y == c) for c in range(k)])
    scores = {"accuracy": right.sum(1) / total, "macro_f1": f1[:, present].mean(1)}
    for c, name in enumerate(CLASSES):
        scores[f"recall_{name}"] = recall[:, c]
    scores["auc_positive_vs_rest"] = weighted_aucs(y == 0, probs[:, 0], weights)
    kept = np.isin(y, [1, 2])
    scores["auc_negative_vs_neutral"] = weighted_aucs(y[kept] == 2, cnn_score(CNN_NEGATIVE, probs[kept]), weights[:, kept])
    return scores


def fusion(images: list[Image], n_resamples: int, seed: int, folds: int = FOLDS) -> dict:
    used = [i for i in images if i.measures is not None]
    y = np.array([CLASSES.index(i.truth) for i in used])
    groups = np.array([i.group for i in used])
    models = {"CNN alone": np.stack([i.probs for i in used]),
              CONTROL: out_of_fold(used, "cnn", folds, seed),
              "LR on measures only": out_of_fold(used, "measures", folds, seed),
              FUSED: out_of_fold(used, "fused", folds, seed)}
    weights = {"image": resample_weights(y, n_resamples, seed), "group": resample_weights(y, n_resamples, seed, groups)}
    ones = np.ones((1, len(y)))
    base = {kind: weighted_scores(y, models["CNN alone"], w) for kind, w in weights.items()}
    control = {kind: weighted_scores(y, models[CONTROL], w) for kind, w in weights.items()}
    result = {"n": len(used), "groups": int(len(set(groups))), "folds": folds, "features": ["log p(happy, neutral, sad)", *FUSION_MEASURES],
              "models": {}}
    sets = sorted({i.set for i in used}, key=[i.set for i in used].index)
    for name, probs in models.items():
        point = {k: float(v[0]) for k, v in weighted_scores(y, probs, ones).items()}
        record = {"point": point, "ci_image": {}, "delta": {}, "delta_ci_image": {}, "delta_ci_group": {}}
        for kind, w in weights.items():
            resampled = weighted_scores(y, probs, w)
            if kind == "image":
                record["ci_image"] = {k: interval(v) for k, v in resampled.items()}
            if name != "CNN alone":
                record[f"delta_ci_{kind}"] = {k: interval(v - base[kind][k]) for k, v in resampled.items()}
            if name == FUSED:  # what the measures add beyond the recalibration the control gets
                record.setdefault("vs_control_ci", {})[kind] = {k: interval(v - control[kind][k]) for k, v in resampled.items()}
        if name != "CNN alone":
            base_point = {k: float(v[0]) for k, v in weighted_scores(y, models["CNN alone"], ones).items()}
            record["delta"] = {k: point[k] - base_point[k] for k in point}
        if name == FUSED:
            control_point = {k: float(v[0]) for k, v in weighted_scores(y, models[CONTROL], ones).items()}
            record["vs_control"] = {k: point[k] - control_point[k] for k in point}
        pred = probs.argmax(1)
        record["accuracy_per_set"] = {s: float(np.mean([p == t for p, t, i in zip(pred, y, used) if i.set == s])) for s in sets}
        result["models"][name] = record
    return result


def control_delta_text(record: dict) -> str:
    parts = []
    for key, label in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
        image, group = record["vs_control_ci"]["image"][key], record["vs_control_ci"]["group"][key]
        parts.append(f"{label} {ci_text(record['vs_control'][key], image, sign=True)} image, [{group[0]:+.3f}, {group[1]:+.3f}] group")
    return "; ".join(parts)


def fusion_verdict(record: dict, key: str = "delta_ci_group") -> str:
    """'helped' when the group-bootstrap interval of the gain in accuracy and in macro-F1 lies above 0."""
    intervals = record[key] if key != "vs_control" else record["vs_control_ci"]["group"]
    gains = {k: intervals[k] for k in ("accuracy", "macro_f1")}
    if all(ci[0] > 0 for ci in gains.values()):
        return "helped beyond the intervals"
    if all(ci[1] < 0 for ci in gains.values()):
        return "hurt beyond the intervals"
    return "no difference beyond the intervals"


# --------------------------------------------------------------------------- tables


def ci_text(value: float, ci: list[float] | None, digits: int = 3, sign: bool = False) -> str:
    fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
    if not ci:
        return fmt.format(value)
    return f"{fmt.format(value)} [{fmt.format(ci[0])}, {fmt.format(ci[1])}]"


def counts_table(images: list[Image], group_source: dict[str, str]) -> str:
    lines = ["| set | images | happy · neutral · sad | no face detected (measured whole) | skipped by the landmark model | "
             "measures used | groups (from) |", "|---|---|---|---|---|---|---|"]
    names = sorted({i.set for i in images}, key=[i.set for i in images].index)
    for name in [*names, "all"]:
        chosen = [i for i in images if name == "all" or i.set == name]
        per_class = " · ".join(str(sum(i.truth == c for i in chosen)) for c in CLASSES)
        skipped = [i for i in chosen if i.skipped]
        reasons = ", ".join(f"{r.replace('_', ' ')} {sum(i.skipped == r for i in skipped)}" for r in sorted({i.skipped for i in skipped}))
        used = sum(i.measures is not None for i in chosen)
        source = group_source.get(name, "") if name != "all" else ""
        lines.append(f"| {name} | {len(chosen)} | {per_class} | {sum(not i.detected for i in chosen)} | {len(skipped)}"
                     f"{f' ({reasons})' if reasons else ''} | {used} | {len({i.group for i in chosen})}{f' ({source})' if source else ''} |")
    return "\n".join(lines)


def measure_action_unit(name: str) -> str:
    units = {m.name: m.action_unit.split(" ")[0] for m in MEASURES}
    return " + ".join(f"`{part}` ({units.get(part, '?')})" for part in name.split("+"))


def auc_table(results: list[dict]) -> str:
    lines = ["| comparison | images | score | n used (pos vs neg) | AUC [95% CI] | CNN AUC, same images | Δ measure − CNN [95% CI] |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        comparison = r["comparison"].replace("_", " ")
        c = r["cnn_all"]
        lines.append(f"| {comparison} | {r['pool']} | {r['cnn_name']} (all images) | {c['positives']} vs {c['negatives']} | "
                     f"{ci_text(c['auc'], c['ci_image'])} | – | – |")
        for name, s in r["scores"].items():
            value = f"constant {s['constant']:g} on every face" if "constant" in s else ci_text(s["auc"], s["ci_image"])
            lines.append(f"| {comparison} | {r['pool']} | {measure_action_unit(name)} | {s['positives']} vs {s['negatives']} | "
                         f"{value} | {ci_text(s['reference_auc'], s['reference_ci_image'])} | "
                         f"{ci_text(s['delta'], s['delta_ci_image'], sign=True)} |")
    return "\n".join(lines)


def fusion_table(result: dict) -> str:
    sets = list(next(iter(result["models"].values()))["accuracy_per_set"])
    lines = ["| model (out of fold) | accuracy [95% CI] | Δ acc vs CNN [image CI] [group CI] | macro-F1 [95% CI] | Δ macro-F1 [image CI] [group CI] | "
             "recall h · n · s | AUC pos vs rest | AUC neg vs neutral | accuracy " + " · ".join(sets) + " |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, m in result["models"].items():
        p, ci = m["point"], m["ci_image"]

        def delta(key, m=m):
            if not m["delta"]:
                return "–"
            return f"{ci_text(m['delta'][key], m['delta_ci_image'][key], sign=True)} [{m['delta_ci_group'][key][0]:+.3f}, {m['delta_ci_group'][key][1]:+.3f}]"

        recall = " · ".join(f"{p[f'recall_{c}']:.2f}" for c in CLASSES)
        lines.append(f"| {name} | {ci_text(p['accuracy'], ci['accuracy'])} | {delta('accuracy')} | {ci_text(p['macro_f1'], ci['macro_f1'])} | "
                     f"{delta('macro_f1')} | {recall} | {ci_text(p['auc_positive_vs_rest'], ci['auc_positive_vs_rest'])} | "
                     f"{ci_text(p['auc_negative_vs_neutral'], ci['auc_negative_vs_neutral'])} | "
                     + " · ".join(f"{m['accuracy_per_set'][s]:.3f}" for s in sets) + " |")
    return "\n".join(lines)


def published_table(results: list[dict]) -> str:
    ours = {}
    for r in results:
        if r["pool"] == "all sets pooled" or r["comparison"] == "negative_vs_neutral":
            key = (r["comparison"], r["pool"])
            ours[key] = r
    lines = ["| tool | infants | comparison | score | AUC |", "|---|---|---|---|---|"]
    lines += [f"| {tool} | {who} | {comp} | {score} | {value:.2f} |" for tool, who, comp, score, value in PUBLISHED]
    best = {"positive_vs_rest": "smile", "negative_vs_neutral": "brow_lower", "happy_vs_neutral": "smile", "happy_vs_sad": "smile"}
    for (comp, pool), r in ours.items():
        lines.append(f"| babyface CNN (this run) | held-out web photos, {pool} | {comp.replace('_', ' ').replace('happy', 'positive').replace('sad', 'negative')} "
                     f"| {r['cnn_name']} | {ci_text(r['cnn_all']['auc'], r['cnn_all']['ci_image'], 2)} |")
        s = r["scores"].get(best[comp])
        if s:
            lines.append(f"| babyface measures (MediaPipe blendshapes) | held-out web photos, {pool} | "
                         f"{comp.replace('_', ' ').replace('happy', 'positive').replace('sad', 'negative')} | {measure_action_unit(best[comp])} | "
                         f"{ci_text(s['auc'], s['ci_image'], 2)} |")
    return "\n".join(lines)


def widest_group_change(results: list[dict]) -> str:
    """How much wider the cluster-bootstrap intervals of the measures' AUCs are than the image-level ones, at most."""
    ratios = []
    for r in results:
        for s in [r["cnn_all"], *r["scores"].values()]:
            image, group = s["ci_image"][1] - s["ci_image"][0], s["ci_group"][1] - s["ci_group"][0]
            if image > 0:
                ratios.append(group / image)
    return f"cluster bootstrap over the groups: AUC intervals {min(ratios):.2f}–{max(ratios):.2f}× as wide as the image-level ones" if ratios else ""


# --------------------------------------------------------------------------- main


def add_common_arguments(parser: argparse.ArgumentParser, out: Path) -> None:
    """The options this script and night.py share."""
    parser.add_argument("--sets", action="append", default=[], metavar="NAME=PATH",
                        help="a test set: a folder of class folders (repeatable; replaces the default iw, cry, utk, utkf)")
    parser.add_argument("--run", type=Path, default=DEFAULT_RUN, help="the trained bundle (default: /work/exp/runs/final)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many images per set, spread over its classes (0: all)")
    parser.add_argument("--resamples", type=int, default=RESAMPLES, help="bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the bootstrap (night.py: and of the noise)")
    parser.add_argument("--out", type=Path, default=out, help=f"folder for {out.name}.json and {out.name}.md (aggregate numbers only)")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, REPO / "benchmarks" / "results" / "face_measures")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    import torch

    from babyface.faces.framing import describe
    from babyface.hardware import describe_hardware

    args = parse_args(argv)
    started = time.perf_counter()
    sets = parse_sets(args.sets) if args.sets else dict(DEFAULT_SETS)
    images, group_source = load_images(sets, args.limit)
    classifier = open_classifier(args.run)
    framing = bundle_framing(classifier)
    print(f"{classifier}; classified as {describe(framing.record())} (bundle's training framing; Classifier's default "
          f"would be {classifier.framing.mode})")
    measure_all(images, classifier)
    names = sorted({i.set for i in images}, key=[i.set for i in images].index)
    results = [score_comparison(c, images, args.resamples, args.seed) for c in comparisons(names, images)]
    fused = fusion(images, args.resamples, args.seed)
    verdict = fusion_verdict(fused["models"][FUSED])
    control = fusion_verdict(fused["models"][CONTROL])
    beyond = fusion_verdict(fused["models"][FUSED], "vs_control")
    elapsed = time.perf_counter() - started

    report = [
        "## Face measures on held-out infants, beside the CNN and Baby FaceReader 9", "",
        describe_hardware(torch.device("cpu")), "",
        f"Images: {', '.join(f'{n} ({sets[n]})' for n in names)}; measures of the largest BlazeFace face (whole image when none).", "",
        counts_table(images, group_source), "",
        f"AUCs: 95% percentile bootstrap, {args.resamples} resamples stratified by label, seed {args.seed}; Δ is paired "
        "(the same resamples). Measures are used as they are (higher = the first class); an AUC under 0.5 means the measure "
        "runs the other way.", "",
        auc_table(results), "",
        widest_group_change(results) + ".", "",
        f"Fusion, out of fold over the {fused['n']} measured images ({fused['groups']} groups, StratifiedGroupKFold "
        f"{fused['folds']}, seed {args.seed}); Δ intervals: paired bootstrap of images (stratified by class) and of groups.", "",
        fusion_table(fused), "",
        f"Fusion (CNN + measures) vs the CNN alone: **{verdict}** (group-bootstrap Δ of accuracy and macro-F1); "
        f"the control (LR on the CNN alone) vs the CNN alone: {control}; fusion vs the control, i.e. what the measures "
        f"add beyond recalibration: **{beyond}** ({control_delta_text(fused['models'][FUSED])}).", "",
        "Published figures (abstracts; different infants, ages, video and coding) beside this run:", "",
        published_table(results), "",
        f"{len(images)} images in {elapsed:.0f} s" + (f", at most {args.limit} per set" if args.limit else "") + ".",
    ]
    text = "\n".join(report) + "\n"
    print("\n" + text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "face_measures.md").write_text(text, encoding="utf-8")
    summary = {"settings": {"run": str(args.run), "sets": {n: str(sets[n]) for n in names}, "limit": args.limit,
                            "resamples": args.resamples, "seed": args.seed, "detector": DETECTOR, "framing": framing.record(),
                            "classifier": repr(classifier), "hardware": describe_hardware(torch.device("cpu")),
                            "seconds": round(elapsed, 1)},
               "counts": {n: {"images": sum(i.set == n for i in images), "no_face_detected": sum(i.set == n and not i.detected for i in images),
                              "skipped": sum(i.set == n and bool(i.skipped) for i in images),
                              "used": sum(i.set == n and i.measures is not None for i in images), "groups_from": group_source.get(n)}
                          for n in names},
               "aucs": results, "fusion": fused, "fusion_verdict": verdict, "control_verdict": control,
               "fusion_vs_control_verdict": beyond,
               "published": [dict(zip(("tool", "infants", "comparison", "score", "auc"), row)) for row in PUBLISHED]}
    (args.out / "face_measures.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out / 'face_measures.json'} and {args.out / 'face_measures.md'}")


if __name__ == "__main__":
    main()
