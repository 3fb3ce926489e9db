"""Fast checks of the figures: valid PNGs, no temp files left, edge cases, grid sample selection."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from babyface.plots import (
    plot_confusion_matrix,
    plot_learning_curves,
    plot_prediction_grid,
    select_grid_samples,
)

CLASSES = ["happy", "sad", "neutral"]


def _history(epochs: int) -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {
            "epoch": e,
            "train_loss": 1.1 / e,
            "val_loss": 1.2 / e + 0.1,
            "train_acc": 1 - 0.6 / e,
            "val_acc": 0.7 + rng.uniform(-0.05, 0.05),
            "val_macro_f1": 0.65 + rng.uniform(-0.05, 0.05),
            "lr": 1e-3,
            "seconds": 3.2,
        }
        for e in range(1, epochs + 1)
    ]


def _assert_png(path: Path, min_side: int = 200, max_side: int = 4000) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert min_side <= width <= max_side and min_side <= height <= max_side
    leftovers = [p.name for p in path.parent.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == []


@pytest.mark.parametrize("epochs", [1, 23])
def test_learning_curves_png(tmp_path: Path, epochs: int) -> None:
    out = plot_learning_curves(_history(epochs), tmp_path / "curves.png", title="run")
    assert out == tmp_path / "curves.png"
    _assert_png(out)


def test_learning_curves_empty_history_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        plot_learning_curves([], tmp_path / "curves.png")


def test_confusion_matrix_png(tmp_path: Path) -> None:
    cm = np.array([[42, 5, 3], [7, 30, 13], [4, 9, 60]])
    _assert_png(plot_confusion_matrix(cm, CLASSES, tmp_path / "cm.png", title="test"))


def test_confusion_matrix_zero_row_without_warnings(tmp_path: Path) -> None:
    cm = np.array([[42, 5, 3], [0, 0, 0], [4, 9, 60]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = plot_confusion_matrix(cm, CLASSES, tmp_path / "cm.png")
    _assert_png(out)


def test_confusion_matrix_all_zero(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _assert_png(plot_confusion_matrix(np.zeros((3, 3), dtype=int), CLASSES, tmp_path / "cm.png"))


def test_confusion_matrix_shape_mismatch(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        plot_confusion_matrix(np.zeros((2, 2)), CLASSES, tmp_path / "cm.png")


@pytest.mark.parametrize("count", [1, 7, 18])
def test_prediction_grid_png(tmp_path: Path, count: int) -> None:
    rng = np.random.default_rng(count)
    images = [rng.integers(0, 256, (48, 48, 3), dtype=np.uint8) for _ in range(count)]
    true = [CLASSES[i % 3] for i in range(count)]
    pred = [CLASSES[(i // 2) % 3] for i in range(count)]
    out = plot_prediction_grid(images, true, pred, list(rng.uniform(0.3, 1.0, count)), tmp_path / "grid.png")
    _assert_png(out, min_side=150)


def test_prediction_grid_rejects_empty_and_mismatched(tmp_path: Path) -> None:
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError):
        plot_prediction_grid([], [], [], [], tmp_path / "grid.png")
    with pytest.raises(ValueError):
        plot_prediction_grid([image], ["happy", "sad"], ["sad"], [0.5], tmp_path / "grid.png")


def _labels(size: int, error_rate: float, seed: int = 0) -> tuple[list[int], list[int], list[float]]:
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 3, size)
    wrong = rng.random(size) < error_rate
    pred = np.where(wrong, (true + rng.integers(1, 3, size)) % 3, true)
    return true.tolist(), pred.tolist(), rng.uniform(0.34, 1.0, size).tolist()


def test_select_mixes_correct_and_wrong() -> None:
    true, pred, conf = _labels(200, 0.3)
    picked = select_grid_samples(true, pred, conf, n=18)
    n_wrong = sum(true[i] != pred[i] for i in picked)
    assert len(picked) == len(set(picked)) == 18
    assert n_wrong == 9
    assert {true[i] for i in picked} == {0, 1, 2}


def test_select_fills_with_wrong_when_few_correct() -> None:
    true, pred, conf = [0, 1, 2, 0, 1], [1, 2, 0, 0, 1], [0.9] * 5
    picked = select_grid_samples(true, pred, conf, n=4)
    assert len(picked) == 4
    assert {3, 4} <= set(picked)


def test_select_only_correct_when_no_mistakes() -> None:
    true, _, conf = _labels(50, 0.0)
    picked = select_grid_samples(true, true, conf, n=18)
    assert len(picked) == 18
    assert {true[i] for i in picked} == {0, 1, 2}


def test_select_is_deterministic_per_seed() -> None:
    true, pred, conf = _labels(300, 0.2)
    first = select_grid_samples(true, pred, conf, n=12, seed=3)
    assert first == select_grid_samples(true, pred, conf, n=12, seed=3)
    assert first != select_grid_samples(true, pred, conf, n=12, seed=4)


@pytest.mark.parametrize("size", [0, 1, 5])
def test_select_never_returns_more_than_available(size: int) -> None:
    true, pred, conf = _labels(size, 0.5)
    picked = select_grid_samples(true, pred, conf, n=18)
    assert len(picked) == size
    assert sorted(picked) == list(range(size))


def test_cv_folds_name_the_held_out_sources(tmp_path, monkeypatch):
    import babyface.plots as plots

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig) or Path(path))
    scores = {"accuracy": 0.8, "accuracy_ci": [0.7, 0.9], "macro_f1": 0.7, "macro_f1_ci": [0.6, 0.8]}
    loso = [{**scores, "held_out": "source utk-infant-faces+utk-infant-smile"}, {**scores, "held_out": "source cry"}]
    plots.plot_cv_folds(loso, scores, tmp_path / "a.png", title="x" * 200)
    labels = [t.get_text().replace("\n", "") for t in figures[0].axes[0].get_xticklabels()]
    assert labels == ["utk-infant-faces + utk-infant-smile", "cry"] and figures[0].axes[0].get_xlabel() == "held-out source"
    assert len(figures[0].get_suptitle()) <= 90
    plots.plot_cv_folds([{**scores, "held_out": "part 1 of the groups"}] * 2, scores, tmp_path / "b.png")
    assert figures[1].axes[0].get_xlabel() == "fold"
