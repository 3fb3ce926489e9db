"""Load test of `babyface serve`: N requests from C concurrent clients on loopback; throughput, p50/p99 latency, errors.

    OMP_NUM_THREADS=1 python benchmarks/serve_load.py --requests 2000 --clients 8 [--run runs/cnn]

Starts the real server (`python -m babyface serve`) on a free loopback port and posts a 640×480 JPEG with one
synthetic face, as a webcam frame would be. Without --run an untrained CNN bundle is used.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from babyface.data.synthetic import render_face  # noqa: E402
from untrained import untrained_bundle  # noqa: E402

BOUNDARY = "babyface-load-test"


def one_face_jpeg() -> bytes:
    face, _ = render_face("happy", np.random.default_rng(0), size=200, grayscale=False)
    frame = Image.new("RGB", (640, 480), (90, 120, 160))
    frame.paste(face, (220, 140))
    buffer = io.BytesIO()
    frame.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def multipart(image: bytes) -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="frame.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    return head.encode() + image + f"\r\n--{BOUNDARY}--\r\n".encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(run: Path, port: int, detect_size: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "babyface", "serve", str(run), "--port", str(port), "--device", "cpu",
                             "--detect-size", str(detect_size)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
            return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"server did not start: {proc.stderr.read().decode()[-2000:]}")


def client(url: str, body: bytes, count: int, latencies: list[float], errors: list[str]) -> None:
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    for _ in range(count):
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=60) as response:
                response.read()
            latencies.append(time.perf_counter() - started)
        except OSError as exc:
            errors.append(str(exc))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--run", type=Path)
    parser.add_argument("--detect-size", type=int, default=640, help="the server's --detect-size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or untrained_bundle(Path(tmp) / "run")
        port = free_port()
        server = start_server(run, port, args.detect_size)
        try:
            url, body = f"http://127.0.0.1:{port}/predict", multipart(one_face_jpeg())
            client(url, body, 3, [], [])  # warm-up
            latencies: list[float] = []
            errors: list[str] = []
            share = [args.requests // args.clients + (i < args.requests % args.clients) for i in range(args.clients)]
            threads = [threading.Thread(target=client, args=(url, body, n, latencies, errors)) for n in share]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(timeout=30)
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000 if latencies else (float("nan"),) * 2
    print(f"{args.requests} requests, {args.clients} clients, detect-size {args.detect_size}: {len(latencies) / seconds:.1f} requests/s, "
          f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, {len(errors)} errors" + (f" (first: {errors[0]})" if errors else ""))


if __name__ == "__main__":
    main()
