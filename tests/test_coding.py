"""Video coding: epochs from classified frames, bouts, the code map, phases and summaries, and the ELAN, BORIS,
Datavyu and CSV files read back with the codes they were written from."""

from __future__ import annotations

import dataclasses
import json
import zipfile

import pytest

from babyface.errors import BabyfaceError
from babyface.video.analysis import FaceRow
from babyface.video.coding import (
    INFANT_FLOOR,
    UNCODABLE,
    Bout,
    CodedVideo,
    check_epoch_has_frames,
    code_epochs,
    epoch_bounds,
    infant_threshold,
    merge_bouts,
    parse_code_map,
)
from babyface.video.coding_files import (
    Provenance,
    read_boris,
    read_codes_csv,
    read_eaf,
    read_opf,
    write_boris,
    write_codes_csv,
    write_eaf,
    write_opf,
)
from babyface.video.corpus import folder_names, sampling_interval
from babyface.video.episodes import Phase, read_phases, summarise, summarise_video

CLASSES = ["happy", "neutral", "sad"]
HAPPY, NEUTRAL, SAD = ({"happy": 0.8, "neutral": 0.1, "sad": 0.1}, {"happy": 0.1, "neutral": 0.8, "sad": 0.1},
                       {"happy": 0.1, "neutral": 0.2, "sad": 0.7})


def rows_for(script: list[tuple[float, float, dict | None]], fps: float = 5, face_id: int = 1,
             box: tuple[int, int, int, int] = (10, 10, 110, 110)) -> tuple[list[FaceRow], list[float]]:
    """Rows of one face at ``fps`` frames a second: (start, end, probabilities or None for no face)."""
    rows, times = [], []
    for start, end, probabilities in script:
        t = start
        while t < end - 1e-9:
            times.append(round(t, 4))
            if probabilities is not None:
                rows.append(FaceRow(round(t, 4), int(t * 30), face_id, box, probabilities, ""))
            t += 1 / fps
    return rows, times


def coded(tiers, duration=6.0) -> CodedVideo:
    return CodedVideo("clip.mp4", duration, 1.0, CLASSES, tiers)


def test_epochs_follow_the_face_and_an_absent_face_is_uncodable():
    rows, times = rows_for([(0, 2, HAPPY), (2, 3, None), (3, 5, SAD), (5, 6, NEUTRAL)])
    tiers = code_epochs(rows, times, 6.0, 1.0, CLASSES, parse_code_map("", CLASSES))
    epochs = tiers["affect@largest"]
    assert [e.code for e in epochs] == ["positive", "positive", UNCODABLE, "negative", "negative", "neutral"]
    assert epochs[0].probabilities == HAPPY and epochs[0].box == (10, 10, 110, 110) and epochs[0].seen == 5
    assert epochs[2].face_id is None and epochs[2].frames == 5 and epochs[2].seen == 0


@pytest.mark.parametrize("face", ["largest", "infant", "all"])
def test_a_video_without_any_face_is_uncodable_throughout_not_an_error(face):
    _, times = rows_for([(0, 3, None)])
    tiers = code_epochs([], times, 3.0, 1.0, CLASSES, parse_code_map("", CLASSES), face=face)
    assert all(e.code == UNCODABLE for epochs in tiers.values() for e in epochs)
    assert face == "all" or [len(epochs) for epochs in tiers.values()] == [3]


def test_a_face_seen_in_fewer_than_half_the_frames_is_uncodable_and_min_confidence_too():
    rows, times = rows_for([(0, 0.4, HAPPY), (0.4, 1, None), (1, 2, {"happy": 0.4, "neutral": 0.35, "sad": 0.25})])
    strict = code_epochs(rows, times, 2.0, 1.0, CLASSES, parse_code_map("", CLASSES), min_confidence=0.5)["affect@largest"]
    assert [e.code for e in strict] == [UNCODABLE, UNCODABLE]
    lenient = code_epochs(rows, times, 2.0, 1.0, CLASSES, parse_code_map("", CLASSES))["affect@largest"]
    assert [e.code for e in lenient] == [UNCODABLE, "positive"]


