"""Dataset audit: what the images are, and which are copies of one photo within a class, across classes
(conflicting labels) or across splits (leakage). Writes audit.md, audit.json and contact sheets."""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from babyface.config import AuditConfig
from babyface.data.duplicates import DescribedFiles, Pair, describe_files, duplicate_clusters
from babyface.data.images import display_path, load_resized
from babyface.data.manifest import read_manifest_column
from babyface.data.scan import DatasetFile, list_dataset_files
from babyface.errors import BabyfaceError
from babyface.outputs import atomic_path, prepare_output_dir, write_json, write_text

log = logging.getLogger("babyface")
KINDS = ("leakage", "conflict", "duplicate")
SHEET_TILE = 112
SHEET_MAX_TILES = 24


@dataclass
class Cluster:
    """Images that are copies of one photo; ``kinds`` says why that matters."""

    members: list[int]
    kinds: list[str]
    pairs: list[Pair]


@dataclass
class AuditReport:
    root: Path
    files: list[DatasetFile]
    stats: dict
    unreadable: list[str]
    pairs: list[Pair]
    clusters: list[Cluster]
    group_leakage: list[dict] = field(default_factory=list)  # manifest groups found in more than one split

    def count(self, kind: str) -> int:
        return sum(kind in c.kinds for c in self.clusters)

    @property
    def has_leakage_or_conflict(self) -> bool:
        return bool(self.count("leakage") or self.count("conflict") or self.group_leakage)


def audit_dataset(config: AuditConfig) -> AuditReport:
    """Describe every image, find exact and near duplicates, group them into clusters and classify them."""
    root, listed, paths = list_dataset_files(config.data)
    described = describe_files(paths, max_pixels=config.max_pixels, progress=config.progress, desc="audit")
    return audit_described(config, root, listed, described)


def audit_described(config: AuditConfig, root: Path, listed: Sequence[DatasetFile], described: DescribedFiles) -> AuditReport:
    """The audit of already described files (``listed`` and ``described`` as ``audit_dataset`` makes them)."""
    files = [listed[i] for i in described.kept]
    pairs, grouped = duplicate_clusters(described, config.threshold)
    found = [_classify(members, cluster_pairs, files) for members, cluster_pairs in zip(grouped, _pairs_by_cluster(grouped, pairs))]
    stats = _image_stats(files, described.headers, described.grayscale, len(described.errors))
    report = AuditReport(root, files, stats, described.errors, pairs, found)
    if config.manifest or config.group_by:
        report.group_leakage = _group_leakage(config, root, files)
    log.info("audit of %s: %d images, %d unreadable, %d duplicate clusters (%d leakage, %d conflicting labels)",
             display_path(root), len(files), len(described.errors), len(found), report.count("leakage"), report.count("conflict"))
    return report


def _pairs_by_cluster(grouped: Sequence[list[int]], pairs: Sequence[Pair]) -> list[list[Pair]]:
    owner = {member: index for index, members in enumerate(grouped) for member in members}
    by_cluster: list[list[Pair]] = [[] for _ in grouped]
    for pair in pairs:
        by_cluster[owner[pair.first]].append(pair)
    return by_cluster


def _classify(members: list[int], pairs: list[Pair], files: Sequence[DatasetFile]) -> Cluster:
    kinds = []
    if len({files[i].split for i in members}) > 1:
        kinds.append("leakage")
    if len({files[i].label for i in members}) > 1:
        kinds.append("conflict")
    if not kinds:
        kinds.append("duplicate")
    return Cluster(members, kinds, pairs)


