"""The typed records of a run folder: model.json's data, validation metrics, calibration and framing, metrics.json,
predictions.csv, and the cv and seeds folders' file names."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from babyface.config import TrainConfig
from babyface.errors import BabyfaceError, BundleError
from babyface.evaluation.affect import affect_aucs
from babyface.metrics import add_group_intervals, classification_metrics, quoted_interval
from babyface.run import (
    CvFolder,
    DataRecord,
    EvaluationFiles,
    EvaluationMetrics,
    ModelMeta,
    PredictionRow,
    SeedsFolder,
    parse_model_meta,
    read_evaluation_metrics,
    read_predictions,
    write_predictions,
)
from babyface.run import (
    TestScores as Scores,
)

CALIBRATION = {"bins": 15, "nll_before": 1.1, "nll_after": 1.0, "ece_before": 0.08, "ece_after": 0.01}


def model_json(**changes) -> dict:
    """model.json as training writes it."""
    values = {
        "format": "babyface-bundle", "format_version": 1, "arch": {"name": "cnn", "kwargs": {}}, "classes": ["happy", "sad"],
        "image_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3, "temperature": 1.5, "framing": {"mode": "whole"},
        "data": {"root": "data", "train": 30, "val": 6, "skipped": 0, "sources": ["data"], "label_map": {},
                 "coverage": {"data": {"happy": 15, "sad": 15}}, "missing_classes": "off", "class_balance": "none",
                 "source_adversary": 0.0},
        "training": TrainConfig(data="data", epochs=3).to_dict(),
        "metrics": {"best_epoch": 2, "val_macro_f1": None, "val_acc": 0.5, "val_loss": 0.7, "epochs_run": 3,
                    "seconds_per_epoch": 0.4},
        "calibration": {**CALIBRATION, "split": "validation"},
    }
    return {**values, **changes}


def test_model_json_reads_back_as_typed_records_and_writes_the_same_keys() -> None:
    values = model_json()
    meta = parse_model_meta(values, Path("model.json"))
    assert meta.data.sources == ["data"] and meta.data.coverage["data"]["sad"] == 15 and meta.data.known
    assert meta.metrics.best_epoch == 2 and meta.metrics.val_macro_f1 is None
    assert meta.calibration.split == "validation" and meta.calibration.ece_after == 0.01
    assert meta.framing is not None and meta.framing.mode == "whole"
    written = meta.to_json()
    assert {key: written[key] for key in ("data", "metrics", "calibration", "training")} == \
        {key: values[key] for key in ("data", "metrics", "calibration", "training")}


def test_the_temperature_is_stored_once_and_old_bundles_with_a_second_one_still_load() -> None:
    old = model_json(calibration={**CALIBRATION, "temperature": 1.5, "split": "validation"})
    meta = parse_model_meta(old, Path("model.json"))
    assert meta.temperature == 1.5 and "temperature" not in meta.to_json()["calibration"]


@pytest.mark.parametrize(("section", "renamed"), [("data", "rooot"), ("metrics", "best"), ("calibration", "ece"),
                                                  ("framing", "margins")])
def test_a_renamed_key_is_a_one_line_error_naming_it(section: str, renamed: str) -> None:
    values = model_json()
    values[section] = {**values[section], renamed: 1}
    with pytest.raises(BundleError, match=f"^model.json: '{section}.{renamed}' is not a key babyface knows.*; rename or remove it"):
        parse_model_meta(values, Path("model.json"))


def test_a_renamed_top_level_key_is_a_one_line_error_naming_it_and_the_fix() -> None:
    values = model_json()
    values["calibraton"] = values.pop("calibration")
    with pytest.raises(BundleError, match=r"^model.json: 'calibraton' is not a key babyface knows \(did you mean "
                                          r"'calibration'\?\); rename or remove it, or read the bundle with the babyface "
                                          r"version that wrote it$"):
        parse_model_meta(values, Path("model.json"))


def ensemble_json(**changes) -> dict:
    """model.json as 'babyface ensemble' writes it."""
    members = [{"name": name, "run": f"runs/{name}", "arch": {"name": "cnn", "kwargs": {}}, "image_size": 32,
                "temperature": 1.25, "weights_sha256": "0" * 64} for name in ("a", "b")]
    return model_json(arch={"name": "ensemble", "kwargs": {}}, temperature=1.0, data={}, training={}, members=members,
                      combine="mean of the members' calibrated probabilities", **changes)


def test_an_ensemble_reads_back_its_members_and_how_it_combines_them_and_writes_the_same_json() -> None:
    values = ensemble_json()
    meta = parse_model_meta(values, Path("model.json"))
    assert [m.name for m in meta.members] == ["a", "b"] and meta.members[0].arch.name == "cnn"
    assert meta.members[1].temperature == 1.25 and meta.combine == values["combine"]
    written = meta.to_json()
    assert written["members"] == values["members"] and written["combine"] == values["combine"]
    assert "combine" not in parse_model_meta(model_json(), Path("model.json")).to_json()


def test_an_ensemble_refuses_a_renamed_key_of_its_own_or_of_a_member() -> None:
    values = ensemble_json()
    values["combined"] = values.pop("combine")
    with pytest.raises(BundleError, match=r"'combined' is not a key babyface knows \(did you mean 'combine'\?\); rename"):
        parse_model_meta(values, Path("model.json"))
    values = ensemble_json()
    values["members"][1]["sha256"] = values["members"][1].pop("weights_sha256")
    with pytest.raises(BundleError, match="^model.json: member 'b': 'sha256' is not a key babyface knows"):
        parse_model_meta(values, Path("model.json"))


def test_a_record_babyface_did_not_write_is_refused() -> None:
    with pytest.raises(BundleError, match="'framing.mode'"):
        parse_model_meta(model_json(framing={"mode": "faces"}), Path("model.json"))


def test_an_ensemble_of_runs_on_different_data_records_no_data() -> None:
    meta = parse_model_meta(model_json(data={}), Path("model.json"))
    assert not meta.data.known and meta.data.sources == [] and meta.to_json()["data"] == {}
    assert DataRecord(root="x").known


def test_the_training_config_validates_back_into_train_config() -> None:
    meta = parse_model_meta(model_json(), Path("model.json"))
    config = meta.training_config()
    assert isinstance(config, TrainConfig) and config.epochs == 3 and config.data_options.group_by == ""
    renamed = parse_model_meta(model_json(training={**meta.training, "epoch": 3}), Path("model.json"))
    with pytest.raises(BundleError, match="epoch"):
        renamed.training_config()
    assert ModelMeta.model_validate(model_json(training={})).training_config() == TrainConfig()


def evaluation_metrics(**changes) -> dict:
    """metrics.json as evaluate writes it (no groups, no intervals)."""
    per_class = {"precision": 1.0, "recall": 0.5, "f1": 0.667, "support": 2}
    values = {"n": 4, "accuracy": 0.75, "macro_f1": 0.73, "per_class": {"happy": per_class, "sad": per_class},
              "confusion_matrix": [[1, 1], [0, 2]], "classes": ["happy", "sad"], "model": "cnn", "run": "runs/r",
              "data": "data (test split held out at training)", "skipped": 0, "data_root": "data", "tta": "none",
              "backend": "torch", "precision": "fp32", "framing": {"mode": "whole", "no_face": 0, "trained_on": {"mode": "whole"}},
              "affect_auc": {}, "calibration": {**CALIBRATION, "temperature": 1.5}, "ece": 0.01}
    return {**values, **changes}


def test_metrics_json_reads_back_and_refuses_a_renamed_key(tmp_path: Path) -> None:
    (tmp_path / EvaluationFiles.METRICS).write_text(json.dumps(evaluation_metrics()))
    metrics = read_evaluation_metrics(tmp_path)
    assert metrics.per_class["sad"].support == 2 and metrics.calibration.temperature == 1.5
    assert quoted_interval(metrics, "accuracy") is None and metrics.to_json() == evaluation_metrics()
    grouped = EvaluationMetrics.model_validate(evaluation_metrics(quote="group", accuracy_group_ci=[0.5, 0.9], accuracy_ci=[0.6, 0.8]))
    assert quoted_interval(grouped, "accuracy") == [0.5, 0.9]
    (tmp_path / EvaluationFiles.METRICS).write_text(json.dumps(evaluation_metrics(macro_F1=0.73)))
    with pytest.raises(BabyfaceError, match=r"'macro_F1' is not a key babyface knows \(did you mean 'macro_f1'\?\)"):
        read_evaluation_metrics(tmp_path)
    with pytest.raises(BabyfaceError, match="not found; evaluate the run first"):
        read_evaluation_metrics(tmp_path / "nowhere")


def test_predictions_csv_round_trips(tmp_path: Path) -> None:
    rows = [PredictionRow("a.png", "happy", "sad", {"happy": 0.25, "sad": 0.75}, "true", "baby1"),
            PredictionRow("b.png", "sad", "sad", {"happy": 0.125, "sad": 0.875}, "", "baby2")]
    path = write_predictions(tmp_path / "p.csv", ["happy", "sad"], rows, grouped=True)
    assert path.read_text().splitlines()[0] == "file,true,predicted,p_happy,p_sad,face_found,group"
    assert read_predictions(path) == rows and not rows[0].correct and rows[1].confidence == 0.875
    write_predictions(path, ["happy", "sad"], rows, grouped=False)
    assert [row.group for row in read_predictions(path)] == ["", ""]
    with pytest.raises(BabyfaceError, match="not found"):
        read_predictions(tmp_path / "missing.csv")


def test_cv_and_seeds_folders_own_their_file_names(tmp_path: Path) -> None:
    cv, seeds = CvFolder(tmp_path), SeedsFolder(tmp_path / "fold1")
    assert (cv.config.name, cv.folds.name, cv.summary_json.name, cv.summary_md.name, cv.oof_predictions.name) == \
        ("cv_config.yaml", "folds.csv", "cv_summary.json", "cv_summary.md", "oof_predictions.csv")
    assert cv.split_file(2) == tmp_path / "splits" / "fold2.csv" and cv.fold(1) == seeds.path
    assert seeds.seed(3) == tmp_path / "fold1" / "seed3" and seeds.ensemble.name == "ensemble"
    assert (seeds.summary_json.name, seeds.summary_md.name) == ("summary.json", "summary.md")
    for fold in (2, 10):
        cv.fold(fold).mkdir()
    assert cv.fold_folders() == [cv.fold(10), cv.fold(2)]


def test_cv_resume_redoes_an_evaluation_without_metrics_json(tmp_path: Path, monkeypatch) -> None:
    """metrics.json, which evaluate writes last, marks a complete evaluation, whatever else the folder holds."""
    from babyface.config import CvConfig
    from babyface.experiments import cv

    model = tmp_path / "fold1"
    evaluation = model / "evaluation"
    evaluation.mkdir(parents=True)
    (model / "model.json").write_text("{}")
    evaluated: list[str] = []
    monkeypatch.setattr(cv, "evaluate_run", lambda config: evaluated.append(config.run))
    for name in (EvaluationFiles.PREDICTIONS, EvaluationFiles.GRID_PNG):  # an evaluation interrupted before its end
        (evaluation / name).write_text("")
    config = CvConfig(data="data")
    cv.evaluate_fold(config, model, {})
    assert evaluated == [str(model)]
    (evaluation / EvaluationFiles.METRICS).write_text("{}")
    cv.evaluate_fold(config, model, {})
    assert evaluated == [str(model)]  # complete: kept
    os.utime(evaluation / EvaluationFiles.METRICS, (0, 0))  # older than the model: the model was trained again
    cv.evaluate_fold(config, model, {})
    assert evaluated == [str(model)] * 2


def test_the_intervals_and_aucs_metrics_writes_validate_as_typed_records() -> None:
    rng = np.random.default_rng(0)
    true = np.repeat([0, 1, 2], 20)
    probs = rng.dirichlet(np.ones(3), size=len(true)) + 0.6 * np.eye(3)[true]
    probs /= probs.sum(1, keepdims=True)
    groups = [f"infant{i % 9}" for i in range(len(true))]
    metrics = add_group_intervals(classification_metrics(true, probs.argmax(1), ["happy", "neutral", "sad"], n_resamples=50),
                                  true, probs.argmax(1), groups, n_resamples=50, seed=0, group_by="identity_group")
    metrics["affect_auc"] = affect_aucs(true, probs, ["happy", "neutral", "sad"], n_resamples=50, groups=groups)
    scores = Scores.model_validate(json.loads(json.dumps(metrics)))
    assert scores.resamples == 50 and scores.group_ci.groups == 9 and scores.group_ci.group_by == "identity_group"
    assert scores.affect_auc["negative_vs_neutral"].n_groups == 9 and scores.affect_auc["positive_vs_rest"].auc_ci
    assert quoted_interval(scores, "accuracy") == metrics["accuracy_group_ci"]
    metrics["group_ci"].update({"manifest": "ids.csv", "from": "training"})
    assert Scores.model_validate(metrics).group_ci.origin == "training"
    assert Scores.model_validate(metrics).model_dump(mode="json")["group_ci"]["from"] == "training"
    metrics["affect_auc"]["positive_vs_rest"]["AUC"] = metrics["affect_auc"]["positive_vs_rest"].pop("auc")
    with pytest.raises(ValueError, match="AUC"):
        Scores.model_validate(metrics)
