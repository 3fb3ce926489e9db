"""A real Mosquitto broker in a subprocess on a free loopback port, for the MQTT tests (skipped where it is not installed)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest

HOST = "127.0.0.1"
SKIP_REASON = "mosquitto not installed: apt-get install mosquitto (.ci/run installs it)"


class Broker(NamedTuple):
    host: str
    port: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def find_program(name: str) -> str:
    """``name`` on PATH or in /usr/sbin (Debian puts mosquitto there, often not on a user's PATH); skips the test if missing."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        pytest.skip(SKIP_REASON)
    return found


def write_config(folder: Path, port: int, users: dict[str, str] | None, acl: list[str] | None = None) -> Path:
    """A config for one loopback listener, nothing kept on disk; with ``users``, only they may connect; with ``acl``,
    Mosquitto's access rules (lines of an acl_file, e.g. 'topic readwrite home/#')."""
    lines = [
        f"listener {port} {HOST}",
        "persistence false",
        f"user {pwd.getpwuid(os.geteuid()).pw_name}",  # as root, stay root: it must read the files in tmp_path
    ]
    if users:
        password_file = folder / "passwords"
        password_file.touch()
        for user, password in users.items():
            subprocess.run([find_program("mosquitto_passwd"), "-b", str(password_file), user, password], check=True)
        lines += ["allow_anonymous false", f"password_file {password_file}"]
    else:
        lines.append("allow_anonymous true")
    if acl is not None:
        acl_file = folder / "acl"
        acl_file.write_text("\n".join(acl) + "\n")
        lines.append(f"acl_file {acl_file}")
    config = folder / "mosquitto.conf"
    config.write_text("\n".join(lines) + "\n")
    return config


def wait_until_listening(port: int, proc: subprocess.Popen, log_path: Path, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mosquitto exited {proc.returncode}: {log_path.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.02)
    raise AssertionError(f"mosquitto did not listen on port {port} within {seconds} s")


@contextlib.contextmanager
def mosquitto_broker(folder: Path, port: int | None = None, users: dict[str, str] | None = None,
                     acl: list[str] | None = None) -> Iterator[Broker]:
    """Starts mosquitto on ``port`` (a free one if None) of 127.0.0.1 with its config and log in ``folder``; yields
    ``(host, port)`` once the port accepts connections, and stops it at the end."""
    binary = find_program("mosquitto")
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    config = write_config(folder, port, users, acl)
    log_path = folder / "mosquitto.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([binary, "-c", str(config)], stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_until_listening(port, proc, log_path)
        yield Broker(HOST, port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
