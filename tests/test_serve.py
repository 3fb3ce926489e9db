"""The JSON API of `babyface serve` through FastAPI's TestClient (no network)."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from tests.conftest import face_scene, local_client

pytest.importorskip("httpx2", reason="FastAPI's TestClient needs httpx2: pip install 'babyface[test]'")
from fastapi.testclient import TestClient  # noqa: E402

from babyface.config import ServeConfig  # noqa: E402
from babyface.errors import BabyfaceError  # noqa: E402
from babyface.inference.classifier import Classifier  # noqa: E402
from babyface.serve.app import create_app  # noqa: E402


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client(untrained_run) -> TestClient:
    return local_client(create_app(ServeConfig(run=str(untrained_run), max_upload_mb=0.5, device="cpu")))


def post_image(client: TestClient, data: bytes, content_type: str = "image/png", **params):
    return client.post("/predict", files={"image": ("photo.png", data, content_type)}, params=params)


def test_health_and_model_metadata(client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    model = client.get("/model").json()
    assert model["classes"] == ["happy", "neutral", "sad"] and model["image_size"] == 64
    assert model["arch"]["name"] == "cnn" and model["max_upload_mb"] == 0.5
    assert model["min_face"] == ServeConfig().faces.min_face and model["workers"] == ServeConfig().workers
    assert model["detector"] == "blazeface" and model["precision"] == "fp32"  # no validation images: exact back ends only
    measured = {m["backend"]: m for m in model["backends_measured"]}
    assert {"torch fp32", "onnx fp32"} <= set(measured)
    fastest = min((m for m in measured.values() if not m["note"]), key=lambda m: m["ms_per_batch"])
    assert fastest["backend"] == f"{model['backend']} {model['precision']}"
    assert "/predict" in client.get("/openapi.json").json()["paths"]


def test_the_classifier_runs_on_onnxruntime_exported_at_start_up_without_touching_the_run(untrained_run, tmp_path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(untrained_run, run)
    before = sorted(p.name for p in run.iterdir())
    served = local_client(create_app(ServeConfig(run=str(run), device="cpu")))
    measured = {m["backend"]: m for m in served.get("/model").json()["backends_measured"]}
    assert measured["onnx fp32"]["ms_per_batch"] > 0 and not measured["onnx fp32"]["note"]
    assert sorted(p.name for p in run.iterdir()) == before
    expected = Classifier(run, device="cpu", backend="torch", precision="fp32").predict_faces(face_scene(), ServeConfig().faces)[0]
    face = post_image(served, png_bytes(face_scene())).json()["faces"][0]
    assert face["probabilities"] == pytest.approx(expected.probabilities, abs=1e-5)  # the same model on either engine
    plain = local_client(create_app(ServeConfig(run=str(run), device="cpu", onnx=False)))
    assert plain.get("/model").json()["backend"] == "torch"


def test_a_failed_start_up_export_keeps_pytorch_with_a_warning(untrained_run, monkeypatch, caplog) -> None:
    from babyface.inference import selection

    def broken(*args, **kwargs):
        raise BabyfaceError("export needs the onnx package; pip install onnx onnxruntime")

    monkeypatch.setattr(selection, "export_onnx", broken)
    with caplog.at_level("WARNING", logger="babyface"):
        served = local_client(create_app(ServeConfig(run=str(untrained_run), device="cpu")))
    assert served.get("/model").json()["backend"] == "torch"
    assert "onnx fp32 not considered: export needs the onnx package" in caplog.text


def test_index_page_is_served(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and 'id="file"' in page.text and "/predict" in page.text


def test_predict_finds_the_face_and_matches_the_predictor(client, untrained_run) -> None:
    image = face_scene()
    response = post_image(client, png_bytes(image))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["face_detected"] is True and (body["width"], body["height"]) == (400, 300)
    (face,) = body["faces"]
    box = face["box"]
    assert 150 <= box["left"] < box["right"] <= 400 and 30 <= box["top"] < box["bottom"] <= 300
    assert box["right"] - box["left"] == box["bottom"] - box["top"]
    assert abs(sum(face["probabilities"].values()) - 1) < 1e-5
    assert face["label"] == max(face["probabilities"], key=face["probabilities"].get)
    expected = Classifier(untrained_run, device="cpu", precision="fp32").predict_faces(image, ServeConfig().faces)[0]
    assert face["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)


def test_image_without_a_face_is_classified_whole(client) -> None:
    body = post_image(client, png_bytes(Image.new("RGB", (120, 90), "white"))).json()
    assert body["face_detected"] is False
    assert [f["box"] for f in body["faces"]] == [{"left": 0, "top": 0, "right": 120, "bottom": 90}]


def test_gradcam_on_request(client) -> None:
    face = post_image(client, png_bytes(face_scene()), gradcam="true", target_class="sad").json()["faces"][0]
    assert face["gradcam"]["class"] == "sad" and face["gradcam"]["png"].startswith("data:image/png;base64,")
    assert "gradcam" not in post_image(client, png_bytes(face_scene())).json()["faces"][0]
    wrong = post_image(client, png_bytes(face_scene()), gradcam="true", target_class="angry")
    assert wrong.status_code == 400 and "target_class='angry'" in wrong.json()["detail"]  # the API's words, not --class


def test_too_large_upload_is_refused_with_413(client) -> None:
    response = post_image(client, b"\xff" * (2 * 2**20))
    assert response.status_code == 413 and "0.5 MB" in response.json()["detail"]


def test_what_an_upload_is_comes_from_its_bytes_not_its_declared_type(client) -> None:
    response = post_image(client, b"%PDF-1.4 not an image", content_type="application/pdf")
    assert response.status_code == 415 and "JPEG, PNG, WebP" in response.json()["detail"]
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n"
    assert post_image(client, eps, content_type="image/png").status_code == 415  # never handed to Ghostscript
    for fmt in ("BMP", "TIFF", "WEBP", "GIF", "JPEG"):
        buffer = io.BytesIO()
        face_scene().save(buffer, format=fmt)
        answer = post_image(client, buffer.getvalue(), content_type="application/octet-stream")  # as curl -F labels it
        assert answer.status_code == 200 and answer.json()["width"] == face_scene().width, fmt
    not_multipart = client.post("/predict", content=png_bytes(face_scene()), headers={"content-type": "image/png"})
    assert not_multipart.status_code == 415 and "multipart/form-data" in not_multipart.json()["detail"]


def test_corrupt_image_is_refused_with_422(client) -> None:
    truncated = png_bytes(face_scene())[:300]
    for data in (truncated, b""):
        response = post_image(client, data)
        assert response.status_code == 422, data[:20]
        assert "uploaded image" in response.json()["detail"]


def test_missing_file_is_refused_with_422(client) -> None:
    response = client.post("/predict", data={"other": "x"}, files={"note": ("a.txt", b"hi", "text/plain")})
    assert response.status_code == 422 and "'image'" in response.json()["detail"]


def test_concurrent_requests_get_the_same_answers_as_one_at_a_time(client) -> None:
    images = [png_bytes(face_scene()), png_bytes(face_scene(at=(20, 20))), png_bytes(Image.new("RGB", (120, 90), "white"))]
    alone = [post_image(client, data).json() for data in images]
    with ThreadPoolExecutor(max_workers=6) as pool:
        together = list(pool.map(lambda n: post_image(client, images[n % 3]).json(), range(12)))
    for n, body in enumerate(together):
        expected = alone[n % 3]
        assert [f["box"] for f in body["faces"]] == [f["box"] for f in expected["faces"]]
        for face, want in zip(body["faces"], expected["faces"]):
            assert face["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)


def test_min_face_is_honoured(untrained_run) -> None:
    """The 160-px face fills half of the 300-px side: found when at least a third is asked for, not at 0.9."""
    image = png_bytes(face_scene())
    for min_face, found in ((0.33, True), (0.9, False)):
        config = ServeConfig(run=str(untrained_run), device="cpu", min_face=min_face, workers=1)
        body = post_image(local_client(create_app(config)), image).json()
        assert body["face_detected"] is found, min_face


def test_a_token_guards_the_api_but_not_the_page(untrained_run) -> None:
    guarded = local_client(create_app(ServeConfig(run=str(untrained_run), device="cpu", host="0.0.0.0", token="s3cret-s3cret-s3cret")))
    image = png_bytes(face_scene())
    assert guarded.get("/").status_code == 200 and guarded.get("/health").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-s3cret-s3cret"}):
        refused = guarded.post("/predict", files={"image": ("x.png", image, "image/png")}, headers=headers)
        assert refused.status_code == 401 and "access token" in refused.json()["detail"]
    assert guarded.get("/model").status_code == 401
    ok = {"Authorization": "Bearer s3cret-s3cret-s3cret"}
    assert guarded.post("/predict", files={"image": ("x.png", image, "image/png")}, headers=ok).status_code == 200
    model = guarded.get("/model", headers=ok).json()
    assert "s3cret-s3cret-s3cret" not in str(model)


def test_the_network_needs_a_token_or_says_loudly_why_not(untrained_run, monkeypatch, capsys) -> None:
    monkeypatch.delenv("BABYFACE_TOKEN", raising=False)
    with pytest.raises(BabyfaceError, match="--token"):
        create_app(ServeConfig(run=str(untrained_run), device="cpu", host="0.0.0.0"))
    create_app(ServeConfig(run=str(untrained_run), device="cpu", host="0.0.0.0", insecure=True))
    assert "WARNING: --insecure" in capsys.readouterr().err
    monkeypatch.setenv("BABYFACE_TOKEN", "from-env-from-env-from-env")
    client = local_client(create_app(ServeConfig(run=str(untrained_run), device="cpu", host="0.0.0.0")))
    assert client.get("/model").status_code == 401
    assert client.get("/model", headers={"Authorization": "Bearer from-env-from-env-from-env"}).status_code == 200


def test_backoff_doubles_after_the_free_tries_up_to_its_cap_and_forgets_the_oldest_addresses() -> None:
    from babyface.serve.guard import Backoff

    now = [0.0]
    backoff = Backoff(free_tries=3, max_wait=8, clock=lambda: now[0], remembered=2)
    waits = []
    for _ in range(7):
        backoff.failed("a")
        waits.append(backoff.retry_after("a"))
    assert waits == [0, 0, 1, 2, 4, 8, 8]
    now[0] += 8
    assert backoff.retry_after("a") == 0
    backoff.succeeded("a")
    backoff.failed("a")
    assert backoff.retry_after("a") == 0  # a success starts the count again
    backoff.failed("b")
    backoff.failed("c")
    assert set(backoff.failures) == {"b", "c"}  # bounded memory: the oldest address is forgotten


class FailingService:
    """A stand-in FaceService whose predictions fail as a server under a memory limit or with a bug would."""

    def __init__(self, error: BaseException):
        self.error = error

    def model_info(self) -> dict:
        return {}

    def predict(self, *args) -> dict:
        raise self.error


@pytest.mark.parametrize("error, status", [(MemoryError(), 503), (RuntimeError("boom in /home/someone/secret/path"), 500)])
def test_an_unexpected_failure_is_a_json_answer_and_one_log_line(untrained_run, error, status, caplog) -> None:
    app = create_app(ServeConfig(run=str(untrained_run), device="cpu"), service=FailingService(error))
    with local_client(app) as failing:
        response = post_image(failing, png_bytes(face_scene()))
    assert response.status_code == status and response.headers["content-type"] == "application/json"
    assert "secret" not in response.json()["detail"]
    lines = [r.getMessage() for r in caplog.records if r.name == "babyface"]
    assert len(lines) == 1 and "\n" not in lines[0] and "/predict" in lines[0] and not caplog.records[-1].exc_info
