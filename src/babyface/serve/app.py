"""The web page and JSON API of ``babyface serve``: faces found in an uploaded photo, each with its label.

Uploads are read into memory (never onto disk, never logged), limited in size before they are parsed, and
only ever decoded as images: nothing a client sends becomes a file path. What an upload is, is decided by its
bytes (JPEG, PNG, WebP, BMP, GIF, TIFF), not by its declared type; what decoding it would cost is estimated from
its header and refused (413) above ``--max-image-mb``, and at most ``--workers`` uploads are decoded at a time.
Every answer but the page and the live view's MJPEG stream (live.py, with ``--live``) is JSON, errors included;
guard.py holds the connection-level defences.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import logging
import os
import resource
import secrets
import signal
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
from starlette.requests import ClientDisconnect

from babyface import __version__
from babyface.config import ServeConfig
from babyface.data.images import DOCUMENTED_FORMATS, ImageHeader, decode_rgb_bytes
from babyface.errors import BabyfaceError, ImageDecodeError, ImageTooLargeError, UnsupportedImageError
from babyface.evaluation.explain import Explainer
from babyface.inference.classifier import Classifier, FacePrediction
from babyface.inference.selection import Candidate, choose_serving_classifier
from babyface.serve.batching import MicroBatcher
from babyface.serve.guard import (
    Backoff,
    BackoffGate,
    ConnectionPolicy,
    GuardedH11Protocol,
    HostCheck,
    JsonErrors,
    SecurityHeaders,
    Tally,
    client_address,
    was_cut_off,
)
from babyface.serve.live import LIVE_PATHS, LiveView, live_routes, page_with_live

FIELD = "image"
MIN_TOKEN_LENGTH = 16
ABANDONED_UPLOADS = Tally("a client disconnected in the middle of its upload")
REFUSED_UPLOAD = (413, 415, 422)  # answers that count towards an address's back-off (a bad token counts on its own)
RESERVED_FILES = 64  # open files kept free of connections, for the model, the detector and the log
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the image itself
GRADCAM_SIDE = 192  # Grad-CAM overlays are returned at most this many pixels wide
log = logging.getLogger("babyface")
# the requested settings beside the face options (detector, min_score, ...); "precision" in /model is the one served
SETTING_KEYS = ("min_confidence", "max_upload_mb", "max_pixels", "max_image_mb", "workers", "tta", "onnx")
MODEL_KEYS = ("arch", "classes", "image_size", "temperature", "babyface_version", "created", "metrics", "calibration")


class InMemoryMultiPartParser(MultiPartParser):
    """Starlette's parser spools files over 1 MB to a temporary file; uploads must never touch the disk."""

    spool_max_size = sys.maxsize


class FaceService:
    """The loaded model and detector settings. At most ``workers`` requests decode their image and detect faces at a
    time (2 CPU cores do not share well, and a decoded image is the big allocation), and the crops of concurrent
    requests are classified together (see batching.py)."""

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
        return {**{key: meta[key] for key in MODEL_KEYS if key in meta}, **self.classifier.faces_for(self.config.faces).model_dump(),
                **{key: getattr(self.config, key) for key in SETTING_KEYS},
                "classes": self.classifier.classes, "learned_classes": self.classifier.meta.classes,
                "backend": self.classifier.backend.name, "precision": self.classifier.backend.precision,
                "backends_measured": [c.to_dict() for c in self.candidates]}

    def predict(self, data: bytes, gradcam: bool = False, target_class: str = "") -> dict[str, Any]:
        if gradcam:
            self.check_gradcam(target_class)  # fails before any work
        c = self.config
        with self.detecting:  # the two halves of Classifier.predict_faces, so that only decoding and detection are bounded
            image, header = decode_rgb_bytes(data, "the uploaded image", c.max_pixels, c.max_image_mb, reduce=True)
            found = self.classifier.find_faces(image, c.faces)
        faces = self.classifier.classify_faces(found, self.batcher.classify)
        scale = full_size_scale(header, image)
        records = [self._record(face, image, gradcam, target_class, scale) for face in faces]
        return {"width": round(image.width * scale), "height": round(image.height * scale),
                "face_detected": faces[0].face_detected, "faces": records}

    def check_gradcam(self, target_class: str) -> None:
        """BabyfaceError in the API's own words (its parameters, no server paths) when an overlay cannot be made."""
        if self.classifier.meta.is_ensemble:
            raise BabyfaceError("gradcam=true explains one model and this server serves an ensemble; start babyface serve "
                                "on one of its members (RUN/members/NAME) for overlays")
        if target_class and target_class not in self.classifier.classes:
            raise BabyfaceError(f"target_class={target_class!r} is not one of the classes the model decides over: "
                                f"{', '.join(self.classifier.classes)}")

    def close(self) -> None:
        self.batcher.close()
        self.exported.cleanup()

    def _record(self, face: FacePrediction, image: Image.Image, gradcam: bool, target_class: str, scale: float) -> dict[str, Any]:
        left, top, right, bottom = (round(v * scale) for v in face.box)
        record = {"box": {"left": left, "top": top, "right": right, "bottom": bottom}, "face_detected": face.face_detected,
                  "detector_score": face.detector_score, "label": face.label, "confidence": face.confidence,
                  "probabilities": face.probabilities, "infant": face.infant}
        if gradcam:
            crop = image.crop(face.box)
            crop.thumbnail((GRADCAM_SIDE, GRADCAM_SIDE))
            with self.explaining:
                explanation = self.explainer.explain_image(crop, "face", target_class or None)
            record["gradcam"] = {"class": explanation.explained_class, "png": png_data_url(explanation.overlay)}
        return record


