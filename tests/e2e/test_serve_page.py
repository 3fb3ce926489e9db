"""`babyface serve` end to end: the real server in a subprocess, its page driven in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import face_scene

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1280,900")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(url: str, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"babyface serve exited {server.returncode}: {server.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"babyface serve did not answer on {url} within {seconds} s")


@pytest.fixture
def server(untrained_run):
    """``babyface serve RUN`` on a free loopback port; stopped (SIGTERM, then SIGKILL) after the test."""
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "babyface", "serve", str(untrained_run), "--port", str(port), "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium: pip install 'babyface[test]'")
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("the browser test needs Chromium and its driver (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def api_prediction(url: str, image: Path) -> dict:
    """POST the image as the page does (multipart field 'image') with the standard library only."""
    boundary = "babyface-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{image.name}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + image.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url + "/predict", data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def test_page_shows_the_label_the_api_gives(server, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    image = tmp_path / "baby.png"
    face_scene().save(image)
    expected = api_prediction(server, image)
    browser.get(server)
    browser.find_element(By.ID, "file").send_keys(str(image))
    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "faces").get_attribute("data-state") in ("done", "error"))
    browser.save_screenshot(str(tmp_path / "serve_page.png"))
    assert browser.find_element(By.ID, "faces").get_attribute("data-state") == "done", browser.find_element(By.ID, "status").text
    shown = [element.get_attribute("textContent") for element in browser.find_elements(By.CSS_SELECTOR, "#faces .face .label")]
    assert shown == [face["label"] for face in expected["faces"]] and len(shown) == 1
    assert browser.find_element(By.ID, "canvas").is_displayed()
    assert "1 face in baby.png" in browser.find_element(By.ID, "status").text
