"""How fast and how accurately `babyface code` codes scripted sessions, at 2, 5, 10 frames a second and every frame.

    make demo      # trains demo_out/fast on the synthetic faces, the model these sessions are drawn like
    .venv/bin/python benchmarks/code_speed.py --run demo_out/fast --out benchmarks/results/code_speed

Sessions come from `babyface synth --video` (640×480, 30 frames/s, an infant in close-up following a known timeline of
codes, turning away at times, a parent's face in a corner). For each --fps the whole corpus is coded by one process
with one thread (the per-core rate) and the codes are compared with the true ones epoch by epoch: Cohen's kappa
(scikit-learn), agreement, and the share of epochs whose true code is uncodable coded so. Then the default --fps with
--workers 2 and a local Ray of 2 CPUs (--ray, when the extra is installed) against --workers 1 (wall clock, all on this
machine's cores). Speed is video-seconds coded per wall-second, including start-up, decoding, detection,
classification and writing every file. Run alone.

    # local workers against Ray only, on a longer corpus (start-up weighs less):
    .venv/bin/python benchmarks/code_speed.py --fps '' --videos 6 --seconds 300 --out benchmarks/results/code_ray
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from sklearn.metrics import cohen_kappa_score

REPO = Path(__file__).resolve().parents[1]


def babyface(*args: str | Path, threads: int | None = None) -> tuple[float, float]:
    """Run the CLI; the wall-clock seconds it took and the CPU seconds it and its worker processes used."""
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "babyface", *map(str, args)], check=True, env=env, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - started, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def epoch_codes(path: Path, tier: str | None = None) -> dict[str, list[str]]:
    """Per video, its code of each 1-s epoch: from a truth CSV (video, start, end, code) or a codes.csv."""
    codes: dict[str, list[str]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if tier and row.get("tier") != tier:
                continue
            codes.setdefault(row["video"], []).extend([row["code"]] * round(float(row["end"]) - float(row["start"])))
    return codes


def agreement(sessions: Path, coded: Path) -> tuple[float, float, float]:
    truth, found = [], []
    for truth_file in sorted(sessions.glob("*.truth.csv")):
        video = truth_file.name.replace(".truth.csv", "")
        (expected,) = epoch_codes(truth_file).values()
        (got,) = epoch_codes(coded / video / "codes.csv", "affect@largest").values()
        n = min(len(expected), len(got))
        truth += expected[:n]
        found += got[:n]
    away = [f for t, f in zip(truth, found) if t == "uncodable"]
    return (cohen_kappa_score(truth, found), sum(t == f for t, f in zip(truth, found)) / len(truth),
            sum(f == "uncodable" for f in away) / max(len(away), 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=REPO / "demo_out" / "fast", help="the model (make demo trains it)")
    parser.add_argument("--videos", type=int, default=4, help="scripted sessions")
    parser.add_argument("--seconds", type=int, default=60, help="length of each session")
    parser.add_argument("--fps", default="2,5,10,0", help="--fps values to compare (0 = every frame; empty = none)")
    parser.add_argument("--parallel", default="workers1,workers2,ray2",
                        help="ways to code the corpus at the default --fps, compared by wall clock: workersN (N local "
                             "processes), rayN (a local Ray of N CPUs); empty = none")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "code_speed")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from babyface.config.coding import DEFAULT_FPS
    from babyface.hardware import describe_hardware

    print(describe_hardware())
    sessions = args.out / "sessions"
    if not sessions.is_dir():
        babyface("synth", sessions, "--video", "--videos", args.videos, "--seconds", args.seconds, "--quiet")
    video_seconds = args.videos * args.seconds
    lines = [f"CPU: {describe_hardware()}", "", f"{args.videos} sessions of {args.seconds} s, 640×480 at 30 frames/s; "
             f"model {args.run}; model loading and start-up included", "",
             "| --fps | workers | wall s | CPU s | video-s per wall-s | video-s per CPU-s | kappa | agreement | uncodable found | speed-up |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for fps in (float(f) for f in args.fps.split(",") if f):
        out = args.out / f"fps{fps:g}"
        seconds, cpu = babyface("code", args.run, sessions, "--fps", fps, "--out", out, "--overwrite", "--no-progress", threads=1)
        kappa, agree, away = agreement(sessions, out)
        lines.append(f"| {fps:g}{' (every frame)' if fps == 0 else ''} | 1 | {seconds:.1f} | {cpu:.1f} | {video_seconds / seconds:.1f} "
                     f"| {video_seconds / cpu:.1f} | {kappa:.3f} | {agree:.3f} | {away:.2f} | |")
        print(lines[-1], flush=True)
    baseline = None
    for way in (w for w in args.parallel.split(",") if w):
        workers = int(way.removeprefix("workers").removeprefix("ray"))
        ray = ["--ray"] if way.startswith("ray") else []
        out = args.out / way
        seconds, cpu = babyface("code", args.run, sessions, "--workers", workers, *ray, "--out", out, "--overwrite",
                                "--no-progress", threads=1)
        baseline = baseline or seconds
        label = f"{workers} on a local Ray" if ray else str(workers)
        lines.append(f"| {DEFAULT_FPS:g} | {label} | {seconds:.1f} | {cpu:.1f} | {video_seconds / seconds:.1f} "
                     f"| {video_seconds / cpu:.1f} | | | | {baseline / seconds:.2f}× |")
        print(lines[-1], flush=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    lines += ["", f"Largest resident memory of one coding process: {peak:.0f} MB"]
    (args.out / "code_speed.md").write_text("\n".join(lines) + "\n")
    print(f"table: {args.out / 'code_speed.md'}")


if __name__ == "__main__":
    main()
