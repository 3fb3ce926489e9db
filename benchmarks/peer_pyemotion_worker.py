"""Runs the `PyEmotion` package's FER2013 CNN on given face boxes; executed by the PyEmotion peer venv's python, never
by babyface's.

    PEER_VENV/bin/python benchmarks/peer_pyemotion_worker.py [--threads 1] JOBS.csv PRED.csv [JOBS.csv PRED.csv ...]

JOBS.csv and PRED.csv as for peer_fer_worker.py (the ``offset`` column is ignored). What PyEmotion 1.0.0's
``DetectFace.predict_emotion`` does with a face, done here on the given box: the frame turned grey (OpenCV's BGR2GRAY
on its BGR frames; Pillow's ``convert("L")`` on RGB uses the same ITU-R 601 weights), the box cut out as it is
(rounded, no margin), resized to 48×48 (torchvision's Resize on a PIL image: Pillow's bilinear), scaled to [-1, 1],
and ``NetworkV2(in_c=1, nl=32, out_f=7)`` with its sigmoid outputs; an empty box means the whole image. The model's
weights are the ``model/main_model.pkl`` inside the wheel, read with ``torch.load(weights_only=True)`` (plain tensors:
nothing is unpickled that could run code). Only ``PyEmotion/networks.py`` is imported, by path: the package's
``__init__`` pulls in OpenCV, facenet-pytorch, art and termcolor, which this venv does not need. ``pred`` is the
argmax over happy, neutral and sad; p_* are those three sigmoid scores renormalised to sum to 1.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import sys
import time
from pathlib import Path

CLASSES = ("happy", "neutral", "sad")
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # PyEmotion's output order
HEADER = ["file", "truth", "pred", "p_happy", "p_neutral", "p_sad", "face_found", "fer_top"]
PROGRESS_EVERY = 250


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", help="JOBS.csv PRED.csv, repeated")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        parser.error("give JOBS.csv PRED.csv in pairs")
    return args


def package_folder() -> Path:
    spec = importlib.util.find_spec("PyEmotion")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("PyEmotion is not installed in this venv (pip install --no-deps PyEmotion==1.0.0)")
    return Path(list(spec.submodule_search_locations)[0])


def load_network():
    import torch

    folder = package_folder()
    spec = importlib.util.spec_from_file_location("pyemotion_networks", folder / "networks.py")
    networks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(networks)
    network = networks.NetworkV2(in_c=1, nl=32, out_f=7)
    checkpoint = torch.load(folder / "model" / "main_model.pkl", map_location="cpu", weights_only=True)
    network.load_state_dict(checkpoint["network"])
    return network.eval()


def face_tensor(path: str, box: list[str]):
    import numpy as np
    import torch
    from PIL import Image

    with Image.open(path) as image:
        gray = image.convert("RGB").convert("L")
    if box[0]:
        x, y, w, h = (int(v) for v in box)
        gray = gray.crop((max(x, 0), max(y, 0), x + w, y + h))
    pixels = np.asarray(gray.resize((48, 48), Image.BILINEAR), dtype=np.float32) / 255.0
    return torch.from_numpy((pixels - 0.5) / 0.5)[None, None]


def classify(network, jobs: Path, predictions: Path) -> None:
    import torch

    with open(jobs, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    started = time.perf_counter()
    with torch.no_grad():
        for number, row in enumerate(rows, 1):
            box = [row["x"], row["y"], row["w"], row["h"]]
            scores = network(face_tensor(row["file"], box))[0].tolist()
            named = dict(zip(EMOTIONS, scores))
            total = sum(named[c] for c in CLASSES) or 1.0
            pred = max(CLASSES, key=named.get)
            top = max(EMOTIONS, key=named.get)
            out.append([row["file"], row["truth"], pred, *(f"{named[c] / total:.6f}" for c in CLASSES), row["face_found"], top])
            if number % PROGRESS_EVERY == 0 or number == len(rows):
                print(f"  PyEmotion {jobs.name}: {number}/{len(rows)} ({time.perf_counter() - started:.0f} s)", flush=True)
    with open(predictions, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(out)


def main(argv=None) -> None:
    import torch

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    network = load_network()
    for jobs, predictions in zip(args.pairs[::2], args.pairs[1::2]):
        classify(network, Path(jobs), Path(predictions))


if __name__ == "__main__":
    main()
