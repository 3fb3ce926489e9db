"""A real ``babyface serve`` in a subprocess on a free loopback port, for the page and hostile-client tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    port: int
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        """Everything the server wrote to stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM (as systemd or docker stop would), then SIGKILL if it does not exit in time; the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def wait_until_healthy(server: Server, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"babyface serve exited {server.proc.returncode}: {server.log()[-2000:]}")
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"babyface serve did not answer on {server.url} within {seconds} s")


@contextlib.contextmanager
def running_server(run: Path, *options: str, log_dir: Path | None = None, env: dict[str, str] | None = None) -> Iterator[Server]:
    """``babyface serve RUN OPTIONS`` on a free loopback port; stopped (SIGTERM, then SIGKILL) afterwards."""
    port = free_port()
    log_dir = log_dir or Path(os.environ.get("TMPDIR", "/tmp"))
    log_path = log_dir / f"serve-{port}.log"
    full_env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **(env or {}))
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen([sys.executable, "-m", "babyface", "serve", str(run), "--port", str(port), "--device", "cpu",
                                 *options], stdout=subprocess.DEVNULL, stderr=log, text=True, env=full_env)
    server = Server(f"http://127.0.0.1:{port}", port, proc, log_path)
    try:
        wait_until_healthy(server)
        yield server
    finally:
        server.stop()
