"""End-to-end on real infant photos from ../shared/data (skipped where that folder is absent)."""

from __future__ import annotations

import csv
import json
import os
import random
from collections import defaultdict

import pytest

from babyface.cli import main
from tests.e2e.conftest import SHARED_DATA

INFANT_WEB = SHARED_DATA / "infant-web"
pytestmark = pytest.mark.skipif(not (INFANT_WEB / "manifest.csv").is_file(), reason="../shared/data/infant-web is not present")


def split_by_identity(root, out, test_share=0.25, seed=0):
    """Lay out infant-web as train/ and test/ with whole identity groups on one side (symlinks, no copies)."""
    with open(root / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    groups = defaultdict(list)
    for row in rows:
        groups[row["identity_group"]].append(row)
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    test_groups = set(names[: round(test_share * len(names))])
    for group, members in groups.items():
        split = "test" if group in test_groups else "train"
        for row in members:
            target = out / split / row["label"] / os.path.basename(row["file"])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(root / row["file"])
    return test_groups


@pytest.mark.slow
def test_resnet18_on_infant_web_identity_split_beats_chance(tmp_path):
    data = tmp_path / "infant-web"
    split_by_identity(INFANT_WEB, data)
    run, evaluation = tmp_path / "run", tmp_path / "eval"
    assert main(["train", str(data), "--model", "resnet18", "--epochs", "15", "--out", str(run), "--seed", "0", "--no-progress"]) == 0
    assert main(["evaluate", str(run), str(data), "--out", str(evaluation), "--no-progress"]) == 0
    metrics = json.loads((evaluation / "metrics.json").read_text())
    recalls = [metrics["per_class"][c]["recall"] for c in ("happy", "sad")]
    # chance is 0.5 balanced accuracy (the majority class alone scores 0.5 too); a run here scored 0.71
    assert sum(recalls) / 2 > 0.6, metrics
    assert metrics["n"] > 80
