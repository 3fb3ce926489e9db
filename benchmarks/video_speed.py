"""Frames per second of `babyface predict RUN VIDEO` on a 640×480 synthetic video with one moving face.

    python benchmarks/video_speed.py --frames 250 --threads 1 [--run runs/cnn] [--detector mtcnn] [--detect-every 5]

Without --run an untrained ResNet-18 bundle is used (speed does not depend on the weights). The detector is warmed up
before timing, so the number is the steady-state rate of decoding, detection, tracking, smoothing, classification
and output, with predict's defaults unless flags say otherwise (blazeface detects on every frame).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from babyface.config import PredictConfig  # noqa: E402
from babyface.faces.detectors import detect_faces  # noqa: E402
from babyface.faces.registry import get_detector  # noqa: E402
from babyface.inference.classifier import Classifier  # noqa: E402
from babyface.tools.synthetic import write_moving_faces_video  # noqa: E402
from babyface.video.analysis import VideoAnalysis, analyse_video  # noqa: E402
from untrained import untrained_bundle  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--run", type=Path)
    parser.add_argument("--model", default="resnet18", help="architecture of the untrained bundle used without --run")
    parser.add_argument("--detector", default=PredictConfig().faces.detector)
    parser.add_argument("--detect-every", type=int, help="default: the detector's own (predict's auto)")
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads")
    parser.add_argument("--detect-size", type=int, default=PredictConfig().faces.detect_size)
    parser.add_argument("--annotate", action="store_true", help="also write the annotated video")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = args.run or untrained_bundle(tmp / "run", args.model)
        clip = write_moving_faces_video(tmp / "clip.mp4", frames=args.frames, size=(640, 480))
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
        detect_faces(np.zeros((240, 320, 3), np.uint8), args.detector)  # load the detector before timing
        config = PredictConfig(run=str(run), out=str(tmp / "out"), detector=args.detector, detect_every=args.detect_every,
                               detect_size=args.detect_size,
                               annotate=str(tmp / "annotated.mp4") if args.annotate else "", device="cpu")
        summary = analyse_video(Classifier(run, device="cpu"), clip, VideoAnalysis.of(config), progress=False)
    print(f"{summary['frames']} frames of 640×480, {summary['faces']} face id(s), {summary['rows']} face rows: "
          f"{summary['seconds']:.2f} s = {summary['frames_per_second']:.1f} frames/s "
          f"({args.detector} on every {args.detect_every or get_detector(args.detector).detect_every} frame(s), {args.threads} thread(s)"
          f"{', annotated' if args.annotate else ''})")


if __name__ == "__main__":
    main()
