"""report.html of a coded corpus: an affect ribbon per video (one row per tier, phases above, a time axis), the share
of time in each affect beside it, and the videos that failed. Self-contained: inline SVG and CSS, no scripts."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING

from babyface.outputs import write_text
from babyface.video.coding import AFFECT_CODES, CODE_DESCRIPTIONS, CODES, merge_bouts
from babyface.video.episodes import WHOLE_SESSION

if TYPE_CHECKING:
    from babyface.config.coding import CodeConfig
    from babyface.video.corpus import CorpusResult, VideoResult

CODE_COLOURS = {"positive": "#e8a317", "neutral": "#7b8794", "negative": "#3e7cb1", "uncodable": "#e4e7eb"}
WIDTH, ROW, LABEL, RIGHT = 880, 22, 130, 24


def write_report(path: Path, corpus: CorpusResult, config: CodeConfig) -> Path:
    coded = [v for v in corpus.videos if v.status != "failed"]
    parts = [f"<h1>Infant affect, coded by babyface</h1><p class=meta>{len(coded)} video(s) coded, "
             f"{len(corpus.failed)} failed · model <code>{html.escape(str(config.run))}</code> · epochs of "
             f"{config.epoch:g} s · {config.fps:g} frames a second looked at · face: {config.face}</p>", _legend()]
    parts += [_video_section(v) for v in coded]
    if corpus.failed:
        items = "".join(f"<li><b>{html.escape(v.video.name)}</b>: {html.escape(v.error)}</li>" for v in corpus.failed)
        parts.append(f"<h2>Failed</h2><ul class=failed>{items}</ul>")
    return write_text(path, _page("".join(parts)))


def _legend() -> str:
    items = "".join(f"<span class=key><i style='background:{CODE_COLOURS[c]}'></i>{c}</span>" for c in CODES)
    notes = "".join(f"<dt>{c}</dt><dd>{html.escape(CODE_DESCRIPTIONS[c])}</dd>" for c in CODES)
    return f"<div class=legend>{items}</div><details><summary>What the codes mean</summary><dl>{notes}</dl></details>"


def _video_section(result: VideoResult) -> str:
    duration = max(result.duration, 1e-6)
    height = (len(result.tiers) + (1 if result.phases else 0)) * ROW + 24
    svg = [f"<svg viewBox='0 0 {WIDTH} {height}' width='100%' role=img aria-label='affect ribbon of "
           f"{html.escape(result.video.name)}'>"]
    y = 0
    if result.phases:
        for phase in result.phases:
            x0, x1 = _x(phase.start, duration), _x(min(phase.end, duration), duration)
            svg.append(f"<rect x={x0:.1f} y=2 width={max(x1 - x0, 0.5):.1f} height={ROW - 6} fill='#f5f0e6' stroke='#c9b98f'/>"
                       f"<text x={x0 + 4:.1f} y={ROW - 8} class=phase>{html.escape(phase.name)}</text>")
        svg.append(f"<text x=4 y={ROW - 8} class=tier>phase</text>")
        y += ROW
    for tier, epochs in result.tiers.items():
        svg.append(f"<text x=4 y={y + ROW - 8} class=tier>{html.escape(tier)}</text>")
        for bout in merge_bouts(epochs):
            x0, x1 = _x(bout.start, duration), _x(bout.end, duration)
            svg.append(f"<rect x={x0:.1f} y={y + 2} width={max(x1 - x0, 0.5):.1f} height={ROW - 4} "
                       f"fill='{CODE_COLOURS.get(bout.code, '#000')}'><title>{bout.code} {bout.start:g}–{bout.end:g} s"
                       f"</title></rect>")
        y += ROW
    svg += _axis(duration, y)
    svg.append("</svg>")
    return (f"<section><h2>{html.escape(result.video.name)} <small>{_clock(result.duration)}"
            f"{' · coded before, kept' if result.status == 'skipped' else ''}</small></h2>{''.join(svg)}"
            f"{_shares_table(result)}</section>")


def _x(seconds: float, duration: float) -> float:
    return LABEL + (WIDTH - LABEL - RIGHT) * seconds / duration


def _axis(duration: float, y: float) -> list[str]:
    step = _tick_step(duration)
    ticks = [f"<line x1={LABEL} x2={WIDTH - RIGHT} y1={y + 2} y2={y + 2} stroke='#9aa5b1'/>"]
    for i in range(int(duration // step) + 1):
        x = _x(i * step, duration)
        ticks.append(f"<line x1={x:.1f} x2={x:.1f} y1={y + 2} y2={y + 6} stroke='#9aa5b1'/>"
                     f"<text x={x:.1f} y={y + 18} class=tick>{_clock(i * step)}</text>")
    return ticks


def _tick_step(duration: float) -> float:
    raw = duration / 8
    return next((s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600) if s >= raw), math.ceil(raw / 3600) * 3600)


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}:{rest:02d}"


def _shares_table(result: VideoResult) -> str:
    head = ("<tr><th>tier</th><th>phase</th><th>coded</th><th>uncodable</th>"
            + "".join(f"<th>{c}</th>" for c in AFFECT_CODES) + "<th>first positive</th><th>first negative</th></tr>")
    rows = []
    for s in result.summaries:
        shares = "".join(f"<td>{s.shares[c]:.0%} <small>({s.bouts[c]} bout{'' if s.bouts[c] == 1 else 's'})</small></td>" for c in AFFECT_CODES)
        latency = "".join(f"<td>{'–' if s.latency[c] is None else f'{s.latency[c]:g} s'}</td>" for c in ("positive", "negative"))
        phase = "whole session" if s.phase == WHOLE_SESSION else html.escape(s.phase)
        rows.append(f"<tr><td>{html.escape(s.tier)}</td><td>{phase}</td><td>{s.seconds_coded:g} s</td>"
                    f"<td>{s.uncodable_share:.0%}</td>{shares}{latency}</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _page(body: str) -> str:
    return f"""<!doctype html><html lang=en><meta charset=utf-8><title>babyface: coded videos</title>
<style>
body{{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:960px;color:#1f2933;padding:0 1em}}
h1{{font-size:1.5em;margin-bottom:.2em}} h2{{font-size:1.1em;margin:1.6em 0 .3em}} h2 small{{color:#7b8794;font-weight:normal}}
.meta{{color:#52606d}} .legend{{margin:1em 0 .3em}} .key{{margin-right:1.2em}}
.key i{{display:inline-block;width:14px;height:14px;border-radius:3px;margin-right:5px;vertical-align:-2px;border:1px solid #cbd2d9}}
svg text{{font-size:11px;fill:#3e4c59}} svg .tier{{font-weight:600}} svg .tick{{text-anchor:middle;fill:#7b8794}}
table{{border-collapse:collapse;margin:.4em 0 1em;font-size:12.5px}} td,th{{padding:3px 8px;border-bottom:1px solid #e4e7eb;text-align:left}}
th{{color:#52606d;font-weight:600}} td small{{color:#7b8794}} .failed li{{color:#9b2c2c}} dt{{font-weight:600}}
</style>
<body>{body}</body></html>
"""


__all__ = ["CODE_COLOURS", "write_report"]
