"""Home Assistant MQTT discovery for ``watch --mqtt URL --ha-discovery [PREFIX]``: the monitor appears in Home Assistant
as one device with its entities, without a line of YAML.

For each entity a retained config message goes to ``PREFIX/<component>/<node>/<object>/config`` (Home Assistant's
discovery topics) on every connect; ``node`` is the device's id, made from ``--name`` and the monitor's topic, so two
monitors on one broker get distinct ids, and a restart sends the same configs again (Home Assistant updates the
entities it has rather than adding new ones). Every entity reads the retained ``TOPIC/state`` (its ``monitor`` part,
``monitor_state``) and is unavailable while ``TOPIC/availability`` is ``offline`` (the Last Will). With snapshots on,
an image entity shows the latest alert's frame from ``TOPIC/snapshot``. ``--ha-discovery-remove`` sends empty retained
configs instead, which makes Home Assistant delete the entities.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from babyface.errors import BabyfaceError

DEFAULT_PREFIX = "homeassistant"
SNAPSHOT_TOPIC = "snapshot"  # TOPIC/snapshot: the latest alert's JPEG, retained
FORBIDDEN_IN_NAMES = re.compile(r"[+#/\x00]")  # MQTT's wildcards, its level separator, and NUL


@dataclass(frozen=True)
class Entity:
    component: str  # Home Assistant's platform: sensor, binary_sensor, image
    key: str  # the object id in the discovery topic, unique within the device
    config: dict[str, Any]  # the platform's own keys (the common ones are added by ``discovery_messages``)


def _flag(name: str, key: str, icon: str, device_class: str | None = None) -> Entity:
    config: dict[str, Any] = {"name": name, "value_template": f"{{{{ 'ON' if value_json.monitor.{key} else 'OFF' }}}}",
                              "payload_on": "ON", "payload_off": "OFF", "icon": icon}
    if device_class:
        config["device_class"] = device_class
    return Entity("binary_sensor", key, config)


def entities(snapshots: bool) -> list[Entity]:
    affect = Entity("sensor", "affect", {
        "name": "Affect", "icon": "mdi:emoticon-outline",
        "value_template": "{{ value_json.monitor.affect }}",
        "json_attributes_template": "{{ value_json.monitor.probabilities | tojson }}",
    })
    found = [affect,
             _flag("Crying", "crying", "mdi:emoticon-cry-outline"),
             _flag("Asleep", "asleep", "mdi:sleep"),
             _flag("Face hidden", "face_hidden", "mdi:face-recognition", "problem"),
             _flag("Face seen", "face_seen", "mdi:face-man-outline", "occupancy")]
    if snapshots:
        found.append(Entity("image", "snapshot", {"name": "Last alert", "icon": "mdi:camera", "content_type": "image/jpeg"}))
    return found


def check_name(name: str) -> str:
    """``--name``: shown in Home Assistant as the device's name; one line when MQTT topics cannot carry it."""
    if not name.strip() or FORBIDDEN_IN_NAMES.search(name):
        raise BabyfaceError(f"--name {name!r}: a device name must not be empty nor hold + # / (MQTT topic wildcards and "
                            "separators); use letters, digits, spaces, - or _, e.g. --name 'Nursery camera'")
    return name.strip()


def node_id(name: str, topic: str) -> str:
    """The device's id in discovery topics and unique ids: [a-zA-Z0-9_-] only (Home Assistant's rule), from the name
    and the monitor's own topic (distinct for each monitor on a broker)."""
    return re.sub(r"[^a-zA-Z0-9_-]+", "_", f"babyface_{name}_{topic}").strip("_").lower()


def discovery_messages(name: str, topic: str, prefix: str = DEFAULT_PREFIX, snapshots: bool = False,
                       version: str = "") -> list[tuple[str, str]]:
    """(topic, retained JSON payload) of every entity's discovery config; ``topic`` is the monitor's MQTT topic."""
    node = node_id(name, topic)
    device = {"identifiers": [node], "name": name, "manufacturer": "babyface", "model": "babyface watch",
              "sw_version": version}
    common = {"availability_topic": f"{topic}/availability", "payload_available": "online",
              "payload_not_available": "offline", "device": device,
              "origin": {"name": "babyface", "sw_version": version}}
    messages = []
    for entity in entities(snapshots):
        config = {**entity.config, "unique_id": f"{node}_{entity.key}", **common}
        if entity.component == "image":
            config["image_topic"] = f"{topic}/{SNAPSHOT_TOPIC}"
        else:
            config["state_topic"] = f"{topic}/state"
        if "json_attributes_template" in config:
            config["json_attributes_topic"] = f"{topic}/state"
        messages.append((config_topic(prefix, entity, node), json.dumps(config, sort_keys=True)))
    return messages


def removal_messages(name: str, topic: str, prefix: str = DEFAULT_PREFIX) -> list[tuple[str, str]]:
    """Empty retained configs for every entity the monitor may have announced: Home Assistant deletes them."""
    node = node_id(name, topic)
    return [(config_topic(prefix, entity, node), "") for entity in entities(snapshots=True)]


def config_topic(prefix: str, entity: Entity, node: str) -> str:
    return f"{prefix}/{entity.component}/{node}/{entity.key}/config"


def check_prefix(prefix: str) -> str:
    if not prefix or re.search(r"[+#\x00]", prefix) or prefix != prefix.strip("/"):
        raise BabyfaceError(f"--ha-discovery {prefix!r}: not a topic prefix; give the prefix Home Assistant's MQTT "
                            f"integration listens on (default {DEFAULT_PREFIX}), without + # or a leading or trailing /")
    return prefix


__all__ = ["DEFAULT_PREFIX", "SNAPSHOT_TOPIC", "Entity", "check_name", "check_prefix", "config_topic",
           "discovery_messages", "entities", "node_id", "removal_messages"]
