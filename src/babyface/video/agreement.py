"""Agreement between two codings of the same videos, in the statistics labs report between human coders.

Each side is a set of files (babyface's codes.csv, ELAN .eaf, BORIS .boris, Datavyu .opf or a CSV of video, start,
end, code) read into bouts per video; videos are matched by name. Both sides are cut into the same epochs (the code
at each epoch's midpoint; no bout there is ``uncodable``), and per video and pooled:

- **time-unit kappa**: scikit-learn's ``cohen_kappa_score`` over the epochs both sides coded (uncodable epochs are
  counted apart, or are a code of their own with ``include_uncodable``); with a **tolerance** of T seconds an epoch
  agrees when the other side has the same code within T seconds of it (the other side's own code is used otherwise);
- percent agreement, each code's agreement (2 × both / (first + second): the positive agreement of that code) and the
  confusion matrix;
- each code's event agreement: bouts matched one to one when they overlap by half the shorter one (each widened by
  the tolerance), 2 × matched / (first + second);
- a 95% interval for the pooled kappa and agreement by bootstrap over videos (videos, not epochs, are independent);
- per code, the ICC(A,1) of each video's share of time in it (pingouin's ``intraclass_corr``), and a Bland–Altman plot.
"""

from __future__ import annotations

import csv
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from pydantic import BaseModel
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from babyface.data.inputs import expand_inputs
from babyface.errors import BabyfaceError, DataError
from babyface.video.coding import AFFECT_CODES, CODES, UNCODABLE, Bout, merge_bouts
from babyface.video.coding_files import read_boris, read_eaf, read_opf

CODE_FILES = (".eaf", ".boris", ".opf", ".csv")


# ---------------------------------------------------------------- reading either side

def parse_map(text: str) -> dict[str, str]:
    """``--map 'smile=positive,cry=negative'``: a lab's vocabulary onto the four codes."""
    mapping = {}
    for item in (i for i in text.split(",") if i.strip()):
        name, _, code = item.partition("=")
        if code.strip() not in CODES:
            raise BabyfaceError(f"--map: {item.strip()!r} maps onto no code; map each value to one of {', '.join(CODES)}")
        mapping[name.strip()] = code.strip()
    return mapping


def collect_code_files(inputs: Sequence[str | Path]) -> list[Path]:
    """Code files given, and those in folders given (recursively; a coded corpus's summary.csv and the per-frame
    timeline.csv are not codes)."""
    return expand_inputs(inputs, lambda p: p.suffix.lower() in CODE_FILES and p.name not in NOT_CODES,
                         f"code files ({', '.join(CODE_FILES)})")


NOT_CODES = {"summary.csv", "timeline.csv", "phases.csv"}


def read_side(files: Sequence[Path], tier: str = "", mapping: dict[str, str] | None = None) -> dict[str, list[Bout]]:
    """Each video's bouts on one side: its files read, the tier chosen and the values mapped onto the codes. Where
    several files code one video (a coded corpus holds codes.csv, .eaf, .boris and .opf of each), the first of
    codes.csv, .eaf, .boris, .opf, other .csv is read."""
    chosen: dict[str, tuple[int, Path, dict[str, list[Bout]]]] = {}
    for path in files:
        rank = _preference(path)
        for video, tiers in _read_file(path).items():
            key = Path(video).stem
            if key in chosen and chosen[key][0] == rank:
                raise DataError(f"{path}: a second coding of video {key} (also in {chosen[key][1]}); give each video once per side")
            if key not in chosen or rank < chosen[key][0]:
                chosen[key] = (rank, path, tiers)
    return {key: merge_bouts([Bout(b.start, b.end, _mapped(b.code, mapping or {}, path)) for b in _chosen_tier(tiers, tier, path)])
            for key, (_, path, tiers) in sorted(chosen.items())}


def _preference(path: Path) -> int:
    return 0 if path.name == "codes.csv" else {".eaf": 1, ".boris": 2, ".opf": 3}.get(path.suffix.lower(), 4)


