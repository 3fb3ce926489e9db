"""Unit tests of the training pieces: schedules, class balance, batching, normalisation statistics, metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from babyface.config import TrainConfig
from babyface.data.decoded import channel_stats
from babyface.errors import BabyfaceError
from babyface.forward import index_batches, normalise, resolve_device
from babyface.metrics import classification_metrics, macro_f1
from babyface.models import create_model
from babyface.training.coverage import sampling_weights, source_coverage
from babyface.training.objective import class_weights, epoch_order
from babyface.training.trainer import build_optimizer, build_scheduler


def lrs(config: TrainConfig, epochs: int) -> list[float]:
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config)
    out = []
    for _ in range(epochs):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_default_schedule_is_the_reference_steplr():
    config = TrainConfig()
    values = lrs(config, 23)
    reference = torch.optim.lr_scheduler.StepLR(torch.optim.Adam(torch.nn.Linear(2, 2).parameters(), lr=1e-3), 15, 0.3)
    expected = []
    for _ in range(23):
        expected.append(reference.get_last_lr()[0])
        reference.optimizer.step()
        reference.step()
    assert values == pytest.approx(expected)
    assert values[14] == pytest.approx(1e-3) and values[15] == pytest.approx(3e-4)


def test_cosine_with_warmup_rises_then_falls_to_zero():
    values = lrs(TrainConfig(scheduler="cosine", warmup_epochs=3, epochs=13), 13)
    assert values[0] < values[1] < values[2] < values[3] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(values[3:], values[4:]))
    assert values[-1] < 0.05e-3


@pytest.mark.parametrize("name, kind", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)])
def test_optimizer_choice(name, kind):
    assert isinstance(build_optimizer(torch.nn.Linear(2, 2), TrainConfig(optimizer=name)), kind)


def test_class_weights_are_inverse_frequency():
    weights = class_weights(torch.tensor([0, 0, 0, 1]), 3)
    assert weights[0] == pytest.approx(4 / 9) and weights[1] == pytest.approx(4 / 3) and weights[2] == 0


def test_balanced_sampler_draws_classes_equally():
    labels = torch.tensor([0] * 90 + [1] * 10)
    coverage = source_coverage(labels, [""] * 100, ["a", "b"])
    order = epoch_order(100, sampling_weights(coverage, "sampler"), torch.Generator().manual_seed(0))
    share = (labels[order] == 1).float().mean().item()
    assert len(order) == 100 and 0.35 < share < 0.65
    plain = epoch_order(100, sampling_weights(coverage, "none"), torch.Generator().manual_seed(0))
    assert sorted(plain.tolist()) == list(range(100))


@pytest.mark.parametrize("n, size, expected", [(41, 20, [20, 21]), (40, 20, [20, 20]), (45, 20, [20, 20, 5]), (1, 20, [1])])
def test_index_batches_never_leaves_a_batch_of_one(n, size, expected):
    batches = list(index_batches(n, size))
    assert [len(b) for b in batches] == expected
    assert torch.cat(batches).tolist() == list(range(n))


def test_channel_stats_are_exact_over_all_pixels():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, size=(37, 3, 9, 11), dtype=np.uint8))
    mean, std = channel_stats(images)
    values = images.numpy().astype(np.float64) / 255
    assert mean == pytest.approx(values.mean(axis=(0, 2, 3)), abs=1e-6)
    assert std == pytest.approx(values.std(axis=(0, 2, 3)), abs=1e-6)


def test_channel_stats_of_a_gray_model_are_the_luminance_stats_in_every_channel():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, size=(5, 3, 8, 8), dtype=np.uint8))
    mean, std = channel_stats(images, gray=True)
    luma = np.tensordot([0.299, 0.587, 0.114], images.numpy().astype(np.float64) / 255, axes=([0], [1]))
    assert mean == pytest.approx([luma.mean()] * 3, abs=1e-6) and std == pytest.approx([luma.std()] * 3, abs=1e-6)


def test_normalise_uses_mean_and_std():
    images = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    assert torch.allclose(normalise(images, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]), torch.full((1, 3, 2, 2), 2.0))


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(BabyfaceError, match="device"):
        resolve_device("banana")
    if not torch.cuda.is_available():
        with pytest.raises(BabyfaceError, match="CUDA is not available"):
            resolve_device("cuda")


def test_metrics_match_hand_counts():
    m = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3) and m["per_class"]["c"]["support"] == 1
    assert macro_f1([0, 0, 1], [0, 0, 1]) == 1.0


def test_macro_f1_ignores_classes_absent_from_truth():
    # a 3-class model evaluated on happy/sad data must not be punished for the absent class
    assert macro_f1([0, 2, 2], [0, 2, 2]) == 1.0


def test_training_steps_fit_a_fixed_batch():
    torch.manual_seed(0)
    model = create_model("cnn", 3, 32, drop_rate=0.0)
    x, y = torch.randn(8, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    optimizer = build_optimizer(model, TrainConfig())
    model.train()
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert (model(x).argmax(1) == y).all()


def test_without_validation_the_last_epoch_is_kept_and_no_score_is_made_up():
    from babyface.training.checkpoint import improves_on_best

    nan = {"val_macro_f1": float("nan")}
    assert improves_on_best(nan, {"val_macro_f1": None, "epoch": 3})  # no validation split: every epoch replaces the last
    assert improves_on_best({"val_macro_f1": 0.5}, {"val_macro_f1": None, "epoch": 0})
    assert improves_on_best({"val_macro_f1": 0.6}, {"val_macro_f1": 0.5, "epoch": 2})
    assert not improves_on_best({"val_macro_f1": 0.5}, {"val_macro_f1": 0.5, "epoch": 2})


def test_epoch_line_says_when_there_is_no_validation_split():
    from babyface.training.fit import _format_epoch

    row = {"epoch": 2, "train_loss": 0.5, "train_acc": 0.8, "lr": 1e-3, "seconds": 3.0}
    nan = float("nan")
    line = _format_epoch({**row, "val_loss": nan, "val_acc": nan, "val_macro_f1": nan}, 5)
    assert "no validation split" in line and "nan" not in line
    assert "val loss 0.4000 acc 0.9000 macro-F1 0.8500" in _format_epoch({**row, "val_loss": 0.4, "val_acc": 0.9, "val_macro_f1": 0.85}, 5)
