"""training.prepare, trainer and checkpoint: PreparedData carries what the bundle records (label map, source folders,
framing, the normalisation an --init run expects), build_model leaves it as it was, a Trainer's checkpoint round-trips."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from babyface.bundle import load_bundle
from babyface.bundle.single import bundle_metadata, save_bundle
from babyface.config import DataConfig, TrainConfig
from babyface.faces.framing import WHOLE, Framing, write_framing_file
from babyface.models import create_model
from babyface.training.checkpoint import TrainingState, restore_checkpoint, save_checkpoint
from babyface.training.compute import Compute
from babyface.training.distributed import DistInfo
from babyface.training.fit import build_model, train_one_epoch
from babyface.training.prepare import PreparedData, prepare_data
from babyface.training.trainer import build_trainer

SIZE = 32


def config_for(data: Path, **options) -> TrainConfig:
    return TrainConfig(data=str(data), model="cnn", batch_size=8, progress=False, seed=2, precision="fp32",
                       channels_last="off", data_options=DataConfig(image_size=SIZE, leakage_check=False, **options))


@pytest.fixture(scope="module")
def prepared(tiny_data: Path) -> PreparedData:
    return prepare_data(config_for(tiny_data))


def test_prepared_data_carries_the_label_map_source_folders_and_framing(tiny_data, tmp_path):
    label_map = tmp_path / "labels.yaml"
    label_map.write_text("happy: happy\nneutral: neutral\nsad: sad\n")
    cropped = tmp_path / "cropped"
    shutil.copytree(tiny_data, cropped)
    write_framing_file(cropped, Framing())  # as `data crop` leaves its output folder
    plain = prepare_data(config_for(tiny_data))
    assert (plain.label_map, plain.source_folders, plain.framing) == ({}, [tiny_data], WHOLE)
    data = prepare_data(config_for(cropped, label_map=str(label_map)))
    assert data.label_map == {"happy": "happy", "neutral": "neutral", "sad": "sad"}
    assert data.source_folders == [cropped] and data.framing == Framing().record()
    assert prepare_data(config_for(cropped, framing="whole")).framing == WHOLE


def test_an_init_runs_normalisation_replaces_the_measured_one(tiny_data, prepared):
    given = ([0.1, 0.2, 0.3], [0.4, 0.5, 0.6])
    data = prepare_data(config_for(tiny_data), normalisation=given)
    assert (data.mean, data.std) == given and (prepared.mean, prepared.std) != given
    assert torch.equal(data.train.images, prepared.train.images)


def test_build_model_from_an_init_run_leaves_the_prepared_data_as_it_was(tmp_path, prepared):
    pretrained = create_model("cnn", len(prepared.classes), SIZE)
    save_bundle(tmp_path / "pre", pretrained, bundle_metadata(pretrained, prepared.classes, SIZE, [0.4] * 3, [0.2] * 3))
    before = (list(prepared.mean), list(prepared.std))
    model = build_model(TrainConfig(model="cnn", data_options=DataConfig(image_size=SIZE)), prepared,
                        load_bundle(tmp_path / "pre"))
    assert (prepared.mean, prepared.std) == before
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), pretrained.state_dict().values()))


def test_a_trainers_checkpoint_restores_every_state_into_a_fresh_trainer(tmp_path, tiny_data, prepared):
    config = config_for(tiny_data).replace(ema=0.9, epochs=2)

    def fresh():
        torch.manual_seed(0)
        return build_trainer(config, prepared, create_model("cnn", 3, SIZE), torch.device("cpu"), DistInfo(), Compute())

    trained = fresh()
    train_one_epoch(trained)
    trained.scheduler.step()
    save_checkpoint(tmp_path / "checkpoint.pt", trained, TrainingState(epoch=1, history=[{"epoch": 1}]))
    resumed = fresh()
    state = restore_checkpoint(tmp_path / "checkpoint.pt", resumed)
    assert (state.epoch, state.saved_epoch, state.history) == (1, 1, [{"epoch": 1}])
    for a, b in ((trained.network, resumed.network), (trained.evaluated, resumed.evaluated)):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert torch.equal(trained.generator.get_state(), resumed.generator.get_state())
    assert resumed.scheduler.last_epoch == 1 and resumed.evaluated is resumed.ema.module
    rng = torch.get_rng_state()  # as restored: dropout draws from it
    again = train_one_epoch(trained)
    torch.set_rng_state(rng)
    assert train_one_epoch(resumed) == again  # the second epoch goes on identically
