"""The web page and JSON API of ``babyface serve``: faces found in an uploaded photo, each with its label.

Uploads are read into memory (never onto disk, never logged), limited in size before they are parsed, and
only ever decoded as images: nothing a client sends becomes a file path.
"""

from __future__ import annotations

import base64
import functools
import io
import logging
import os
import secrets
import sys
import tempfile
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from babyface import __version__
from babyface.config import ServeConfig
from babyface.data.faces import face_boxes, square_crop
from babyface.data.images import decode_rgb_bytes
from babyface.errors import BabyfaceError, ImageDecodeError
from babyface.evaluation.explain import Explainer
from babyface.inference.classifier import Classifier, FacePrediction
from babyface.inference.selection import Candidate, choose_serving_classifier
from babyface.serve.batching import MicroBatcher

ACCEPTED_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/gif", "image/tiff")
FIELD = "image"
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the image itself
GRADCAM_SIDE = 192  # Grad-CAM overlays are returned at most this many pixels wide
log = logging.getLogger("babyface")
SETTING_KEYS = ("detector", "min_score", "margin", "detect_size", "min_face", "min_confidence", "max_upload_mb", "workers", "tta",
                "onnx")  # the requested settings; "precision" in /model is the one served
MODEL_KEYS = ("arch", "classes", "image_size", "temperature", "babyface_version", "created", "metrics", "calibration")


class InMemoryMultiPartParser(MultiPartParser):
    """Starlette's parser spools files over 1 MB to a temporary file; uploads must never touch the disk."""

    spool_max_size = sys.maxsize


class FaceService:
    """The loaded model and detector settings. At most ``workers`` requests detect faces at a time (2 CPU cores do
    not share well), and the crops of concurrent requests are classified together (see batching.py)."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.exported = tempfile.TemporaryDirectory(prefix="babyface-serve-")
        self.classifier, self.candidates = serving_classifier(config, Path(self.exported.name))
        self.detecting = threading.BoundedSemaphore(config.workers)
        self.explaining = threading.Lock()
        self.batcher = MicroBatcher(self.classifier.classify_crops)
        self.warm_up()

    def warm_up(self) -> None:
        """Load the detector and run every model once, so that the first request is not the slow one."""
        self.predict(png_bytes(Image.new("RGB", (320, 240), (128, 128, 128))))

    @functools.cached_property
    def explainer(self) -> Explainer:
        """Loaded on the first Grad-CAM request (an ensemble has none: that request gets a 400 naming a member to serve)."""
        return Explainer(self.config.run, device=self.config.device)

    def model_info(self) -> dict[str, Any]:
        meta = self.classifier.meta.to_json()
        return {**{key: meta[key] for key in MODEL_KEYS if key in meta}, **{key: getattr(self.config, key) for key in SETTING_KEYS},
                "classes": self.classifier.classes, "learned_classes": self.classifier.meta.classes,
                "backend": self.classifier.backend.name, "precision": self.classifier.backend.precision,
                "backends_measured": [c.to_dict() for c in self.candidates]}

    def predict(self, data: bytes, gradcam: bool = False, target_class: str = "") -> dict[str, Any]:
        image = decode_rgb_bytes(data, name="the uploaded image")
        if gradcam:
            self.explainer.class_index(target_class)  # an unknown class fails before any work
        rgb = np.asarray(image, dtype=np.uint8)
        c = self.config
        with self.detecting:
            boxes, scores = face_boxes(rgb, c.detector, c.min_score, c.margin, c.detect_size, c.min_face)
        probs = self.batcher.classify([square_crop(rgb, box, self.classifier.image_size) for box in boxes])
        faces = self.classifier.face_predictions(boxes, scores, probs)
        records = [self._record(face, image, gradcam, target_class) for face in faces]
        return {"width": image.width, "height": image.height, "face_detected": faces[0].face_detected, "faces": records}

    def close(self) -> None:
        self.batcher.close()
        self.exported.cleanup()

    def _record(self, face: FacePrediction, image: Image.Image, gradcam: bool, target_class: str) -> dict[str, Any]:
        left, top, right, bottom = face.box
        record = {"box": {"left": left, "top": top, "right": right, "bottom": bottom}, "face_detected": face.face_detected,
                  "detector_score": face.detector_score, "label": face.label, "confidence": face.confidence,
                  "probabilities": face.probabilities}
        if gradcam:
            crop = image.crop(face.box)
            crop.thumbnail((GRADCAM_SIDE, GRADCAM_SIDE))
            with self.explaining:
                explanation = self.explainer.explain_image(crop, "face", target_class or None)
            record["gradcam"] = {"class": explanation.explained_class, "png": png_data_url(explanation.overlay)}
        return record


def serving_classifier(config: ServeConfig, scratch: Path) -> tuple[Classifier, list[Candidate]]:
    """The run's classifier on the fastest back end that agrees with PyTorch fp32 (see inference/selection.py): ONNX
    files are exported (with export's parity checks) into ``scratch``, never into the run folder."""

    def make(**options) -> Classifier:
        return Classifier(config.run, device=config.device, min_confidence=config.min_confidence, tta=config.tta, **options)

    return choose_serving_classifier(config.run, scratch, make, config.precision, config.onnx)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_data_url(pixels: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(Image.fromarray(pixels))).decode("ascii")


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is larger than ``limit`` (declared or actually sent)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, too_large_message(limit))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, too_large_message(limit))
        chunks.append(chunk)
    return b"".join(chunks)


