"""Normal clients of `babyface serve` while a hostile client on the same machine attacks it: latency and memory.

    python benchmarks/serve_abuse.py                      # 20 s quiet, then 40 s of attacks, 2 normal clients
    python benchmarks/serve_abuse.py --seconds 60 --serve-args="--request-timeout 10"
    python benchmarks/serve_abuse.py --run runs/infant --images ../shared/data/infant-cry-scenes   # a real model, real photos

Starts the real server (its defaults, an untrained CNN bundle: speed does not depend on the weights) on a free
loopback port. Two normal clients post 640x480 one-face JPEG frames back to back; first alone (quiet), then while a
second process attacks from its own address, 127.0.0.2, at the lowest CPU priority (nice 19, a stand-in for a
machine of its own; its CPU time is printed), with every attack of the hostile-client review at once:
- small files that decode huge: a real 16-bit gray PNG and a real RGB PNG of 9999x9999 (about 200 and 300 KB),
  posted by 3 threads at a time (the review's "three at once took the server from 1.5 to 8.2 GB");
- an EPS labelled image/png; 150 connections sending their headers a byte every 2 s; 150 trickling their body;
  300 connections that send nothing (all reopened as soon as the server closes them); a client that disconnects
  half-way through every upload.
Prints the CPU, the normal clients' p50/p99 latency and errors in both phases, the server's resident and peak memory,
its open connections, what the attacker got back (status counts) and how many lines the server logged.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import multiprocessing
import os
import shlex
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from babyface.hardware import describe_hardware  # noqa: E402
from serve_load import BOUNDARY, free_port, load_frames, multipart, one_face_jpeg, start_server  # noqa: E402
from untrained import untrained_bundle  # noqa: E402

CACHE = Path.home() / ".cache" / "babyface" / "serve-abuse"
ATTACKER = "127.0.0.2"  # the hostile client's own address, as another machine on the network would have (normal: 127.0.0.1)
HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


# ---------------------------------------------------------------- the attacker's files

def huge_decoding_pngs() -> list[bytes]:
    """Real PNGs of 9999x9999 that compress to a few hundred KB (made once, kept in ~/.cache/babyface)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    files = []
    for name, make in (("gray16.png", lambda: Image.fromarray(np.zeros((9999, 9999), np.uint16))),
                       ("rgb.png", lambda: Image.new("RGB", (9999, 9999)))):
        path = CACHE / name
        if not path.is_file():
            make().save(path, format="PNG", compress_level=9)
        files.append(path.read_bytes())
    return files


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n0 0 moveto 8 8 lineto stroke\nshowpage\n%%EOF\n"


# ---------------------------------------------------------------- normal clients

