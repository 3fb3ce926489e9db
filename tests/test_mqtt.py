"""``MqttPublisher`` against a real Mosquitto broker (tests/mosquitto.py starts one; skipped where it is not installed):
delivery, the retained state and availability, the Last Will, a broker that is down, refusing or silent, and the
bounded queue."""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import threading
import time
from typing import Callable, Iterator

import paho.mqtt.client as mqtt
import pytest

from babyface.errors import BabyfaceError
from babyface.watch.mqtt import OFFLINE, ONLINE, URL_EXAMPLE, MqttPublisher, parse_mqtt_url
from tests.mosquitto import HOST, Broker, free_port, mosquitto_broker

PREFIX = "home/nursery"
FAST_RETRIES = {"reconnect_delay": (0.1, 0.4)}  # seconds between attempts, where a test does not check the real backoff

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def broker(tmp_path) -> Iterator[Broker]:
    with mosquitto_broker(tmp_path / "mosquitto") as running:
        yield running


def url(port: int, credentials: str = "") -> str:
    return f"mqtt://{credentials}{HOST}:{port}/{PREFIX}"


def wait_until(condition: Callable[[], object], what: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.02)


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "babyface" and r.levelno == logging.WARNING]


class Subscriber:
    """A plain paho client subscribed to ``root/#`` (QoS 1) that records (topic suffix, payload, retained)."""

    def __init__(self, broker: Broker, root: str = PREFIX):
        self.root = root
        self.received: list[tuple[str, str, bool]] = []
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-subscriber-{secrets.token_hex(4)}")
        self.client.on_connect = lambda client, userdata, flags, reason, props: client.subscribe(f"{root}/#", qos=1)
        self.client.on_subscribe = lambda client, userdata, mid, reasons, props: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert subscribed.wait(5), "the test subscriber could not subscribe"

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            self.received.append((message.topic.removeprefix(self.root + "/"), message.payload.decode(errors="replace"),
                                  bool(message.retain)))

    def topics(self) -> list[str]:
        with self.lock:
            return [topic for topic, _, _ in self.received]

    def payloads(self, suffix: str) -> list[str]:
        with self.lock:
            return [payload for topic, payload, _ in self.received if topic == suffix]

    def retained(self, suffix: str) -> list[bool]:
        with self.lock:
            return [retain for topic, _, retain in self.received if topic == suffix]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextlib.contextmanager
def subscriber(broker: Broker) -> Iterator[Subscriber]:
    sub = Subscriber(broker)
    try:
        yield sub
    finally:
        sub.close()


@contextlib.contextmanager
def publisher(address: str, **kwargs) -> Iterator[MqttPublisher]:
    """A publisher closed at the end even when the test fails (a test closes it itself to check what close does)."""
    pub = MqttPublisher(address, **kwargs)
    try:
        yield pub
    finally:
        if not pub.stopped:
            pub.close(deadline=0.5)


# ---------------------------------------------------------------- delivery


def test_events_and_the_retained_state_reach_subscribers(broker, caplog) -> None:
    with subscriber(broker) as live, publisher(url(broker.port)) as pub:
        wait_until(lambda: pub.connected, "the publisher connects")
        for n in range(3):
            pub.publish_event(f'{{"event": "label", "n": {n}}}')
        pub.publish_state('{"faces": 1, "label": "happy"}')
        wait_until(lambda: len(live.payloads("events")) == 3 and live.payloads("state"), "events and state arrive")
        assert live.payloads("events") == [f'{{"event": "label", "n": {n}}}' for n in range(3)]
        assert live.payloads("state") == ['{"faces": 1, "label": "happy"}']
        wait_until(lambda: pub.delivered == 4, "the broker acknowledges all four")
        with subscriber(broker) as late:  # connects after the publish: gets the retained state and availability only
            wait_until(lambda: late.payloads("state") and late.payloads("availability"), "retained messages arrive")
            assert late.payloads("state") == ['{"faces": 1, "label": "happy"}']
            assert late.retained("state") == [True]
            assert late.payloads("availability") == [ONLINE]
            assert late.payloads("events") == []  # events are not retained
        pub.close(deadline=2.0)
    assert (pub.submitted, pub.delivered, pub.dropped, pub.pending) == (4, 4, 0, 0)
    assert warnings(caplog) == []