def too_large_message(limit: int) -> str:
    return f"upload too large: the limit is {(limit - MULTIPART_OVERHEAD) / 2**20:g} MB; send a smaller image (or start the server with a larger --max-upload-mb)"


async def uploaded_image(request: Request, limit: int) -> bytes:
    """The bytes of the multipart field ``image``; 415 for other content types, 422 when it is missing."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise HTTPException(415, f"send the image as multipart/form-data in a field named '{FIELD}', not {content_type or 'no content type'}")
    body = await read_limited_body(request, limit)

    async def replay():
        yield body

    try:
        form = await InMemoryMultiPartParser(request.headers, replay(), max_files=1, max_fields=10).parse()
    except MultiPartException as exc:
        raise HTTPException(422, f"malformed multipart body ({exc.message}); send one file in a field named '{FIELD}'") from None
    upload = form.get(FIELD)
    if not isinstance(upload, UploadFile):
        raise HTTPException(422, f"no image: send one file in a multipart field named '{FIELD}'")
    part_type = (upload.content_type or "").split(";")[0].strip().lower()
    if part_type not in ACCEPTED_TYPES:
        raise HTTPException(415, f"unsupported type {part_type or 'none'!r}; send one of {', '.join(ACCEPTED_TYPES)}")
    return await upload.read()


PREDICT_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": [FIELD], "properties": {FIELD: {"type": "string", "format": "binary"}}}}}}}


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def access_token(config: ServeConfig) -> str:
    """--token, else $BABYFACE_TOKEN; refuses to expose the server beyond this machine without one (unless --insecure)."""
    token = config.token or os.environ.get("BABYFACE_TOKEN", "")
    if not token and config.host not in LOOPBACK:
        if not config.insecure:
            raise BabyfaceError(f"--host {config.host} makes the page reachable from the network: pass --token SECRET (or set "
                                "BABYFACE_TOKEN) so that only people who know it can send photos, or --insecure to allow anyone")
        print(f"WARNING: --insecure: anyone who can reach {config.host}:{config.port} can use this server", file=sys.stderr, flush=True)
    return token


def require_token(token: str):
    """A FastAPI dependency: 401 unless the request carries 'Authorization: Bearer TOKEN' (compared in constant time)."""
    expected = f"Bearer {token}".encode()

    def check(request: Request) -> None:
        if token and not secrets.compare_digest(request.headers.get("authorization", "").encode(), expected):
            raise HTTPException(401, "this server needs its access token: send 'Authorization: Bearer TOKEN'",
                                headers={"WWW-Authenticate": "Bearer"})

    return check


def create_app(config: ServeConfig, service: FaceService | None = None) -> FastAPI:
    token = access_token(config)
    service = service or FaceService(config)
    guarded = [Depends(require_token(token))]
    limit = int(config.max_upload_mb * 2**20) + MULTIPART_OVERHEAD
    app = FastAPI(title="babyface", version=__version__,
                  description="Infant facial emotion (happy / neutral / sad) for every face in a photo. Not a clinical tool.")
    page = resources.files("babyface.serve").joinpath("index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return page

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/model", dependencies=guarded)
    def model() -> dict[str, Any]:
        return service.model_info()

    @app.post("/predict", openapi_extra=PREDICT_BODY, dependencies=guarded)
    async def predict(request: Request, gradcam: bool = False, target_class: str = "") -> dict[str, Any]:
        """Faces (largest first) with box, label, confidence and every class probability; ``gradcam=true`` adds overlays."""
        data = await uploaded_image(request, limit)
        try:
            return await run_in_threadpool(service.predict, data, gradcam, target_class)
        except ImageDecodeError as exc:
            raise HTTPException(422, str(exc)) from None
        except BabyfaceError as exc:
            raise HTTPException(400, str(exc)) from None

    return app


def serve(config: ServeConfig) -> None:
    """Run the app with uvicorn until interrupted; no access log (requests are not recorded)."""
    import torch
    import uvicorn

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // config.workers))  # one core per detecting request
    app = create_app(config)
    print(f"babyface serve: http://{config.host}:{config.port}/  (API docs: /docs)", flush=True)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", access_log=False)
