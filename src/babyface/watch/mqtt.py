"""``babyface watch --mqtt URL``: watch's events and state delivered to an MQTT broker with paho-mqtt, for a
dashboard (Home Assistant) or a phone.

``URL`` is ``mqtt://[user[:password]@]host[:port]/topic/prefix`` (port 1883), or ``mqtts://`` for TLS checked against
the system's CAs (port 8883). Under the prefix:

- ``{prefix}/events``: each event's JSON line, QoS 1, not retained;
- ``{prefix}/state``: the latest state, QoS 1, **retained**, so a dashboard that subscribes later sees it at once;
- ``{prefix}/availability``: ``online`` (retained) on every connect, ``offline`` at ``close``, and ``offline`` as the
  Last Will, which the broker publishes itself when the monitor vanishes without closing (a crash, a pulled cable).

What is guaranteed (the camera loop is never held up, and the other outputs never depend on the broker):

- ``publish_event`` and ``publish_state`` only put the message in memory and return at once; paho's network thread
  connects (``connect_async``), reconnects with backoff (``reconnect_delay``: 1 s doubling to 30 s between attempts)
  and talks to the broker, and one sender thread of ours hands it the messages in order.
- A broker that is down, refuses the connection (bad credentials), cannot be resolved or drops the connection later
  is one warning; further failures are counted, not printed; when it connects again, one line says how many
  messages were lost meanwhile.
- At most ``queue_size`` (100) events wait to be sent; beyond that the oldest is dropped and counted, exactly. Of the
  state only the newest waiting one is kept (an older one it replaces is not a loss). Up to ``IN_FLIGHT`` (20) more
  messages may be with paho, sent but not yet acknowledged: paho sends them again after a reconnect (QoS 1: at
  least once, so a subscriber may see one twice).
- ``close(deadline)`` sends what is waiting and ``offline``, waits at most ``deadline`` seconds in all for the
  broker's acknowledgements, then disconnects; where ``offline`` was not acknowledged it drops the connection
  without a DISCONNECT, so that the broker publishes the Last Will instead. Paho's thread gets ``STOP_MARGIN``
  (1 s) more to end, so a broker that accepts TCP and never answers delays the exit by ``deadline`` + 1 s at most.
  Then one warning counts what was not delivered, if anything.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import socket
import sys
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from babyface.errors import BabyfaceError

log = logging.getLogger("babyface")

EVENTS_TOPIC = "events"  # {prefix}/events: each event, QoS 1, not retained
STATE_TOPIC = "state"  # {prefix}/state: the latest state, QoS 1, retained
AVAILABILITY_TOPIC = "availability"  # {prefix}/availability: ONLINE / OFFLINE, retained; OFFLINE is the Last Will
ONLINE, OFFLINE = "online", "offline"
QOS = 1  # at least once: the broker acknowledges each message
MQTT_PORT, MQTTS_PORT = 1883, 8883
MQTT_QUEUE = 100  # events waiting to be sent; beyond, the oldest is dropped
MQTT_DEADLINE = 5.0  # seconds close() waits in all for the broker's acknowledgements
IN_FLIGHT = 20  # messages handed to paho and not yet acknowledged; the rest wait in our queue, where drops are exact
RECONNECT_MIN_DELAY, RECONNECT_MAX_DELAY = 1, 30  # seconds between connection attempts: doubling from min to max
STOP_MARGIN = 1.0  # seconds close() gives the threads to end after the deadline; never waited when they end at once
URL_EXAMPLE = "mqtt://host:1883/babyface"
ANNOUNCE_CHECK_SECONDS = 5.0  # how long after a connect the announcements must have come back from the broker


# ---------------------------------------------------------------- the URL


@dataclass(frozen=True)
class MqttTarget:
    """Where ``--mqtt`` publishes: parsed from its URL once, at start-up."""

    host: str
    port: int
    topic: str  # the prefix, without leading or trailing /
    tls: bool
    username: str | None
    password: str | None
    shown: str  # the URL with the password masked, for messages


def parse_mqtt_url(url: str) -> MqttTarget:
    """``url`` checked and split; a one-line ``BabyfaceError`` saying how to write it when it cannot be used."""
    shown = mask_password(url)

    def bad(problem: str) -> BabyfaceError:
        return BabyfaceError(
            f"--mqtt {shown}: {problem}; give e.g. {URL_EXAMPLE} (mqtts:// for TLS, user:password@ before the host)"
        )

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise bad("not an mqtt:// or mqtts:// URL")
    if not parts.hostname:
        raise bad("no broker host")
    try:
        port = parts.port or (MQTTS_PORT if parts.scheme == "mqtts" else MQTT_PORT)
    except ValueError:
        raise bad("the port is not a number from 1 to 65535") from None
    topic = urllib.parse.unquote(parts.path).strip("/")
    if not topic:
        raise bad("no topic prefix after the host")
    if "#" in url or "+" in topic:
        raise bad("the topic prefix may not hold the wildcards + or #")
    username = urllib.parse.unquote(parts.username) if parts.username is not None else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    return MqttTarget(parts.hostname, port, topic, parts.scheme == "mqtts", username, password, shown)


def mask_password(url: str) -> str:
    """``url`` with the password between ``user:`` and ``@`` replaced by ``***``, so that logs never show it."""
    return re.sub(r"(://[^:/@]*:)[^/@]*@", r"\1***@", url)


# ---------------------------------------------------------------- the publisher


@dataclass(frozen=True)
class Message:
    topic: str  # the suffix under the prefix (EVENTS_TOPIC, STATE_TOPIC, ...), or a full topic when ``absolute``
    payload: str | bytes
    retain: bool
    counted: bool  # the caller's event or state (counted in submitted / delivered); availability is ours
    absolute: bool = False  # a topic outside the prefix (Home Assistant's discovery configs)


class MqttPublisher:
    """Publishes watch's events and state to the broker at ``url`` without ever blocking the caller.

    Attributes, for the summary at stop and for tests: ``submitted`` (events and states given), ``delivered``
    (acknowledged by the broker), ``dropped`` (oldest events dropped from a full queue), ``replaced`` (states replaced
    by a newer one before they were sent), ``pending`` (the rest), ``failures`` (failed or lost connections) and
    ``connected``."""

    def __init__(
        self,
        url: str,
        client_id: str | None = None,
        queue_size: int = MQTT_QUEUE,
        keepalive: int = 60,
        connect_timeout: float = 5.0,
        reconnect_delay: tuple[float, float] = (RECONNECT_MIN_DELAY, RECONNECT_MAX_DELAY),
        announcements: list[tuple[str, str]] | None = None,
        check_seconds: float = ANNOUNCE_CHECK_SECONDS,
    ):
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, not {queue_size}")
        self.target = parse_mqtt_url(url)
        self.url = self.target.shown
        self.queue_size = queue_size
        self.changed = threading.Condition()  # guards everything below; paho's callbacks and the sender notify it
        self.events: deque[str] = deque()
        self.waiting_state: str | None = None
        self.in_flight: dict[int, Message] = {}  # mid -> message handed to paho, until the broker acknowledges it
        self.acknowledged_early: set[int] = set()  # acknowledgements that came before publish() returned their mid
        self.submitted = self.delivered = self.dropped = self.replaced = self.failures = 0
        self.connected = self.announce_online = self.closing = self.stopped = False
        self.offline_sent = self.offline_delivered = False
        self.failing_since: tuple[int, int] | None = None  # (failures, dropped) when the failure spell began
        self.dropped_offline_from = 0  # dropped when the connection was last lost: drops from then on were lost offline
        self.warned_full = False
        self.announcements = list(announcements or [])  # (full topic, payload) retained, sent after online on every connect
        self.announcing: deque[tuple[str, str]] = deque()
        self.retained_waiting: dict[str, str | bytes] = {}  # suffix -> newest payload of a retained topic of ours
        self.announced_back: set[str] = set()  # announcement topics the broker has given back to our subscription
        self.check_seconds = check_seconds
        self.warned_announcements = False
        self.client = self._make_client(client_id or f"babyface-{secrets.token_hex(4)}", connect_timeout, reconnect_delay)
        self.sender = threading.Thread(target=self._send_all, name="babyface-mqtt", daemon=True)
        self.sender.start()
        self.client.connect_async(self.target.host, self.target.port, keepalive)
        self.client.loop_start()

    def _make_client(self, client_id: str, connect_timeout: float, reconnect_delay: tuple[float, float]) -> mqtt.Client:
        client = new_client(self.target, client_id)
        client.will_set(self.topic(AVAILABILITY_TOPIC), OFFLINE, qos=QOS, retain=True)
        client.reconnect_delay_set(min_delay=reconnect_delay[0], max_delay=reconnect_delay[1])
        client.max_inflight_messages_set(IN_FLIGHT)
        client.connect_timeout = connect_timeout
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def topic(self, suffix: str) -> str:
        return f"{self.target.topic}/{suffix}"

    @property
    def pending(self) -> int:
        """Events and states neither delivered, dropped nor replaced yet: waiting, or sent and not acknowledged."""
        return self.submitted - self.delivered - self.dropped - self.replaced

    # ------------------------------------------------------------ the caller's side: never blocks

    def publish_event(self, line: str) -> None:
        """Queue one event's JSON line for ``{prefix}/events``; the oldest waiting event is dropped when the queue is full."""
        with self.changed:
            self.submitted += 1
            if len(self.events) >= self.queue_size:
                self.events.popleft()
                self.dropped += 1
                self._warn_full_once()
            self.events.append(line)
            self.changed.notify_all()

    def publish_state(self, text: str) -> None:
        """Queue ``text`` for the retained ``{prefix}/state``, replacing a state that has not been sent yet."""
        with self.changed:
            self.submitted += 1
            if self.waiting_state is not None:
                self.replaced += 1
            self.waiting_state = text
            self.changed.notify_all()

    def publish_retained(self, suffix: str, payload: str | bytes) -> None:
        """Queue ``payload`` for the retained ``{prefix}/{suffix}`` (e.g. the latest snapshot), replacing one of the
        same topic that has not been sent yet; not counted among the events and states."""
        with self.changed:
            self.retained_waiting[suffix] = payload
            self.changed.notify_all()

    def _warn_full_once(self) -> None:
        """One warning for a full queue while connected (a slow broker); while not, the connection's warning covers it."""
        if self.warned_full or not self.connected:
            return
        self.warned_full = True
        log.warning("WARNING: --mqtt %s: %d events are waiting; dropping the oldest (counted at stop)", self.url, self.queue_size)

    # ------------------------------------------------------------ the sender thread: hands messages to paho in order

    def _send_all(self) -> None:
        while (message := self._next_message()) is not None:
            self._send(message)

    def _next_message(self) -> Message | None:
        """Waits for a message paho may take now; None once ``close`` has stopped the sender."""
        with self.changed:
            while not self.stopped:
                message = self._ready_message()
                if message is not None:
                    return message
                self.changed.wait()
            return None

    def _ready_message(self) -> Message | None:
        """The next message to send, or None: not connected, ``IN_FLIGHT`` unacknowledged, or nothing waiting.
        ``online`` goes first after a connect, the state before the events, ``offline`` last at close."""
        if not self.connected or len(self.in_flight) >= IN_FLIGHT:
            return None
        if self.announce_online:
            self.announce_online = False
            self.announcing = deque(self.announcements)
            return Message(AVAILABILITY_TOPIC, ONLINE, retain=True, counted=False)
        if self.announcing:
            topic, payload = self.announcing.popleft()
            return Message(topic, payload, retain=True, counted=False, absolute=True)
        if self.retained_waiting:
            suffix = next(iter(self.retained_waiting))
            return Message(suffix, self.retained_waiting.pop(suffix), retain=True, counted=False)
        if self.waiting_state is not None:
            text, self.waiting_state = self.waiting_state, None
            return Message(STATE_TOPIC, text, retain=True, counted=True)
        if self.events:
            return Message(EVENTS_TOPIC, self.events.popleft(), retain=False, counted=True)
        if self.closing and not self.offline_sent:
            self.offline_sent = True
            return Message(AVAILABILITY_TOPIC, OFFLINE, retain=True, counted=False)
        return None

    def _send(self, message: Message) -> None:
        """Hands ``message`` to paho (outside the lock: paho calls ``_on_publish`` holding its own) and records its mid.
        Should the connection have dropped meanwhile, paho keeps it and sends it after the reconnect."""
        try:
            info: mqtt.MQTTMessageInfo | None = self.client.publish(
                message.topic if message.absolute else self.topic(message.topic), message.payload, qos=QOS,
                retain=message.retain
            )
        except ValueError:  # a payload over MQTT's 256 MB: that message is lost, the others go on
            info = None
        with self.changed:
            if info is None or info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:  # refused (paho's own queue is unbounded: not expected)
                self.dropped += int(message.counted)
            elif info.mid in self.acknowledged_early:
                self.acknowledged_early.discard(info.mid)
                self._acknowledged(message)
            else:
                self.in_flight[info.mid] = message

    def _acknowledged(self, message: Message) -> None:
        if message.counted:
            self.delivered += 1
        elif message.payload == OFFLINE and message.topic == AVAILABILITY_TOPIC:
            self.offline_delivered = True
        self.changed.notify_all()

    # ------------------------------------------------------------ paho's callbacks, in its network thread

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        with self.changed:
            message = self.in_flight.pop(mid, None)
            if message is None:
                self.acknowledged_early.add(mid)
            else:
                self._acknowledged(message)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self._failed(f"refused: {reason_code}")
            return
        with self.changed:
            self.connected = True
            self.announce_online = not self.closing  # after offline was sent, a reconnect must not undo it
            self.changed.notify_all()
            spell = self.failing_since
            self.failing_since = None
        self._check_announcements(client)
        if spell is not None:
            log.warning(
                "WARNING: --mqtt %s: connected to the broker again after %d failed attempt(s); %d message(s) were lost "
                "meanwhile (dropped from a full queue)",
                self.url,
                self.failures - spell[0],
                self.dropped - spell[1],
            )

    def _check_announcements(self, client: mqtt.Client) -> None:
        """Reads the announcements back (a subscription returns retained messages): a broker whose access rules refuse
        their topics (to write or to read) gives them not back, and one warning says so; monitoring goes on."""
        wanted = {topic for topic, payload in self.announcements if payload}
        if not wanted or self.warned_announcements or self.closing:
            return
        for topic in sorted(wanted):
            client.subscribe(topic, qos=QOS)
        timer = threading.Timer(self.check_seconds, self._warn_unannounced, args=(wanted,))
        timer.daemon = True
        timer.start()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.payload:
            with self.changed:
                self.announced_back.add(message.topic)

    def _warn_unannounced(self, wanted: set[str]) -> None:
        with self.changed:
            missing = sorted(wanted - self.announced_back)
            if not missing or self.warned_announcements or not self.connected or self.closing:
                return
            self.warned_announcements = True
        prefix = missing[0].split("/")[0]
        log.warning(
            "WARNING: --mqtt %s: the broker did not keep %d of %d discovery message(s) under %s/ (its access rules may "
            "refuse that prefix to this user), so Home Assistant will not see those entities; allow the user to write "
            "and read %s/# on the broker, or give --ha-discovery the prefix Home Assistant listens on; monitoring goes on",
            self.url, len(missing), len(wanted), prefix, prefix)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._failed(describe_error(sys.exc_info()[1]))  # paho calls this while handling the connection's OSError

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        with self.changed:
            was_connected, self.connected = self.connected, False
            if was_connected:
                self.dropped_offline_from = self.dropped
            self.changed.notify_all()
        if was_connected and not self.closing:
            self._failed("connection lost" if str(reason_code) == "Unspecified error" else f"connection lost: {reason_code}")

    def _failed(self, reason: str) -> None:
        """Counts a failed or lost connection; the first of a spell is one warning."""
        with self.changed:
            self.failures += 1
            if self.failing_since is not None or self.closing:
                return
            self.failing_since = (self.failures - 1, self.dropped_offline_from)  # drops before the first failure count
        log.warning(
            "WARNING: --mqtt %s: cannot reach the broker (%s); watch goes on and retries with backoff; the events are "
            "still in the other outputs",
            self.url,
            reason,
        )

    # ------------------------------------------------------------ stopping

    def close(self, deadline: float = MQTT_DEADLINE) -> None:
        """Sends what waits and ``offline``, waits at most ``deadline`` seconds in all for the acknowledgements,
        disconnects and stops the threads; one warning if anything was not delivered."""
        if self.stopped:
            return
        until = time.monotonic() + deadline
        with self.changed:
            self.closing = True
            self.changed.notify_all()
            while not self._all_acknowledged() and (left := until - time.monotonic()) > 0:
                self.changed.wait(left)
            self.stopped = True
            self.changed.notify_all()
            clean = self.offline_delivered or not self.connected
        self._disconnect(clean)
        self._stop_threads(STOP_MARGIN)
        self._report_undelivered()

    def _all_acknowledged(self) -> bool:
        """Nothing waits or is unacknowledged, and ``offline`` is delivered (or cannot be: not connected)."""
        nothing_left = (not self.events and self.waiting_state is None and not self.in_flight and not self.announcing
                        and not self.retained_waiting)
        return nothing_left and (self.offline_delivered or not self.connected)

    def _disconnect(self, clean: bool) -> None:
        """A DISCONNECT when ``offline`` was delivered; otherwise the connection is dropped first (a broker that
        answers then publishes the Last Will ``offline``, which a DISCONNECT would cancel)."""
        if not clean:
            sock = self.client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self.client.disconnect()

    def _stop_threads(self, seconds: float) -> None:
        """Paho's ``loop_stop`` waits for its thread without a limit (which can hang while a message is unacknowledged);
        it runs in a daemon thread given ``seconds``, after which it is left to end with the process."""
        until = time.monotonic() + seconds
        stopper = threading.Thread(target=self.client.loop_stop, name="babyface-mqtt-stop", daemon=True)
        stopper.start()
        for thread in (stopper, self.sender):
            thread.join(max(0.0, until - time.monotonic()))

    def _report_undelivered(self) -> None:
        with self.changed:
            submitted, delivered, dropped, pending = self.submitted, self.delivered, self.dropped, self.pending
        if dropped or pending:
            log.warning(
                "WARNING: --mqtt %s: %d of %d messages delivered (%d dropped from a full queue, %d still pending at stop)",
                self.url,
                delivered,
                submitted,
                dropped,
                pending,
            )


