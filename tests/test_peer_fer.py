"""benchmarks/peer_fer.py without the peer venv: test sets and label maps, the worker's decision rule on a fake
fer, scoring and the table, and babyface bundles scored end to end (TensorFlow is never installed or imported)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import peer_fer  # noqa: E402
import peer_fer_worker  # noqa: E402
from babyface.errors import DataError, OutputExistsError  # noqa: E402


def write_predictions(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(peer_fer_worker.HEADER)
        for number, (truth, pred, face) in enumerate(rows):
            writer.writerow([f"img{number}.png", truth, pred, "0.5", "0.3", "0.2", face, pred])
    return path


def class_folders(root: Path, counts: dict[str, int], write_png, size: int = 32) -> Path:
    for name, count in counts.items():
        for number in range(count):
            write_png(root / name / f"{number}.png", value=40 * number % 250, size=size)
    return root


def test_parse_set_reads_name_path_and_optional_label_map(tmp_path: Path) -> None:
    plain = peer_fer.parse_set("fer=/data/fer2013-hsn/test")
    assert (plain.name, plain.path, plain.label_map) == ("fer", Path("/data/fer2013-hsn/test"), {})
    (tmp_path / "map.yaml").write_text("laughing: happy\nsleeping: null\n")
    mapped = peer_fer.parse_set(f"thumbs={tmp_path}/crops:{tmp_path}/map.yaml")
    assert mapped.path == tmp_path / "crops" and mapped.label_map == {"laughing": "happy", "sleeping": None}
    with pytest.raises(DataError, match="NAME=PATH"):
        peer_fer.parse_set("no-name-given")


def test_default_sets_resolve_from_shared_and_prepared_folders() -> None:
    sets = {s.name: s for s in peer_fer.default_sets(Path("/s"), Path("/p"))}
    assert sets["fer2013-test"].path == Path("/s/fer2013-hsn/test")
    assert sets["utk-heldout"].path == Path("/p/utk/test") and sets["infant-web-unseen"].path == Path("/p/iw/test")
    assert sets["thumbs-crop"].label_map["crying"] == "sad" and sets["thumbs-crop"].label_map["angry"] is None


def test_label_map_maps_and_drops_classes_and_limit_keeps_every_class(tmp_path: Path, write_tiny_png) -> None:
    root = class_folders(tmp_path / "thumbs", {"laughing": 6, "crying": 6, "sleeping": 2, "surprise": 1}, write_tiny_png)
    spec = peer_fer.TestSetSpec("thumbs", root, {"laughing": "happy", "crying": "sad", "sleeping": None})
    images = peer_fer.load_test_images(spec)
    assert sorted(images.truths) == ["happy"] * 6 + ["sad"] * 6
    assert images.dropped == {"sleeping": 2, "surprise": 1}  # null in the map, and a class outside happy/neutral/sad
    assert set(peer_fer.load_test_images(spec, limit=4).truths) == {"happy", "sad"}
    assert len(peer_fer.load_test_images(spec, limit=4).files) == 4


def test_missing_set_is_skipped_with_a_note(tmp_path: Path, capsys) -> None:
    spec = peer_fer.TestSetSpec("gone", tmp_path / "nothing", hint="babyface data crop A B")
    assert peer_fer.available_sets([spec], 0) == []
    note = capsys.readouterr().out
    assert "skip gone" in note and "babyface data crop A B" in note


class FakeFer:
    """Stands in for fer.fer.FER: fixed 7-way scores, and fer's habit of rounding what it returns."""

    def __init__(self, scores: list[float]):
        self.scores = scores
        self.boxes: list = []

    @staticmethod
    def _get_labels():
        return {0: "angry", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise", 6: "neutral"}

    def _classify_emotions(self, faces):
        return [self.scores]

    def detect_emotions(self, image, face_rectangles):
        self.boxes.append(face_rectangles[0])
        raw = self._classify_emotions(None)[0]
        return [{"box": face_rectangles[0], "emotions": {k: round(v, 2) for k, v in zip(self._get_labels().values(), raw)}}]


class FakeDetectors:
    """Stands in for the worker's Detectors: one FakeFer per offset asked for."""

    def __init__(self, scores: list[float]):
        self.made: dict[int, tuple] = {}
        self.scores = scores

    def get(self, offset: int) -> tuple:
        if offset not in self.made:
            fake = FakeFer(self.scores)
            self.made[offset] = (fake, peer_fer_worker.keep_raw_scores(fake))
        return self.made[offset]


def test_worker_decides_among_happy_neutral_sad_from_unrounded_scores(tmp_path: Path, write_tiny_png) -> None:
    image = write_tiny_png(tmp_path / "a.png", size=20)
    detectors = FakeDetectors([0.9, 0.0, 0.0, 0.001, 0.004, 0.09, 0.005])  # angry wins; neutral beats sad only unrounded
    whole = {"file": str(image), "truth": "sad", "face_found": "", "x": "", "y": "", "w": "", "h": "", "offset": ""}
    row = peer_fer_worker.classify_job(detectors, whole)
    assert row[2] == "neutral" and row[-1] == "angry"
    fake = detectors.made[peer_fer_worker.FER_OFFSET][0]  # no offset given: fer's default
    assert fake.boxes[-1] == (0, 0, 20, 20)  # no box: the whole image
    peer_fer_worker.classify_job(detectors, {**whole, "face_found": "1", "x": "2", "y": "3", "w": "10", "h": "12"})
    assert fake.boxes[-1] == (2, 3, 10, 12)
    peer_fer_worker.classify_job(detectors, {**whole, "offset": "0"})
    assert detectors.made[0][0].boxes == [(0, 0, 20, 20)]


def test_scores_and_table_from_a_predictions_csv(tmp_path: Path) -> None:
    rows = [("happy", "happy", "1")] * 3 + [("happy", "sad", "0")] + [("neutral", "neutral", "1")] * 2 + [("neutral", "happy", "1")]
    metrics = peer_fer.score_predictions(peer_fer.read_predictions(write_predictions(tmp_path / "p.csv", rows)), n_resamples=50)
    assert metrics["accuracy"] == pytest.approx(5 / 7)
    assert metrics["per_class"]["neutral"]["recall"] == pytest.approx(2 / 3)
    assert metrics["faces_found"] == 6 and len(metrics["accuracy_ci"]) == 2
    assert peer_fer.recall_text(metrics) == "h 0.75 · n 0.67 · s –"  # no sad truth in the set
    results = [{"model": "fer", "framing": "faces", "set": "utk", "metrics": metrics}]
    table = peer_fer.table_markdown(results, ["utk", "missing"])
    assert "| fer | faces | 0.714 [" in table and table.rstrip().endswith("n/a | n/a | n/a |")
    assert "utk 6/7" in peer_fer.faces_found_line(results)


def test_babyface_bundles_are_scored_on_the_same_images(tmp_path: Path, write_tiny_png, untrained_run: Path) -> None:
    data = class_folders(tmp_path / "set", {"happy": 3, "neutral": 2, "sad": 2}, write_tiny_png)
    out = tmp_path / "out"
    argv = ["--no-fer", "--babyface", str(untrained_run), "--set", f"tiny={data}", "--out", str(out)]
    peer_fer.main(argv)
    for framing in ("faces", "whole"):
        rows = peer_fer.read_predictions(out / f"pred-run-{framing}-tiny.csv")
        assert len(rows) == 7 and {r["pred"] for r in rows} <= set(peer_fer.CLASSES)
    assert not (out / "pred-run-bare-tiny.csv").exists()  # a fer-only framing
    report = (out / "peer_fer.md").read_text()
    assert "| run | faces |" in report and "| run | whole |" in report and "| run | bare |" not in report
    assert "no peer run" in report
    with pytest.raises(OutputExistsError):
        peer_fer.main(argv)


def test_fer_jobs_give_whole_images_with_fer_frame_or_bare(tmp_path: Path, write_tiny_png) -> None:
    root = class_folders(tmp_path / "set", {"happy": 1, "sad": 1}, write_tiny_png)
    images = peer_fer.load_test_images(peer_fer.TestSetSpec("tiny", root))
    jobs = peer_fer.write_fer_jobs(images, ["whole", "bare"], tmp_path)
    whole, bare = (peer_fer.read_predictions(jobs[f]) for f in ("whole", "bare"))
    assert [r["truth"] for r in whole] == ["happy", "sad"] and all(r["x"] == "" for r in whole + bare)
    assert {r["offset"] for r in whole} == {""} and {r["offset"] for r in bare} == {"0"}  # fer's default frame, or none


def test_babyface_rows_use_the_framing_they_are_named_after(tmp_path: Path, write_tiny_png) -> None:
    data = class_folders(tmp_path / "set", {"happy": 1, "sad": 1}, write_tiny_png)
    images = peer_fer.load_test_images(peer_fer.parse_set(f"tiny={data}"))
    seen = []

    class FakePredictor:
        def predict_files(self, files, framing):
            from babyface.inference.classifier import Prediction

            seen.append(framing.mode)
            probs = {"happy": 0.6, "neutral": 0.1, "sad": 0.3}
            return [Prediction(str(f), "happy", 0.6, probs, face_found=framing.mode == "face") for f in files], []

    whole = peer_fer.babyface_predictions(FakePredictor(), images, "whole")
    faces = peer_fer.babyface_predictions(FakePredictor(), images, "faces")
    assert seen == ["whole", "face"]
    assert {row[-2] for row in whole} == {""} and {row[-2] for row in faces} == {1}


def test_pyemotion_worker_cuts_the_box_in_grey_and_decides_among_happy_neutral_sad(tmp_path: Path, write_tiny_png) -> None:
    import torch

    import peer_pyemotion_worker as worker

    image = write_tiny_png(tmp_path / "a.png", size=20)
    assert worker.face_tensor(str(image), ["", "", "", ""]).shape == (1, 1, 48, 48)
    crop = worker.face_tensor(str(image), ["2", "3", "10", "12"])
    assert crop.shape == (1, 1, 48, 48) and -1.0 <= float(crop.min()) <= float(crop.max()) <= 1.0

    class Fake(torch.nn.Module):  # angry, disgust, fear, happy, sad, surprise, neutral: angry wins, sad beats neutral
        def forward(self, x):
            return torch.tensor([[0.9, 0.1, 0.1, 0.1, 0.3, 0.8, 0.2]]).expand(len(x), 7)

    jobs = tmp_path / "jobs.csv"
    with open(jobs, "w", newline="") as handle:
        csv.writer(handle).writerows([["file", "truth", "face_found", "x", "y", "w", "h", "offset"], [str(image), "sad", "", "", "", "", "", ""]])
    worker.classify(Fake(), jobs, tmp_path / "pred.csv")
    row = peer_fer.read_predictions(tmp_path / "pred.csv")[0]
    assert row["pred"] == "sad" and row["fer_top"] == "angry"
    assert float(row["p_sad"]) == pytest.approx(0.5) and float(row["p_happy"]) == pytest.approx(1 / 6, abs=1e-5)
    assert peer_fer.PEERS["pyemotion"].framings == ("faces", "whole")
