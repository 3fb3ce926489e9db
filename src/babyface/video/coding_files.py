"""A coded video's files, each read back by the program it is for: codes.csv, ELAN (.eaf, written with pympi-ling),
BORIS (.boris, its JSON project) and Datavyu (.opf, its zipped database).

Each writer takes the ``CodedVideo`` and writes atomically; each reader returns the bouts (start, end, code) per tier,
so that tests and ``babyface agree`` can check a file against the codes it was written from.
"""

from __future__ import annotations

import csv
import json
import mimetypes
import os
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Sequence

from babyface.errors import BabyfaceError
from babyface.outputs import atomic_path, write_csv, write_text
from babyface.video.coding import CODE_DESCRIPTIONS, CODES, Bout, CodedVideo, Epoch, merge_bouts
from babyface.video.episodes import Phase

AFFECT_VOCABULARY = "affect"
PHASE_TIER = "phase"
ELAN_MS = 1000


@dataclass(frozen=True)
class Provenance:
    """Who coded: the model and the options, written into every file so a reader knows where the codes came from."""

    model: str
    options: str

    @property
    def annotator(self) -> str:
        return f"babyface ({self.model})"


# ---------------------------------------------------------------- codes.csv

def codes_header(classes: Sequence[str]) -> list[str]:
    return ["video", "tier", "face_id", "start", "end", "code", *(f"p_{c}" for c in classes),
            "left", "top", "right", "bottom", "frames", "seen"]


def write_codes_csv(path: Path, coded: CodedVideo) -> Path:
    def rows():
        for tier, epochs in coded.tiers.items():
            for e in epochs:
                yield [coded.video, tier, "" if e.face_id is None else e.face_id, f"{e.start:g}", f"{e.end:g}", e.code,
                       *(f"{e.probabilities[c]:.4f}" if e.probabilities else "" for c in coded.classes),
                       *(e.box or ("", "", "", "")), e.frames, e.seen]

    return write_csv(path, codes_header(coded.classes), rows())


