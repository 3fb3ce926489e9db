"""Home Assistant MQTT discovery (``watch --mqtt URL --ha-discovery``): the config payloads against Home Assistant's
documented discovery keys, distinct ids for two monitors, names MQTT cannot carry, and, on a real Mosquitto broker,
retained configs that a restart republishes to the same topics, removal, and a broker whose rules refuse the prefix."""

from __future__ import annotations

import json
import logging
import time

import pytest

from babyface.errors import BabyfaceError
from babyface.watch.discovery import check_name, check_prefix, discovery_messages, removal_messages
from babyface.watch.mqtt import MqttPublisher, publish_once
from tests.mosquitto import mosquitto_broker
from tests.test_mqtt import PREFIX, Subscriber, wait_until

pytestmark = pytest.mark.timeout(60)

# Home Assistant's MQTT discovery keys (home-assistant.io/integrations/mqtt, sensor.mqtt, binary_sensor.mqtt,
# image.mqtt): those every entity may carry, and each platform's own; required ones apart.
COMMON = {"name", "unique_id", "availability_topic", "payload_available", "payload_not_available", "device", "origin",
          "icon", "json_attributes_topic", "json_attributes_template", "qos", "entity_category", "enabled_by_default",
          "default_entity_id", "availability", "availability_mode", "availability_template", "encoding"}
PLATFORM = {
    "sensor": {"state_topic", "value_template", "device_class", "expire_after", "force_update", "state_class",
               "unit_of_measurement", "suggested_display_precision", "options", "last_reset_value_template"},
    "binary_sensor": {"state_topic", "value_template", "device_class", "expire_after", "force_update", "off_delay",
                      "payload_on", "payload_off"},
    "image": {"image_topic", "image_encoding", "content_type", "url_topic", "url_template"},
}
REQUIRED = {"sensor": {"state_topic"}, "binary_sensor": {"state_topic"}, "image": {"image_topic"}}
DEVICE_KEYS = {"identifiers", "connections", "name", "manufacturer", "model", "model_id", "sw_version", "hw_version",
               "serial_number", "suggested_area", "via_device", "configuration_url"}
BINARY_DEVICE_CLASSES = {"problem", "occupancy", "motion", "presence", "sound", "moving", "safety", "running", None}


def parsed(messages):
    return {topic: json.loads(payload) for topic, payload in messages}


def test_every_config_uses_home_assistants_documented_keys() -> None:
    configs = parsed(discovery_messages("Nursery camera", PREFIX, snapshots=True, version="0.1.0"))
    assert {topic.split("/")[1] for topic in configs} == {"sensor", "binary_sensor", "image"}
    for topic, config in configs.items():
        prefix, component, node, key, last = topic.split("/")
        assert (prefix, last) == ("homeassistant", "config") and node == "babyface_nursery_camera_home_nursery"
        assert set(config) <= COMMON | PLATFORM[component], set(config) - COMMON - PLATFORM[component]
        assert REQUIRED[component] <= set(config)
        assert set(config["device"]) <= DEVICE_KEYS and config["device"]["identifiers"] == [node]
        assert config["unique_id"] == f"{node}_{key}" and config["availability_topic"] == f"{PREFIX}/availability"
        if component == "binary_sensor":
            assert config.get("device_class") in BINARY_DEVICE_CLASSES
            assert config["value_template"].startswith("{{") and "value_json.monitor." + key in config["value_template"]
    names = sorted(topic.split("/")[3] for topic in configs)
    assert names == ["affect", "asleep", "crying", "face_hidden", "face_seen", "snapshot"]


def test_the_snapshot_entity_exists_only_with_snapshots() -> None:
    assert not [t for t, _ in discovery_messages("cam", PREFIX) if "/image/" in t]


def test_two_monitors_on_one_broker_get_distinct_ids() -> None:
    one = parsed(discovery_messages("babyface", "home/nursery"))
    two = parsed(discovery_messages("babyface", "home/bedroom"))
    assert not set(one) & set(two)
    assert not {c["unique_id"] for c in one.values()} & {c["unique_id"] for c in two.values()}


@pytest.mark.parametrize("name", ["", "a+b", "cam#1", "left/right", "nul\x00"])
def test_a_name_mqtt_topics_cannot_carry_is_one_line_naming_the_fix(name) -> None:
    with pytest.raises(BabyfaceError, match="use letters, digits, spaces"):
        check_name(name)


@pytest.mark.parametrize("prefix", ["", "home/+", "/homeassistant", "ha/"])
def test_a_prefix_that_is_no_topic_prefix_is_refused(prefix) -> None:
    with pytest.raises(BabyfaceError, match="--ha-discovery"):
        check_prefix(prefix)


def test_removal_empties_every_entity_the_monitor_may_have_announced() -> None:
    removals = removal_messages("cam", PREFIX)
    assert {t for t, _ in removals} == {t for t, _ in discovery_messages("cam", PREFIX, snapshots=True)}
    assert all(payload == "" for _, payload in removals)


def test_configs_are_retained_and_a_restart_republishes_the_same_entities(tmp_path) -> None:
    announcements = discovery_messages("cam", PREFIX, snapshots=True)
    with mosquitto_broker(tmp_path / "mosquitto") as broker:
        url = f"mqtt://{broker.host}:{broker.port}/{PREFIX}"
        live = Subscriber(broker, root="homeassistant")
        for _ in range(2):  # the monitor, then the monitor restarted
            publisher = MqttPublisher(url, announcements=announcements)
            wait_until(lambda: publisher.connected, "the publisher connects")
            publisher.close()
        wait_until(lambda: len(live.topics()) == 2 * len(announcements), "both runs' configs")
        live.close()
        assert all(live.topics().count(t.removeprefix("homeassistant/")) == 2 for t, _ in announcements)
        late = Subscriber(broker, root="homeassistant")
        try:
            wait_until(lambda: len(late.topics()) == len(announcements), "the retained configs")
            assert sorted(late.topics()) == sorted(t.removeprefix("homeassistant/") for t, _ in announcements)
            assert all(late.retained(topic) == [True] for topic in late.topics())
        finally:
            late.close()
        publish_once(url, removal_messages("cam", PREFIX))
        later = Subscriber(broker, root="homeassistant")
        try:
            time.sleep(0.5)
            assert later.topics() == []  # an empty retained message deletes the retained config
        finally:
            later.close()


def test_a_broker_that_refuses_the_discovery_prefix_is_one_warning_and_the_rest_goes_on(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="babyface")
    with mosquitto_broker(tmp_path / "mosquitto", acl=[f"topic readwrite {PREFIX}/#"]) as broker:
        live = Subscriber(broker)
        publisher = MqttPublisher(f"mqtt://{broker.host}:{broker.port}/{PREFIX}", check_seconds=1.0,
                                  announcements=discovery_messages("cam", PREFIX))
        try:
            publisher.publish_event('{"event": "label"}')
            wait_until(lambda: live.payloads("events"), "the event still arrives")
            wait_until(lambda: publisher.warned_announcements, "the warning", seconds=5)
        finally:
            publisher.close()
            live.close()
    lines = [r.getMessage() for r in caplog.records if "discovery" in r.getMessage()]
    assert len(lines) == 1 and "homeassistant/#" in lines[0] and "monitoring goes on" in lines[0]


def test_removal_from_a_broker_that_is_down_is_one_line(tmp_path) -> None:
    from tests.mosquitto import free_port

    with pytest.raises(BabyfaceError, match="cannot reach the broker.*nothing was removed"):
        publish_once(f"mqtt://127.0.0.1:{free_port()}/{PREFIX}", removal_messages("cam", PREFIX), timeout=2)
