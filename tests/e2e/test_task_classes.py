"""A model that learns more classes than the task has (FER2013's seven) decides over the task's (happy, neutral, sad):
training validates over them, model.json records them, and evaluate, predict, serve and the Python API answer
over them. Folders of one dataset (fer2013-hsn + fer2013-other) are one source."""

from __future__ import annotations

import io
import json
import shutil

import pytest
from PIL import Image

from babyface.cli import main
from babyface.data.sources import load_label_map, scan_sources
from babyface.errors import BundleError
from babyface.run import parse_model_meta
from tests.e2e.conftest import read_csv


@pytest.fixture(scope="module")
def fer_like(tiny_data, tmp_path_factory):
    """tiny_data as 'fer-hsn' (happy, neutral, sad) and 'fer-other' (angry, fear: renamed copies of its sad and neutral
    faces) in the same train/test layout, plus 'utk-a' and 'utk-b' that share classes."""
    root = tmp_path_factory.mktemp("fer")
    shutil.copytree(tiny_data, root / "fer-hsn")
    for split in ("train", "test"):
        for old, new in (("sad", "angry"), ("neutral", "fear")):
            shutil.copytree(tiny_data / split / old, root / "fer-other" / split / new)
    for name in ("utk-a", "utk-b"):
        for cls in ("happy", "neutral"):
            shutil.copytree(tiny_data / "test" / cls, root / name / cls)
    return root


def test_folders_of_one_dataset_are_one_source_and_folders_that_share_classes_are_not(fer_like):
    scan = scan_sources([fer_like / "fer-hsn", fer_like / "fer-other", fer_like / "utk-a", fer_like / "utk-b"], None, 0.25, 0)
    assert {s.source for s in scan.train.samples} == {"fer", "utk-a", "utk-b"}
    assert scan.classes == ["angry", "fear", "happy", "neutral", "sad"]


def test_a_label_map_merges_several_folders_of_one_source_into_one_class(fer_like, tmp_path):
    mapping = tmp_path / "negative.yaml"
    mapping.write_text("angry: sad\nfear: sad\n")
    scan = scan_sources([fer_like / "fer-hsn", fer_like / "fer-other"], load_label_map(mapping), 0.25, 0)
    assert scan.classes == ["happy", "neutral", "sad"] and {s.source for s in scan.train.samples} == {"fer"}
    sad = [s for s in scan.train.samples if scan.classes[s.label] == "sad"]
    assert {p.parent.name for p in (s.path for s in sad)} == {"sad", "angry", "fear"}