def _image_stats(files: Sequence[DatasetFile], headers, grayscale: Sequence[bool], unreadable: int) -> dict:
    per_split: dict[str, Counter] = {}
    for f in files:
        per_split.setdefault(f.split, Counter())[f.label] += 1
    sizes = Counter(f"{h.width}x{h.height}" for h in headers)
    widths = np.array([h.width for h in headers] or [0])
    heights = np.array([h.height for h in headers] or [0])
    return {
        "images": len(files),
        "unreadable": unreadable,
        "per_split_and_class": {split: dict(sorted(c.items())) for split, c in sorted(per_split.items())},
        "width": {"min": int(widths.min()), "median": float(np.median(widths)), "max": int(widths.max())},
        "height": {"min": int(heights.min()), "median": float(np.median(heights)), "max": int(heights.max())},
        "common_sizes": dict(sizes.most_common(10)),
        "modes": dict(Counter(h.mode for h in headers).most_common()),
        "formats": dict(Counter(h.format for h in headers).most_common()),
        "grayscale_share": round(sum(grayscale) / max(len(files), 1), 4),
    }


def _group_leakage(config: AuditConfig, root: Path, files: Sequence[DatasetFile]) -> list[dict]:
    if not (config.manifest and config.group_by):
        raise BabyfaceError("--manifest and --group-by go together: name the CSV and the column that holds each file's group")
    groups = read_manifest_column(config.manifest, config.group_by, root).values
    splits_of: dict[str, set[str]] = {}
    for f in files:
        if groups.get(f.file):
            splits_of.setdefault(groups[f.file], set()).add(f.split)
    return [{"group": g, "splits": sorted(s)} for g, s in sorted(splits_of.items()) if len(s) > 1]


# ---------------------------------------------------------------- outputs

def write_audit(report: AuditReport, out: str | os.PathLike, config: AuditConfig) -> Path:
    """audit.json, audit.md and sheets/<kind>_NN.png (the ``max_sheets`` largest clusters of each kind)."""
    out = prepare_output_dir(out, overwrite=config.overwrite)
    sheets = _write_sheets(report, out / "sheets", config.max_sheets)
    write_json(out / "audit.json", _as_json(report, config, sheets))
    write_text(out / "audit.md", _as_markdown(report, config, sheets))
    return out


def _write_sheets(report: AuditReport, folder: Path, max_sheets: int) -> dict[int, str]:
    written: dict[int, str] = {}
    for kind in KINDS:
        chosen = [i for i, c in enumerate(report.clusters) if c.kinds[0] == kind][:max_sheets]
        for rank, index in enumerate(chosen, 1):
            name = f"sheets/{kind}_{rank:02d}.png"
            cluster = report.clusters[index]
            files = [report.files[m] for m in cluster.members]
            render_contact_sheet([report.root / f.file for f in files], [f"{f.split}/{f.label}" for f in files],
                                 [Path(f.file).name for f in files], folder.parent / name)
            written[index] = name
    return written