def _read_file(path: Path) -> dict[str, dict[str, list[Bout]]]:
    """{video: {tier: bouts}} of one file."""
    suffix = path.suffix.lower()
    if suffix == ".eaf":
        return {_eaf_video(path): read_eaf(path)}
    if suffix == ".boris":
        return {_stem(path): read_boris(path)}
    if suffix == ".opf":
        return {_stem(path): read_opf(path)}
    if suffix == ".csv":
        return _read_csv(path)
    raise DataError(f"{path}: not a file of codes; give .eaf (ELAN), .boris (BORIS), .opf (Datavyu) or .csv files")


def _stem(path: Path) -> str:
    return path.name.split(".")[0]


def _eaf_video(path: Path) -> str:
    """The video an ELAN file links (its first media file), else the file's own name."""
    from pympi.Elan import Eaf

    media = Eaf(str(path)).media_descriptors
    url = media[0].get("RELATIVE_MEDIA_URL") or media[0].get("MEDIA_URL", "") if media else ""
    return Path(url.rsplit("/", 1)[-1]).name if url else _stem(path)


def _read_csv(path: Path) -> dict[str, dict[str, list[Bout]]]:
    """babyface's codes.csv (video, tier, start, end, code, ...) or a plain CSV of video, start, end, code."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in ("video", "start", "end", "code") if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: no column {', '.join(missing)}; a CSV of codes has video, start, end, code")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read ({exc}); give a UTF-8 CSV of video, start, end, code") from exc
    videos: dict[str, dict[str, list[Bout]]] = {}
    for line, row in enumerate(rows, start=2):
        try:
            start, end = float(row["start"]), float(row["end"])
        except ValueError:
            raise DataError(f"{path}, row {line}: start and end must be seconds") from None
        tier = row.get("tier") or "affect"
        videos.setdefault(row["video"], {}).setdefault(tier, []).append(Bout(start, end, row["code"].strip()))
    return videos


def _chosen_tier(tiers: dict[str, list[Bout]], tier: str, path: Path) -> list[Bout]:
    if tier:
        if tier not in tiers:
            raise DataError(f"{path}: no tier {tier!r}; its tiers are {', '.join(tiers) or 'none'} (--tier)")
        return tiers[tier]
    if len(tiers) != 1:
        raise DataError(f"{path}: {len(tiers)} tiers ({', '.join(tiers) or 'none'}); name the affect tier with --tier")
    return next(iter(tiers.values()))


def _mapped(value: str, mapping: dict[str, str], path: Path) -> str:
    code = mapping.get(value, value)
    if code not in CODES:
        raise DataError(f"{path}: the code {value!r} is none of {', '.join(CODES)}; map it with --map '{value}=negative,...'")
    return code


# ---------------------------------------------------------------- epochs

def epoch_codes(bouts: Sequence[Bout], epoch: float, count: int) -> list[str]:
    """The code at each epoch's midpoint (``uncodable`` where no bout covers it)."""
    codes = [UNCODABLE] * count
    for i in range(count):
        t = (i + 0.5) * epoch
        for bout in bouts:
            if bout.start <= t < bout.end:
                codes[i] = bout.code
                break
    return codes


def with_tolerance(first: list[str], second: list[str], epochs: int) -> list[str]:
    """``second`` as the comparison sees it: an epoch takes ``first``'s code where ``second`` has it within
    ``epochs`` epochs, else its own."""
    out = list(second)
    for i, code in enumerate(first):
        window = second[max(0, i - epochs): i + epochs + 1]
        if code in window:
            out[i] = code
    return out


# ---------------------------------------------------------------- statistics

class EventAgreement(BaseModel):
    """Bouts of one code matched one to one across the sides (``match_events``' rule) and their agreement."""

    first: int
    second: int
    matched: int
    agreement: float | None  # 2 × matched / (first + second)