@pytest.fixture(scope="module")
def seven_class_run(fer_like, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "five"
    assert main(["train", str(fer_like / "fer-hsn"), "--data", str(fer_like / "fer-other"), "--decide-over",
                 "happy,neutral,sad", "--model", "xception-mini", "--image-size", "32", "--epochs", "1", "--out", str(run),
                 "--no-progress", "--no-leakage-check", "--seed", "0"]) == 0
    return run


def test_training_records_the_decision_classes_and_validates_over_them(seven_class_run):
    meta = json.loads((seven_class_run / "model.json").read_text())
    assert meta["classes"] == ["angry", "fear", "happy", "neutral", "sad"]
    assert meta["decision_classes"] == ["happy", "neutral", "sad"]
    assert list(meta["data"]["coverage"]) == ["fer"]  # one source: plain cross-entropy, nothing restricted
    assert meta["temperature"] > 0 and meta["calibration"]["split"] == "validation"
    assert "decide_over" in (seven_class_run / "config.yaml").read_text()


def test_evaluate_decides_over_the_task_classes_on_the_own_split_and_on_a_subset(seven_class_run, fer_like, tmp_path, caplog):
    assert main(["evaluate", str(seven_class_run), "--out", str(tmp_path / "own"), "--bootstrap", "100"]) == 0
    own = json.loads((tmp_path / "own" / "metrics.json").read_text())
    assert own["classes"] == ["happy", "neutral", "sad"] and len(own["confusion_matrix"]) == 3
    assert "left out" in caplog.text  # the angry and fear test images of the run's own split
    subset = tmp_path / "happy-sad"
    for cls in ("happy", "sad"):
        shutil.copytree(fer_like / "fer-hsn" / "test" / cls, subset / cls)
    assert main(["evaluate", str(seven_class_run), str(subset), "--out", str(tmp_path / "sub"), "--bootstrap", "100"]) == 0
    rows = read_csv(tmp_path / "sub" / "predictions.csv")
    assert {r["predicted"] for r in rows} <= {"happy", "neutral", "sad"} and "p_angry" not in rows[0]


def test_a_test_set_of_only_classes_outside_the_decision_classes_fails_in_one_line(seven_class_run, fer_like, tmp_path, capsys):
    assert main(["evaluate", str(seven_class_run), str(fer_like / "fer-other" / "test"), "--out", str(tmp_path / "e")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "decisions are over (happy, neutral, sad)" in err[0]


def test_predict_and_the_python_api_answer_over_the_task_classes(seven_class_run, fer_like, capsys):
    from babyface.inference.classifier import Classifier

    image = next((fer_like / "fer-hsn" / "test" / "happy").iterdir())
    assert main(["predict", str(seven_class_run), str(image), "--format", "csv", "--framing", "whole"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.split(",")[3:6] == ["p_happy", "p_neutral", "p_sad"] and "angry" not in header
    classifier = Classifier(seven_class_run, device="cpu", backend="torch")
    prediction = classifier.predict(str(image))
    assert classifier.classes == ["happy", "neutral", "sad"]
    assert set(prediction.probabilities) == {"happy", "neutral", "sad"}
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_serve_answers_over_the_task_classes(seven_class_run, fer_like):
    pytest.importorskip("httpx2", reason="FastAPI's TestClient needs httpx2")
    from babyface.config import ServeConfig
    from babyface.serve.app import create_app
    from tests.conftest import local_client

    buffer = io.BytesIO()
    Image.open(next((fer_like / "fer-hsn" / "test" / "sad").iterdir())).save(buffer, format="PNG")
    with local_client(create_app(ServeConfig(run=str(seven_class_run), device="cpu"))) as client:
        answer = client.post("/predict", files={"image": ("x.png", buffer.getvalue(), "image/png")}).json()
        info = client.get("/model").json()
    assert info["classes"] == ["happy", "neutral", "sad"] and info["learned_classes"][:2] == ["angry", "fear"]
    assert set(answer["faces"][0]["probabilities"]) == {"happy", "neutral", "sad"}


def test_decide_over_classes_the_data_lacks_decides_over_all_and_says_so(fer_like, tmp_path, caplog):
    run = tmp_path / "r"
    assert main(["train", str(fer_like / "fer-hsn"), "--decide-over", "joy,sorrow,happy", "--epochs", "1",
                 "--model", "xception-mini", "--image-size", "32", "--out", str(run), "--no-progress"]) == 0
    assert "the data has 1 of these classes" in caplog.text and "decisions are over all of them" in caplog.text
    assert json.loads((run / "model.json").read_text())["decision_classes"] == []


def test_a_bundle_whose_decision_classes_are_not_its_classes_is_refused(seven_class_run, tmp_path):
    meta = json.loads((seven_class_run / "model.json").read_text())
    meta["decision_classes"] = ["happy", "joy"]
    with pytest.raises(BundleError, match="decision_classes"):
        parse_model_meta(meta, tmp_path / "model.json")


@pytest.mark.parametrize("group_by", ["", "near-duplicates"])
def test_validation_takes_its_share_of_every_source_and_class(fer_like, group_by):
    from babyface.config import TrainConfig
    from babyface.training.prepare import prepare_data

    config = TrainConfig.model_validate({"data": str(fer_like / "fer-hsn"), "sources": [str(fer_like / "utk-a")],
                                         "progress": False, "data_options": {"group_by": group_by, "leakage_check": False}})
    data = prepare_data(config)
    for source in ("fer-hsn", "utk-a"):
        for label in range(len(data.classes)):
            total = sum(1 for split in (data.train, data.val) for p, y in zip(split.paths, split.labels)
                        if data.sources[p] == source and int(y) == label)
            held = sum(1 for p, y in zip(data.val.paths, data.val.labels) if data.sources[p] == source and int(y) == label)
            assert total == 0 or abs(held - 0.2 * total) <= 1.5, (source, data.classes[label], held, total)


def test_the_model_card_lists_sources_per_class_decision_classes_and_aucs(seven_class_run, tmp_path):
    assert main(["evaluate", str(seven_class_run), "--out", str(seven_class_run / "evaluation"), "--bootstrap", "100",
                 "--overwrite"]) == 0
    assert main(["report", str(seven_class_run), "--gallery", "0", "--out", str(tmp_path)]) == 0
    card = (tmp_path / "model_card.md").read_text()
    assert "happy, neutral, sad (decisions over these; it also learned angry, fear)" in card
    assert "| source | angry | fear | happy | neutral | sad |" in card and "| fer |" in card
    assert "positive vs rest AUC" in card and "negative vs neutral AUC" in card


def test_a_run_trained_with_a_merging_label_map_evaluates_on_a_set_without_the_merged_folders(fer_like, tmp_path):
    mapping = tmp_path / "negative.yaml"
    mapping.write_text("angry: sad\nfear: sad\n")
    run = tmp_path / "merged"
    assert main(["train", str(fer_like / "fer-hsn"), "--data", str(fer_like / "fer-other"), "--label-map", str(mapping),
                 "--model", "xception-mini", "--image-size", "32", "--epochs", "1", "--out", str(run), "--no-progress",
                 "--no-leakage-check"]) == 0
    assert json.loads((run / "model.json").read_text())["classes"] == ["happy", "neutral", "sad"]
    # the recorded map names angry and fear, which fer-hsn does not have: it applies to the folders there are
    assert main(["evaluate", str(run), str(fer_like / "fer-hsn"), "--data", str(fer_like / "utk-a"),
                 "--out", str(tmp_path / "e"), "--bootstrap", "0"]) == 0
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["n"] == 12 + 8  # fer-hsn/test, all of utk-a


def test_a_test_set_of_one_class_is_evaluated_over_the_decision_classes(seven_class_run, fer_like, tmp_path):
    crying = tmp_path / "crying"
    for split in ("train", "test"):
        shutil.copytree(fer_like / "fer-hsn" / split / "sad", crying / split / "sad")
    for data in (crying, crying / "test"):  # a BabyFace layout of one class, and a folder of one class folder
        out = tmp_path / f"e-{data.name}"
        assert main(["evaluate", str(seven_class_run), str(data), "--out", str(out), "--bootstrap", "0"]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["n"] == 4 and metrics["per_class"]["sad"]["support"] == 4 and len(metrics["confusion_matrix"]) == 3