def test_largest_codes_the_bigger_face_and_all_gives_every_face_a_tier():
    infant, times = rows_for([(0, 2, SAD)], face_id=1, box=(0, 0, 200, 200))
    parent, _ = rows_for([(0, 2, HAPPY)], face_id=2, box=(300, 0, 360, 60))
    largest = code_epochs(infant + parent, times, 2.0, 1.0, CLASSES, parse_code_map("", CLASSES))
    assert [e.code for e in largest["affect@largest"]] == ["negative", "negative"]
    assert {e.face_id for e in largest["affect@largest"]} == {1}
    every = code_epochs(infant + parent, times, 2.0, 1.0, CLASSES, parse_code_map("", CLASSES), face="all")
    assert {tier: [e.code for e in epochs] for tier, epochs in every.items()} == {
        "affect@face1": ["negative", "negative"], "affect@face2": ["positive", "positive"]}


def test_when_the_infant_turns_away_the_smaller_parent_face_is_not_coded_in_its_place():
    infant, times = rows_for([(0, 3, SAD), (3, 5, None), (5, 8, NEUTRAL)], face_id=1, box=(0, 0, 200, 200))
    parent, _ = rows_for([(0, 8, HAPPY)], face_id=2, box=(300, 0, 420, 120))  # 0.36 of the infant's area
    epochs = code_epochs(infant + parent, times, 8.0, 1.0, CLASSES, parse_code_map("", CLASSES))["affect@largest"]
    assert [e.code for e in epochs] == ["negative"] * 3 + [UNCODABLE] * 2 + ["neutral"] * 3
    assert {e.face_id for e in epochs} == {1, None}


def with_infant(rows: list[FaceRow], p: float) -> list[FaceRow]:
    return [dataclasses.replace(r, infant=p) for r in rows]


def test_face_infant_codes_the_most_infant_like_face_and_never_the_parent():
    infant, times = rows_for([(0, 3, SAD), (3, 5, None), (5, 8, NEUTRAL)], face_id=1, box=(0, 0, 100, 100))
    parent, _ = rows_for([(0, 8, HAPPY)], face_id=2, box=(100, 0, 400, 300))  # larger than the infant
    rows = with_infant(infant, 0.42) + with_infant(parent, 0.07)  # a new camera: even the infant under 0.5
    epochs = code_epochs(rows, times, 8.0, 1.0, CLASSES, parse_code_map("", CLASSES), face="infant")["affect@infant"]
    assert [e.code for e in epochs] == ["negative"] * 3 + [UNCODABLE] * 2 + ["neutral"] * 3
    assert {e.face_id for e in epochs} == {1, None}
    largest = code_epochs(rows, times, 8.0, 1.0, CLASSES, parse_code_map("", CLASSES))["affect@largest"]
    assert {e.face_id for e in largest} == {2}  # what --face largest would have coded: the parent
    alone = code_epochs(with_infant(parent, 0.07), times, 8.0, 1.0, CLASSES, parse_code_map("", CLASSES), face="infant")
    assert {e.code for e in alone["affect@infant"]} == {UNCODABLE}  # only an adult in view: nothing to code
    assert infant_threshold(0.9) == 0.45 and infant_threshold(0.1) == INFANT_FLOOR and infant_threshold(1.2) == 0.5


def test_a_code_sums_the_probabilities_of_its_classes():
    seven = ["happy", "neutral", "sad", "fear", "surprise"]
    rows, times = rows_for([(0, 1, {"happy": 0.3, "neutral": 0.3, "sad": 0.2, "fear": 0.15, "surprise": 0.05})])
    code_map = parse_code_map("happy=positive,surprise=positive,neutral=neutral,sad=negative,fear=negative", seven)
    assert code_epochs(rows, times, 1.0, 1.0, seven, code_map)["affect@largest"][0].code == "positive"
    code_map = parse_code_map("happy=positive,surprise=neutral,neutral=neutral,sad=negative,fear=negative", seven)
    assert code_epochs(rows, times, 1.0, 1.0, seven, code_map)["affect@largest"][0].code == "neutral"


@pytest.mark.parametrize("text, classes, message", [
    ("happy=joy", CLASSES, "names no code"),
    ("happy=positive,grin=positive,neutral=neutral,sad=negative", CLASSES, "does not decide over"),
    ("", ["happy", "neutral", "sad", "fear"], "does not place"),
    ("happy=positive", CLASSES, "does not place"),
])
def test_a_code_map_that_cannot_place_every_class_is_refused(text, classes, message):
    with pytest.raises(BabyfaceError, match=message):
        parse_code_map(text, classes)