def render_contact_sheet(paths: Sequence[Path], captions: Sequence[str], names: Sequence[str], out: Path,
                         tile: int = SHEET_TILE) -> Path:
    """Tiles of ``paths`` with two caption lines each (at most SHEET_MAX_TILES); written atomically as PNG."""
    shown = list(paths)[:SHEET_MAX_TILES]
    columns = min(len(shown), 6)
    rows = -(-len(shown) // columns)
    sheet = Image.new("RGB", (columns * tile, rows * (tile + 26)), "white")
    draw = ImageDraw.Draw(sheet)
    for n, (path, caption, name) in enumerate(zip(shown, captions, names)):
        x, y = (n % columns) * tile, (n // columns) * (tile + 26)
        try:
            sheet.paste(Image.fromarray(load_resized(path, tile - 4)), (x + 2, y + 2))
        except BabyfaceError:
            draw.text((x + 4, y + tile // 2), "unreadable", fill="red")
        draw.text((x + 3, y + tile), caption[:22], fill="black")
        draw.text((x + 3, y + tile + 12), name[:22], fill="gray")
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    return out


def _cluster_json(report: AuditReport, cluster: Cluster, sheet: str | None) -> dict:
    return {
        "kinds": cluster.kinds,
        "size": len(cluster.members),
        "files": [asdict(report.files[m]) for m in cluster.members],
        "pairs": [{"a": report.files[p.first].file, "b": report.files[p.second].file, "score": p.score, "kind": p.kind}
                  for p in cluster.pairs],
        "sheet": sheet,
    }


def _summary(report: AuditReport) -> dict:
    in_clusters = sum(len(c.members) for c in report.clusters)
    return {
        "clusters": len(report.clusters),
        "images_in_clusters": in_clusters,
        "redundant_images": in_clusters - len(report.clusters),
        "exact_pairs": sum(p.kind == "exact" for p in report.pairs),
        "near_pairs": sum(p.kind == "near" for p in report.pairs),
        **{f"{kind}_clusters": report.count(kind) for kind in KINDS},
        "groups_across_splits": len(report.group_leakage),
    }


def _as_json(report: AuditReport, config: AuditConfig, sheets: dict[int, str]) -> dict:
    return {
        "data": display_path(report.root),
        "threshold": config.threshold,
        "summary": _summary(report),
        "stats": report.stats,
        "unreadable": report.unreadable,
        "group_leakage": {"manifest": config.manifest, "column": config.group_by, "groups": report.group_leakage},
        "clusters": [_cluster_json(report, c, sheets.get(i)) for i, c in enumerate(report.clusters)],
    }


def _as_markdown(report: AuditReport, config: AuditConfig, sheets: dict[int, str]) -> str:
    summary, stats = _summary(report), report.stats
    splits = list(stats["per_split_and_class"])
    classes = sorted({c for counts in stats["per_split_and_class"].values() for c in counts})
    lines = [f"# Audit of {display_path(report.root)}", "",
             f"{stats['images']} images, {stats['unreadable']} unreadable, grayscale share {stats['grayscale_share']:.1%}; "
             f"near-duplicate threshold {config.threshold}.", "",
             "| class | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
    lines += [f"| {c} | " + " | ".join(str(stats["per_split_and_class"][s].get(c, 0)) for s in splits) + " |" for c in classes]
    lines += ["", f"- sizes: width {stats['width']}, height {stats['height']}; most common {stats['common_sizes']}",
              f"- modes: {stats['modes']}; formats: {stats['formats']}", "", "## Findings", "",
              f"- **leakage** (one photo in more than one split): {summary['leakage_clusters']} clusters",
              f"- **conflicting labels** (one photo in more than one class): {summary['conflict_clusters']} clusters",
              f"- **duplicates** within one class and split: {summary['duplicate_clusters']} clusters",
              f"- {summary['images_in_clusters']} images in clusters, {summary['redundant_images']} of them redundant; "
              f"{summary['exact_pairs']} byte-identical pairs, {summary['near_pairs']} near-duplicate pairs"]
    if config.group_by:
        lines.append(f"- manifest groups ({config.group_by}) in more than one split: {len(report.group_leakage)}")
    for kind in KINDS:
        shown = [(i, c) for i, c in enumerate(report.clusters) if c.kinds[0] == kind][: config.max_sheets]
        if shown:
            lines += ["", f"## {kind} (largest {len(shown)})", ""]
            lines += [_cluster_line(report, c, sheets.get(i)) for i, c in shown]
    if report.unreadable:
        lines += ["", f"## Unreadable files ({len(report.unreadable)})", ""] + [f"- {e}" for e in report.unreadable[:100]]
    return "\n".join(lines) + "\n"


def _cluster_line(report: AuditReport, cluster: Cluster, sheet: str | None) -> str:
    members = ", ".join(f"`{report.files[m].file}` ({report.files[m].split})" for m in cluster.members[:6])
    more = f" and {len(cluster.members) - 6} more" if len(cluster.members) > 6 else ""
    link = f" [sheet]({sheet})" if sheet else ""
    return f"- {len(cluster.members)} images, {'+'.join(cluster.kinds)}: {members}{more}{link}"