class IccRecord(BaseModel):
    """ICC(A,1) (two-way, absolute agreement, one coder: McGraw & Wong 1996) of a code's share of each video's compared
    epochs, between the two sides, with its F-based 95% interval (pingouin)."""

    icc: float
    ci: list[float]
    videos: int


class AgreementReport(BaseModel):
    """agreement.json: the options, each video and the pooled figures."""

    epoch: float
    tolerance: float
    include_uncodable: bool
    codes: list[str]
    videos: list[Agreement]
    pooled: Agreement
    only_first: list[str]
    only_second: list[str]
    icc: dict[str, IccRecord | None] = {}  # per code: the share of time agreement coder training asks ≥ .80 of


@dataclass
class Paired:
    video: str
    first: list[str]
    second: list[str]
    first_bouts: list[Bout] = field(default_factory=list)
    second_bouts: list[Bout] = field(default_factory=list)


EVENT_OVERLAP = 0.5  # two bouts of one code are one event when they overlap by half the shorter one


def match_events(first: Sequence[Bout], second: Sequence[Bout], code: str, tolerance: float = 0.0) -> EventAgreement:
    """Bouts of ``code`` matched one to one: a pair overlaps (each widened by ``tolerance`` seconds) by at least
    EVENT_OVERLAP of the shorter bout; pairs are taken greedily, largest overlap first."""
    a = [b for b in first if b.code == code]
    b = [x for x in second if x.code == code]
    pairs = []
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            overlap = min(x.end, y.end) - max(x.start, y.start) + 2 * tolerance
            if overlap >= EVENT_OVERLAP * min(x.duration, y.duration) and overlap > 0:
                pairs.append((overlap, i, j))
    used_a, used_b = set(), set()
    for _, i, j in sorted(pairs, reverse=True):
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
    total = len(a) + len(b)
    return EventAgreement(first=len(a), second=len(b), matched=len(used_a),
                          agreement=round(2 * len(used_a) / total, 6) if total else None)


def pair_videos(first: dict[str, list[Bout]], second: dict[str, list[Bout]], epoch: float, tolerance: float) -> list[Paired]:
    pairs = []
    for video in sorted(set(first) & set(second)):
        end = max([b.end for b in first[video] + second[video]] or [0.0])
        count = max(1, math.ceil(end / epoch - 1e-9))
        a, b = epoch_codes(first[video], epoch, count), epoch_codes(second[video], epoch, count)
        pairs.append(Paired(video, a, with_tolerance(a, b, int(round(tolerance / epoch))) if tolerance else b,
                            first[video], second[video]))
    return pairs


def agreement_of(video: str, first: list[str], second: list[str], include_uncodable: bool) -> Agreement:
    codes = list(CODES) if include_uncodable else list(AFFECT_CODES)
    kept = [(a, b) for a, b in zip(first, second) if include_uncodable or (a != UNCODABLE and b != UNCODABLE)]
    a = [x for x, _ in kept]
    b = [y for _, y in kept]
    matrix = confusion_matrix(a, b, labels=codes).tolist() if kept else [[0] * len(codes) for _ in codes]
    return Agreement(video=video, epochs=len(kept), uncodable_first=first.count(UNCODABLE),
                     uncodable_second=second.count(UNCODABLE), kappa=_kappa(a, b, codes),
                     agreement=round(sum(x == y for x, y in kept) / len(kept), 6) if kept else None,
                     per_code={c: _code_agreement(a, b, c) for c in codes}, confusion=matrix)


def _kappa(a: list[str], b: list[str], codes: list[str]) -> float | None:
    if not a:
        return None
    if len(set(a) | set(b)) == 1:
        return 1.0  # both sides gave one and the same code throughout: kappa is undefined, agreement complete
    value = cohen_kappa_score(a, b, labels=codes)
    return None if math.isnan(value) else round(float(value), 6)


def _code_agreement(a: list[str], b: list[str], code: str) -> float | None:
    both = sum(x == y == code for x, y in zip(a, b))
    total = a.count(code) + b.count(code)
    return round(2 * both / total, 6) if total else None


