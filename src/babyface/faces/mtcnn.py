"""MTCNN (facenet-pytorch): the detector the training crops are cut with (``data crop``) and evaluation frames with."""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from babyface.errors import BabyfaceError
from babyface.faces.boxes import FaceBox
from babyface.faces.registry import FaceDetector, register_detector

MTCNN_MIN_SIDE = 20  # facenet-pytorch's default min_face_size: no smaller image can hold a detectable face


@register_detector("mtcnn")
class Mtcnn(FaceDetector):
    description = "facenet-pytorch's MTCNN, about 30 times slower than blazeface, cuts the training crops"
    min_score = 0.9
    detect_every = 5  # what keeps 25 frames/s on 2 cores (benchmarks/video_speed.py)

    def detect(self, rgb: np.ndarray, min_score: float, min_face: float = 0.0) -> list[FaceBox]:
        import torch

        if min(rgb.shape[:2]) < MTCNN_MIN_SIDE:
            return []  # smaller than MTCNN's first network window: facenet-pytorch would fail on an empty pyramid
        mtcnn = _mtcnn()  # built outside inference mode: its weights stay ordinary tensors
        with torch.inference_mode():
            boxes, scores = mtcnn.detect(Image.fromarray(rgb))
        if boxes is None:
            return []
        return [FaceBox(*map(float, box), float(score)) for box, score in zip(boxes, scores)]


@functools.lru_cache(maxsize=1)
def _mtcnn():
    try:
        from facenet_pytorch import MTCNN
    except ImportError:
        raise BabyfaceError("face detection needs facenet-pytorch: pip install facenet-pytorch==2.5.3 (or use --detector haar)") from None
    import torch

    mtcnn = MTCNN(keep_all=True, device="cpu", post_process=False, min_face_size=MTCNN_MIN_SIDE)
    for net in (mtcnn.pnet, mtcnn.rnet, mtcnn.onet):
        net.to(memory_format=torch.channels_last)  # same results; CPU max-pooling is up to 10× faster than on NCHW
    return mtcnn
