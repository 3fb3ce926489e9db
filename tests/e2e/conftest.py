"""Fixtures for end-to-end tests: a tiny synthetic dataset and a run trained on it through the real CLI."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def run_cli(*args: str | os.PathLike, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m babyface ARGS`` as a user would; returns the completed process (text output)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "babyface", *map(str, args)], capture_output=True, text=True, env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"babyface {' '.join(map(str, args))} exited {proc.returncode}\n{proc.stderr[-3000:]}")
    return proc


def read_csv(path: Path) -> list[dict]:
    """The rows of a CSV file as dicts."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory) -> Path:
    """A CNN trained for 2 epochs on ``tiny_data`` with the real CLI."""
    out = tmp_path_factory.mktemp("runs") / "cnn"
    run_cli("train", tiny_data, "--model", "cnn", "--epochs", "2", "--out", out, "--seed", "1", "--no-progress")
    return out


CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"))), None)
# Playwright adds --headless, its own --user-data-dir and --remote-debugging-pipe; these keep Chromium off the network
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.fixture
def page():
    """A page in headless Chromium (the machine's own, driven by Playwright); the browser is closed after the test."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright: pip install 'babyface[test]'")
    if not CHROMIUM:
        pytest.skip("the browser test needs Chromium or Chrome on PATH (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()
