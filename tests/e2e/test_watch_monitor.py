"""End-to-end: `babyface watch` as a monitor, on generated videos acting out a scene: eyes shut for seconds (asleep,
then awake), a face covered by a moving cloth (face_hidden) against a face gone from a still scene (face_lost),
alert snapshots, and delivery to a real MQTT broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("cv2", reason="watch needs OpenCV: pip install 'opencv-python-headless>=4.8,<5'")

from babyface.cli import main  # noqa: E402
from babyface.tools.synthetic import write_scripted_face_video  # noqa: E402
from tests.mosquitto import mosquitto_broker  # noqa: E402
from tests.test_mqtt import PREFIX, Subscriber, wait_until  # noqa: E402

FPS = 10


def watch_events(run: Path, clip: Path, capsys, *options: str) -> list[dict]:
    assert main(["watch", str(run), str(clip), "--device", "cpu", "--sad-seconds", "0", "--hold", "0.5", *options]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def named(events: list[dict], name: str) -> list[dict]:
    return [e for e in events if e["event"] == name]


def test_eyes_shut_for_seconds_is_asleep_then_awake(untrained_run, tmp_path, capsys) -> None:
    clip = write_scripted_face_video(tmp_path / "nap.mp4", [("open", 1.5), ("closed", 3.5), ("open", 2.0)], fps=FPS)
    events = watch_events(untrained_run, clip, capsys, "--asleep-seconds", "2")
    seen, asleep, awake = named(events, "face_seen"), named(events, "asleep"), named(events, "awake")
    assert seen[0]["eyes"] == "open"
    assert len(asleep) == 1 and len(awake) == 1, [e["event"] for e in events]
    assert 1.5 + 2.0 <= asleep[0]["t"] <= 1.5 + 3.0 and asleep[0]["eyes_shut_for"] >= 2.0
    assert 5.0 + 0.5 <= awake[0]["t"] <= 5.0 + 1.5 and 2.5 <= awake[0]["asleep_for"] <= 4.5


def test_no_asleep_when_the_eyes_are_not_measured(untrained_run, tmp_path, capsys) -> None:
    clip = write_scripted_face_video(tmp_path / "nap.mp4", [("open", 1.0), ("closed", 3.0)], fps=FPS)
    events = watch_events(untrained_run, clip, capsys, "--asleep-seconds", "0")
    assert not named(events, "asleep") and named(events, "face_seen")[0]["eyes"] is None


def test_a_covered_face_is_hidden_and_a_face_gone_from_a_still_scene_is_lost(untrained_run, tmp_path, capsys) -> None:
    covered = write_scripted_face_video(tmp_path / "covered.mp4", [("open", 1.5), ("covered", 4.0)], fps=FPS)
    events = watch_events(untrained_run, covered, capsys, "--hidden-seconds", "1.5", "--lost-seconds", "1")
    hidden = named(events, "face_hidden")
    assert len(hidden) == 1 and hidden[0]["face_id"] == 1 and 1.5 + 1.5 <= hidden[0]["t"] <= 1.5 + 2.5
    assert not named(events, "face_lost")  # the cloth keeps moving: someone is there

    gone = write_scripted_face_video(tmp_path / "gone.mp4", [("open", 1.5), ("empty", 4.0)], fps=FPS)
    events = watch_events(untrained_run, gone, capsys, "--hidden-seconds", "1.5", "--lost-seconds", "1")
    assert not named(events, "face_hidden")
    lost = named(events, "face_lost")
    assert len(lost) == 1 and 1.5 + 1.0 <= lost[0]["t"] <= 1.5 + 2.0


def test_alerts_get_a_snapshot_and_only_the_newest_are_kept(untrained_run, tmp_path, capsys) -> None:
    from PIL import Image

    clip = write_scripted_face_video(tmp_path / "nap.mp4", [("open", 1.0), ("closed", 3.0), ("open", 2.0)], fps=FPS)
    folder = tmp_path / "snaps"
    (tmp_path / "mine.jpg").write_bytes(b"")
    events = watch_events(untrained_run, clip, capsys, "--asleep-seconds", "1.5", "--snapshots", str(folder), "--snapshot-keep", "1")
    alerts = named(events, "asleep") + named(events, "awake")
    assert len(alerts) == 2 and all(e["snapshot"] for e in alerts)
    assert "snapshot" not in named(events, "face_seen")[0]  # only alerts get one
    assert [p.name for p in folder.iterdir()] == [Path(alerts[-1]["snapshot"]).name]  # the older one was pruned
    with Image.open(alerts[-1]["snapshot"]) as image:
        assert image.format == "JPEG" and image.size == (320, 240)


def test_a_snapshot_folder_that_cannot_be_written_is_one_line_at_start(untrained_run, tmp_path, capsys) -> None:
    (tmp_path / "file").write_text("")
    clip = write_scripted_face_video(tmp_path / "nap.mp4", [("open", 0.5)], fps=FPS)
    assert main(["watch", str(untrained_run), str(clip), "--snapshots", str(tmp_path / "file" / "snaps")]) == 2
    captured = capsys.readouterr()
    error = captured.err.strip().splitlines()
    assert len(error) == 1 and "--snapshots" in error[0] and "not an existing folder" in error[0]
    assert captured.out == ""  # not even 'started': nothing was watched


def test_events_and_the_retained_state_reach_a_real_mqtt_broker(untrained_run, tmp_path, capsys) -> None:
    clip = write_scripted_face_video(tmp_path / "nap.mp4", [("open", 1.0), ("closed", 2.5)], fps=FPS)
    with mosquitto_broker(tmp_path / "mosquitto") as broker:
        live = Subscriber(broker)
        try:
            events = watch_events(untrained_run, clip, capsys, "--asleep-seconds", "1.5",
                                  "--mqtt", f"mqtt://{broker.host}:{broker.port}/{PREFIX}")
            wait_until(lambda: len(live.payloads("events")) == len(events), "every event on the events topic")
        finally:
            live.close()
        assert [json.loads(m)["event"] for m in live.payloads("events")] == [e["event"] for e in events]
        late = Subscriber(broker)  # connects after watch has stopped: only retained messages reach it
        try:
            wait_until(lambda: late.payloads("state") and late.payloads("availability"), "the retained state")
            state = json.loads(late.payloads("state")[-1])
            assert state["faces"]["1"]["asleep"] is True and state["faces"]["1"]["eyes"] == "shut"
            assert late.payloads("availability") == ["offline"] and not late.payloads("events")
        finally:
            late.close()
    assert named(events, "asleep")


def test_a_broker_that_is_down_is_one_warning_and_the_watch_goes_on(untrained_run, tmp_path, capsys, caplog) -> None:
    from tests.mosquitto import free_port

    clip = write_scripted_face_video(tmp_path / "clip.mp4", [("open", 1.0)], fps=FPS)
    events = watch_events(untrained_run, clip, capsys, "--mqtt", f"mqtt://127.0.0.1:{free_port()}/{PREFIX}")
    assert events[0]["event"] == "started" and events[-1]["event"] == "stopped" and named(events, "face_seen")
    mqtt_lines = [r.getMessage() for r in caplog.records if r.name == "babyface" and "--mqtt" in r.getMessage()]
    assert len(mqtt_lines) >= 1 and "cannot reach the broker" in mqtt_lines[0] and "goes on" in mqtt_lines[0]
    assert sum("cannot reach the broker" in line for line in mqtt_lines) == 1  # said once, not at every retry


def test_home_assistant_discovers_the_monitor_and_its_entities_follow_the_video(untrained_run, tmp_path, capsys) -> None:
    jinja2 = pytest.importorskip("jinja2", reason="Home Assistant's templates are Jinja2 (installed with torch)")
    clip = write_scripted_face_video(tmp_path / "nap.mp4", [("open", 1.0), ("closed", 2.5)], fps=FPS)
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    with mosquitto_broker(tmp_path / "mosquitto") as broker:
        discovery, live = Subscriber(broker, root="homeassistant"), Subscriber(broker)
        try:
            events = watch_events(untrained_run, clip, capsys, "--asleep-seconds", "1.5", "--snapshots", str(snaps),
                                  "--mqtt", f"mqtt://{broker.host}:{broker.port}/{PREFIX}", "--ha-discovery",
                                  "--name", "Nursery")
            wait_until(lambda: len(discovery.topics()) == 6 and live.payloads("snapshot"), "configs and the snapshot")
        finally:
            discovery.close()
            live.close()
    configs = {topic: json.loads(discovery.payloads(topic)[-1]) for topic in discovery.topics()}
    states = [json.loads(payload) for payload in live.payloads("state")]

    def entity(key: str, state: dict) -> str:
        (config,) = [c for t, c in configs.items() if t.split("/")[2] == key]
        return jinja2.Environment().from_string(config["value_template"]).render(value_json=state)

    assert [entity("asleep", s) for s in states][0] == "OFF" and entity("asleep", states[-1]) == "ON"
    assert entity("face_seen", states[0]) == "ON" and entity("crying", states[-1]) == "OFF"
    assert entity("affect", states[-1]) in {"happy", "neutral", "sad"}
    assert named(events, "asleep") and live.payloads("snapshot")[-1]  # the alert's JPEG, for the image entity
    assert all(c["device"]["name"] == "Nursery" for c in configs.values())
