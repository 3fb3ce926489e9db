"""Where the time of one `/predict` goes, stage by stage, for the old and the new serving settings side by side.

    OMP_NUM_THREADS=1 python benchmarks/serve_profile.py [--run runs/cnn] [--scenes ../shared/data/infant-cry-scenes]

Runs in one process, one thread, alternating the variants so that other load on the machine hits both alike;
prints median milliseconds per stage. Images: serve_load.py's 640×480 frame with one synthetic face, plus a
few whole-scene photos when --scenes is given.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from babyface.config import ServeConfig  # noqa: E402
from babyface.data.images import decode_rgb_bytes  # noqa: E402
from babyface.faces import detectors as faces  # noqa: E402
from babyface.faces.mtcnn import _mtcnn  # noqa: E402
from babyface.inference.classifier import Classifier  # noqa: E402
from detector_settings import scene_files  # noqa: E402
from serve_load import load_frames  # noqa: E402
from untrained import untrained_bundle  # noqa: E402

OLD = {"detect_size": 640, "min_face": 0.0, "memory_format": torch.contiguous_format}  # before the serve speed-up
# the serve speed-up as measured (min_face 0.1 was serve's default until one set of face defaults replaced it)
NEW = {"detect_size": ServeConfig().faces.detect_size, "min_face": 0.1, "memory_format": torch.channels_last}


def use_memory_format(memory_format: torch.memory_format) -> None:
    mtcnn = _mtcnn()
    for net in (mtcnn.pnet, mtcnn.rnet, mtcnn.onet):
        net.to(memory_format=memory_format)


def stage_timer(times: dict[str, list[float]]) -> Callable:
    def timed(stage: str, work: Callable, *args):
        started = time.perf_counter()
        result = work(*args)
        times.setdefault(stage, []).append((time.perf_counter() - started) * 1000)
        return result
    return timed


def one_request(classifier: Classifier, data: bytes, setting: dict, timed: Callable) -> None:
    """The stages of FaceService.predict, each timed: decode, detection, crops + classifier, JSON."""
    use_memory_format(setting["memory_format"])
    rgb = np.asarray(timed("decode", decode_rgb_bytes, data)[0])
    found = timed("detect", faces.detect_faces, rgb, "mtcnn", 0.9, setting["detect_size"], setting["min_face"])
    boxes = [face.square(0.2, rgb.shape[1], rgb.shape[0]) for face in found] or [(0, 0, rgb.shape[1], rgb.shape[0])]
    probs = timed("classify", classifier.classify_boxes, rgb, boxes)
    timed("json", json.dumps, {"faces": [classifier.label(row) for row in probs]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path)
    parser.add_argument("--scenes", type=Path, help="a folder of whole-scene photos (e.g. ../shared/data/infant-cry-scenes)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        classifier = Classifier(args.run or untrained_bundle(Path(tmp) / "run"), device="cpu")
    images = {"frame 640x480": load_frames(1)[0]}
    for path in scene_files(args.scenes, 4) if args.scenes else []:
        images[path.name[:16]] = path.read_bytes()
    print(f"median ms per stage; old = {OLD['detect_size']} px, every face size, NCHW detector; "
          f"new = {NEW['detect_size']} px cap, min_face {NEW['min_face']}, channels-last detector")
    for name, data in images.items():
        times = {"old": {}, "new": {}}
        for _ in range(args.repeats):
            for label, setting in (("old", OLD), ("new", NEW)):
                one_request(classifier, data, setting, stage_timer(times[label]))
        for label, stages in times.items():
            medians = {stage: statistics.median(values) for stage, values in stages.items()}
            print(f"{name:<17} {label}: " + "  ".join(f"{stage} {ms:5.1f}" for stage, ms in medians.items()) + f"  total {sum(medians.values()):5.1f}")
    crops = [np.zeros((classifier.image_size,) * 2 + (3,), np.uint8)] * 8
    single = min(timeit(lambda: [classifier.classify_crops([crop]) for crop in crops]) for _ in range(args.repeats)) / 8
    batched = min(timeit(lambda: classifier.classify_crops(crops)) for _ in range(args.repeats)) / 8
    print(f"classifier: {single:.1f} ms per crop one at a time, {batched:.1f} ms per crop in a batch of 8 (micro-batching)")


def timeit(work: Callable) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000


if __name__ == "__main__":
    main()