def test_only_the_newest_waiting_state_is_sent(tmp_path) -> None:
    port = free_port()
    with publisher(url(port), **FAST_RETRIES) as pub:
        for n in range(5):
            pub.publish_state(f"state {n}")
        assert (pub.submitted, pub.replaced) == (5, 4)
        with mosquitto_broker(tmp_path / "mosquitto", port) as broker:
            wait_until(lambda: pub.delivered == 1, "the newest state is delivered after the broker starts", 8)
            with subscriber(broker) as late:
                wait_until(lambda: late.payloads("state"), "the retained state arrives")
                assert late.payloads("state") == ["state 4"]
            pub.close(deadline=2.0)
    assert pub.pending == 0


# ---------------------------------------------------------------- availability and the Last Will


def test_availability_is_online_while_connected_and_offline_after_close(broker, caplog) -> None:
    with subscriber(broker) as live, publisher(url(broker.port)) as pub:
        wait_until(lambda: live.payloads("availability") == [ONLINE], "online on connect")
        started = time.monotonic()
        pub.close(deadline=3.0)
        assert time.monotonic() - started < 1.0  # the broker acknowledged offline at once: no waiting for the deadline
        wait_until(lambda: live.payloads("availability") == [ONLINE, OFFLINE], "offline at close")
        assert not pub.connected
    with subscriber(broker) as late:
        wait_until(lambda: late.payloads("availability"), "the retained availability arrives")
        assert late.payloads("availability") == [OFFLINE]
        assert late.retained("availability") == [True]
    assert warnings(caplog) == []


def test_a_dead_connection_gets_the_last_will_then_reconnects_and_delivers(broker, caplog) -> None:
    with subscriber(broker) as live, publisher(url(broker.port)) as pub:
        wait_until(lambda: live.payloads("availability") == [ONLINE], "online on connect")
        pub.client.socket().shutdown(socket.SHUT_RDWR)  # the connection dies without a DISCONNECT, as in a crash
        wait_until(lambda: live.payloads("availability")[-1:] == [OFFLINE], "the broker publishes the Last Will")
        pub.publish_event('{"event": "sad_alert"}')
        wait_until(lambda: live.payloads("availability")[-1:] == [ONLINE], "online again after the reconnect", 8)
        wait_until(lambda: live.payloads("events") == ['{"event": "sad_alert"}'], "the event sent while away arrives")
        pub.close(deadline=2.0)
    lines = warnings(caplog)
    assert len(lines) == 2, lines
    assert "cannot reach the broker (connection lost)" in lines[0]
    assert "connected to the broker again" in lines[1] and "0 message(s) were lost" in lines[1]


# ---------------------------------------------------------------- a broker that is down, refusing or silent


def test_a_broker_down_at_start_is_one_warning_then_the_queued_events_arrive(tmp_path, caplog) -> None:
    port = free_port()
    with publisher(url(port)) as pub:
        wait_until(lambda: warnings(caplog), "the warning that the broker cannot be reached")
        for n in range(3):
            pub.publish_event(f"event {n}")  # returns at once: nothing connected
        assert not pub.connected
        with mosquitto_broker(tmp_path / "mosquitto", port) as broker, subscriber(broker) as live:
            wait_until(lambda: pub.connected, "the publisher connects after its backoff", 8)
            wait_until(lambda: len(live.payloads("events")) == 3, "the queued events arrive")
            assert live.payloads("events") == ["event 0", "event 1", "event 2"]
            pub.close(deadline=2.0)
    lines = warnings(caplog)
    assert len(lines) == 2, lines
    assert lines[0] == (
        f"WARNING: --mqtt {url(port)}: cannot reach the broker (Connection refused); watch goes on and retries with "
        "backoff; the events are still in the other outputs"
    )
    assert "connected to the broker again after" in lines[1] and "0 message(s) were lost meanwhile" in lines[1]
    assert (pub.submitted, pub.delivered, pub.dropped) == (3, 3, 0)


def test_a_full_queue_drops_the_oldest_events_and_counts_them_exactly(tmp_path, caplog) -> None:
    port = free_port()
    with publisher(url(port), queue_size=3, **FAST_RETRIES) as pub:
        for n in range(5):
            pub.publish_event(f"event {n}")
        assert (pub.submitted, pub.dropped, pub.pending) == (5, 2, 3)
        with mosquitto_broker(tmp_path / "mosquitto", port) as broker, subscriber(broker) as live:
            wait_until(lambda: pub.connected, "the publisher connects after its backoff", 8)
            wait_until(lambda: len(live.payloads("events")) == 3, "the three newest events arrive")
            assert live.payloads("events") == ["event 2", "event 3", "event 4"]
            pub.close(deadline=2.0)
    lines = warnings(caplog)
    assert "2 message(s) were lost meanwhile" in lines[1]
    assert (
        lines[2]
        == f"WARNING: --mqtt {url(port)}: 3 of 5 messages delivered (2 dropped from a full queue, 0 still pending at stop)"
    )


