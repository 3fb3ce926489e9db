"""The live view of a real ``babyface serve RUN --live SOURCE``: the MJPEG stream, its token, its viewer limit, its
status, a stop while someone watches, a source that ends, a source that cannot be opened, and a server without it.

The source is an MP4 of one still synthetic face (a video file plays at its own speed, as a camera would deliver
it), so every frame is the same and a streamed frame can be compared with the raw one pixel by pixel.
"""

from __future__ import annotations

import http.client
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from babyface.config import ServeConfig
from babyface.errors import BabyfaceError
from babyface.serve.live import BOUNDARY, MAX_VIEWERS
from tests.conftest import face_scene
from tests.e2e.serving import Server, running_server

TOKEN = "live-view-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CLIP_FPS = 10
LIVE_FPS = 5.0  # below the clip's 10 frames/s, so that the per-viewer cap shows
SIZE = (400, 300)
FACE = (200, 80, 360, 240)  # where face_scene pastes its 160-px face
pytestmark = pytest.mark.timeout(60)


def write_clip(path: Path, seconds: float) -> Path:
    import cv2

    frame = np.asarray(face_scene(size=SIZE))[:, :, ::-1]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), CLIP_FPS, SIZE)
    for _ in range(round(seconds * CLIP_FPS)):
        writer.write(frame)
    writer.release()
    return path


def raw_frame(path: Path) -> np.ndarray:
    import cv2

    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    capture.release()
    assert ok
    return frame[:, :, ::-1]


