"""Load test of `babyface serve`: N requests from C concurrent clients on loopback; throughput, p50/p99 latency, errors.

    python benchmarks/serve_load.py --requests 2000 --clients 8 --images ../shared/data/infant-cry-scenes
    python benchmarks/serve_load.py ... --serve-args=--no-onnx        # the classifier on PyTorch instead of onnxruntime
    python benchmarks/serve_load.py ... --compare "--precision fp32 --no-onnx" "--precision bf16 --no-onnx" ""
                                                  # several servers one after the other, one table

Starts the real server (`python -m babyface serve`, its defaults unless --serve-args says otherwise) on a free
loopback port. Each client posts 640×480 JPEG webcam-like frames, one synthetic face each on a textured
background, cycling through --frames different ones (the same bytes over and over would flatter any cache);
--images posts real photos instead (e.g. ../shared/data/infant-cry-scenes), each made a 640×480 JPEG frame as
a webcam would show it. Without --run an untrained ResNet-18 bundle is used (speed does not depend on the weights).
Prints throughput, latency percentiles, errors, the share of answers with a face, the server's memory after the
warm-up and at the end (for a soak: --requests 20000), and the server's settings as /model gives them (the back end
and number format it chose at start-up among them). The CPU and its bf16/VNNI/AMX flags are printed first.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import shlex
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

from babyface.data.images import decode_rgb_bytes, is_image_file, load_rgb  # noqa: E402
from babyface.faces.detectors import detect_faces  # noqa: E402
from babyface.hardware import describe_hardware  # noqa: E402
from babyface.tools.synthetic import CLASSES, render_face  # noqa: E402
from face_detectors import as_frame  # noqa: E402
from untrained import untrained_bundle  # noqa: E402

BOUNDARY = "babyface-load-test"
SETTINGS = ("backend", "precision", "detector", "detect_size", "min_face", "workers", "min_score", "margin")


def one_face_jpeg(seed: int) -> bytes:
    """A 640×480 frame: a smooth, slightly noisy background and one synthetic face (160–240 px) somewhere on it."""
    rng = np.random.default_rng(seed)
    face, _ = render_face(str(rng.choice(CLASSES)), rng, size=int(rng.integers(160, 241)), grayscale=False)
    colours = rng.integers(60, 180, (6, 8, 3), dtype=np.uint8)
    background = np.asarray(Image.fromarray(colours).resize((640, 480), Image.Resampling.BICUBIC)) + rng.normal(0, 6, (480, 640, 3))
    frame = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    frame.paste(face, (int(rng.integers(0, 640 - face.width)), int(rng.integers(0, 480 - face.height))))
    return jpeg(np.asarray(frame))


def load_frames(count: int, folder: Path | None = None) -> list[bytes]:
    """The first ``count`` synthetic frames in which MTCNN (every face size) finds exactly one face, or the image
    files in ``folder`` (all of them, sorted), each as a 640×480 JPEG frame."""
    if folder is None:
        frames = (one_face_jpeg(seed) for seed in range(100 * count))
        return list(itertools.islice((f for f in frames if len(detect_faces(decode_rgb_bytes(f)[0], "mtcnn", max_side=640)) == 1), count))
    files = sorted(p for p in folder.rglob("*") if is_image_file(p))
    if not files:
        raise SystemExit(f"{folder}: no image files")
    return [jpeg(as_frame(np.asarray(load_rgb(p)))) for p in files]


def jpeg(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def multipart(image: bytes) -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="frame.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    return head.encode() + image + f"\r\n--{BOUNDARY}--\r\n".encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(run: Path, port: int, serve_args: list[str], log_path: Path | None = None) -> subprocess.Popen:
    """`babyface serve` answering /health on ``port``; its stderr goes to ``log_path`` (else a temporary file)."""
    log_path = log_path or Path(tempfile.mkstemp(prefix="babyface-serve-", suffix=".log")[1])
    with open(log_path, "w") as log:  # the server keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-m", "babyface", "serve", str(run), "--port", str(port), "--device", "cpu",
                                 *serve_args], stdout=subprocess.DEVNULL, stderr=log, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
            return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"server did not start: {log_path.read_text()[-2000:]}")


def client(url: str, bodies: list[bytes], count: int, latencies: list[float], errors: list[str], first: int = 0,
           found: list[bool] | None = None) -> None:
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    for n in range(count):
        body = bodies[(first + n) % len(bodies)]
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=60) as response:
                answer = json.loads(response.read())
            latencies.append(time.perf_counter() - started)
            if found is not None:
                found.append(answer["face_detected"])
        except OSError as exc:
            errors.append(str(exc))


def server_settings(port: int) -> str:
    """The served settings as /model reports them, and every back end serve measured at start-up."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/model", timeout=10) as response:
        model = json.load(response)
    measured = "; ".join(f"{m['backend']} {m['ms_per_batch'] or '-'} ms" + (f" agreement {m['agreement']:.1%}" if m["agreement"] is not None else "")
                         + (f" ({m['note']})" if m["note"] else "") for m in model.get("backends_measured", []))
    return ", ".join(f"{key} {model[key]}" for key in SETTINGS if key in model) + (f"; measured: {measured}" if measured else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--run", type=Path)
    parser.add_argument("--model", default="resnet18", help="architecture of the untrained bundle used without --run")
    parser.add_argument("--frames", type=int, default=16, help="different synthetic frames to cycle through")
    parser.add_argument("--images", type=Path, help="post these image files instead of synthetic frames")
    parser.add_argument("--serve-args", default="", help="extra `babyface serve` flags, e.g. '--detect-size 320 --min-face 0'")
    parser.add_argument("--compare", nargs="+", default=None, metavar="ARGS",
                        help="measure one server per ARGS string (added after --serve-args), one after the other, and "
                             "print them as one table, e.g. \"--precision fp32 --no-onnx\" \"\"")
    args = parser.parse_args()
    bodies = [multipart(image) for image in load_frames(args.frames, args.images)]
    source = f"{len(bodies)} 640x480 frames of {args.images}" if args.images else f"{len(bodies)} synthetic 640x480 one-face frames"
    print(describe_hardware())
    print(f"{args.requests} requests, {args.clients} clients, {source}")
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or untrained_bundle(Path(tmp) / "run", args.model)
        variants = args.compare if args.compare is not None else [""]
        results = [measure(run, shlex.split(args.serve_args) + shlex.split(extra), bodies, args.requests, args.clients)
                   for extra in variants]
    print("\n| serve flags | chosen | requests/s | p50 ms | p90 ms | p99 ms | max ms | errors | face found | memory after "
          "warm-up MB | memory change |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for extra, r in zip(variants, results):
        print(f"| {' '.join([args.serve_args, extra]).strip() or '(defaults)'} | {r['chosen']} | {r['rate']:.1f} | {r['p50']:.0f} "
              f"| {r['p90']:.0f} | {r['p99']:.0f} | {r['max']:.0f} | {r['errors']} | {r['found']:.1%} | {r['memory']:.0f} "
              f"| {r['memory_change']:+.1%} |")
    for extra, r in zip(variants, results):
        print(f"server {extra or '(defaults)'}: {r['settings']}" + (f"; first error: {r['first_error']}" if r["first_error"] else ""))


def measure(run: Path, serve_args: list[str], bodies: list[bytes], requests: int, clients: int) -> dict:
    """One server with ``serve_args``: throughput, latency percentiles, errors and memory under ``clients`` clients."""
    port = free_port()
    server = start_server(run, port, serve_args)
    try:
        url, settings = f"http://127.0.0.1:{port}/predict", server_settings(port)
        client(url, bodies, len(bodies), [], [])  # warm-up
        memory_after_warmup = rss_mb(server.pid)
        latencies: list[float] = []
        errors: list[str] = []
        found: list[bool] = []
        share = [requests // clients + (i < requests % clients) for i in range(clients)]
        threads = [threading.Thread(target=client, args=(url, bodies, n, latencies, errors, i, found)) for i, n in enumerate(share)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        memory_at_end = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    p50, p90, p99, worst = np.percentile(latencies, [50, 90, 99, 100]) * 1000 if latencies else (float("nan"),) * 4
    chosen = dict(part.split(" ", 1) for part in settings.split("; ")[0].split(", ") if " " in part)
    return {"rate": len(latencies) / seconds, "p50": p50, "p90": p90, "p99": p99, "max": worst, "errors": len(errors),
            "first_error": errors[0] if errors else "", "found": float(np.mean(found)) if found else 0.0,
            "memory": memory_after_warmup, "memory_change": memory_at_end / memory_after_warmup - 1, "settings": settings,
            "chosen": f"{chosen.get('backend', '?')} {chosen.get('precision', '')}".strip()}


if __name__ == "__main__":
    main()
