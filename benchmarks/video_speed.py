"""Frames per second of `babyface predict RUN VIDEO` on a 640×480 synthetic video with one moving face.

    OMP_NUM_THREADS=2 python benchmarks/video_speed.py --frames 250 [--run runs/cnn] [--detect-every 5] [--annotate]

Without --run an untrained CNN bundle is used (speed does not depend on the weights). The detector is warmed up
before timing, so the number is the steady-state rate of decoding, detection, tracking, classification and output.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from babyface.config import PredictConfig  # noqa: E402
from babyface.data.faces import detect_faces  # noqa: E402
from babyface.data.synthetic import write_moving_faces_video  # noqa: E402
from babyface.inference.classifier import Classifier  # noqa: E402
from babyface.video import analyse_video  # noqa: E402
from untrained import untrained_bundle  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--run", type=Path)
    parser.add_argument("--detect-every", type=int, default=PredictConfig().detect_every)
    parser.add_argument("--detect-size", type=int, default=PredictConfig().detect_size)
    parser.add_argument("--annotate", action="store_true", help="also write the annotated video")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = args.run or untrained_bundle(tmp / "run")
        clip = write_moving_faces_video(tmp / "clip.mp4", frames=args.frames, size=(640, 480))
        detect_faces(np.zeros((240, 320, 3), np.uint8))  # load MTCNN before timing
        config = PredictConfig(run=str(run), out=str(tmp / "out"), detect_every=args.detect_every, detect_size=args.detect_size,
                               annotate=str(tmp / "annotated.mp4") if args.annotate else "", device="cpu")
        summary = analyse_video(Classifier(run, device="cpu"), clip, config, progress=False)
    print(f"{summary['frames']} frames of 640×480, {summary['faces']} face id(s), {summary['rows']} face rows: "
          f"{summary['seconds']:.2f} s = {summary['frames_per_second']:.1f} frames/s "
          f"(detect every {args.detect_every} frames at {args.detect_size} px{', annotated' if args.annotate else ''})")


if __name__ == "__main__":
    main()