def test_epochs_cover_the_video_and_need_a_frame_each():
    assert epoch_bounds(2.5, 1.0) == [(0.0, 1.0), (1.0, 2.0), (2.0, 2.5)]
    assert epoch_bounds(3.0, 1.0)[-1] == (2.0, 3.0)
    with pytest.raises(BabyfaceError, match="--fps to at least 10"):
        check_epoch_has_frames(0.1, 5, "clip.mp4")
    assert sampling_interval(30, 5) == 6 and sampling_interval(30, 0) == 1 and sampling_interval(25, 60) == 1


def test_bouts_merge_consecutive_equal_epochs():
    rows, times = rows_for([(0, 2, HAPPY), (2, 3, SAD), (3, 4, HAPPY)])
    epochs = code_epochs(rows, times, 4.0, 1.0, CLASSES, parse_code_map("", CLASSES))["affect@largest"]
    assert merge_bouts(epochs) == [Bout(0, 2, "positive"), Bout(2, 3, "negative"), Bout(3, 4, "positive")]


def test_summaries_give_shares_bouts_and_latencies_per_phase():
    rows, times = rows_for([(0, 2, HAPPY), (2, 3, None), (3, 5, SAD), (5, 6, NEUTRAL)])
    epochs = code_epochs(rows, times, 6.0, 1.0, CLASSES, parse_code_map("", CLASSES))["affect@largest"]
    whole, still = summarise_video("clip.mp4", {"affect@largest": epochs}, 6.0, [Phase("still-face", 2, 6)])
    assert whole.seconds_coded == 5 and whole.uncodable_share == pytest.approx(1 / 6)
    assert whole.shares == pytest.approx({"positive": 0.4, "neutral": 0.2, "negative": 0.4})
    assert whole.bouts == {"positive": 1, "neutral": 1, "negative": 1} and whole.mean_bout["negative"] == 2
    assert whole.latency == {"positive": 0.0, "neutral": 5.0, "negative": 3.0}
    assert still.phase == "still-face" and still.latency["negative"] == 1.0 and still.latency["positive"] is None
    assert still.shares["positive"] == 0 and still.seconds_coded == 3
    empty = summarise("clip.mp4", "affect@largest", epochs, Phase("later", 10, 20))
    assert empty.seconds_coded == 0 and empty.uncodable_share == 1.0


def test_phases_csv_is_checked_row_by_row(tmp_path):
    good = tmp_path / "phases.csv"
    good.write_text("video,phase,start,end\na.mp4,face-to-face,0,60\na.mp4,still-face,60,120\nb,reunion,0,30\n")
    assert read_phases(good)["a.mp4"][1] == Phase("still-face", 60, 120)
    overlapping = tmp_path / "overlap.csv"
    overlapping.write_text("video,phase,start,end\na.mp4,face-to-face,0,60\na.mp4,still-face,50,120\n")
    with pytest.raises(BabyfaceError, match=r"row 3: phase 'still-face' .* overlaps 'face-to-face'"):
        read_phases(overlapping)
    backwards = tmp_path / "backwards.csv"
    backwards.write_text("video,phase,start,end\na.mp4,play,30,10\n")
    with pytest.raises(BabyfaceError, match="row 2: .* before the end"):
        read_phases(backwards)
    missing = tmp_path / "missing.csv"
    missing.write_text("video,episode,start,end\n")
    with pytest.raises(BabyfaceError, match="no column phase"):
        read_phases(missing)


def test_two_videos_of_one_name_get_their_own_folders(tmp_path):
    a, b, c = tmp_path / "x" / "s1.mp4", tmp_path / "y" / "s1.mp4", tmp_path / "s2.mp4"
    names = folder_names([a, b, c])
    assert names[c] == "s2" and names[a] != names[b] and names[a].startswith("s1-")
    assert folder_names([b, a])[a] == names[a]  # a folder's name does not depend on the order of the inputs


@pytest.fixture
def two_tier_video() -> CodedVideo:
    infant, times = rows_for([(0, 1.2, HAPPY), (1.2, 2.2, None), (2.2, 4.0, SAD), (4.0, 5.5, NEUTRAL)], face_id=1,
                             box=(0, 0, 200, 200))
    parent, _ = rows_for([(0, 5.5, HAPPY)], face_id=4, box=(300, 0, 350, 50))
    return coded(code_epochs(infant + parent, times, 5.5, 1.0, CLASSES, parse_code_map("", CLASSES), face="all"), 5.5)