def full_size_scale(header: ImageHeader, image: Image.Image) -> float:
    """1, or how much larger the upload is than the reduced decode of it (boxes are answered in the upload's pixels)."""
    return max(header.width, header.height) / max(image.width, image.height)


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
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, too_large_message(limit))
            chunks.append(chunk)
    except ClientDisconnect:
        if not was_cut_off(request.scope):  # a request cut off by the server was counted there
            ABANDONED_UPLOADS.add()
        raise HTTPException(400, "the upload did not arrive in full") from None
    return b"".join(chunks)


def too_large_message(limit: int) -> str:
    return f"upload too large: the limit is {(limit - MULTIPART_OVERHEAD) / 2**20:g} MB; send a smaller image (or start the server with a larger --max-upload-mb)"


def image_too_large_message(exc: ImageTooLargeError, config: ServeConfig) -> str:
    header = exc.header
    if exc.limit == "pixels":
        return (f"the uploaded image is {header.width}x{header.height} = {header.pixels:,} pixels, over this server's "
                f"limit of {config.max_pixels:,}; send a smaller image (or start the server with a larger --max-pixels)")
    return (f"the uploaded image is {header.describe()}: decoding it would take more than this server's "
            f"{config.max_image_mb:g} MB per image; send a smaller or 8-bit image, e.g. a JPEG (or start the server "
            "with a larger --max-image-mb)")


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
    return await upload.read()  # its declared type is not trusted: decoding decides what it is


PREDICT_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": [FIELD], "properties": {FIELD: {"type": "string", "format": "binary"}}}}}}}


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def access_token(config: ServeConfig) -> str:
    """--token, else $BABYFACE_TOKEN; refuses to expose the server beyond this machine without one (unless --insecure)."""
    token = config.token or os.environ.get("BABYFACE_TOKEN", "")
    if token and len(token) < MIN_TOKEN_LENGTH:
        raise BabyfaceError(f"--token is {len(token)} characters long; give one of at least {MIN_TOKEN_LENGTH}, e.g. "
                            "from: python -c 'import secrets; print(secrets.token_urlsafe())'")
    if not token and config.host not in LOOPBACK:
        if not config.insecure:
            raise BabyfaceError(f"--host {config.host} makes the page reachable from the network: pass --token SECRET (or set "
                                "BABYFACE_TOKEN) so that only people who know it can send photos, or --insecure to allow anyone")
        print(f"WARNING: --insecure: anyone who can reach {config.host}:{config.port} can use this server", file=sys.stderr, flush=True)
    return token


def require_token(token: str, backoff: Backoff):
    """A FastAPI dependency: 401 unless the request carries 'Authorization: Bearer TOKEN' (its UTF-8 bytes, compared
    in constant time); each wrong one counts towards its address's ``backoff`` (which BackoffGate enforces)."""
    expected = f"Bearer {token}".encode()

    async def check(request: Request) -> None:
        if not token:
            return
        address = client_address(request.scope)
        sent = request.headers.get("authorization", "").encode("latin-1")  # the raw bytes, as the client sent them
        if not secrets.compare_digest(sent, expected):
            backoff.failed(address)
            raise HTTPException(401, "this server needs its access token: send 'Authorization: Bearer TOKEN'",
                                headers={"WWW-Authenticate": "Bearer"})
        backoff.succeeded(address)

    return check


NO_TELEMETRY = {"tracing": False, "metrics": False, "logs": False, "auto_configure": False}  # whatever OTEL_* says


