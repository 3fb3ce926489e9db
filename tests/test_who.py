"""The infant-vs-adult model's data and settings: labels by age from the sources, the run it is trained as, and the
monitor's filter that leaves adults' faces out."""

from __future__ import annotations

from pathlib import Path

import pytest

from babyface.config import TrainConfig
from babyface.data.scan import DatasetScan, Sample, SplitScan
from babyface.data.sources import AGE_CLASSES, label_by_age
from babyface.errors import DataError
from babyface.training.fit import trains_who
from babyface.training.who import who_config
from babyface.video.analysis import FaceRow
from babyface.watch.monitor import InfantFilter


def scan_of(sources: dict[str, int]) -> DatasetScan:
    root = Path("/data")
    samples = [Sample(root / name / f"{i}.jpg", i % 3, name) for name, n in sources.items() for i in range(n)]
    classes = ["happy", "neutral", "sad"]
    return DatasetScan(root, "sources", classes, SplitScan(root, classes, samples), SplitScan(root, classes, samples[:2]))


def test_labels_by_age_follow_the_sources_named_by_source_or_folder():
    scan = label_by_age(scan_of({"fer2013": 4, "infant-web": 3, "cry": 2}), "fer2013-hsn, fer2013-other")
    assert scan.classes == AGE_CLASSES == ["adult", "infant"]
    by_source = {s.source: scan.classes[s.label] for s in scan.train.samples}
    assert by_source == {"fer2013": "adult", "infant-web": "infant", "cry": "infant"}
    assert [scan.classes[s.label] for s in scan.test.samples] == ["adult", "adult"]


@pytest.mark.parametrize("sources, adults, message", [
    ({"fer2013": 3, "iw": 3}, "ferr", "no source is named ferr; the sources are fer2013, iw"),
    ({"fer2013": 3, "iw": 3}, "fer2013,iw", "every source would be adults"),
    ({"": 3}, "x", "several sources"),
    ({"fer2013": 3, "iw": 3}, " , ", "several sources"),
])
def test_labels_by_age_refuse_what_cannot_be_split_into_adults_and_infants(sources, adults, message):
    with pytest.raises(DataError, match=message):
        label_by_age(scan_of(sources), adults)


def test_the_who_run_is_a_short_age_run_without_the_emotion_models_extras(tmp_path):
    config = TrainConfig(data="fer", sources=["iw"], model="xception-mini", epochs=25, seeds="0,1,2", decide_over=["happy"],
                         unlabelled="faces", source_adversary="0.3", mixup=0.2, who_epochs=4, warmup_epochs=1,
                         data_options={"adults": "fer", "relabel": "votes.csv", "image_size": 48})
    assert trains_who(config)
    who = who_config(config, tmp_path / "who")
    assert who.data_options.label_by == "age" and not who.data_options.relabel and who.data_options.image_size == 48
    assert (who.epochs, who.seeds, who.decide_over, who.unlabelled, who.source_adversary, who.mixup) == (4, "", [], "", "off", 0.0)
    assert who.model == "xception-mini" and who.model_args["contrast"] == "equalize" and who.out == str(tmp_path / "who")
    assert not trains_who(who)  # the age run does not train another age run
    assert not trains_who(TrainConfig(data="fer"))


def row(face_id: int, infant: float | None) -> FaceRow:
    return FaceRow(0.0, 0, face_id, (0, 0, 10, 10), {"happy": 1.0}, "happy", None, infant)


def test_the_monitor_leaves_out_adults_faces_and_keeps_every_face_without_the_model():
    infants = InfantFilter()
    assert [r.face_id for r in infants.keep([row(1, 0.4), row(2, 0.05)])] == [1]
    assert [r.face_id for r in infants.keep([row(1, 0.5), row(2, 0.3)])] == [1]  # face 2's mean so far: 0.175
    assert [r.face_id for r in infants.keep([row(2, 0.02)])] == []  # an adult alone in view raises nothing
    assert [r.face_id for r in InfantFilter().keep([row(1, None), row(2, None)])] == [1, 2]
