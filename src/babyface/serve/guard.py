"""What keeps a hostile client on the same network from knocking ``babyface serve`` over, reading it or making it leak.

- ``GuardedH11Protocol``: uvicorn's HTTP/1.1 protocol with a deadline on every request (headers and body together:
  half-sent headers and trickled bodies are cut off, a JSON 408), a connection limit that evicts the longest-waiting
  idle connection before it refuses a new one, and JSON instead of uvicorn's plain-text 400.
- ``SecurityHeaders``: every response says ``nosniff`` and ``no-store``, and may not be framed by another site.
- ``HostCheck``: without a token, a request must name this machine by an IP address or ``localhost`` in its Host
  header, so that a web page on a rebinding domain cannot reach the token-less server through the browser.
- ``Backoff``: an address that keeps sending wrong tokens, or uploads that are refused (too large, not an image),
  waits longer and longer before its next request is even read (429): refusing costs little, but not nothing.
- ``JsonErrors``: an unexpected exception becomes a JSON 500 and one log line, not a traceback.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import json
import logging
import time
from collections import OrderedDict
from typing import Callable

import h11
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("babyface")
Clock = Callable[[], float]


def json_body(detail: str) -> bytes:
    return json.dumps({"detail": detail}).encode()


class Tally:
    """Counts a recurring event and logs one line at its 1st, 10th, 100th, ... time: an attack cannot flood the log."""

    def __init__(self, what: str):
        self.what, self.count = what, 0

    def add(self) -> None:
        self.count += 1
        if self.count in (1, 10, 100, 1000) or self.count % 10000 == 0:
            log.warning("WARNING: %s (%d so far)", self.what, self.count)


# ---------------------------------------------------------------- the connection

class ConnectionPolicy:
    """Limits shared by every connection of one server (set once by ``serve``)."""

    request_timeout = 30.0  # seconds from a request's first byte (or the end of the last response) to its body's end
    max_connections = 200
    refused = Tally("connection refused: the server is at its --max-connections, every one busy")
    timed_out = Tally("connection closed: its request was not complete within --request-timeout")
    evicted = Tally("connection closed to make room: the server was full and it was the slowest")


CUT_OFF = "babyface.cut_off"  # set in a request's scope when the server, not the client, ended the upload


def was_cut_off(scope: Scope) -> bool:
    return bool(scope.get(CUT_OFF))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol; see the module docstring. Connections are kept in opening order, oldest first."""

    policy = ConnectionPolicy
    open_connections: OrderedDict[GuardedH11Protocol, None] = OrderedDict()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.deadline: asyncio.TimerHandle | None = None
        self.address = self.client[0] if self.client else ""
        if len(self.open_connections) >= self.policy.max_connections and not self._evict_an_idle_connection():
            self.policy.refused.add()
            transport.abort()
            return
        self.open_connections[self] = None
        self._arm_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self.open_connections.pop(self, None)
        self._disarm_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._answering():
            self._disarm_deadline()  # the whole request is in: the app may take its time to answer

    def _answering(self) -> bool:
        """The current request has come in whole and its answer is not sent yet (an answered request's cycle stays
        until the next request's head is complete: bytes of that head do not count)."""
        return self.cycle is not None and not self.cycle.response_complete and not self.cycle.more_body

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_deadline()  # the next request on this keep-alive connection gets its own deadline

    def send_400_response(self, msg: str) -> None:
        self._send_json_and_close(400, f"not a valid HTTP request ({msg.rstrip('.').lower()})")

    def _eviction_rank(self) -> int | None:
        """Who goes first when the server is full: 0 a connection that has not sent a whole request head yet,
        1 one idle between requests, 2 one still sending its body; None one waiting for its answer (never)."""
        if self.cycle is None:
            return 0
        if self.cycle.response_complete:
            return 1
        return 2 if self.cycle.more_body and self.deadline is not None else None

    def _evict_an_idle_connection(self) -> bool:
        """Close a connection of the address that holds the most, of lowest rank, the oldest among equals: a client
        that opens hundreds of connections loses its own, not those of the few a normal client holds."""
        held = collections.Counter(other.address for other in self.open_connections)
        ranked = [(-held[other.address], rank, n, other) for n, other in enumerate(self.open_connections)
                  if other is not self and (rank := other._eviction_rank()) is not None]
        if not ranked:
            return False
        victim = min(ranked, key=lambda item: item[:3])[3]
        self.policy.evicted.add()
        victim._cut_off("the server is full and this connection was the slowest")
        self.open_connections.pop(victim, None)
        return True

    def _arm_deadline(self) -> None:
        self._disarm_deadline()
        self.deadline = self.loop.call_later(self.policy.request_timeout, self._too_slow)

    def _disarm_deadline(self) -> None:
        if getattr(self, "deadline", None) is not None:
            self.deadline.cancel()
            self.deadline = None

    def _too_slow(self) -> None:
        self.deadline = None
        if self._answering():
            return  # the whole request came in after all: the app answers it
        self.policy.timed_out.add()
        self._cut_off(f"request not complete within {self.policy.request_timeout:g} s; send it faster")

    def _cut_off(self, why: str) -> None:
        """A JSON 408 and close; an app still waiting for the body is told it will not come (see ``was_cut_off``)."""
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.scope[CUT_OFF] = True
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self._send_json_and_close(408, why)

    def _send_json_and_close(self, status: int, detail: str) -> None:
        if self.transport.is_closing():
            return
        unanswered = self.conn.our_state is h11.SEND_RESPONSE and not (self.cycle and self.cycle.response_started)
        if self.conn.our_state is h11.IDLE or unanswered:  # IDLE: no request head yet (or the next one's not whole)
            body = json_body(detail)
            try:
                self.transport.write(self.conn.send(h11.Response(status_code=status, headers=[
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close")])) + self.conn.send(h11.Data(data=body)) + self.conn.send(h11.EndOfMessage()))
            except h11.LocalProtocolError:
                pass
        self.transport.close()


# ---------------------------------------------------------------- ASGI middleware

async def send_json(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json_body(detail)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store"),
                    (b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'"),
                    (b"referrer-policy", b"no-referrer")]


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in SECURITY_HEADERS}
                message["headers"] = [h for h in message.get("headers", []) if h[0].lower() not in names] + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


def is_safe_host(host_header: str, own_host: str) -> bool:
    """An IP address (v4 or [v6]), ``localhost`` or the --host the server was started with (any port)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else host
    else:
        host = host.rpartition(":")[0] or host if host.count(":") == 1 else host
    if host in ("localhost", own_host.lower()):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HostCheck:
    """Refuses (JSON 421) a request whose Host header is a domain name: see the module docstring."""

    def __init__(self, app: ASGIApp, own_host: str):
        self.app, self.own_host = app, own_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"host"), "")
            if not is_safe_host(host, self.own_host):
                return await send_json(send, 421, "this server has no --token, so it answers only to an IP address or "
                                                  "localhost in the address bar; open http://127.0.0.1:PORT/ or "
                                                  "start it with --token")
        await self.app(scope, receive, send)


class BackoffGate:
    """429 for a request from an address that must wait (see ``Backoff``), answered before routing and unread: a
    flood of refused requests costs as little as it can. ``gates`` holds (backoff, paths it guards, what it counts)."""

    def __init__(self, app: ASGIApp, gates: list[tuple[Backoff, tuple[str, ...], str]]):
        self.app, self.gates = app, gates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            address = client_address(scope)
            for backoff, paths, what in self.gates:
                wait = backoff.retry_after(address) if scope["path"] in paths else 0.0
                if wait > 0:
                    return await send_json(send, 429, f"too many {what} from this address: wait {wait:.0f} s before the "
                                                      "next try", [(b"retry-after", str(max(1, round(wait))).encode()),
                                                                   (b"connection", b"close")])
        await self.app(scope, receive, send)


class JsonErrors:
    """The outermost middleware: an exception nobody handled is one log line and a JSON 500 (503 when memory ran out)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 (the one place that turns any failure into an answer)
            log.warning("WARNING: %s %s failed: %s", scope.get("method", ""), scope.get("path", ""), one_line(exc))
            if started or scope["type"] != "http":
                return
            if isinstance(exc, MemoryError):
                await send_json(send, 503, "the server ran out of memory for this image; send a smaller one or retry later")
            else:
                await send_json(send, 500, "internal error (one line about it is in the server's log); retry or report it")


def one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---------------------------------------------------------------- tokens

class Backoff:
    """After ``free_tries`` failures in a row from one address (wrong tokens, refused uploads), its next requests are
    refused unread (429) for 1 s, then 2, 4, ... up to ``max_wait`` s after each further failure: guessing a
    16-character token is hopeless, and a flood of bombs costs the server a handful of requests a minute."""

    def __init__(self, free_tries: int = 5, max_wait: float = 60.0, clock: Clock = time.monotonic, remembered: int = 4096):
        self.free_tries, self.max_wait, self.clock, self.remembered = free_tries, max_wait, clock, remembered
        self.failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # address -> (wrong tries, blocked until)

    def retry_after(self, address: str) -> float:
        """Seconds ``address`` must still wait before its next request is read (0 = read it now)."""
        return max(0.0, self.failures.get(address, (0, 0.0))[1] - self.clock())

    def failed(self, address: str) -> None:
        count = self.failures.pop(address, (0, 0.0))[0] + 1
        wait = 0.0 if count < self.free_tries else min(self.max_wait, 2.0 ** (count - self.free_tries))
        self.failures[address] = (count, self.clock() + wait)
        while len(self.failures) > self.remembered:
            self.failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self.failures.pop(address, None)


def client_address(request_scope: Scope) -> str:
    client = request_scope.get("client")
    return client[0] if client else ""
