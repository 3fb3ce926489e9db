"""The stages of one served request timed alone on one thread: decode, BlazeFace (letterbox, onnxruntime), the whole
face search with its crops, and classification, on whole-scene photos made 640×480 JPEG frames as serve_load.py makes
them.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/serve_stages.py --run RUN --images ../shared/data/infant-cry-scenes

Prints the CPU, then milliseconds per image (mean over --passes passes of --count images) for each stage.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from babyface.config.faces import FaceDetection  # noqa: E402
from babyface.data.images import decode_rgb_bytes, is_image_file  # noqa: E402
from babyface.faces import blazeface  # noqa: E402
from babyface.hardware import describe_hardware  # noqa: E402
from babyface.inference.classifier import Classifier  # noqa: E402


def webcam_frames(folder: Path, count: int) -> list[bytes]:
    frames = []
    for path in sorted(p for p in folder.rglob("*") if is_image_file(p))[:count]:
        with Image.open(path) as image:
            photo = image.convert("RGB")
        photo.thumbnail((640, 480))
        canvas = Image.new("RGB", (640, 480), (90, 90, 90))
        canvas.paste(photo, ((640 - photo.width) // 2, (480 - photo.height) // 2))
        buffer = io.BytesIO()
        canvas.save(buffer, "JPEG", quality=85)
        frames.append(buffer.getvalue())
    return frames


def per_item(work: Callable, items: list, passes: int) -> float:
    started = time.perf_counter()
    for _ in range(passes):
        for item in items:
            work(item)
    return (time.perf_counter() - started) / passes / len(items) * 1000


def half_size(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (image.width // 2, image.height // 2))
    image.load()
    return image.convert("RGB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="the served model")
    parser.add_argument("--images", type=Path, required=True, help="a folder of photos")
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    print(describe_hardware())
    frames = webcam_frames(args.images, args.count)
    images = [decode_rgb_bytes(data)[0] for data in frames]
    arrays = [np.asarray(image) for image in images]
    halves = [np.asarray(half_size(data)) for data in frames]
    classifier = Classifier(args.run, device="cpu")
    faces = FaceDetection()
    found = [classifier.find_faces(image, faces) for image in images]
    model = blazeface.session()
    tensor = blazeface._letterbox(arrays[0])[0]
    stages = {
        "decode 640x480 JPEG": per_item(decode_rgb_bytes, frames, args.passes),
        "decode at half size (draft)": per_item(half_size, frames, args.passes),
        "BlazeFace letterbox from 640x480": per_item(blazeface._letterbox, arrays, args.passes),
        "BlazeFace letterbox from 320x240": per_item(blazeface._letterbox, halves, args.passes),
        "BlazeFace onnxruntime run": per_item(lambda _: model.run(None, {model.get_inputs()[0].name: tensor}), arrays, args.passes),
        "BlazeFace detect (all of it)": per_item(blazeface.detect, arrays, args.passes),
        "find_faces (detect + crops)": per_item(lambda image: classifier.find_faces(image, faces), images, args.passes),
        f"classify_faces ({classifier.backend.name}, one request's faces)":
            per_item(lambda faces_found: classifier.classify_faces(faces_found, classifier.classify_crops), found, args.passes),
    }
    print(f"{len(frames)} frames of {args.images}, ms per image, one thread:")
    for stage, ms in stages.items():
        print(f"  {stage:<48} {ms:6.2f}")


if __name__ == "__main__":
    main()
