"""MediaPipe's BlazeFace short-range face detector (Apache-2.0), run with onnxruntime.

The graph is MediaPipe's ``face_detection_short_range.tflite`` converted once to ONNX
(``scripts/blazeface_to_onnx.py``; licence in ``weights/LICENSE-mediapipe.txt``). It sees a 128×128 letterboxed copy
of the image, so one frame costs about a millisecond whatever its size. Anchors, box decoding and the weighted
non-maximum suppression follow MediaPipe's face_detection_short_range graph.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from babyface.errors import BabyfaceError
from babyface.faces.boxes import FaceBox
from babyface.faces.registry import FaceDetector, register_detector

MODEL_FILE = Path(__file__).resolve().parent / "weights" / "blazeface_short_range.onnx"
SIDE = 128  # the model's input side
MIN_SCORE = 0.55  # MediaPipe's is 0.5; false faces on busy backgrounds score 0.5-0.6 (benchmarks/face_detectors.py)
RETRY_MIN_SCORE = 0.65  # the grey-bordered retry finds more false faces, so it asks for more
RETRY_BORDER = 0.25  # the retry adds grey bars of this share of the image's longer side on every side
SQUARES_FROM = 1.2  # images at least this much longer than wide (or wider than long) are retried in end squares
NMS_IOU = 0.3
GREY = 127


@register_detector("blazeface")
class BlazeFace(FaceDetector):
    description = "MediaPipe's BlazeFace, about 3 ms a photo"
    min_score = MIN_SCORE
    # its square box stops at the eyebrows; MTCNN's is taller and includes the forehead (benchmarks/face_detectors.py)
    alignment = (1.08, 1.31, -0.08)
    shrinks = False  # it sees a 128-px copy whatever the image's size, so shrinking first gains nothing

    def detect(self, rgb: np.ndarray, min_score: float, min_face: float = 0.0) -> list[FaceBox]:
        return [FaceBox(*map(float, face)) for face in detect(rgb, min_score)]


@functools.lru_cache(maxsize=1)
def anchors() -> np.ndarray:
    """(896, 2) anchor centres in 0..1: 2 per cell of the 16×16 grid (stride 8), then 6 per cell of the 8×8 grid."""
    grids = []
    for stride, per_cell in ((8, 2), (16, 6)):
        cells = SIDE // stride
        y, x = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grids.append(np.repeat(np.stack([x.ravel(), y.ravel()], axis=1), per_cell, axis=0))
    return np.concatenate(grids).astype(np.float32)


def single_thread_session(path: Path, what: str, fix: str):
    """An onnxruntime CPU session of ``path`` on one thread; a one-line BabyfaceError naming ``what`` and ``fix`` when
    the file is missing or damaged."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # one frame or face is milliseconds of work: extra threads cost more in hand-offs than they save, and serve runs
    # one per worker
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001  (onnxruntime raises its own exception types)
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise BabyfaceError(f"{path}: cannot load the {what} ({reason}); {fix}") from None


@functools.lru_cache(maxsize=1)
def session():
    return single_thread_session(MODEL_FILE, "BlazeFace model", "reinstall babyface, or use --detector mtcnn")


def detect(rgb: np.ndarray, min_score: float = MIN_SCORE) -> list[tuple[float, float, float, float, float]]:
    """(left, top, right, bottom, score) of the faces in an H×W×3 uint8 image of any size, in its pixel coordinates.

    When nothing is found, two retries at a higher score: the image inside a grey border (the short-range model
    misses faces that fill the frame; the border shrinks them to sizes it knows), then each end square of a
    wide or tall image on its own (a small face in a 640×480 frame is twice as many input pixels that way).
    """
    retry_score = max(min_score, RETRY_MIN_SCORE)
    return (_detect_once(rgb, min_score) or _detect_once(rgb, retry_score, RETRY_BORDER)
            or _detect_in_end_squares(rgb, retry_score))


