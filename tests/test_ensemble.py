"""babyface ensemble: the bundle, its probabilities against its members', damaged ensembles, export and serving."""

from __future__ import annotations

import io
import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from babyface.bundle import load_bundle
from babyface.bundle.ensemble import MEMBERS_DIR, create_ensemble, write_shared_splits
from babyface.bundle.single import META_FILE, WEIGHTS_FILE, bundle_metadata, save_bundle
from babyface.cli import main
from babyface.config import EnsembleConfig
from babyface.errors import BundleError
from babyface.inference.backends import TorchBackend
from babyface.inference.classifier import Classifier
from babyface.models import create_model

CLASSES = ["happy", "neutral", "sad"]
CPU = torch.device("cpu")


def make_run(folder: Path, arch: str = "cnn", size: int = 32, temperature: float = 1.0, seed: int = 0,
             classes: list[str] = CLASSES, mean: float = 0.5) -> Path:
    torch.manual_seed(seed)
    model = create_model(arch, len(classes), size).eval()
    return save_bundle(folder, model, bundle_metadata(model, classes, size, [mean] * 3, [0.25] * 3, temperature=temperature))


@pytest.fixture
def two_runs(tmp_path: Path) -> list[Path]:
    return [make_run(tmp_path / "a", "cnn", 32, 1.5, seed=1, mean=0.4), make_run(tmp_path / "b", "resnet18", 32, 0.7, seed=2)]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("babyface: error: ") and "\n" not in err, err
    return err


def member_probabilities(run: Path, images01: torch.Tensor) -> torch.Tensor:
    """A member's calibrated probabilities for float 0..1 images, resized to its own size as the ensemble does."""
    backend = TorchBackend(run, CPU)
    size = backend.bundle.image_size
    if images01.shape[-1] != size:
        images01 = F.interpolate(images01, size=(size, size), mode="bilinear", align_corners=False)
    return torch.softmax(backend.logits(images01, 64) / backend.bundle.temperature, dim=1)