def new_client(target: MqttTarget, client_id: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    if target.username is not None:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        client.tls_set()  # the system's CAs, certificate and host name checked
    return client


def publish_once(url: str, messages: list[tuple[str, str]], timeout: float = MQTT_DEADLINE) -> None:
    """Publish retained ``messages`` (full topic, payload) and wait for the broker to acknowledge each; a one-line
    error when the broker cannot be reached or does not acknowledge them within ``timeout`` seconds."""
    target = parse_mqtt_url(url)
    client = new_client(target, f"babyface-{secrets.token_hex(4)}")
    client.connect_timeout = timeout
    try:
        client.connect(target.host, target.port)
    except (OSError, ValueError) as exc:
        raise BabyfaceError(f"--mqtt {target.shown}: cannot reach the broker ({describe_error(exc)}); nothing was "
                            "removed; check the URL and that the broker runs") from None
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=QOS, retain=True) for topic, payload in messages]
        until = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(max(0.0, until - time.monotonic()))
        if not all(info.is_published() for info in infos):
            raise BabyfaceError(f"--mqtt {target.shown}: the broker did not acknowledge the messages within {timeout:g} s; "
                                "run the command again")
    finally:
        client.disconnect()
        client.loop_stop()


def describe_error(exc: BaseException | None) -> str:
    """A short reason for a failed connection: 'Connection refused', 'Name or service not known', 'timed out'."""
    if exc is None:
        return "connection failed"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
