"""Cross-validation folds (whole groups, stratified, none empty; leave one source out) and fixed splits from a file."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from babyface.data.folds import apply_split_file, parse_folds, plan_folds
from babyface.data.scan import DatasetScan, Sample, SplitScan
from babyface.data.splits import group_stratified_folds
from babyface.errors import DataError

CLASSES = ["happy", "neutral", "sad"]


def clumped(n_groups: int = 60, seed: int = 0) -> tuple[list[int], list[str]]:
    """Infants with 1-8 images each and their own mix of classes."""
    rng = np.random.default_rng(seed)
    labels, groups = [], []
    for g in range(n_groups):
        mix = rng.dirichlet(np.ones(3))
        for _ in range(int(rng.integers(1, 9))):
            labels.append(int(rng.choice(3, p=mix)))
            groups.append(f"infant{g}")
    return labels, groups


@pytest.mark.parametrize("k", [2, 3, 5, 10])
def test_folds_keep_groups_whole_cover_every_image_once_and_are_stratified(k):
    labels, groups = clumped()
    folds = group_stratified_folds(labels, groups, k, seed=0)
    assert len(folds) == len(labels) and set(folds) == set(range(k))  # every image in exactly one fold, none empty
    fold_of_group = defaultdict(set)
    for group, fold in zip(groups, folds):
        fold_of_group[group].add(fold)
    assert all(len(f) == 1 for f in fold_of_group.values())  # no group on two sides
    labels, folds = np.array(labels), np.array(folds)
    for fold in range(k):
        for label in range(3):
            expected = np.sum(labels == label) / k
            assert abs(np.sum((folds == fold) & (labels == label)) - expected) <= max(0.25 * expected, 8)


def test_folds_are_seeded_and_no_fold_stays_empty():
    labels, groups = clumped(seed=1)
    assert group_stratified_folds(labels, groups, 5, 3) == group_stratified_folds(labels, groups, 5, 3)
    # one big group and three single images over 3 folds: the big group fills a fold, the singles share the rest
    folds = group_stratified_folds([0] * 10 + [0, 1, 1], ["big"] * 10 + ["a", "b", "c"], 3, seed=0)
    assert set(folds) == {0, 1, 2} and len(set(folds[:10])) == 1
    with pytest.raises(ValueError):
        group_stratified_folds([0, 1], ["a", "a"], 2, 0)


def fake_scan(root: Path, labels: list[int], sources: list[str] | None = None) -> DatasetScan:
    sources = sources or [""] * len(labels)
    samples = [Sample(root / source / CLASSES[label] / f"{i}.png", label, source)
               for i, (label, source) in enumerate(zip(labels, sources))]
    return DatasetScan(root, "folders", CLASSES, SplitScan(root, CLASSES, samples), None)


def test_plan_folds_rows_and_split_files(tmp_path):
    labels, groups = clumped(30)
    plan = plan_folds(fake_scan(tmp_path, labels), groups, "4", seed=0, group_by="infant")
    assert plan.count == 4 and plan.held_out[0] == "part 1 of the groups" and len(plan.rows) == len(labels)
    assert {row.fold for row in plan.rows} == {1, 2, 3, 4} and plan.rows[0].file == f"{CLASSES[labels[0]]}/0.png"
    for fold in (1, 4):
        splits = dict(plan.split_rows(fold))
        assert sum(s == "test" for s in splits.values()) == sum(row.fold == fold for row in plan.rows)
        assert set(splits.values()) == {"train", "test"}


def test_bad_fold_requests_are_one_line_errors(tmp_path, caplog):
    labels, groups = [0, 1, 2, 0, 1, 2], ["a", "a", "a", "b", "b", "b"]
    with pytest.raises(DataError, match=r"ids\.csv: 2 infant groups for --folds 3.*use --folds 2 or fewer"):
        plan_folds(fake_scan(tmp_path, labels), groups, "3", 0, "infant", where="ids.csv")
    with pytest.raises(DataError, match=r"every 'sad' image is in one group \(c\).*--label-map \(sad: null\)"):
        plan_folds(fake_scan(tmp_path, [0, 1, 0, 1, 2, 2]), ["a", "a", "b", "b", "c", "c"], "2", 0, "infant")
    for bad in ("1", "x", "-3"):
        with pytest.raises(DataError, match="--folds"):
            parse_folds(bad)
    assert parse_folds("LOSO") == "loso" and parse_folds("7") == 7
    with caplog.at_level(logging.WARNING, logger="babyface"):
        plan_folds(fake_scan(tmp_path, [0, 1, 2] * 3 + [0, 1]), ["a", "a", "a", "b", "b", "b", "c", "c", "c", "d", "d"],
                   "4", 0, "infant")
    assert "class 'sad' is in only 3 infant groups: 1 of the 4 folds" in caplog.text


def test_leave_one_source_out(tmp_path):
    labels = [0, 1, 2, 0, 1, 2, 0, 2]
    sources = ["a"] * 3 + ["b"] * 3 + ["c"] * 2
    plan = plan_folds(fake_scan(tmp_path, labels, sources), [str(i) for i in range(8)], "loso", 0)
    assert [row.fold for row in plan.rows] == [1, 1, 1, 2, 2, 2, 3, 3]
    assert plan.held_out == ["source a", "source b", "source c"]
    with pytest.raises(DataError, match="needs two or more sources"):
        plan_folds(fake_scan(tmp_path, [0, 1, 2]), ["1", "2", "3"], "loso", 0)
    with pytest.raises(DataError, match="only source b has neutral images"):
        plan_folds(fake_scan(tmp_path, [0, 2, 0, 1, 2], ["a", "a", "b", "b", "b"]), list("12345"), "loso", 0)


def test_hold_out_chooses_the_folds_sources_and_trains_on_the_rest_always(tmp_path, caplog):
    labels = [0, 1, 2] * 4 + [0, 2] * 6 + [2] * 12 + [0] * 3
    sources = ["fer"] * 12 + ["utkf"] * 12 + ["cry"] * 12 + ["tiny"] * 3
    scan = fake_scan(tmp_path, labels, sources)
    with caplog.at_level(logging.WARNING, logger="babyface"):
        plan = plan_folds(scan, [str(i) for i in range(len(labels))], "loso", 0, hold_out=["utkf+tiny", "cry"])
    assert plan.held_out == ["source utkf+tiny", "source cry"]
    assert {row.source: row.fold for row in plan.rows} == {"fer": 0, "utkf": 1, "tiny": 1, "cry": 2}
    assert all(split == "train" for file, split in plan.split_rows(2) if "/fer/" in f"/{file}")
    plan = plan_folds(scan, [str(i) for i in range(len(labels))], "loso", 0, hold_out=["cry", "tiny"])
    assert plan.held_out == ["source cry"] and "tiny: 3 image(s), too few" in caplog.text  # one line, skipped
    with pytest.raises(DataError, match=r"no source is named utk; the sources are fer, utkf, cry, tiny"):
        plan_folds(scan, [str(i) for i in range(len(labels))], "loso", 0, hold_out=["utk"])
    with pytest.raises(DataError, match="source cry is named twice"):
        plan_folds(scan, [str(i) for i in range(len(labels))], "loso", 0, hold_out=["cry", "utkf+cry"])
    with pytest.raises(DataError, match="only source fer has neutral images"):
        plan_folds(scan, [str(i) for i in range(len(labels))], "loso", 0, hold_out=["fer"])


def test_hold_out_needs_loso():
    from babyface.config import CvConfig
    from babyface.errors import BabyfaceError

    with pytest.raises(BabyfaceError, match="add --folds loso"):
        CvConfig(data="d", hold_out=["a"])
    assert CvConfig(data="d", folds="loso", hold_out=["a+b"]).fold_config(out="o").model_dump().get("hold_out") is None


def test_split_file_places_every_listed_image_and_leaves_out_the_rest(tmp_path, write_tiny_png, caplog):
    files = [f"{c}/{i}.png" for c in CLASSES for i in range(3)]
    for file in files:
        write_tiny_png(tmp_path / "data" / file)
    scan = fake_scan(tmp_path / "data", [CLASSES.index(f.split("/")[0]) for f in files])
    scan.train.samples = [Sample(tmp_path / "data" / f, CLASSES.index(f.split("/")[0])) for f in files]
    split_file = tmp_path / "split.csv"
    split_file.write_text("file,split\n" + "".join(f"{f},{'test' if f.endswith('0.png') else 'val' if f.endswith('1.png') else 'train'}\n"
                                                  for f in files[:-1]))
    with caplog.at_level(logging.INFO, logger="babyface"):
        fixed = apply_split_file(scan, split_file)
    assert "1 image(s)" in caplog.text and "left out" in caplog.text
    assert [len(fixed.train.samples), len(fixed.val.samples), len(fixed.test.samples)] == [2, 3, 3]
    assert fixed.layout == "babyface" and fixed.classes == CLASSES
    split_file.write_text("file,split\nhappy/0.png,holdout\n")
    with pytest.raises(DataError, match="'holdout' is not one of train, val, test"):
        apply_split_file(scan, split_file)
    split_file.write_text("file,split\nhappy/0.png,test\n")
    with pytest.raises(DataError, match="no image .* is marked train"):
        apply_split_file(scan, split_file)
    split_file.write_text("file,fold\nhappy/0.png,1\n")
    with pytest.raises(DataError, match="no column 'split'.*a 'split' column"):
        apply_split_file(scan, split_file)
    with pytest.raises(DataError, match="not found; check the --split-file path"):
        apply_split_file(scan, tmp_path / "nothing.csv")


def test_a_fold_ensemble_is_rebuilt_when_its_seeds_change(tmp_path) -> None:
    """cv --resume with more --seeds (or a seed trained again) must not keep the old ensemble of fewer members."""
    import os

    from babyface.experiments.cv import ensemble_is_current

    runs = [tmp_path / f"seed{i}" for i in range(3)]
    for run in runs:
        run.mkdir()
        (run / "model.json").write_text("{}")
        os.utime(run / "model.json", (1_000, 1_000))
    ensemble = tmp_path / "ensemble"
    for member in runs[:2]:
        (ensemble / "members" / member.name).mkdir(parents=True)
    assert not ensemble_is_current(ensemble, runs[:2])  # no model.json yet
    (ensemble / "model.json").write_text("{}")
    assert ensemble_is_current(ensemble, runs[:2])
    assert not ensemble_is_current(ensemble, runs)  # a third seed joined
    os.utime(runs[1] / "model.json")  # seed 1 trained again, after the ensemble was written
    os.utime(ensemble / "model.json", (2_000, 2_000))
    assert not ensemble_is_current(ensemble, runs[:2])