def get(server: Server, path: str, headers: dict | None = None, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def status(server: Server, headers: dict | None = AUTH) -> dict:
    code, _, body = get(server, "/live/status", headers)
    assert code == 200, body
    return json.loads(body)


def open_stream(server: Server, headers: dict | None = AUTH) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/live", headers=headers or {})
    return conn, conn.getresponse()


def read_parts(response: http.client.HTTPResponse, count: int | None = None) -> tuple[list[bytes], list[float], bool]:
    """Up to ``count`` JPEGs (all when None), when each came, and whether the closing boundary ended the body."""
    frames, times = [], []
    while count is None or len(frames) < count:
        line = response.readline().strip()
        if line == f"--{BOUNDARY}--".encode():
            return frames, times, response.read() == b""
        if not line:
            if response.isclosed() or response.fp is None:
                return frames, times, False
            continue
        assert line == f"--{BOUNDARY}".encode(), line
        headers = {}
        while header := response.readline().strip():
            name, _, value = header.decode().partition(":")
            headers[name.lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        frames.append(response.read(int(headers["content-length"])))
        times.append(time.monotonic())
    return frames, times, False


def detail(body: bytes) -> str:
    text = json.loads(body)["detail"]
    assert isinstance(text, str) and "\n" not in text
    return text


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("live") / "clip.mp4", 30)  # it plays from the server's start: longer than its tests


@pytest.fixture(scope="module")
def server(untrained_run, clip, tmp_path_factory):
    """--token and --live on the clip; its last test stops it."""
    with running_server(untrained_run, "--no-onnx", "--token", TOKEN, "--live", str(clip), "--live-fps", str(LIVE_FPS),
                        log_dir=tmp_path_factory.mktemp("live-log")) as running:
        yield running
    assert "Traceback" not in running.log(), running.log()[-3000:]


def test_the_stream_and_its_status_need_the_token(server) -> None:
    for path in ("/live", "/live/status"):
        for headers in ({}, {"Authorization": "Bearer not-the-token-at-all"}):
            code, answer, body = get(server, path, headers)
            assert code == 401 and answer["content-type"] == "application/json" and "token" in detail(body)
            assert answer["www-authenticate"] == "Bearer"


def test_the_stream_is_annotated_jpegs_of_the_source_at_most_live_fps(server, clip) -> None:
    conn, response = open_stream(server)
    try:
        assert response.status == 200
        assert response.getheader("content-type") == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        assert response.getheader("cache-control") == "no-store"
        frames, times, _ = read_parts(response, 4)
    finally:
        conn.close()
    assert len(frames) == 4
    assert times[-1] - times[0] >= 3 / LIVE_FPS - 0.1  # the clip has a new frame every 0.1 s; a viewer gets one per 0.2 s
    raw = raw_frame(clip).astype(int)
    left, top, right, bottom = FACE
    for data in frames:
        image = Image.open(io.BytesIO(data))
        assert image.format == "JPEG" and image.size == SIZE
        changed = np.abs(np.asarray(image.convert("RGB"), dtype=int) - raw).max(axis=2) > 80
        assert changed.sum() > 1000, changed.sum()  # a box and its label are drawn...
        ys, xs = np.nonzero(changed)
        assert xs.min() >= left - 60 and xs.max() <= right + 60 and ys.max() <= bottom + 60  # ...around the face only
        assert changed[top + 30:bottom - 30, left + 30:right - 30].sum() == 0  # and the face itself is left as it was


def test_the_status_says_what_the_view_shows(server) -> None:
    answer = status(server)
    assert answer["running"] is True and answer["state"] == "running"
    assert answer["source"] == "clip.mp4"  # the file's name, never the server's path
    assert answer["frames"] > 0 and 0 < answer["fps"] <= CLIP_FPS + 1 and answer["faces"] == 1
    assert (answer["width"], answer["height"]) == SIZE and answer["last_error"] is None
    assert answer["max_viewers"] == MAX_VIEWERS and answer["max_fps"] == LIVE_FPS


def test_viewers_beyond_the_limit_get_a_json_503_until_a_place_is_free(server) -> None:
    streams = [open_stream(server) for _ in range(MAX_VIEWERS)]
    try:
        assert [response.status for _, response in streams] == [200] * MAX_VIEWERS
        assert status(server)["viewers"] == MAX_VIEWERS
        code, answer, body = get(server, "/live", AUTH)
        assert code == 503 and answer["content-type"] == "application/json"
        assert f"{MAX_VIEWERS} viewers" in detail(body) and answer["retry-after"]
        assert get(server, "/health")[0] == 200 and status(server)["running"]  # the rest is answered
        streams.pop()[0].close()
        deadline = time.monotonic() + 5
        while status(server)["viewers"] == MAX_VIEWERS and time.monotonic() < deadline:
            time.sleep(0.05)
        streams.append(open_stream(server))
        assert streams[-1][1].status == 200
        assert len(read_parts(streams[-1][1], 1)[0]) == 1
    finally:
        for conn, _ in streams:
            conn.close()


def test_the_page_shows_the_stream_and_its_status(server, page, tmp_path: Path) -> None:
    """The page (token from its address) draws the stream's frames on its canvas and says what the status says."""
    code, _, body = get(server, "/")
    assert code == 200 and b'id="live"' in body and b'api("/live")' in body
    page.goto(f"{server.url}/#token={TOKEN}")
    page.wait_for_function("Number(document.getElementById('live-canvas').dataset.frames || 0) >= 3", timeout=15_000)
    page.wait_for_function("document.getElementById('live-status').textContent.includes('frames/s')", timeout=5_000)
    page.screenshot(path=tmp_path / "live_page.png")
    size = page.evaluate("[document.getElementById('live-canvas').width, document.getElementById('live-canvas').height]")
    line = page.text_content("#live-status")
    assert tuple(size) == SIZE
    assert line.startswith("Live: clip.mp4 · ") and line.endswith(" · 1 face"), line


def test_sigterm_ends_the_streams_and_the_server_at_once(server) -> None:
    """A stop while a viewer watches takes far less than uvicorn's 5-s graceful shutdown (the last test of ``server``),
    and the viewer's stream ends with its closing boundary."""
    conn, response = open_stream(server)
    try:
        assert response.status == 200 and len(read_parts(response, 1)[0]) == 1
        begun = time.monotonic()
        server.proc.terminate()
        _, _, closed = read_parts(response)
        assert closed
        assert server.proc.wait(timeout=10) == 0
        assert time.monotonic() - begun < 4
    finally:
        conn.close()


def test_a_source_that_cannot_be_opened_is_a_status_and_the_server_goes_on(untrained_run, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with running_server(untrained_run, "--no-onnx", "--live", str(broken), log_dir=tmp_path) as failing:
        deadline = time.monotonic() + 10
        while (answer := status(failing, None))["running"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert answer["state"] == "failed" and answer["frames"] == 0
        assert "broken.mp4: OpenCV cannot open it" in answer["last_error"] and str(tmp_path) not in answer["last_error"]
        code, _, body = get(failing, "/live")
        assert code == 503 and "cannot open" in detail(body)
        assert get(failing, "/health")[0] == 200
        image = io.BytesIO()
        face_scene().save(image, format="PNG")
        boundary = "live-test-boundary"
        form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n"
                "Content-Type: image/png\r\n\r\n").encode() + image.getvalue() + f"\r\n--{boundary}--\r\n".encode()
        conn = http.client.HTTPConnection("127.0.0.1", failing.port, timeout=30)
        try:
            conn.request("POST", "/predict", form, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
            response = conn.getresponse()
            assert response.status == 200 and len(json.loads(response.read())["faces"]) == 1
        finally:
            conn.close()
    log = failing.log()
    assert "Traceback" not in log and "WARNING: live view: broken.mp4: OpenCV cannot open it" in log
    assert str(tmp_path) not in log


def test_without_live_there_is_no_live_endpoint_nor_section(untrained_run) -> None:
    from babyface.serve.app import create_app
    from tests.conftest import local_client

    plain = local_client(create_app(ServeConfig(run=str(untrained_run), device="cpu", onnx=False)))
    for path in ("/live", "/live/status"):
        answer = plain.get(path, headers=AUTH)
        assert answer.status_code == 404 and answer.headers["content-type"] == "application/json" and answer.json()["detail"]
    page = plain.get("/").text
    assert 'id="live"' not in page and "/live" not in page and "live-" not in page


def test_a_live_source_that_is_no_file_camera_or_url_fails_before_the_model_loads(untrained_run, tmp_path: Path) -> None:
    from babyface.serve.app import create_app

    begun = time.monotonic()
    with pytest.raises(BabyfaceError, match="no such video file"):
        create_app(ServeConfig(run=str(untrained_run), device="cpu", live=str(tmp_path / "missing.mp4")))
    assert time.monotonic() - begun < 1


class Camera:
    """A stand-in for cv2.VideoCapture: ``frames[n]`` frames on its n-th opening (0 = it does not open), then a drop."""

    def __init__(self, frames: list[int]):
        self.frames, self.openings = frames, 0

    def __call__(self, target):
        self.openings += 1
        self.left = self.frames[min(self.openings, len(self.frames)) - 1]
        return self

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return self.left > 0

    def get(self, prop: int) -> float:
        return 25.0

    def read(self):
        time.sleep(0.02)
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.asarray(face_scene(size=SIZE))[:, :, ::-1].copy()

    def release(self) -> None:
        pass


def wait_for(view, condition, seconds: float = 10) -> dict:
    deadline = time.monotonic() + seconds
    while not condition(answer := view.status()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return answer


@pytest.fixture(scope="module")
def classifier(untrained_run):
    from babyface.inference.classifier import Classifier

    return Classifier(untrained_run, device="cpu")


def test_a_camera_that_drops_is_reopened_and_the_status_follows(untrained_run, classifier) -> None:
    from babyface.serve.live import LiveView

    camera = Camera([5, 10_000])
    view = LiveView(ServeConfig(run=str(untrained_run), live="0"), opener=camera)
    view.start(classifier, classifier.classify_crops)
    try:
        answer = wait_for(view, lambda s: s["state"] == "reconnecting")
        assert answer["source"] == "camera 0" and "stopped delivering frames" in answer["last_error"]
        assert answer["frames"] >= 1 and answer["running"]
        answer = wait_for(view, lambda s: s["state"] == "running" and s["frames"] > 5)  # the first retry is after 1 s
        assert camera.openings == 2 and answer["faces"] == 1 and answer["running"]
    finally:
        view.close()
    assert view.status()["state"] == "stopped" and not view.status()["running"]


def test_a_stop_while_waiting_for_a_camera_that_does_not_open_is_prompt(untrained_run, classifier) -> None:
    from babyface.serve.live import LiveView

    view = LiveView(ServeConfig(run=str(untrained_run), live="rtsp://user:secret@192.0.2.1:8554/cam?key=abc"),
                    opener=Camera([0]))
    view.start(classifier, classifier.classify_crops)
    answer = wait_for(view, lambda s: s["state"] == "reconnecting")
    assert answer["source"] == "rtsp://***@192.0.2.1:8554/cam"  # neither the password nor the query is shown
    assert "cannot open" in answer["last_error"] and answer["frames"] == 0
    begun = time.monotonic()
    view.close()
    assert time.monotonic() - begun < 1 and view.status()["state"] == "stopped"


def test_a_file_plays_once_at_its_speed_and_every_stream_ends_with_it(untrained_run, classifier, tmp_path: Path) -> None:
    """(In-process: the HTTP side of a stream's end is the SIGTERM test's.)"""
    import asyncio

    from babyface.serve.live import LiveView

    seconds = 1.5
    view = LiveView(ServeConfig(run=str(untrained_run), live=str(write_clip(tmp_path / "short.mp4", seconds)), live_fps=30))

    async def watch() -> list[bytes]:
        return [part async for part in view.parts()]

    begun = time.monotonic()
    view.start(classifier, classifier.classify_crops)
    try:
        parts = asyncio.run(watch())  # until the clip's end
        took = time.monotonic() - begun
        later = asyncio.run(watch())  # a viewer who comes after the end gets the last frame
    finally:
        view.close()
    assert seconds - 0.2 < took < seconds + 3  # at the clip's own 10 frames/s, not as fast as it can be decoded
    assert len(parts) > 5 and parts[-1] == f"--{BOUNDARY}--\r\n".encode()
    assert len(later) == 2 and later[-1] == parts[-1] and later[0] == parts[-2]
    answer = view.status()
    assert answer["running"] is False and answer["state"] == "ended" and answer["last_error"] is None
    assert answer["frames"] == CLIP_FPS * seconds - answer["dropped"] and answer["viewers"] == 0
