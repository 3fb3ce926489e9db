"""A hostile client on the same network against a real ``babyface serve`` on 127.0.0.1.

Each attack gets one clear answer (a JSON error or a closed connection) and at most one log line, the server keeps
answering normal clients, and its log never holds a traceback. Counts and times are kept small (a few dozen
connections, deadlines of 2 s): the same attacks at full size, with memory and latency measured, are in
benchmarks/serve_abuse.py.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import face_scene, png_claiming
from tests.e2e.serving import Server, running_server

TOKEN = "correct-horse-battery-staple-ünïcode"
DEADLINE = 2.0  # --request-timeout of the servers below


def image_bytes(fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    face_scene().save(buffer, format=fmt)
    return buffer.getvalue()




def multipart(data: bytes, content_type: str = "image/png") -> tuple[bytes, str]:
    boundary = "babyfaceboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def request(server: Server, method: str, path: str, body: bytes = b"", headers: dict | None = None,
            timeout: float = 30, source: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    """One request from the loopback address ``source`` (the server backs off per address)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout, source_address=(source, 0))
    try:
        conn.putrequest(method, path, skip_host="Host" in (headers or {}), skip_accept_encoding=True)
        for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            conn.putheader(name, value)
        conn.endheaders(body or None)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def predict(server: Server, data: bytes, content_type: str = "image/png", headers: dict | None = None,
            source: str = "127.0.0.1"):
    body, form_type = multipart(data, content_type)
    return request(server, "POST", "/predict", body, {"Content-Type": form_type, **(headers or {})}, source=source)


def json_error(status: int, body: bytes) -> str:
    detail = json.loads(body)["detail"]
    assert isinstance(detail, str) and "\n" not in detail and "/" not in detail.replace("/predict", "").split(" ")[0]
    return detail


def raw_connection(server: Server, data: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE * 4)
    if data:
        sock.sendall(data)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