def compare(first: dict[str, list[Bout]], second: dict[str, list[Bout]], epoch: float = 1.0, tolerance: float = 0.0,
            include_uncodable: bool = False, resamples: int = 1000, seed: int = 0) -> AgreementReport:
    """Both sides compared video by video and pooled, with bootstrap intervals over videos."""
    pairs = pair_videos(first, second, epoch, tolerance)
    if not pairs:
        raise DataError(f"no video is coded on both sides (first: {', '.join(sorted(first)) or 'none'}; second: "
                        f"{', '.join(sorted(second)) or 'none'}); videos are matched by file name")
    videos = [with_events(agreement_of(p.video, p.first, p.second, include_uncodable), [p], tolerance) for p in pairs]
    pooled = with_events(pooled_agreement(pairs, include_uncodable), pairs, tolerance)
    pooled.kappa_ci, pooled.agreement_ci = bootstrap_intervals([v.confusion for v in videos], resamples, seed)
    codes = list(CODES if include_uncodable else AFFECT_CODES)
    return AgreementReport(epoch=epoch, tolerance=tolerance, include_uncodable=include_uncodable, codes=codes,
                           videos=videos, pooled=pooled, only_first=sorted(set(first) - set(second)),
                           only_second=sorted(set(second) - set(first)),
                           icc={code: share_icc(shares(pairs, code, include_uncodable)) for code in codes})


MIN_ICC_VIDEOS = 3


def shares(pairs: Sequence[Paired], code: str, include_uncodable: bool) -> list[tuple[str, float, float]]:
    """(video, first side's share, second side's share) of ``code`` among each video's compared epochs."""
    out = []
    for p in pairs:
        kept = [(a, b) for a, b in zip(p.first, p.second) if include_uncodable or UNCODABLE not in (a, b)]
        if kept:
            out.append((p.video, sum(a == code for a, _ in kept) / len(kept), sum(b == code for _, b in kept) / len(kept)))
    return out


def share_icc(values: Sequence[tuple[str, float, float]]) -> IccRecord | None:
    """ICC(A,1) of the two sides' shares over videos (None under MIN_ICC_VIDEOS videos or without variance)."""
    if len(values) < MIN_ICC_VIDEOS:
        return None
    import pandas as pd
    import pingouin

    data = pd.DataFrame([(video, side, share) for video, a, b in values for side, share in (("first", a), ("second", b))],
                        columns=["video", "side", "share"])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pingouin's own pandas deprecations, nothing about these data
        table = pingouin.intraclass_corr(data, targets="video", raters="side", ratings="share").set_index("Type")
    row = table.loc["ICC(A,1)"]
    if not np.isfinite(row["ICC"]):
        return None
    return IccRecord(icc=round(float(row["ICC"]), 4), ci=[round(float(x), 4) for x in row["CI95"]], videos=len(values))


def plot_bland_altman(report_pairs: Sequence[Paired], codes: Sequence[str], include_uncodable: bool, path: Path,
                      first: str = "first", second: str = "second") -> Path:
    """One Bland–Altman panel per code: each video's mean share of the code against the difference of the two sides'
    shares, with the bias and the 95% limits of agreement."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from babyface.outputs import save_figure

    fig, axes = plt.subplots(1, len(codes), figsize=(3.6 * len(codes), 3.4), squeeze=False)
    for ax, code in zip(axes[0], codes):
        values = shares(report_pairs, code, include_uncodable)
        means = np.array([(a + b) / 2 for _, a, b in values])
        diffs = np.array([a - b for _, a, b in values])
        ax.scatter(means, diffs, s=22, color="#3e7cb1", alpha=0.8)
        if len(diffs):
            bias, spread = float(diffs.mean()), 1.96 * float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0
            for y, style in ((bias, "-"), (bias - spread, "--"), (bias + spread, "--")):
                ax.axhline(y, color="#52606d", linestyle=style, linewidth=1)
            ax.set_title(f"{code}: bias {bias:+.3f}, limits ±{spread:.3f}", fontsize=9)
        ax.axhline(0, color="#cbd2d9", linewidth=0.8)
        ax.set_xlabel("mean share of time")
        ax.set_xlim(-0.02, 1.02)
    axes[0][0].set_ylabel(f"share: {first} − {second}")
    fig.suptitle("Bland–Altman: share of coded time in each affect, one point per video", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def with_events(agreement: Agreement, pairs: Sequence[Paired], tolerance: float) -> Agreement:
    """``agreement`` with the event agreement of each code, summed over ``pairs``' videos."""
    for code in agreement.per_code:
        matched = [match_events(p.first_bouts, p.second_bouts, code, tolerance) for p in pairs]
        first, second, both = (sum(getattr(m, k) for m in matched) for k in ("first", "second", "matched"))
        agreement.events[code] = EventAgreement(first=first, second=second, matched=both,
                                                agreement=round(2 * both / (first + second), 6) if first + second else None)
    return agreement


