"""Per-episode summaries of coded videos, in the terms labs report: time coded, the uncodable share, the proportion
of coded time in each affect, bouts (count, mean duration) and the latency to the first positive and negative affect.

Episodes (phases: face-to-face, still-face, reunion, ...) come from a CSV of video, phase, start, end; an epoch
belongs to the phase its midpoint falls in. Every video also gets the whole session as phase ``all``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from babyface.errors import BabyfaceError
from babyface.video.coding import AFFECT_CODES, UNCODABLE, Epoch, merge_bouts

WHOLE_SESSION = "all"
PHASE_COLUMNS = ("video", "phase", "start", "end")


@dataclass(frozen=True)
class Phase:
    name: str
    start: float
    end: float

    def holds(self, epoch: Epoch) -> bool:
        return self.start <= (epoch.start + epoch.end) / 2 < self.end


def read_phases(path: str | Path) -> dict[str, list[Phase]]:
    """Phases by video name (the file name, with or without its extension); overlapping phases of one video, a start
    not before its end or a missing column are refused with the row named."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in PHASE_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise BabyfaceError(f"{path}: no column {', '.join(missing)}; a phases CSV has the columns "
                                    f"{', '.join(PHASE_COLUMNS)} (times in seconds)")
            rows = list(enumerate(reader, start=2))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BabyfaceError(f"{path}: cannot read the phases CSV ({exc}); give a UTF-8 CSV with columns "
                            f"{', '.join(PHASE_COLUMNS)}") from exc
    phases: dict[str, list[Phase]] = {}
    for line, row in rows:
        phase = _phase(row, f"{path}, row {line}")
        for other in phases.get(row["video"].strip(), []):
            if phase.start < other.end and other.start < phase.end:
                raise BabyfaceError(f"{path}, row {line}: phase {phase.name!r} ({phase.start:g}-{phase.end:g} s) overlaps "
                                    f"{other.name!r} ({other.start:g}-{other.end:g} s) of the same video; make phases "
                                    "of one video disjoint")
        phases.setdefault(row["video"].strip(), []).append(phase)
    return phases


def _phase(row: dict[str, str], where: str) -> Phase:
    name = (row.get("phase") or "").strip()
    try:
        start, end = float(row["start"]), float(row["end"])
    except (TypeError, ValueError):
        raise BabyfaceError(f"{where}: start and end must be seconds, got {row.get('start')!r} and {row.get('end')!r}") from None
    if not name or name == WHOLE_SESSION:
        raise BabyfaceError(f"{where}: a phase needs a name other than {WHOLE_SESSION!r} (the whole session's)")
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
        raise BabyfaceError(f"{where}: phase {name!r} runs from {start:g} to {end:g} s; the start must be >= 0 and before the end")
    return Phase(name, start, end)


def phases_for(phases: dict[str, list[Phase]], video: Path) -> list[Phase]:
    return phases.get(video.name, phases.get(video.stem, []))


def unmatched_phase_videos(phases: dict[str, list[Phase]], videos: Sequence[Path]) -> list[str]:
    names = {v.name for v in videos} | {v.stem for v in videos}
    return sorted(set(phases) - names)


@dataclass(frozen=True)
class EpisodeSummary:
    """One row of summary.csv: a tier of a video over one phase."""

    video: str
    tier: str
    phase: str
    start: float
    end: float
    seconds_coded: float
    uncodable_share: float
    shares: dict[str, float]  # of the coded time, per affect code
    bouts: dict[str, int]
    mean_bout: dict[str, float | None]
    latency: dict[str, float | None]  # seconds from the phase's start to the first epoch of positive / negative

    def cells(self) -> list:
        return [self.video, self.tier, self.phase, _num(self.start), _num(self.end), _num(self.seconds_coded),
                _num(self.uncodable_share), *(_num(self.shares[c]) for c in AFFECT_CODES),
                *(self.bouts[c] for c in AFFECT_CODES), *(_num(self.mean_bout[c]) for c in AFFECT_CODES),
                _num(self.latency["positive"]), _num(self.latency["negative"])]


SUMMARY_HEADER = ["video", "tier", "phase", "start", "end", "seconds_coded", "uncodable_share",
                  *(f"share_{c}" for c in AFFECT_CODES), *(f"bouts_{c}" for c in AFFECT_CODES),
                  *(f"mean_bout_{c}" for c in AFFECT_CODES), "latency_positive", "latency_negative"]


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}".rstrip("0").rstrip(".")


def summarise(video: str, tier: str, epochs: Sequence[Epoch], phase: Phase) -> EpisodeSummary:
    inside = [e for e in epochs if phase.holds(e)]
    total = sum(e.end - e.start for e in inside)
    coded = [e for e in inside if e.code != UNCODABLE]
    seconds = sum(e.end - e.start for e in coded)
    bouts = merge_bouts(inside)
    shares, counts, means, latency = {}, {}, {}, {}
    for code in AFFECT_CODES:
        shares[code] = sum(e.end - e.start for e in coded if e.code == code) / seconds if seconds else 0.0
        of_code = [b for b in bouts if b.code == code]
        counts[code] = len(of_code)
        means[code] = sum(b.duration for b in of_code) / len(of_code) if of_code else None
        first = next((e for e in inside if e.code == code), None)
        latency[code] = max(0.0, first.start - phase.start) if first else None
    return EpisodeSummary(video, tier, phase.name, phase.start, min(phase.end, inside[-1].end) if inside else phase.start,
                          seconds, (total - seconds) / total if total else 1.0, shares, counts, means, latency)


def summarise_video(video: str, tiers: dict[str, list[Epoch]], duration: float, phases: Sequence[Phase]) -> list[EpisodeSummary]:
    whole = Phase(WHOLE_SESSION, 0.0, max(duration, 1e-9))
    return [summarise(video, tier, epochs, phase) for tier, epochs in tiers.items() for phase in (whole, *phases)]


__all__ = ["PHASE_COLUMNS", "SUMMARY_HEADER", "WHOLE_SESSION", "EpisodeSummary", "Phase", "phases_for", "read_phases",
           "summarise", "summarise_video", "unmatched_phase_videos"]