def _detect_in_end_squares(rgb: np.ndarray, min_score: float) -> list[tuple[float, float, float, float, float]]:
    height, width = rgb.shape[:2]
    side = min(height, width)
    if max(height, width) < SQUARES_FROM * side:
        return []
    faces = []
    for offset in (0, max(height, width) - side):
        x, y = (offset, 0) if width > height else (0, offset)
        square = np.ascontiguousarray(rgb[y:y + side, x:x + side])
        faces += [(left + x, top + y, right + x, bottom + y, score)
                  for left, top, right, bottom, score in _detect_once(square, min_score)]
    return faces


def _detect_once(rgb: np.ndarray, min_score: float, border: float = 0.0) -> list[tuple[float, float, float, float, float]]:
    tensor, scale, pad_x, pad_y = _letterbox(rgb, border)
    model = session()
    regressors, logits = model.run(None, {model.get_inputs()[0].name: tensor})
    scores = 1 / (1 + np.exp(-np.clip(logits[0, :, 0], -80, 80)))  # exp(±80) still fits a float32
    keep = scores >= min_score
    boxes = _decode(regressors[0, keep, :4], anchors()[keep])
    return [((left * SIDE - pad_x) / scale, (top * SIDE - pad_y) / scale,
             (right * SIDE - pad_x) / scale, (bottom * SIDE - pad_y) / scale, score)
            for (left, top, right, bottom), score in _weighted_nms(boxes, scores[keep])]


def eyes(rgb: np.ndarray, min_score: float = MIN_SCORE) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """The eye centres (the subject's right eye, on the image's left, then the left eye) of the highest-scoring face,
    in pixels of the image, from BlazeFace's keypoints (its first two of six); None when no face scores ``min_score``."""
    for border in (0.0, RETRY_BORDER):
        tensor, scale, pad_x, pad_y = _letterbox(rgb, border)
        model = session()
        regressors, logits = model.run(None, {model.get_inputs()[0].name: tensor})
        best = int(np.argmax(logits[0, :, 0]))
        if 1 / (1 + np.exp(-np.clip(logits[0, best, 0], -80, 80))) >= min_score:
            points = anchors()[best] + regressors[0, best, 4:8].reshape(2, 2) / SIDE
            (rx, ry), (lx, ly) = ((points * SIDE - (pad_x, pad_y)) / scale).tolist()
            return (rx, ry), (lx, ly)
    return None


def _letterbox(rgb: np.ndarray, border: float = 0.0) -> tuple[np.ndarray, float, float, float]:
    """The 1×3×128×128 model input: the image fitted inside grey bars (plus ``border`` of its longer side on every
    side), scaled to -1..1; and the scale and offsets from image to input pixels. (A 3×3 median filter found 1%
    more of the noisy infant-web faces but 9% fewer small faces: not used.)"""
    import cv2

    height, width = rgb.shape[:2]
    scale = SIDE / (max(height, width) * (1 + 2 * border))
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    small = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
    left, top = (SIDE - new_w) // 2, (SIDE - new_h) // 2
    canvas = np.full((SIDE, SIDE, 3), GREY, np.uint8)
    canvas[top:top + new_h, left:left + new_w] = small
    tensor = canvas.astype(np.float32).transpose(2, 0, 1)[None] / 127.5 - 1
    return np.ascontiguousarray(tensor), scale, left, top


def _decode(raw: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(N, 4) left, top, right, bottom in 0..1 of the input from the regressors' centre offsets and sizes."""
    centre = centres + raw[:, :2] / SIDE
    half = raw[:, 2:4] / SIDE / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def _weighted_nms(boxes: np.ndarray, scores: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted suppression: each cluster of overlapping boxes becomes their score-weighted mean."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    faces = []
    while len(scores):
        overlap = _iou(boxes[0], boxes) > NMS_IOU
        overlap[0] = True
        weights = scores[overlap][:, None]
        faces.append(((boxes[overlap] * weights).sum(0) / weights.sum(), float(scores[0])))
        boxes, scores = boxes[~overlap], scores[~overlap]
    return faces


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lower = np.maximum(box[:2], boxes[:, :2])
    upper = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(upper - lower, 0, None), axis=1)
    area = lambda b: np.prod(b[..., 2:] - b[..., :2], axis=-1)  # noqa: E731
    return inter / (area(box) + area(boxes) - inter + 1e-9)