def test_refused_credentials_are_one_warning_without_the_password(tmp_path, caplog) -> None:
    with mosquitto_broker(tmp_path / "mosquitto", users={"alice": "s3cret"}) as broker:
        with publisher(url(broker.port, "alice:wrong-pass@"), **FAST_RETRIES) as refused:
            wait_until(lambda: refused.failures >= 3, "a third attempt after the backoff")
            assert not refused.connected
        with publisher(url(broker.port, "alice:s3cret@")) as accepted:
            wait_until(lambda: accepted.connected, "the right password connects")
    lines = warnings(caplog)
    assert len(lines) == 1, lines
    assert "cannot reach the broker (refused: Not authorized)" in lines[0]
    assert f"mqtt://alice:***@{HOST}:{broker.port}/{PREFIX}" in lines[0] and "wrong-pass" not in lines[0]


CONNACK = b"\x20\x02\x00\x00"  # session not present, connection accepted
SILENT_KINDS = ["never-connacks", "never-acknowledges", "stops-reading"]


@contextlib.contextmanager
def silent_broker(kind: str) -> Iterator[int]:
    """A TCP server on a free port (yielded) that takes the CONNECT and then: never answers; accepts the connection
    with a CONNACK and never acknowledges anything; or sends the CONNACK and stops reading, so that the client's
    writes fill the socket's buffers and stall."""
    server = socket.create_server((HOST, 0))
    server.settimeout(0.05)
    stop = threading.Event()
    connections: list[socket.socket] = []

    def take_connect(connection: socket.socket) -> None:
        connection.settimeout(0.05)
        connections.append(connection)
        with contextlib.suppress(OSError):
            connection.recv(1024)
            if kind != "never-connacks":
                connection.sendall(CONNACK)

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                take_connect(server.accept()[0])
            for connection in connections if kind != "stops-reading" else ():
                with contextlib.suppress(OSError):
                    connection.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for connection in connections:
            connection.close()
        server.close()


@pytest.mark.parametrize("kind", SILENT_KINDS)
def test_close_with_a_broker_that_never_answers_returns_within_the_deadline(kind, caplog) -> None:
    with silent_broker(kind) as port, publisher(url(port)) as pub:
        if kind != "never-connacks":
            wait_until(lambda: pub.connected, "the CONNACK is taken")
        for n in range(3):
            pub.publish_event(f"event {n}")
        pub.publish_state("x" * (32 << 20) if kind == "stops-reading" else "state")  # more than the socket buffers hold
        started = time.monotonic()
        pub.close(deadline=1.0)
        took = time.monotonic() - started
    assert 0.9 < took < 1.0 + 1.5, took
    assert (
        warnings(caplog)[-1]
        == f"WARNING: --mqtt {url(port)}: 0 of 4 messages delivered (0 dropped from a full queue, 4 still pending at stop)"
    )


# ---------------------------------------------------------------- the URL


@pytest.mark.parametrize(
    "bad",
    [
        "http://broker/babyface",
        "broker:1883/babyface",
        "mqtt:///babyface",
        "mqtt://broker",
        "mqtt://broker:1883/",
        "mqtt://broker/home/+/baby",
        "mqtt://broker/home/#",
        "mqtt://broker:99999/babyface",
        "mqtt://alice:s3cret@broker/home/#",
    ],
)
def test_a_bad_url_is_a_one_line_error_saying_how_to_write_it(bad) -> None:
    with pytest.raises(BabyfaceError) as error:
        MqttPublisher(bad)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("--mqtt ") and URL_EXAMPLE in message
    assert "s3cret" not in message


def test_a_url_gives_host_port_tls_credentials_and_topic() -> None:
    target = parse_mqtt_url("mqtts://alice:p%40ss@broker.lan/home/baby/")
    assert (target.host, target.port, target.tls) == ("broker.lan", 8883, True)
    assert (target.username, target.password, target.topic) == ("alice", "p@ss", "home/baby")
    assert target.shown == "mqtts://alice:***@broker.lan/home/baby/"
    plain = parse_mqtt_url("mqtt://broker/babyface")
    assert (plain.port, plain.tls, plain.username, plain.password) == (1883, False, None, None)