def read_codes_epochs(path: Path) -> dict[str, list[Epoch]]:
    """codes.csv's epochs per tier (code, times and face id; enough to summarise them again)."""
    tiers: dict[str, list[Epoch]] = {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                face_id = int(row["face_id"]) if row.get("face_id") else None
                tiers.setdefault(row["tier"], []).append(Epoch(float(row["start"]), float(row["end"]), row["code"], face_id))
    except (OSError, KeyError, ValueError) as exc:
        raise BabyfaceError(f"{path}: not a readable codes.csv ({exc}); code the video again with --overwrite") from exc
    return tiers


def read_codes_csv(path: Path) -> dict[str, list[Bout]]:
    """codes.csv's epochs merged into bouts, per tier."""
    return {tier: merge_bouts(epochs) for tier, epochs in read_codes_epochs(path).items()}


# ---------------------------------------------------------------- ELAN

def write_eaf(path: Path, coded: CodedVideo, video: Path, provenance: Provenance, phases: Sequence[Phase] = ()) -> Path:
    """An ELAN file: one tier per coded face with the affect vocabulary (four codes with descriptions), consecutive
    equal epochs merged, the video linked with its MIME type, the model and options as annotator and properties, and
    a ``phase`` tier when phases are given."""
    from pympi.Elan import Eaf

    eaf = Eaf(author=provenance.annotator)
    eaf.remove_tier("default")
    eaf.add_linked_file(_media_url(video), relpath=os.path.relpath(video, path.parent), mimetype=_mime(video))
    eaf.add_language("eng", "http://cdb.iso.org/lg/CDB-00138502-001", "English (eng)")
    eaf.add_controlled_vocabulary(AFFECT_VOCABULARY)
    eaf.add_cv_description(AFFECT_VOCABULARY, "eng", "infant affect per epoch, coded by babyface")
    for code in CODES:
        eaf.add_cv_entry(AFFECT_VOCABULARY, f"cve_{code}", [(code, "eng", CODE_DESCRIPTIONS[code])])
    eaf.add_linguistic_type(AFFECT_VOCABULARY, param_dict={"LINGUISTIC_TYPE_ID": AFFECT_VOCABULARY,
                                                          "TIME_ALIGNABLE": "true", "GRAPHIC_REFERENCES": "false",
                                                          "CONTROLLED_VOCABULARY_REF": AFFECT_VOCABULARY})
    eaf.add_property("babyface_model", provenance.model)
    eaf.add_property("babyface_options", provenance.options)
    for tier in coded.tiers:
        eaf.add_tier(tier, ling=AFFECT_VOCABULARY, tier_dict={"TIER_ID": tier, "LINGUISTIC_TYPE_REF": AFFECT_VOCABULARY,
                                                               "ANNOTATOR": provenance.annotator, "PARTICIPANT": "infant"})
        for bout in coded.bouts(tier):
            eaf.add_annotation(tier, _ms(bout.start), _ms(bout.end), bout.code)
    if phases:
        eaf.add_tier(PHASE_TIER)
        for phase in phases:
            eaf.add_annotation(PHASE_TIER, _ms(phase.start), _ms(phase.end), phase.name)
    with atomic_path(path) as tmp:
        tmp.unlink()  # pympi renames an existing file to .bak before writing
        eaf.to_file(str(tmp))
    return path


def read_eaf(path: Path) -> dict[str, list[Bout]]:
    """The affect tiers of an ELAN file as bouts (times in seconds)."""
    from pympi.Elan import Eaf

    eaf = Eaf(str(path))
    return {tier: [Bout(start / ELAN_MS, end / ELAN_MS, value) for start, end, value, *_ in
                   sorted(eaf.get_annotation_data_for_tier(tier))]
            for tier in eaf.get_tier_names() if tier != PHASE_TIER}


# ---------------------------------------------------------------- BORIS

BORIS_FORMAT = "7.0"  # project_format_version of BORIS 8 and 9 (boris/config.py)
BORIS_KEYS = {"positive": "p", "neutral": "n", "negative": "g", "uncodable": "u"}
BORIS_PLAYERS = 8  # BORIS expects all eight players' file lists


def write_boris(path: Path, coded: CodedVideo, video: Path, provenance: Provenance, fps: float) -> Path:
    """A BORIS project with the four codes as mutually exclusive state events, one subject per tier, and one MEDIA
    observation of the video whose events are each bout's start and stop."""
    media = os.path.relpath(video.resolve(), path.parent.resolve())
    subjects = {tier: tier.partition("@")[2] or tier for tier in coded.tiers}
    events = []
    for tier, subject in subjects.items():
        for bout in coded.bouts(tier):
            events += [[round(bout.start, 3), subject, bout.code, "", "", "NA"],
                       [round(bout.end, 3), subject, bout.code, "", "", "NA"]]
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    ethogram = {str(i): {"type": "State event", "key": BORIS_KEYS[code], "code": code, "description": CODE_DESCRIPTIONS[code],
                         "color": "", "category": "", "modifiers": {}, "excluded": ",".join(c for c in CODES if c != code),
                         "coding map": ""} for i, code in enumerate(CODES)}
    now = datetime.now()
    observation = {
        "file": {str(n): [media] if n == 1 else [] for n in range(1, BORIS_PLAYERS + 1)},
        "type": "MEDIA", "date": now.strftime("%Y-%m-%dT%H:%M:%S.000"),
        "description": f"coded by {provenance.annotator}; options {provenance.options}", "time offset": 0.0,
        "events": events, "observation time interval": [0, 0], "independent_variables": {},
        "visualize_spectrogram": False, "visualize_waveform": False, "media_creation_date_as_offset": False,
        "media_scan_sampling_duration": 0, "image_display_duration": 1, "close_behaviors_between_videos": False,
        "media_info": {"length": {media: round(coded.duration, 3)}, "fps": {media: float(fps)}, "hasVideo": {media: True},
                       "hasAudio": {media: False}, "offset": {"1": 0.0}, "display": {media: "Nothing"}},
    }
    project = {
        "time_format": "hh:mm:ss", "project_date": now.strftime("%Y-%m-%dT%H:%M:%S"),
        "project_name": f"babyface: {coded.video}", "project_description": provenance.annotator,
        "project_format_version": BORIS_FORMAT,
        "subjects_conf": {str(i): {"key": str(i + 1)[-1], "name": name, "description": tier}
                          for i, (tier, name) in enumerate(subjects.items())},
        "behaviors_conf": ethogram, "observations": {Path(coded.video).stem: observation},
        "behavioral_categories": [], "behavioral_categories_config": {}, "independent_variables": {}, "coding_map": {},
        "behaviors_coding_map": [], "converters": {},
    }
    return write_text(path, json.dumps(project, indent=1) + "\n")


def read_boris(path: Path) -> dict[str, list[Bout]]:
    """Each subject's state events of a BORIS project's observations, paired start/stop, as bouts keyed
    ``affect@<subject>``."""
    try:
        project = json.loads(path.read_text(encoding="utf-8"))
        events = [e for obs in project["observations"].values() for e in obs["events"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BabyfaceError(f"{path}: not a BORIS project ({exc}); export it again from BORIS as a .boris file") from exc
    open_at: dict[tuple[str, str], float] = {}
    tiers: dict[str, list[Bout]] = {}
    for time, subject, code, *_ in sorted(events, key=lambda e: (float(e[0]), e[1], e[2])):
        if (subject, code) in open_at:
            tiers.setdefault(f"affect@{subject}", []).append(Bout(open_at.pop((subject, code)), float(time), code))
        else:
            open_at[(subject, code)] = float(time)
    return {tier: sorted(bouts, key=lambda b: b.start) for tier, bouts in tiers.items()}


# ---------------------------------------------------------------- Datavyu

DATAVYU_VERSION = 5  # Project.VERSION of the .opf's project entry
DATAVYU_FFMPEG_PLUGIN = "f13f226e-df7e-31dc-8bba-f35c71e53479"  # UUID of "plugin.ffmpeg": Windows, and macOS 1.5.0/1.5.1
DATAVYU_ARGUMENT = "code"


def write_opf(path: Path, coded: CodedVideo, video: Path, fps: float) -> Path:
    """A Datavyu project: the zipped ``db`` (one column per tier, a cell per bout, its offset 1 ms before the next
    onset because Datavyu counts touching cells as overlapping), the ``project`` YAML linking the video, and its
    viewer settings."""
    lines = ["#4"]
    for tier in coded.tiers:
        lines.append(f"{_datavyu_column(tier)} (MATRIX,true,)-{DATAVYU_ARGUMENT}|NOMINAL")
        lines += [f"{_timestamp(_ms(b.start))},{_timestamp(max(_ms(b.start), _ms(b.end) - 1))},({_escape_value(b.code)})"
                  for b in coded.bouts(tier)]
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("project", _datavyu_project(path, video))
            archive.writestr("db", "\n".join(lines) + "\n")
            archive.writestr("1", f"offset=0\nvolume=1.0\nvisible=true\nheight=480\nframesPerSecond={float(fps)}\n")
    return path


def read_opf(path: Path) -> dict[str, list[Bout]]:
    """The cells of a Datavyu .opf's columns as bouts keyed by column name (``affect_x`` read back as ``affect@x``),
    each offset moved 1 ms on again."""
    try:
        with zipfile.ZipFile(path) as archive:
            text = archive.read("db").decode("utf-8")
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise BabyfaceError(f"{path}: not a Datavyu project ({exc}); save it again from Datavyu as .opf") from exc
    tiers: dict[str, list[Bout]] = {}
    column = ""
    for line in text.splitlines()[1:]:
        if line[:2].isdigit() and line[2:3] == ":":
            onset, offset, value = line.split(",", 2)
            tiers[column].append(Bout(_seconds(onset), _seconds(offset) + 0.001, _unescape(value)[1:-1]))
        else:
            column = line.split(" (", 1)[0].replace("affect_", "affect@", 1)
            tiers[column] = []
    return tiers


def _datavyu_project(path: Path, video: Path) -> str:
    def quoted(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    return ("!project\n"
            f"dbFile: {quoted(path.name)}\nname: {quoted(path.stem)}\norigpath: {quoted(str(path.parent.resolve()))}\n"
            f"version: {DATAVYU_VERSION}\nviewerSettings:\n- !vs\n  classifier: datavyu.video\n"
            f"  feed: {quoted(str(video.resolve()))}\n  plugin: {DATAVYU_FFMPEG_PLUGIN}\n  settingsId: '1'\n"
            "  trackSettings: !ts\n    bookmark: '-1'\n    bookmarks: []\n    locked: false\n    version: 2\n"
            "  version: 3\n")


def _datavyu_column(tier: str) -> str:
    """Datavyu wants column names of letters, digits and underscores, starting with a letter."""
    return "".join(c if c.isascii() and c.isalnum() else "_" for c in tier.replace("@", "_"))


def _timestamp(ms: int) -> str:
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    seconds, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}:{ms:03d}"


def _seconds(timestamp: str) -> float:
    hours, minutes, seconds, ms = (int(part) for part in timestamp.split(":"))
    return hours * 3600 + minutes * 60 + seconds + ms / 1000


def _escape_value(text: str) -> str:
    return "".join("\\" + c if c in "\\()\n\r-,|" else c for c in text)


def _unescape(text: str) -> str:
    out, escaped = [], False
    for c in text:
        if escaped or c != "\\":
            out.append(c)
            escaped = False
        else:
            escaped = True
    return "".join(out)


def _ms(seconds: float) -> int:
    return int(round(seconds * ELAN_MS))


def _media_url(video: Path) -> str:
    return video.resolve().as_uri()


def _mime(video: Path) -> str:
    return mimetypes.guess_type(video.name)[0] or "video/*"


__all__ = ["Provenance", "codes_header", "read_boris", "read_codes_csv", "read_codes_epochs", "read_eaf", "read_opf",
           "write_boris", "write_codes_csv", "write_eaf", "write_opf"]