def test_every_file_reads_back_with_the_codes_it_was_written_from(tmp_path, two_tier_video):
    video = tmp_path / "media" / "clip (1), take-2.mp4"
    video.parent.mkdir()
    video.write_bytes(b"")
    phases = [Phase("face-to-face", 0, 3), Phase("still-face", 3, 5.5)]
    provenance = Provenance("runs/model", "--epoch 1")
    expected = {tier: two_tier_video.bouts(tier) for tier in two_tier_video.tiers}
    assert set(expected) == {"affect@face1", "affect@face4"} and len(expected["affect@face1"]) == 4
    write_codes_csv(tmp_path / "codes.csv", two_tier_video)
    write_eaf(tmp_path / "clip.eaf", two_tier_video, video, provenance, phases)
    write_boris(tmp_path / "clip.boris", two_tier_video, video, provenance, 30.0)
    write_opf(tmp_path / "clip.opf", two_tier_video, video, 30.0)
    assert read_codes_csv(tmp_path / "codes.csv") == expected
    assert read_eaf(tmp_path / "clip.eaf") == expected
    assert read_boris(tmp_path / "clip.boris") == expected
    assert {tier: [Bout(round(b.start, 3), round(b.end, 3), b.code) for b in bouts]
            for tier, bouts in read_opf(tmp_path / "clip.opf").items()} == expected


def test_the_elan_file_has_the_vocabulary_the_video_and_the_phases(tmp_path, two_tier_video):
    from pympi.Elan import Eaf

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    write_eaf(tmp_path / "clip.eaf", two_tier_video, video, Provenance("runs/model", "--epoch 1"), [Phase("play", 0, 3)])
    eaf = Eaf(str(tmp_path / "clip.eaf"))
    assert sorted(eaf.get_tier_names()) == ["affect@face1", "affect@face4", "phase"]
    assert eaf.get_parameters_for_tier("affect@face1")["ANNOTATOR"] == "babyface (runs/model)"
    entries = eaf.get_cv_entries("affect")
    assert sorted(value for values, _ in entries.values() for value, _, _ in values) == sorted(
        ["positive", "neutral", "negative", "uncodable"])
    assert eaf.media_descriptors[0]["MIME_TYPE"] == "video/mp4"
    assert eaf.media_descriptors[0]["RELATIVE_MEDIA_URL"] == "clip.mp4"
    assert eaf.get_annotation_data_for_tier("phase") == [(0, 3000, "play")]
    assert dict(eaf.properties)["babyface_model"] == "runs/model"


def test_the_boris_project_has_exclusive_states_and_paired_events(tmp_path, two_tier_video):
    write_boris(tmp_path / "clip.boris", two_tier_video, tmp_path / "clip.mp4", Provenance("m", "o"), 25.0)
    project = json.loads((tmp_path / "clip.boris").read_text())
    assert project["project_format_version"] == "7.0"
    states = {b["code"]: b for b in project["behaviors_conf"].values()}
    assert all(b["type"] == "State event" for b in states.values())
    assert states["positive"]["excluded"] == "neutral,negative,uncodable"
    (observation,) = project["observations"].values()
    assert observation["type"] == "MEDIA" and observation["file"]["1"] == ["clip.mp4"] and len(observation["file"]) == 8
    assert observation["media_info"]["length"]["clip.mp4"] == 5.5 and observation["media_info"]["fps"]["clip.mp4"] == 25.0
    assert all(len(event) == 6 for event in observation["events"])
    counts: dict[tuple, int] = {}
    for _, subject, code, *_ in observation["events"]:
        counts[(subject, code)] = counts.get((subject, code), 0) + 1
    assert all(n % 2 == 0 for n in counts.values())  # every state started is stopped
    assert {s["name"] for s in project["subjects_conf"].values()} == {"face1", "face4"}


def test_the_datavyu_file_is_a_zip_of_project_db_and_viewer_settings(tmp_path, two_tier_video):
    write_opf(tmp_path / "clip.opf", two_tier_video, tmp_path / "clip.mp4", 30.0)
    with zipfile.ZipFile(tmp_path / "clip.opf") as archive:
        assert sorted(archive.namelist()) == ["1", "db", "project"]
        db = archive.read("db").decode()
        project = archive.read("project").decode()
    lines = db.splitlines()
    assert lines[0] == "#4" and lines[1] == "affect_face1 (MATRIX,true,)-code|NOMINAL" and "" not in lines
    assert lines[2] == "00:00:00:000,00:00:00:999,(positive)"  # an offset 1 ms before the next cell's onset
    assert project.startswith("!project\n") and "settingsId: '1'" in project and str((tmp_path / "clip.mp4").resolve()) in project