@pytest.mark.parametrize("sizes", [(32, 32), (32, 48)])
def test_ensemble_probabilities_are_the_mean_of_its_members(sizes, tmp_path: Path):
    runs = [make_run(tmp_path / "a", "cnn", sizes[0], 1.5, seed=1, mean=0.4), make_run(tmp_path / "b", "resnet18", sizes[1], 0.7, seed=2)]
    out = create_ensemble(EnsembleConfig(runs=[str(r) for r in runs], out=str(tmp_path / "ens")))
    meta = json.loads((out / META_FILE).read_text())
    assert meta["arch"]["name"] == "ensemble" and meta["classes"] == CLASSES and meta["image_size"] == max(sizes)
    assert [m["name"] for m in meta["members"]] == ["a", "b"] and meta["temperature"] == 1.0
    for run in runs:  # the members are copied: the ensemble does not depend on the original runs
        assert (out / MEMBERS_DIR / run.name / WEIGHTS_FILE).read_bytes() == (run / WEIGHTS_FILE).read_bytes()
    x = torch.randint(0, 256, (5, 3, max(sizes), max(sizes)), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    expected = sum(member_probabilities(run, x.float() / 255) for run in runs) / len(runs)
    actual = Classifier(out, device="cpu", backend="torch", precision="fp32").probabilities(x)
    assert torch.allclose(actual, expected, atol=1e-5)
    assert not torch.allclose(actual, member_probabilities(runs[0], x.float() / 255), atol=1e-3)


def test_ensemble_loading_never_unpickles(two_runs, tmp_path: Path, monkeypatch):
    out = create_ensemble(EnsembleConfig(runs=[str(r) for r in two_runs], out=str(tmp_path / "ens")))

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used while loading an ensemble")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    assert load_bundle(out).classes == CLASSES


def test_members_with_other_classes_are_refused(tmp_path: Path, capsys):
    a = make_run(tmp_path / "a")
    b = make_run(tmp_path / "b", classes=["happy", "sad", "neutral"])
    assert main(["ensemble", str(a), str(b), "--out", str(tmp_path / "ens")]) == 2
    err = one_line_error(capsys)
    assert str(b) in err and "same order" in err
    assert not (tmp_path / "ens").exists()


@pytest.mark.parametrize("args, message", [
    (["a"], "at least two runs"),
    (["a", "b"], "needs --out"),
    (["a", "b", "--out", "a"], "holds the member run a"),
    (["ens/members/a", "b", "--out", "ens", "--overwrite"], "holds the member run ens/members/a"),
    (["a", "ens"], "is an ensemble itself"),
])
def test_bad_ensemble_commands(args, message, two_runs, tmp_path: Path, capsys, monkeypatch):
    create_ensemble(EnsembleConfig(runs=[str(r) for r in two_runs], out=str(tmp_path / "ens")))
    monkeypatch.chdir(tmp_path)
    assert main(["ensemble", *args] + (["--out", "new"] if "--out" not in args and message != "needs --out" else [])) == 2
    assert message in one_line_error(capsys)


def test_existing_output_needs_overwrite(two_runs, tmp_path: Path, capsys):
    runs = [str(r) for r in two_runs]
    assert main(["ensemble", *runs, "--out", str(tmp_path / "ens")]) == 0
    assert main(["ensemble", *runs, "--out", str(tmp_path / "ens")]) == 2
    assert "--overwrite" in one_line_error(capsys)
    assert main(["ensemble", runs[0], runs[0], "--out", str(tmp_path / "ens"), "--overwrite"]) == 0
    assert sorted(p.name for p in (tmp_path / "ens" / MEMBERS_DIR).iterdir()) == ["a", "a-2"]


def damage_members_list(out: Path) -> None:
    meta = json.loads((out / META_FILE).read_text())
    meta["members"] = "a,b"
    (out / META_FILE).write_text(json.dumps(meta))


def damage_member_path(out: Path) -> None:
    meta = json.loads((out / META_FILE).read_text())
    meta["members"][0]["name"] = "../../a"
    (out / META_FILE).write_text(json.dumps(meta))


@pytest.mark.parametrize("damage, message", [
    (lambda out: shutil.rmtree(out / MEMBERS_DIR / "b"), "member 'b' cannot be loaded"),
    (damage_members_list, "'members' must name"),
    (damage_member_path, "'members' must name"),
    (lambda out: (out / MEMBERS_DIR / "a" / WEIGHTS_FILE).write_bytes((out / MEMBERS_DIR / "b" / WEIGHTS_FILE).read_bytes()),
     "member 'a' cannot be loaded"),
    (lambda out: make_run(out / MEMBERS_DIR / "a", "cnn", 32, 1.5, seed=9), "weights differ from those the ensemble recorded"),
])
def test_damaged_ensemble_is_a_one_line_error(damage, message, two_runs, tmp_path: Path, capsys):
    out = create_ensemble(EnsembleConfig(runs=[str(r) for r in two_runs], out=str(tmp_path / "ens")))
    damage(out)
    with pytest.raises(BundleError, match=message):
        load_bundle(out)
    assert main(["predict", str(out), str(write_png(tmp_path / "x.png")), "--backend", "torch"]) == 2
    assert message in one_line_error(capsys)


def write_png(path: Path) -> Path:
    Image.new("RGB", (40, 40), (120, 80, 60)).save(path)
    return path


def test_explain_refuses_an_ensemble(two_runs, tmp_path: Path, capsys):
    out = create_ensemble(EnsembleConfig(runs=[str(r) for r in two_runs], out=str(tmp_path / "ens")))
    assert main(["explain", str(out), str(write_png(tmp_path / "x.png"))]) == 2
    assert "explain one of its members" in one_line_error(capsys)


def test_shared_splits_hold_out_only_what_every_member_held_out(tmp_path: Path):
    class Member:
        def __init__(self, path: Path, rows: str):
            path.mkdir()
            (path / "splits.csv").write_text("file,split,label\n" + rows)
            self.path = path

    a = Member(tmp_path / "a", "x.png,test,happy\ny.png,train,sad\nz.png,test,sad\nw.png,val,happy\n")
    b = Member(tmp_path / "b", "x.png,test,happy\ny.png,test,sad\nz.png,train,sad\nw.png,test,happy\n")
    write_shared_splits([a, b], tmp_path / "splits.csv")
    assert (tmp_path / "splits.csv").read_text() == ("file,split,label,source\nw.png,val,happy,\nx.png,test,happy,\n"
                                                     "y.png,train,sad,\nz.png,train,sad,\n")


def test_serving_an_ensemble(two_runs, tmp_path: Path):
    pytest.importorskip("httpx2")
    from babyface.config import ServeConfig
    from babyface.serve.app import create_app
    from tests.conftest import local_client

    out = create_ensemble(EnsembleConfig(runs=[str(r) for r in two_runs], out=str(tmp_path / "ens")))
    client = local_client(create_app(ServeConfig(run=str(out), device="cpu", detector="haar", tta="flip")))
    model = client.get("/model").json()
    assert model["arch"]["name"] == "ensemble" and model["tta"] == "flip"
    buffer = io.BytesIO()
    Image.new("RGB", (60, 60), (200, 150, 120)).save(buffer, format="PNG")
    files = {"image": ("x.png", buffer.getvalue(), "image/png")}
    face = client.post("/predict", files=files).json()["faces"][0]
    assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    refused = client.post("/predict", files=files, params={"gradcam": "true"})
    assert refused.status_code == 400 and "ensemble" in refused.json()["detail"] and str(tmp_path) not in refused.json()["detail"]


def test_export_of_an_ensemble_is_one_graph_with_parity(tmp_path: Path, capsys):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    runs = [make_run(tmp_path / "a", "cnn", 32, 1.5, seed=1), make_run(tmp_path / "b", "resnet18", 48, 0.7, seed=2)]
    out = create_ensemble(EnsembleConfig(runs=[str(r) for r in runs], out=str(tmp_path / "ens")))
    assert main(["export", str(out)]) == 0
    parity = json.loads((out / "model.parity.json").read_text())
    assert parity["passed"] and parity["max_abs_logit_diff"] < 1e-4
    x = torch.randint(0, 256, (6, 3, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    for tta in ("none", "flip"):
        onnx = Classifier(out, backend="onnx", tta=tta)
        assert onnx.backend.name == "onnx"
        assert torch.allclose(onnx.probabilities(x), Classifier(out, device="cpu", backend="torch", tta=tta, precision="fp32").probabilities(x),
                              atol=1e-5)
    # the ONNX file is tied to the members' weights: a member changed under the ensemble is noticed
    make_run(out / MEMBERS_DIR / "a", "cnn", 32, 1.5, seed=5)
    assert main(["predict", str(out), str(write_png(tmp_path / "x.png")), "--backend", "onnx"]) == 2
    assert "exported from other weights" in one_line_error(capsys)
