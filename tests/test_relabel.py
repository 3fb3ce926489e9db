"""--relabel: labels from a CSV (a label column, or FER+'s ten annotators' votes) instead of the class folders."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest

from babyface.data.relabel import FERPLUS_COLUMNS, read_relabelling, relabel_scan, vote_label
from babyface.data.sources import scan_sources
from babyface.errors import DataError

CLASSES = ["angry", "happy", "neutral", "sad"]


def votes(**counts: int) -> dict[str, int]:
    return {column: counts.get(column, 0) for column in FERPLUS_COLUMNS}


@pytest.mark.parametrize("counts, min_votes, label", [
    (dict(sadness=6, neutral=4), 0, "sad"),
    (dict(happiness=9, surprise=1), 0, "happy"),
    (dict(anger=4, neutral=3, sadness=3), 0, "angry"),
    (dict(neutral=5, sadness=5), 0, None),  # a tie is no label
    (dict(unknown=6, neutral=4), 0, None),
    (dict(nf=10), 0, None),
    (dict(contempt=7, neutral=3), 0, None),  # no FER2013 folder holds contempt
    (dict(sadness=4, neutral=3, fear=3), 5, None),  # below --min-votes
    (dict(sadness=5, neutral=3, fear=2), 5, "sad"),
])
def test_vote_label(counts, min_votes, label):
    assert vote_label(votes(**counts), min_votes) == label


def write_votes(path: Path, rows: list[tuple[str, dict[str, int]]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "usage", *FERPLUS_COLUMNS, "majority"])
        for file, counts in rows:
            writer.writerow([file, "Training", *(counts.get(c, 0) for c in FERPLUS_COLUMNS), ""])
    return path


def adult_and_infant(tmp_path: Path, write_tiny_png) -> Path:
    """shared/fer/<class>/ (adults, relabelled by the votes) and shared/infant/<class>/ (no votes: folder labels)."""
    shared = tmp_path / "shared"
    for name in ("a", "b", "c", "d", "e"):
        write_tiny_png(shared / "fer" / "sad" / f"{name}.png")
    write_tiny_png(shared / "fer" / "angry" / "f.png")
    write_tiny_png(shared / "fer" / "happy" / "g.png")
    write_tiny_png(shared / "infant" / "neutral" / "h.png")
    write_tiny_png(shared / "infant" / "sad" / "i.png")
    return shared


def labels_of(scan) -> dict[str, str]:
    return {s.path.name: scan.classes[s.label] for split in scan.splits().values() for s in split.samples}


def test_votes_relabel_listed_files_and_leave_the_rest_as_their_folders_say(tmp_path, write_tiny_png, caplog):
    shared = adult_and_infant(tmp_path, write_tiny_png)
    table = write_votes(tmp_path / "shared" / "ferplus" / "labels.csv", [  # files relative to shared/, as FER+'s are
        ("fer/sad/a.png", dict(neutral=6, sadness=4)),   # FER+ calls it neutral
        ("fer/sad/b.png", dict(sadness=8, neutral=2)),   # kept sad
        ("fer/sad/c.png", dict(nf=10)),                  # not a face: left out
        ("fer/sad/d.png", dict(surprise=7, fear=3)),     # surprise: not a class of this data, left out
        ("fer/angry/f.png", dict(sadness=6, anger=4)),   # FER2013's angry folder holds FER+ sadness
    ])
    scan = scan_sources([shared / "fer", shared / "infant"], None, 0.2, 0)
    with caplog.at_level(logging.INFO, logger="babyface"):
        relabelled = relabel_scan(scan, table)
    assert labels_of(relabelled) == {"a.png": "neutral", "b.png": "sad", "e.png": "sad", "f.png": "sad",
                                     "g.png": "happy", "h.png": "neutral", "i.png": "sad"}
    assert "2 image(s) change class, 2 left out (" in caplog.text and "surprise 1" in caplog.text
    assert labels_of(relabel_scan(scan, table, min_votes=7))["b.png"] == "sad"
    assert "a.png" not in labels_of(relabel_scan(scan, table, min_votes=7))  # 6 votes < 7: left out


def test_label_column_and_paths_relative_to_the_csv(tmp_path, write_tiny_png):
    shared = adult_and_infant(tmp_path, write_tiny_png)
    table = shared / "fer" / "labels.csv"
    table.write_text("file,label\nsad/a.png,happy\nsad/b.png,\n", encoding="utf-8")
    relabelled = relabel_scan(scan_sources([shared / "fer"], None, 0.2, 0), table)
    assert labels_of(relabelled)["a.png"] == "happy" and "b.png" not in labels_of(relabelled)


def test_bad_relabel_files_are_one_line_errors(tmp_path, write_tiny_png):
    shared = adult_and_infant(tmp_path, write_tiny_png)
    scan = scan_sources([shared / "fer", shared / "infant"], None, 0.2, 0)
    with pytest.raises(DataError, match=r"nothere\.csv: not found; check the --relabel path"):
        relabel_scan(scan, tmp_path / "nothere.csv")
    (tmp_path / "cols.csv").write_text("path,class\nx,y\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"cols\.csv: needs a 'file' column and a 'label' column"):
        relabel_scan(scan, tmp_path / "cols.csv")
    (tmp_path / "elsewhere.csv").write_text("file,label\nother/x.png,sad\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"elsewhere\.csv: none of its files is found relative to"):
        relabel_scan(scan, tmp_path / "elsewhere.csv")
    bad = write_votes(shared / "votes.csv", [("fer/sad/a.png", dict(sadness=5))])
    bad.write_text(bad.read_text().replace(",5,", ",many,"), encoding="utf-8")
    with pytest.raises(DataError, match=r"votes\.csv: line 2 has a vote count that is not a number"):
        read_relabelling(bad, shared)