def post(port: int, body: bytes, timeout: float = 60, source: str = "127.0.0.1") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        conn.request("POST", "/predict", body, HEADERS)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def normal_clients(port: int, bodies: list[bytes], seconds: float, clients: int = 2) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    stop = time.monotonic() + seconds

    def one_client(first: int) -> None:
        n = first
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                status, _ = post(port, bodies[n % len(bodies)])
                (latencies.append(time.perf_counter() - started) if status == 200 else errors.append(f"HTTP {status}"))
            except OSError as exc:
                errors.append(type(exc).__name__)
            n += 1

    threads = [threading.Thread(target=one_client, args=(i * 7,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors


# ---------------------------------------------------------------- the attacker (a process of its own)

def attack(port: int, seconds: float, results: multiprocessing.Queue) -> None:
    os.nice(19)  # a stand-in for a machine of its own: the attacker's CPU yields to the server's on these 2 cores
    statuses: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def count(what: str) -> None:
        with lock:
            statuses[what] += 1

    def bombs() -> None:
        files = [multipart(data) for data in huge_decoding_pngs()] + [multipart(EPS)]
        n = 0
        while time.monotonic() < stop:
            try:
                count(f"decode-huge/EPS upload: HTTP {post(port, files[n % len(files)], source=ATTACKER)[0]}")
            except OSError as exc:
                count(f"decode-huge upload: {type(exc).__name__}")
            n += 1

    def held(first_bytes: bytes, trickle: bytes, how_many: int, what: str) -> None:
        """``how_many`` connections that send ``first_bytes`` then ``trickle`` every 2 s; reopened when closed."""
        socks: list[socket.socket | None] = [None] * how_many
        while time.monotonic() < stop:
            for i, sock in enumerate(socks):
                try:
                    if sock is None:
                        sock = socks[i] = socket.create_connection(("127.0.0.1", port), timeout=2,
                                                                   source_address=(ATTACKER, 0))
                        sock.sendall(first_bytes)
                    elif trickle:
                        sock.sendall(trickle)
                    else:
                        sock.setblocking(False)
                        if sock.recv(4096) == b"":
                            raise ConnectionResetError
                        sock.setblocking(True)
                except BlockingIOError:
                    sock.setblocking(True)
                except OSError:
                    count(f"{what}: closed by the server")
                    if sock is not None:
                        sock.close()
                    socks[i] = None
            time.sleep(2)
        for sock in socks:
            if sock is not None:
                sock.close()

    def disconnects() -> None:
        body = multipart(one_face_jpeg(99))
        head = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {HEADERS['Content-Type']}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        while time.monotonic() < stop:
            with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(ATTACKER, 0)) as sock:
                sock.sendall(head + body[:len(body) // 2])
            count("upload abandoned half-way")
            time.sleep(0.5)

    body_head = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {HEADERS['Content-Type']}\r\n"
                 "Content-Length: 100000\r\n\r\n").encode()
    jobs = [threading.Thread(target=bombs) for _ in range(3)] + [
        threading.Thread(target=held, args=(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ", b"a", 150, "slow headers")),
        threading.Thread(target=held, args=(body_head, b"x", 150, "trickled body")),
        threading.Thread(target=held, args=(b"", b"", 300, "idle connection")),
        threading.Thread(target=disconnects)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    results.put({"statuses": dict(statuses), "cpu": time.process_time()})


# ---------------------------------------------------------------- the server

def memory_mb(pid: int) -> dict[str, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}


def open_connections(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except FileNotFoundError:  # closed while counting
            pass
    return count


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def sample_server(pid: int, stop: threading.Event, samples: list[dict]) -> None:
    while not stop.is_set():
        samples.append({**memory_mb(pid), "sockets": open_connections(pid)})
        stop.wait(0.5)


def percentiles(latencies: list[float]) -> tuple[float, float]:
    return tuple(np.percentile(latencies, [50, 99]) * 1000) if latencies else (float("nan"), float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40, help="length of the abuse phase")
    parser.add_argument("--quiet-seconds", type=float, default=20, help="length of the quiet phase before it")
    parser.add_argument("--serve-args", default="", help="extra `babyface serve` flags")
    parser.add_argument("--run", type=Path, help="serve this run (default: an untrained CNN bundle)")
    parser.add_argument("--images", type=Path, help="normal clients post these photos as 640x480 frames (default: 8 "
                                                    "synthetic one-face frames)")
    args = parser.parse_args()
    print(describe_hardware())
    huge_decoding_pngs()
    frames = load_frames(0, args.images) if args.images else [one_face_jpeg(seed) for seed in range(8)]
    bodies = [multipart(frame) for frame in frames]
    with tempfile.TemporaryDirectory() as tmp:
        port, log_path = free_port(), Path(tmp) / "serve.log"
        run = args.run or untrained_bundle(Path(tmp) / "run")
        server = start_server(run, port, shlex.split(args.serve_args), log_path)
        try:
            normal_clients(port, bodies, 3)  # warm-up
            samples: list[dict] = []
            stop = threading.Event()
            threading.Thread(target=sample_server, args=(server.pid, stop, samples), daemon=True).start()
            cpu_before = cpu_seconds(server.pid)
            quiet = normal_clients(port, bodies, args.quiet_seconds)
            quiet_memory = max(s["VmRSS"] for s in samples)
            quiet_cpu, cpu_before = cpu_seconds(server.pid) - cpu_before, cpu_seconds(server.pid)
            samples.clear()
            results: multiprocessing.Queue = multiprocessing.Queue()
            attacker = multiprocessing.Process(target=attack, args=(port, args.seconds, results))
            attacker.start()
            time.sleep(1)
            abused = normal_clients(port, bodies, args.seconds - 2)
            attacker.join()
            stop.set()
            abuse_cpu = cpu_seconds(server.pid) - cpu_before
            got = results.get(timeout=10)
            peak = memory_mb(server.pid)["VmHWM"]
            health = json.loads(post_health(port))
        finally:
            server.terminate()
            server.wait(timeout=30)
        log = log_path.read_text()
    (q50, q99), (a50, a99) = percentiles(quiet[0]), percentiles(abused[0])
    print(f"\nserve flags: {args.serve_args or '(defaults)'}; quiet {args.quiet_seconds:g} s, abuse {args.seconds:g} s; "
          f"/health after the abuse: {health}")
    print("\n| phase | normal requests | errors | p50 ms | p99 ms | server memory MB (max sampled) | open sockets (max) "
          "| server CPU s | attacker CPU s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| quiet | {len(quiet[0])} | {len(quiet[1])} | {q50:.0f} | {q99:.0f} | {quiet_memory:.0f} | - | {quiet_cpu:.1f} | - |")
    print(f"| abuse | {len(abused[0])} | {len(abused[1])} | {a50:.0f} | {a99:.0f} | {max(s['VmRSS'] for s in samples):.0f} "
          f"| {max(s['sockets'] for s in samples)} | {abuse_cpu:.1f} | {got['cpu']:.1f} |")
    print(f"\np99 abuse / quiet: {a99 / q99:.2f}x; server peak memory (VmHWM, whole run): {peak:.0f} MB; "
          f"normal-client errors under abuse: {collections.Counter(abused[1]).most_common(3) or 'none'}")
    print("attacker got: " + "; ".join(f"{what} x{n}" for what, n in sorted(got["statuses"].items())))
    lines = log.splitlines()
    print(f"server log: {len(lines)} lines, {log.count('Traceback')} tracebacks; last: {lines[-3:]}")


def post_health(port: int) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().read()
    finally:
        conn.close()


if __name__ == "__main__":
    main()
