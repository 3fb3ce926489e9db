"""`babyface serve` end to end: the real server in a subprocess, its page driven in headless Chromium.

The browser is driven by Playwright for Python, launched on the machine's own Chromium (``executable_path``), so
nothing is downloaded: the playwright wheel carries its driver (Node.js and the Playwright server) inside it, and
``playwright install`` (the only step that fetches a browser) is never run. Playwright talks to Chromium over the
DevTools protocol, which Chromium keeps compatible across versions, so this works with whatever Chromium the
machine has. Selenium needs a chromedriver of the browser's exact major version: Selenium Manager downloads one at
run time (this machine and CI reach no such host), Debian's chromium-driver must be installed by hand as root, and
a driver pinned in a wheel (chromedriver-py) fails as soon as the system Chromium moves to its next major version.

Skipped, with the reason, only when there is no Chromium (or Chrome) on PATH, or playwright is not installed.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import face_scene
from tests.e2e.serving import running_server


@pytest.fixture
def server(untrained_run, tmp_path):
    with running_server(untrained_run, log_dir=tmp_path) as server:
        yield server.url


def api_prediction(url: str, image: Path) -> dict:
    """POST the image as the page does (multipart field 'image') with the standard library only."""
    boundary = "babyface-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{image.name}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + image.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url + "/predict", data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def test_page_shows_the_label_the_api_gives(page, server, tmp_path: Path) -> None:  # page first: skip before the server starts
    image = tmp_path / "baby.png"
    face_scene().save(image)
    expected = api_prediction(server, image)
    page.goto(server)
    state = upload_and_wait(page, image)  # as a user's choice in the file dialog: the page uploads it on change
    page.screenshot(path=tmp_path / "serve_page.png")
    assert state == "done", page.text_content("#status")
    shown = page.locator("#faces .face .label").all_text_contents()
    assert shown == [face["label"] for face in expected["faces"]] and len(shown) == 1
    assert page.is_visible("#canvas")
    assert "1 face in baby.png" in page.text_content("#status")


def upload_and_wait(page, image: Path) -> str:
    """Choose ``image`` in the page's file input (it uploads on change); the state the page ends in."""
    page.set_input_files("#file", image)
    page.wait_for_function("['done', 'error'].includes(document.getElementById('faces').dataset.state)", timeout=60_000)
    return page.get_attribute("#faces", "data-state")


def test_page_sends_the_token_from_its_address(page, untrained_run, tmp_path: Path) -> None:
    """A server started with --token: the page given #token=SECRET in its address works; without it, the page asks
    once (a prompt) and a wrong answer ends in an error the user sees, not a silent failure."""
    image = tmp_path / "baby.png"
    face_scene().save(image)
    with running_server(untrained_run, "--token", "s3cret-s3cret-s3cret", log_dir=tmp_path) as server:
        url = server.url
        page.goto(url + "/#token=s3cret-s3cret-s3cret")
        assert upload_and_wait(page, image) == "done", page.text_content("#status")
        assert page.locator("#faces .face .label").count() == 1
        other = page.context.browser.new_page()  # a fresh context: no token in its session storage
        other.on("dialog", lambda dialog: dialog.accept("wrong"))
        other.goto(url)
        assert upload_and_wait(other, image) == "error"
        assert "token" in other.text_content("#status").lower()
