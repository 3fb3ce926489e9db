"""Runs the `fer` package's emotion model on given face boxes; executed by the PEER venv's python, never by babyface's.

    PEER_VENV/bin/python benchmarks/peer_fer_worker.py [--threads 1] [--fer-model tflite] JOBS.csv PRED.csv [JOBS.csv PRED.csv ...]

JOBS.csv (written by peer_fer.py): file, truth, face_found, x, y, w, h, offset. A box (x, y, w, h in pixels of the
RGB image) is handed to fer as its face rectangle; an empty box means the whole image. fer then does what it does
with any face: square it, widen it by ``offset`` pixels per side (FER's ``offsets``; empty: its default 10) over a
40-pixel padding of flat grey, turn it grey, resize to 64×64 and classify 7 emotions. The raw (unrounded)
scores are kept; ``pred`` is the argmax over happy, neutral and sad only.
PRED.csv: file, truth, pred, p_happy, p_neutral, p_sad, face_found, fer_top (fer's own 7-way top emotion).

Face detection is not done here: peer_fer.py finds faces with babyface's MTCNN (facenet-pytorch) on RGB, so this
venv needs no torch (fer's own MTCNN path would be fed BGR and must be created before TensorFlow is imported).
Only the standard library, numpy, Pillow and fer/TensorFlow are used: babyface is not installed here.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
import warnings

CLASSES = ("happy", "neutral", "sad")
FER_OFFSET = 10  # FER()'s default offsets, pixels added around each face box
PROGRESS_EVERY = 250
HEADER = ["file", "truth", "pred", "p_happy", "p_neutral", "p_sad", "face_found", "fer_top"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", help="JOBS.csv PRED.csv, repeated: boxes to classify and where to write the predictions")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for TensorFlow / TFLite")
    parser.add_argument("--fer-model", choices=("tflite", "keras"), default="tflite",
                        help="fer's quantized TFLite model (its default) or the full-precision Keras mini-Xception")
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        parser.error("give JOBS.csv PRED.csv in pairs")
    return args


def limit_threads(threads: int) -> None:
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[name] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # tf.lite.Interpreter's deprecation notice and Keras 3's note on the old model's input name, once per run
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(tensorflow|keras)\.")


class Detectors:
    """fer's FER objects, one per offset (they share one model), each recording its raw scores."""

    def __init__(self, model: str, threads: int):
        import pkg_resources
        import tensorflow as tf
        from fer.fer import FER  # the package __init__ does not export FER

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        if model == "tflite":  # created here first (FER reuses a cached interpreter) to set its threads
            path = pkg_resources.resource_filename("fer", "data/emotion_model_quantized.tflite")
            interpreter = tf.lite.Interpreter(model_path=path, num_threads=threads)
            interpreter.allocate_tensors()
            FER._tflite_interpreter_cache = interpreter
        self.make = lambda offset: FER(use_tflite=model == "tflite", offsets=(offset, offset))
        self.made: dict[int, tuple] = {}

    def get(self, offset: int) -> tuple:
        if offset not in self.made:
            detector = self.make(offset)
            self.made[offset] = (detector, keep_raw_scores(detector))
        return self.made[offset]


def keep_raw_scores(detector) -> list:
    """fer rounds its scores to 2 decimals (ties among small scores); record the classifier's raw output as well."""
    captured: list = []
    classify = detector._classify_emotions

    def classify_and_keep(faces):
        scores = classify(faces)
        captured[:] = [list(map(float, row)) for row in scores]
        return scores

    detector._classify_emotions = classify_and_keep
    return captured


def read_bgr(path: str):
    """The image as fer expects it (BGR uint8), decoded like babyface decodes it (EXIF orientation applied, RGB)."""
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        rgb = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1])


def classify_job(detectors, row: dict) -> list:
    detector, raw = detectors.get(int(row.get("offset") or FER_OFFSET))
    image = read_bgr(row["file"])
    height, width = image.shape[:2]
    box = (int(row["x"]), int(row["y"]), int(row["w"]), int(row["h"])) if row["x"] else (0, 0, width, height)
    faces = detector.detect_emotions(image, face_rectangles=[box])
    if not faces:
        raise RuntimeError(f"{row['file']}: fer could not cut box {box} from a {width}x{height} image")
    scores = dict(zip(detector._get_labels().values(), raw[0]))
    pred = max(CLASSES, key=lambda name: scores[name])
    return [row["file"], row["truth"], pred, *(f"{scores[c]:.6f}" for c in CLASSES), row["face_found"], max(scores, key=scores.get)]


def run_jobs(detectors: Detectors, jobs: str, out: str) -> None:
    with open(jobs, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    started = time.perf_counter()
    results = []
    for number, row in enumerate(rows, 1):
        results.append(classify_job(detectors, row))
        if number % PROGRESS_EVERY == 0 or number == len(rows):
            seconds = time.perf_counter() - started
            print(f"  fer {os.path.basename(out)}: {number}/{len(rows)} ({seconds:.0f} s)", file=sys.stderr, flush=True)
    tmp = out + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(results)
    os.replace(tmp, out)


def main(argv=None) -> None:
    args = parse_args(argv)
    limit_threads(args.threads)
    detectors = Detectors(args.fer_model, args.threads)
    for jobs, out in zip(args.pairs[::2], args.pairs[1::2]):
        run_jobs(detectors, jobs, out)


if __name__ == "__main__":
    main()
