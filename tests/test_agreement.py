"""babyface agree: time-unit kappa (scikit-learn's on the same epochs), tolerance, uncodable epochs, every reference
format, a lab's vocabulary, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sklearn.metrics import cohen_kappa_score

from babyface.cli import main
from babyface.errors import DataError
from babyface.video.agreement import (
    collect_code_files,
    compare,
    epoch_codes,
    kappa_of_confusion,
    match_events,
    parse_map,
    read_side,
    with_tolerance,
)
from babyface.video.coding import Bout, CodedVideo, Epoch
from babyface.video.coding_files import Provenance, write_boris, write_codes_csv, write_eaf, write_opf

SCRIPT = [(0, 4, "positive"), (4, 6, "neutral"), (6, 7, "uncodable"), (7, 11, "negative"), (11, 14, "neutral")]
OTHER = [(0, 3, "positive"), (3, 7, "neutral"), (7, 10, "negative"), (10, 14, "positive")]


def bouts(script) -> list[Bout]:
    return [Bout(float(a), float(b), c) for a, b, c in script]


def shifted(script, by: float):
    return [(a + by, b + by, c) for a, b, c in script]


def test_kappa_is_scikit_learns_on_the_same_epochs():
    report = compare({"v": bouts(SCRIPT)}, {"v": bouts(OTHER)}, resamples=0)
    a, b = epoch_codes(bouts(SCRIPT), 1.0, 14), epoch_codes(bouts(OTHER), 1.0, 14)
    kept = [(x, y) for x, y in zip(a, b) if "uncodable" not in (x, y)]
    assert report.pooled.kappa == pytest.approx(cohen_kappa_score(*zip(*kept)), abs=1e-6)
    assert report.pooled.epochs == 13 and report.pooled.uncodable_first == 1
    assert report.pooled.agreement == pytest.approx(sum(x == y for x, y in kept) / 13)
    every = compare({"v": bouts(SCRIPT)}, {"v": bouts(OTHER)}, include_uncodable=True, resamples=0)
    assert every.pooled.epochs == 14 and every.codes[-1] == "uncodable"


def test_a_coder_agrees_fully_with_itself_and_with_a_one_second_shift_at_tolerance_one():
    itself = compare({"v": bouts(SCRIPT)}, {"v": bouts(SCRIPT)}, resamples=0).pooled
    assert itself.kappa == itself.agreement == 1.0 and all(v in (1.0, None) for v in itself.per_code.values())
    late = {"v": bouts(shifted(SCRIPT, 1))}
    assert compare({"v": bouts(SCRIPT)}, late, resamples=0).pooled.kappa < 0.9
    tolerant = compare({"v": bouts(SCRIPT)}, late, tolerance=1.0, resamples=0).pooled
    assert tolerant.agreement == 1.0 and tolerant.kappa == 1.0
    assert with_tolerance(["a", "b", "c"], ["x", "a", "b"], 1) == ["a", "b", "b"]  # c is nowhere near: b stays


def test_events_are_bouts_matched_one_to_one_by_half_their_overlap():
    first = bouts([(0, 4, "positive"), (4, 6, "neutral"), (6, 8, "positive"), (8, 10, "negative")])
    second = bouts([(0, 3, "positive"), (3, 7, "neutral"), (9, 10, "negative")])
    assert match_events(first, second, "positive").model_dump() == {"first": 2, "second": 1, "matched": 1,
                                                                     "agreement": pytest.approx(2 / 3)}
    assert match_events(first, second, "neutral").matched == 1  # 4-6 inside 3-7: half the shorter overlaps
    assert match_events(first, second, "negative").matched == 1  # 9-10 is all inside 8-10
    late = bouts([(1.5, 5.5, "positive")])
    assert match_events(bouts([(0, 1, "positive")]), late, "positive").matched == 0
    assert match_events(bouts([(0, 1, "positive")]), late, "positive", tolerance=0.5).matched == 1
    pooled = compare({"v": first}, {"v": second}, resamples=0).pooled
    assert pooled.events["positive"].first == 2 and pooled.events["negative"].agreement == 1.0


def test_the_share_of_time_in_each_code_gets_an_icc_over_videos():
    first = {f"v{i}": bouts([(0, 2 + i, "positive"), (2 + i, 10, "neutral")]) for i in range(5)}
    same = compare(first, first, resamples=0).icc
    assert same["positive"].icc == pytest.approx(1.0) and same["positive"].videos == 5
    assert same["negative"] is None  # nobody coded it: no variance to agree on
    noisy = {f"v{i}": bouts([(0, 2 + (i * 3) % 5, "positive"), (2 + (i * 3) % 5, 10, "neutral")]) for i in range(5)}
    assert compare(first, noisy, resamples=0).icc["positive"].icc < 0.8
    assert compare({"v0": first["v0"]}, {"v0": first["v0"]}, resamples=0).icc["positive"] is None  # one video


def test_pooled_intervals_resample_videos():
    first = {f"v{i}": bouts(SCRIPT) for i in range(6)}
    second = {f"v{i}": bouts(SCRIPT if i % 2 else OTHER) for i in range(6)}
    pooled = compare(first, second, resamples=200).pooled
    assert pooled.kappa_ci[0] <= pooled.kappa <= pooled.kappa_ci[1] and pooled.kappa_ci[0] < pooled.kappa_ci[1]


@pytest.mark.parametrize("seed", range(5))
def test_the_bootstraps_kappa_from_summed_confusions_is_scikit_learns_on_the_pooled_epochs(seed):
    import numpy as np
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(seed)
    codes = ["positive", "neutral", "negative"]
    videos = [(rng.choice(codes, 50, p=[0.5, 0.3, 0.2]), rng.choice(codes, 50, p=[0.4, 0.4, 0.2])) for _ in range(4)]
    videos[0] = (videos[0][0], videos[0][0])  # one video where the sides agree fully
    drawn = [0, 0, 2, 3]  # a resample: video 0 twice, 1 never
    summed = sum(confusion_matrix(a, b, labels=codes) for a, b in (videos[i] for i in drawn))
    pooled_a = [c for i in drawn for c in videos[i][0]]
    pooled_b = [c for i in drawn for c in videos[i][1]]
    assert kappa_of_confusion(summed) == pytest.approx(cohen_kappa_score(pooled_a, pooled_b, labels=codes), abs=1e-6)
    assert kappa_of_confusion(confusion_matrix(["neutral"] * 5, ["neutral"] * 5, labels=codes)) == 1.0
    assert kappa_of_confusion(np.zeros((3, 3))) is None


def write_every_format(folder: Path, script, video: str = "clip.mp4") -> dict[str, Path]:
    epochs = [Epoch(float(t), float(t + 1), c) for a, b, c in script for t in range(a, b)]
    coded = CodedVideo(video, float(script[-1][1]), 1.0, [], {"affect@infant": epochs})
    media = folder / video
    folder.mkdir(parents=True, exist_ok=True)
    files = {"csv": folder / "codes.csv", "eaf": folder / "clip.eaf", "boris": folder / "clip.boris", "opf": folder / "clip.opf"}
    write_codes_csv(files["csv"], coded)
    write_eaf(files["eaf"], coded, media, Provenance("coder", ""))
    write_boris(files["boris"], coded, media, Provenance("coder", ""), 30.0)
    write_opf(files["opf"], coded, media, 30.0)
    return files


@pytest.mark.parametrize("kind", ["csv", "eaf", "boris", "opf"])
def test_every_reference_format_reads_as_the_same_codes(tmp_path, kind):
    files = write_every_format(tmp_path, SCRIPT)
    side = read_side([files[kind]])
    assert list(side) == ["clip"]
    assert compare({"clip": bouts(SCRIPT)}, side, include_uncodable=True, resamples=0).pooled.agreement == 1.0


def test_a_coded_corpus_folder_counts_each_video_once(tmp_path):
    write_every_format(tmp_path / "coded" / "clip", SCRIPT)
    (tmp_path / "coded" / "summary.csv").write_text("status,video\n")
    files = collect_code_files([tmp_path / "coded"])
    assert "summary.csv" not in {f.name for f in files} and len(files) == 4
    assert read_side(files) == {"clip": bouts(SCRIPT)}  # codes.csv is the one read


def test_a_labs_vocabulary_is_mapped_and_unknown_values_and_tiers_are_named(tmp_path):
    plain = tmp_path / "lab.csv"
    plain.write_text("video,start,end,code\nclip.mp4,0,2,smile\nclip.mp4,2,4,cry\nclip.mp4,4,5,away\n")
    mapping = parse_map("smile=positive,cry=negative,away=uncodable")
    assert read_side([plain], mapping=mapping)["clip"] == [Bout(0, 2, "positive"), Bout(2, 4, "negative"), Bout(4, 5, "uncodable")]
    with pytest.raises(DataError, match=r"'smile' is none of .* --map 'smile=negative"):
        read_side([plain])
    with pytest.raises(Exception, match="maps onto no code"):
        parse_map("smile=happy")
    files = write_every_format(tmp_path / "two", SCRIPT)
    with pytest.raises(DataError, match=r"no tier 'affect@parent'; its tiers are affect@infant"):
        read_side([files["eaf"]], tier="affect@parent")


def test_videos_on_one_side_only_are_listed_and_nothing_in_common_is_an_error():
    report = compare({"a": bouts(SCRIPT), "b": bouts(SCRIPT)}, {"a": bouts(SCRIPT), "c": bouts(SCRIPT)}, resamples=0)
    assert report.only_first == ["b"] and report.only_second == ["c"] and [v.video for v in report.videos] == ["a"]
    with pytest.raises(DataError, match="no video is coded on both sides"):
        compare({"a": bouts(SCRIPT)}, {"c": bouts(SCRIPT)})


def test_the_cli_writes_agreement_json_and_md_and_keeps_them(tmp_path, capsys):
    write_every_format(tmp_path / "machine" / "clip", SCRIPT)
    write_every_format(tmp_path / "human", OTHER)
    assert main(["agree", str(tmp_path / "machine"), "--reference", str(tmp_path / "human" / "clip.eaf"), "--out",
                 str(tmp_path / "agreement"), "--tolerance", "1"]) == 0
    assert "Pooled over 1 videos" in capsys.readouterr().out
    report = json.loads((tmp_path / "agreement" / "agreement.json").read_text())
    assert report["tolerance"] == 1.0 and report["videos"][0]["video"] == "clip"
    assert "| clip |" in (tmp_path / "agreement" / "agreement.md").read_text()
    assert (tmp_path / "agreement" / "bland_altman.png").stat().st_size > 0
    assert main(["agree", str(tmp_path / "machine"), "--reference", str(tmp_path / "human"), "--out",
                 str(tmp_path / "agreement")]) == 2  # not overwritten without --overwrite