def pooled_agreement(pairs: Sequence[Paired], include_uncodable: bool) -> Agreement:
    return agreement_of("pooled", [c for p in pairs for c in p.first], [c for p in pairs for c in p.second], include_uncodable)


def bootstrap_intervals(confusions: Sequence[list[list[int]]], resamples: int, seed: int):
    """95% percentile intervals of the pooled kappa and agreement, resampling whole videos (epochs of one video are
    not independent); benchmarks/agreement_coverage.py measures their coverage. ``confusions`` are the videos'
    confusion matrices (scikit-learn's, computed once per video); a resample's pooled matrix is the sum of its
    videos', and its kappa Cohen's formula on that matrix, the number ``cohen_kappa_score`` gives on the pooled
    epochs (a test checks), without recounting every epoch of every resample."""
    if len(confusions) < 2 or resamples <= 0:
        return None, None
    matrices = np.array(confusions, float)
    videos = len(matrices)
    drawn = np.random.default_rng(seed).integers(0, videos, (resamples, videos))
    counts = np.stack([np.bincount(row, minlength=videos) for row in drawn])
    pooled = np.einsum("rv,vij->rij", counts, matrices)
    kappas = [k for k in map(kappa_of_confusion, pooled) if k is not None]
    totals = pooled.sum(axis=(1, 2))
    agreements = [round(float(np.trace(m) / t), 6) for m, t in zip(pooled, totals) if t > 0]
    return _interval(kappas), _interval(agreements)


def kappa_of_confusion(matrix: np.ndarray) -> float | None:
    """Cohen's kappa of a confusion matrix (rows: one side, columns: the other); None without epochs, 1.0 when both
    sides gave one and the same code throughout (as ``_kappa``)."""
    total = matrix.sum()
    if total <= 0:
        return None
    observed = np.trace(matrix) / total
    expected = float(matrix.sum(axis=1) @ matrix.sum(axis=0)) / total ** 2
    if expected >= 1.0:
        return 1.0
    return round(float((observed - expected) / (1.0 - expected)), 6)


def _interval(values: list[float]) -> list[float] | None:
    return [round(float(np.percentile(values, 2.5)), 4), round(float(np.percentile(values, 97.5)), 4)] if values else None


