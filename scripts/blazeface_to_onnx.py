"""Re-create src/babyface/faces/weights/blazeface_short_range.onnx from MediaPipe's BlazeFace short-range model.

The model file (Apache-2.0, LICENSE-mediapipe.txt beside it) comes out of the last mediapipe wheel that ships it,
0.10.21; newer wheels ship none, and 0.10.21 cannot be installed beside babyface (it needs protobuf < 5, onnx
1.23 needs more). So babyface keeps the converted graph and runs it with onnxruntime, which it already has. This
maintainer script needs tools babyface does not, so run it in a scratch virtual environment:

    python -m venv /tmp/convert && /tmp/convert/bin/pip install tflite2onnx ai-edge-litert onnxruntime numpy
    /tmp/convert/bin/python scripts/blazeface_to_onnx.py src/babyface/faces/weights/blazeface_short_range.onnx

It downloads the wheel from the package index (no code of it is installed), converts the graph with tflite2onnx,
and refuses to write the result unless it matches the TFLite interpreter's output on random inputs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

WHEEL = "mediapipe==0.10.21"
MEMBER = "mediapipe/modules/face_detection/face_detection_short_range.tflite"
TOLERANCE = 1e-3  # largest absolute difference allowed between the TFLite and ONNX outputs (logits reach ±150)


def extract_tflite(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "-d", str(folder)], check=True)
    wheel = next(folder.glob("mediapipe-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extract(MEMBER, folder)
    return folder / MEMBER


def largest_difference(tflite: Path, onnx_file: Path, trials: int = 5) -> float:
    import onnxruntime
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite))
    interpreter.allocate_tensors()
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    worst = 0.0
    for seed in range(trials):
        x = np.random.default_rng(seed).uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        expected = {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}
        got = dict(zip(names, session.run(None, {session.get_inputs()[0].name: x.transpose(0, 3, 1, 2).copy()})))
        worst = max(worst, *(float(np.abs(expected[n] - got[n]).max()) for n in names))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="ONNX file to write")
    args = parser.parse_args()
    import tflite2onnx

    with tempfile.TemporaryDirectory() as tmp:
        tflite = extract_tflite(Path(tmp))
        converted = Path(tmp) / "blazeface.onnx"
        tflite2onnx.convert(str(tflite), str(converted))
        difference = largest_difference(tflite, converted)
        if difference > TOLERANCE:
            sys.exit(f"the converted graph differs from TFLite by {difference:.2g} (> {TOLERANCE}); not written")
        args.out.write_bytes(converted.read_bytes())
    print(f"wrote {args.out} (largest difference from TFLite {difference:.2g})")


if __name__ == "__main__":
    main()