def create_app(config: ServeConfig, service: FaceService | None = None) -> FastAPI:
    token = access_token(config)
    live = LiveView(config) if config.live else None  # a --live that names no file, camera or URL fails before the model loads
    service = service or FaceService(config)
    wrong_tokens, refused_uploads = Backoff(), Backoff()
    guarded = [Depends(require_token(token, wrong_tokens))]
    limit = int(config.max_upload_mb * 2**20) + MULTIPART_OVERHEAD

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        """The live view's threads run while the server does (they classify with the loaded model)."""
        if live:
            live.start(service.classifier, service.batcher.classify)
        try:
            yield
        finally:
            if live:
                await run_in_threadpool(live.close)

    app = FastAPI(title="babyface", version=__version__, telemetry=NO_TELEMETRY, lifespan=lifespan,
                  description="Infant facial emotion (happy / neutral / sad) for every face in a photo. Not a clinical tool.")
    app.state.service, app.state.live = service, live
    page = page_with_live(resources.files("babyface.serve").joinpath("index.html").read_text(encoding="utf-8"), live is not None)
    guarded_paths = ("/predict", "/model", *(LIVE_PATHS if live else ()))
    app.add_middleware(BackoffGate, gates=[(wrong_tokens, guarded_paths, "wrong tokens"),
                                           (refused_uploads, ("/predict",), "refused uploads in a row")])
    app.add_middleware(SecurityHeaders)
    if not token:
        app.add_middleware(HostCheck, own_host=config.host)
    app.add_middleware(JsonErrors)  # added last: outermost

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Answered on the event loop, never queued behind predictions in the thread pool."""
        return {"status": "ok"}

    @app.get("/model", dependencies=guarded)
    async def model() -> dict[str, Any]:
        return service.model_info()

    async def answer_upload(request: Request, gradcam: bool, target_class: str) -> dict[str, Any]:
        data = await uploaded_image(request, limit)
        try:
            return await run_in_threadpool(service.predict, data, gradcam, target_class)
        except ImageTooLargeError as exc:
            raise HTTPException(413, image_too_large_message(exc, config)) from None
        except UnsupportedImageError:
            raise HTTPException(415, f"the upload is not an image this server reads: send a {DOCUMENTED_FORMATS} "
                                     "file (whatever its declared type)") from None
        except ImageDecodeError as exc:
            raise HTTPException(422, str(exc)) from None
        except BabyfaceError as exc:
            raise HTTPException(400, str(exc)) from None

    @app.post("/predict", openapi_extra=PREDICT_BODY, dependencies=guarded)
    async def predict(request: Request, gradcam: bool = False, target_class: str = "") -> dict[str, Any]:
        """Faces (largest first) with box, label, confidence and every class probability; ``gradcam=true`` adds overlays."""
        address = client_address(request.scope)
        try:
            answer = await answer_upload(request, gradcam, target_class)
        except HTTPException as exc:
            if exc.status_code in REFUSED_UPLOAD:
                refused_uploads.failed(address)
            raise
        refused_uploads.succeeded(address)
        return answer

    if live:
        app.include_router(live_routes(live, guarded))
    return app


def open_file_limit() -> int:
    """The process's open-file limit, raised to its hard limit first (connections are files)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def stop_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)  # like Ctrl-C: the finally blocks remove the temporary ONNX exports


def serve(config: ServeConfig) -> None:
    """Run the app with uvicorn until interrupted (Ctrl-C or SIGTERM); no access log (requests are not recorded)."""
    import torch
    import uvicorn

    signal.signal(signal.SIGTERM, stop_on_sigterm)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // config.workers))  # one core per detecting request
    ConnectionPolicy.request_timeout = config.request_timeout
    ConnectionPolicy.max_connections = max(1, min(config.max_connections, open_file_limit() - RESERVED_FILES))
    app = create_app(config)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list | None = None) -> None:
            if app.state.live:  # first, so that the live streams end and their connections close instead of
                app.state.live.stop()  # holding the shutdown for timeout_graceful_shutdown
            await super().shutdown(sockets)

    try:
        print(f"babyface serve: http://{config.host}:{config.port}/  (API docs: /docs)", flush=True)
        server = Server(uvicorn.Config(app, host=config.host, port=config.port, log_level="warning", access_log=False,
                                       http=GuardedH11Protocol, timeout_keep_alive=5, timeout_graceful_shutdown=5))
        server.run()  # what uvicorn.run does, with the live view stopped as the shutdown begins
        if not server.started:
            raise SystemExit(3)  # uvicorn.run's exit when the server could not start
    finally:
        if app.state.live:
            app.state.live.close()  # before the classifier it uses goes
        app.state.service.close()