def agreement_markdown(report: AgreementReport, first: str, second: str) -> str:
    def ci(values: list[float] | None) -> str:
        return f" [{values[0]:.3f}, {values[1]:.3f}]" if values else ""

    def num(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    p = report.pooled
    lines = [f"# Agreement: {first} vs {second}", "",
             f"Epochs of {report.epoch:g} s, tolerance {report.tolerance:g} s, uncodable epochs "
             f"{'a code of their own' if report.include_uncodable else 'left out (counted apart)'}; intervals: 95%, "
             "bootstrap over videos.", "",
             f"**Pooled over {len(report.videos)} videos ({p.epochs} epochs compared): kappa {num(p.kappa)}{ci(p.kappa_ci)}, "
             f"agreement {num(p.agreement)}{ci(p.agreement_ci)}.**", "",
             "| video | epochs | kappa | agreement | " + " | ".join(report.codes) + " | uncodable (first / second) |",
             "|---|---|---|---|" + "---|" * len(report.codes) + "---|"]
    for v in [*report.videos, p]:
        lines.append(f"| {v.video} | {v.epochs} | {num(v.kappa)} | {num(v.agreement)} | "
                     + " | ".join(num(v.per_code[c]) for c in report.codes) + f" | {v.uncodable_first} / {v.uncodable_second} |")
    lines += ["", f"Events (bouts matched one to one when they overlap by {EVENT_OVERLAP:.0%} of the shorter, each widened "
              "by the tolerance), pooled:", "", "| code | first | second | matched | agreement |", "|---|---|---|---|---|"]
    lines += [f"| {code} | {e.first} | {e.second} | {e.matched} | {num(e.agreement)} |" for code, e in p.events.items()]
    lines += ["", "Confusion (rows: first, columns: second), pooled:", "", "| | " + " | ".join(report.codes) + " |",
              "|---|" + "---|" * len(report.codes)]
    lines += [f"| {code} | " + " | ".join(map(str, row)) + " |" for code, row in zip(report.codes, p.confusion)]
    iccs = [f"| {code} | {r.icc:.3f} [{r.ci[0]:.2f}, {r.ci[1]:.2f}] | {r.videos} |" for code, r in report.icc.items() if r]
    if iccs:
        lines += ["", "Share of coded time in each code, per video: ICC(A,1) (two-way, absolute agreement, one coder; "
                  "coder training asks ≥ .80) with its 95% interval:", "", "| code | ICC(A,1) | videos |", "|---|---|---|", *iccs]
    for side, names in (("first", report.only_first), ("second", report.only_second)):
        if names:
            lines += ["", f"Coded only on the {side} side (not compared): {', '.join(names)}"]
    return "\n".join(lines) + "\n"


def agree(config) -> AgreementReport:
    """``babyface agree``: read both sides, compare them, write agreement.json and agreement.md into ``config.out``."""
    from babyface.outputs import write_json, write_text

    if not config.reference:
        raise BabyfaceError("agree needs the other side: --reference FILE_OR_FOLDER (repeatable)")
    first = read_side(collect_code_files(config.codes), config.tier)
    second = read_side(collect_code_files(config.reference), config.reference_tier, parse_map(config.map))
    report = compare(first, second, config.epoch, config.tolerance, config.include_uncodable, config.bootstrap, config.seed)
    if config.out:
        out = Path(config.out)
        if (out / "agreement.json").exists() and not config.overwrite:
            raise BabyfaceError(f"{out}: holds an agreement already; pass --overwrite to replace it or choose another --out")
        write_json(out / "agreement.json", report.model_dump())
        plot_bland_altman(pair_videos(first, second, config.epoch, config.tolerance), report.codes, config.include_uncodable,
                          out / "bland_altman.png", "codes", "reference")
        write_text(out / "agreement.md", agreement_markdown(report, ", ".join(config.codes), ", ".join(config.reference)))
    return report


__all__ = ["Agreement", "AgreementReport", "EventAgreement", "IccRecord", "Paired", "agree", "agreement_markdown", "agreement_of",
           "bootstrap_intervals", "collect_code_files", "compare", "kappa_of_confusion", "pooled_agreement",
           "epoch_codes", "match_events", "parse_map", "plot_bland_altman", "read_side", "share_icc", "shares",
           "with_tolerance"]


class Agreement(BaseModel):
    """Agreement of one video, or pooled over videos."""

    video: str
    epochs: int  # compared (both coded, or all with include_uncodable)
    uncodable_first: int
    uncodable_second: int
    kappa: float | None
    agreement: float | None
    per_code: dict[str, float | None]
    confusion: list[list[int]]
    kappa_ci: list[float] | None = None
    agreement_ci: list[float] | None = None
    events: dict[str, EventAgreement] = {}