@pytest.fixture(scope="module")
def server(untrained_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    with running_server(untrained_run, "--no-onnx", "--request-timeout", str(DEADLINE), "--max-connections", "40",
                        log_dir=folder) as running:
        yield running
    assert "Traceback" not in running.log(), running.log()[-3000:]


def test_small_files_that_decode_huge_get_a_json_413_before_any_decoding(server) -> None:
    for mode in ("I;16", "RGB"):
        status, headers, body = predict(server, png_claiming(9999, 9999, mode), source="127.0.0.2")
        assert status == 413 and headers["content-type"] == "application/json"
        assert "--max-image-mb" in json_error(status, body)
    status, _, body = predict(server, png_claiming(20000, 20000, "L"), source="127.0.0.2")
    assert status == 413 and "--max-pixels" in json_error(status, body)


def test_an_address_that_keeps_sending_refused_uploads_is_made_to_wait(server) -> None:
    bomber, bomb = "127.0.0.4", png_claiming(9999, 9999, "I;16")
    assert [predict(server, bomb, source=bomber)[0] for _ in range(5)] == [413] * 5
    status, headers, body = predict(server, image_bytes(), source=bomber)  # even a good image: its body is not read
    assert status == 429 and headers["connection"] == "close" and int(headers["retry-after"]) >= 1
    assert "refused uploads" in json_error(status, body)
    assert predict(server, image_bytes())[0] == 200  # other addresses are not held up
    time.sleep(int(headers["retry-after"]) + 0.2)
    assert predict(server, image_bytes(), source=bomber)[0] == 200


def test_formats_are_judged_by_their_bytes(server, tmp_path: Path) -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n0 0 moveto 8 8 lineto stroke\nshowpage\n"
    for data in (eps, image_bytes("TGA"), image_bytes("PCX")):
        status, _, body = predict(server, data, "image/png", source="127.0.0.3")
        assert status == 415 and "JPEG, PNG" in json_error(status, body)
    for fmt in ("WEBP", "BMP", "TIFF"):
        status, _, body = predict(server, image_bytes(fmt), "application/octet-stream")  # what curl -F sends
        assert status == 200 and json.loads(body)["faces"], fmt


def test_half_sent_headers_and_trickled_bodies_are_cut_off_and_health_stays_fast(server) -> None:
    half_headers = [raw_connection(server, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ") for _ in range(15)]
    body, form_type = multipart(image_bytes())
    trickled = [raw_connection(server, (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {form_type}\r\n"
                                        f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:100]) for _ in range(15)]
    started = time.monotonic()
    status, _, _ = request(server, "GET", "/health", timeout=5)
    assert status == 200 and time.monotonic() - started < 1.0
    for sock in half_headers + trickled:
        sock.sendall(b"x")  # still trickling
    answers = [read_until_closed(sock) for sock in half_headers + trickled]
    assert time.monotonic() - started < DEADLINE * 3
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408") and b"application/json" in answer
    for sock in half_headers + trickled:
        sock.close()


def test_a_slow_second_request_on_a_kept_alive_connection_is_cut_off_too(server) -> None:
    sock = raw_connection(server, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    first = b""
    while not first.endswith(b'{"status":"ok"}'):  # the whole first answer, head and body
        first += sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # and never the rest
    answer = read_until_closed(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < DEADLINE * 3


def test_idle_connections_beyond_the_limit_make_room_for_real_clients(server) -> None:
    idle = [raw_connection(server) for _ in range(60)]  # more than --max-connections 40
    time.sleep(0.3)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: predict(server, image_bytes())[0], range(8)))
    assert answers == [200] * 8
    for sock in idle:
        sock.close()
    assert server.log().count("connection closed to make room") <= 3  # counted, a line at the 1st, 10th, 100th


def test_a_client_that_disconnects_mid_upload_costs_one_log_line(server) -> None:
    before = server.log()
    body, form_type = multipart(image_bytes())
    sock = raw_connection(server, (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {form_type}\r\n"
                                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:len(body) // 2])
    time.sleep(0.3)
    sock.close()
    time.sleep(0.5)
    added = server.log()[len(before):]
    assert added.count("\n") == 1 and "disconnected in the middle of its upload (1 so far)" in added  # then at 10, 100, ...
    assert str(Path.home()) not in added and "site-packages" not in added


def test_every_answer_is_json_and_carries_the_safety_headers(server) -> None:
    for method, path, body, headers in [("GET", "/nowhere", b"", {}), ("POST", "/predict", b"x", {"Content-Type": "text/plain"}),
                                        ("GET", "/health", b"", {})]:
        status, got, content = request(server, method, path, body, headers)
        json.loads(content)
        assert got["x-content-type-options"] == "nosniff" and got["cache-control"] == "no-store"
    status, got, _ = request(server, "GET", "/")
    assert status == 200 and got["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in got["content-security-policy"]
    answer = read_until_closed(raw_connection(server, b"NOT HTTP AT ALL\r\n\r\n"))
    assert answer.startswith(b"HTTP/1.1 400") and json.loads(answer.split(b"\r\n\r\n", 1)[1])["detail"]


def test_without_a_token_only_ip_addresses_and_localhost_are_answered(server) -> None:
    """A DNS-rebinding page reaches the server under its own domain name: refused."""
    status, _, body = request(server, "GET", "/model", headers={"Host": "attacker.example:8000"})
    assert status == 421 and "--token" in json_error(status, body)
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", "[::1]"):
        assert request(server, "GET", "/model", headers={"Host": host})[0] == 200, host


def test_tokens_short_wrong_repeated_and_unicode(untrained_run, tmp_path: Path) -> None:
    import subprocess
    import sys

    short = subprocess.run([sys.executable, "-m", "babyface", "serve", str(untrained_run), "--token", "a"],
                           capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert short.returncode != 0 and "at least 16" in short.stderr and "Traceback" not in short.stderr
    with running_server(untrained_run, "--no-onnx", "--token", TOKEN, "--host", "127.0.0.1", log_dir=tmp_path) as guarded:
        right = {"Authorization": b"Bearer " + TOKEN.encode()}  # raw UTF-8 bytes, as the page sends them
        assert request(guarded, "GET", "/model", headers=right)[0] == 200
        statuses = [request(guarded, "GET", "/model", headers={"Authorization": f"Bearer guess{n}"})[0] for n in range(7)]
        assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]
        status, headers, body = request(guarded, "GET", "/model", headers=right)
        assert status == 429 and int(headers["retry-after"]) >= 1  # even the right token waits out the back-off
        time.sleep(int(headers["retry-after"]) + 0.2)
        assert request(guarded, "GET", "/model", headers=right)[0] == 200
        assert request(guarded, "GET", "/model", headers={"Host": "attacker.example"} | right)[0] == 200  # a token is enough


def test_sigterm_removes_the_temporary_export(untrained_run, tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with running_server(untrained_run, log_dir=tmp_path, env={"TMPDIR": str(scratch)}) as onnx_server:
        assert any(scratch.glob("babyface-serve-*")), "serve with ONNX exports into a temporary folder"
        assert onnx_server.stop() == 0
    assert not list(scratch.glob("babyface-serve-*"))
    assert "Traceback" not in onnx_server.log()
