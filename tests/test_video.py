"""Video: tracking, interpolation, smoothing, timeline outputs and the annotated video of `babyface predict RUN VIDEO`."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2", reason="video needs OpenCV: pip install 'opencv-python-headless>=4.8,<5'")

from babyface.cli import main  # noqa: E402
from babyface.faces.detectors import FaceBox, square_crop  # noqa: E402
from babyface.inference.classifier import Classifier  # noqa: E402
from babyface.tools.synthetic import write_moving_faces_video  # noqa: E402
from babyface.video import analysis as video  # noqa: E402
from babyface.video.analysis import MAX_MISSED, FaceTracker, interpolate  # noqa: E402

FIXED_FACE = FaceBox(120, 80, 200, 160, 0.99)  # its square with margin 0.2: (104, 64, 216, 176)


def box(x: float, y: float, side: float = 100) -> FaceBox:
    return FaceBox(x, y, x + side, y + side, 0.99)


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def count_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    return frames


def first_frame(path: Path) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    frame = capture.read()[1]
    capture.release()
    return frame


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_moving_faces_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames=24, size=(320, 240), speed=2)


@pytest.fixture
def fixed_detector(monkeypatch) -> list[int]:
    """Replace the detector by one that always finds FIXED_FACE; returns the list of frame heights it was called with."""
    calls: list[int] = []

    def detect(rgb, detector, min_score, max_side, min_face=0.0):
        calls.append(rgb.shape[0])
        return [FIXED_FACE]

    monkeypatch.setattr(video, "detect_faces", detect)
    return calls


def test_tracker_keeps_ids_of_moving_faces_and_numbers_new_ones() -> None:
    tracker = FaceTracker()
    assert tracker.update([box(0, 0), box(300, 0)]) == {1: box(0, 0), 2: box(300, 0)}
    assert tracker.update([box(330, 5), box(30, 5)]) == {1: box(30, 5), 2: box(330, 5)}
    seen = tracker.update([box(60, 10), box(360, 10), box(0, 300)])
    assert seen == {1: box(60, 10), 2: box(360, 10), 3: box(0, 300)}


def test_tracker_predicts_a_missed_face_and_drops_it_after_max_missed_rounds() -> None:
    tracker = FaceTracker()
    tracker.update([box(0, 0)])
    tracker.update([box(40, 0)])  # moving 40 px per round
    for missed in range(1, MAX_MISSED + 1):
        assert tracker.update([]) == {1: box(40 + 40 * missed, 0)}
    assert tracker.update([]) == {}
    assert tracker.update([box(40, 0)]) == {2: box(40, 0)}


def test_face_missed_while_moving_is_found_again_where_its_velocity_predicts() -> None:
    tracker = FaceTracker()
    tracker.update([box(0, 0)])
    tracker.update([box(40, 0)])
    tracker.update([])
    assert tracker.update([box(120, 0)]) == {1: box(120, 0)}  # IoU 0.11 with the last box seen, 1.0 with the predicted one


def test_interpolation_moves_matched_faces_and_holds_the_others() -> None:
    boxes = interpolate({1: box(0, 0), 2: box(50, 50)}, {1: box(100, 20), 3: box(9, 9)}, 0.25)
    assert boxes == {1: box(25, 5), 2: box(50, 50)}


def test_timeline_is_the_moving_average_of_per_frame_probabilities(clip, untrained_run, fixed_detector, tmp_path) -> None:
    out = tmp_path / "out"
    assert main(["predict", str(untrained_run), str(clip), "--out", str(out), "--smooth", "3", "--detect-every", "4",
                 "--detect-size", "160", "--device", "cpu"]) == 0
    rows = read_rows(out / "timeline.csv")
    assert [int(r["frame"]) for r in rows] == list(range(24)) and {r["face_id"] for r in rows} == {"1"}
    assert len(fixed_detector) == 6 and set(fixed_detector) == {240}  # every 4th frame, given the full frame
    classifier = Classifier(untrained_run, device="cpu")
    capture = cv2.VideoCapture(str(clip))
    frames = [cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2RGB) for _ in range(24)]
    square = FIXED_FACE.square(0.2, 320, 240)
    raw = classifier.classify_crops([square_crop(f, square, 64) for f in frames]).numpy()
    for i in (0, 1, 10, 23):
        expected = raw[max(0, i - 2):i + 1].mean(axis=0)
        got = [float(rows[i][f"p_{c}"]) for c in classifier.classes]
        assert got == pytest.approx(expected, abs=1e-4)
        assert rows[i]["label"] == classifier.classes[int(np.argmax(expected))]
        assert (int(rows[i]["left"]), int(rows[i]["bottom"])) == (square[0], square[3])
    assert (out / "timeline.png").stat().st_size > 0


def test_every_samples_frames_and_annotate_writes_a_video(clip, untrained_run, fixed_detector, tmp_path) -> None:
    annotated = tmp_path / "annotated.mp4"
    assert main(["predict", str(untrained_run), str(clip), "--out", str(tmp_path / "out"), "--every", "3", "--annotate", str(annotated),
                 "--device", "cpu"]) == 0
    assert [int(r["frame"]) for r in read_rows(tmp_path / "out" / "timeline.csv")] == list(range(0, 24, 3))
    assert count_frames(annotated) == 8
    left, top, _, bottom = FIXED_FACE.square(0.2, 320, 240)
    drawn, original = first_frame(annotated), first_frame(clip)
    change = np.abs(drawn.astype(int) - original).mean(axis=2)
    edge, inside = (change[top + 20:bottom - 20, x - 3:x + 4].max(axis=1).mean() for x in (left, left + 20))
    assert edge > 30 > inside, (edge, inside)  # the box is drawn, the face itself is left as it was
    assert not list(tmp_path.glob(".annotated*"))  # no temporary file left behind


@pytest.mark.parametrize("detector, min_rows", [("mtcnn", 20), ("blazeface", 18)])
def test_detectors_follow_the_synthetic_face_with_one_id(clip, untrained_run, tmp_path, detector, min_rows) -> None:
    """(BlazeFace misses the cartoon face while it enters the frame, so it starts a few frames later.)"""
    if detector == "mtcnn":
        pytest.importorskip("facenet_pytorch")
    config = video.PredictConfig(run=str(untrained_run), out=str(tmp_path / "out"), detector=detector)
    summary = video.analyse_video(Classifier(untrained_run, device="cpu"), clip, video.VideoAnalysis.of(config), progress=False)
    rows = read_rows(tmp_path / "out" / "timeline.csv")
    assert summary["faces"] == 1 and summary["frames"] == 24 and len(rows) >= min_rows
    lefts = [int(r["left"]) for r in rows]
    assert lefts[-1] > lefts[0] + 20  # the box follows the face to the right (2 px a frame)


def test_video_errors_are_one_line(untrained_run, tmp_path, capsys) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert main(["predict", str(untrained_run), str(broken), "--device", "cpu"]) == 2
    assert "OpenCV cannot read this video" in capsys.readouterr().err
    assert main(["predict", str(untrained_run), str(broken), str(broken), "--annotate", "a.mp4", "--device", "cpu"]) == 2
    assert "one input video" in capsys.readouterr().err


def test_frame_times_follow_the_container_and_fall_back_to_the_frame_rate():
    from babyface.video.analysis import frame_times

    assert frame_times([0, 3, 6], {0: 0.0, 3: 0.1, 6: 0.9}, 30.0) == [0.0, 0.1, 0.9]  # variable rate: as stamped
    assert frame_times([0, 3, 6], {0: 0.0, 3: 0.0, 6: 0.0}, 30.0) == [0.0, 0.1, 0.2]  # no stamps: index / fps
    assert frame_times([3, 6], {3: 5.1, 6: 5.2}, 30.0) == pytest.approx([0.1, 0.2])  # a stream starting at 5 s
    assert frame_times([0, 3], {0: 0.2, 3: 0.1}, 30.0) == [0.0, 0.1]  # stamps that go back are not trusted
