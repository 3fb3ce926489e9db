"""The training ingredients of the infant recipe: mixing, erasing, resized crops, EMA, --init,
frozen stages, source balancing, per-class limits and the recipe files themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from babyface.bundle import load_bundle
from babyface.bundle.single import bundle_metadata, save_bundle
from babyface.config import (
    AugmentConfig,
    ExportConfig,
    TrainConfig,
    from_dict,
    load_recipe,
    parse_seeds,
    recipe_names,
    with_recipe,
)
from babyface.data.augment import affine_matrices, apply_params, draw_params, erase, erase_boxes
from babyface.data.mix import mix_batch, mixed_loss
from babyface.data.splits import limit_per_class
from babyface.errors import BabyfaceError
from babyface.inference.backends import OnnxBackend, TorchBackend
from babyface.inference.export import export_run
from babyface.models import create_model
from babyface.training.finetune import freeze_stages, init_from, load_init_run, parameter_groups, train_mode
from babyface.training.fit import fit
from babyface.training.trainer import ema_with_warmup


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- mixing

def test_mixup_is_a_convex_combination_with_the_reversed_batch():
    images = torch.rand(6, 3, 8, 8)
    mixed, lam = mix_batch(images, mixup=0.4, cutmix=0.0, generator=generator())
    assert 0 <= lam <= 1 and lam != 1.0
    assert torch.allclose(mixed, lam * images + (1 - lam) * images.flip(0))


def test_cutmix_pastes_a_box_and_lambda_is_the_unpasted_share():
    images = torch.zeros(4, 3, 16, 16)
    images[2:] = 1.0  # the partner of image 0 (reversed batch) is all ones
    for seed in range(20):
        mixed, lam = mix_batch(images, mixup=0.0, cutmix=1.0, generator=generator(seed))
        pasted = mixed[0].mean().item()
        assert pasted == pytest.approx(1 - lam, abs=1e-6)


def test_mixing_repeats_with_the_same_generator_and_is_off_by_default():
    images = torch.rand(5, 3, 8, 8)
    a = mix_batch(images, 0.2, 1.0, generator(3))
    b = mix_batch(images, 0.2, 1.0, generator(3))
    assert a[1] == b[1] and torch.equal(a[0], b[0])
    same, lam = mix_batch(images, 0.0, 0.0, generator())
    assert lam == 1.0 and same is images


def test_mixed_loss_weights_both_labels():
    logits, labels = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    loss_fn = nn.CrossEntropyLoss()
    expected = 0.3 * loss_fn(logits, labels) + 0.7 * loss_fn(logits, labels.flip(0))
    assert mixed_loss(loss_fn, logits, labels, 0.3) == pytest.approx(expected.item())
    assert mixed_loss(loss_fn, logits, labels, 1.0) == pytest.approx(loss_fn(logits, labels).item())


# ---------------------------------------------------------------- augmentation additions

def test_erasing_boxes_have_the_configured_probability_and_area():
    boxes = erase_boxes(4000, 0.25, generator())
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    erased = area > 0
    assert 0.22 < erased.float().mean() < 0.28
    assert area[erased].min() >= 0.0199 and area[erased].max() <= 0.331
    assert (boxes[erased, 2] <= 1 + 1e-9).all() and (boxes[erased, 3] <= 1 + 1e-9).all()


def test_erase_fills_the_box_with_the_image_mean_and_nothing_else():
    x = torch.rand(2, 3, 10, 10)
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    out = erase(x, boxes)
    assert torch.equal(out[1], x[1])
    assert torch.allclose(out[0, :, :5, :5], x[0].mean(dim=(1, 2)).view(3, 1, 1).expand(3, 5, 5))
    assert torch.equal(out[0, :, 5:, :], x[0, :, 5:, :])


def test_resized_crop_zooms_into_a_share_of_the_image_that_stays_inside_it():
    config = AugmentConfig(hflip=0, rotation=0, shear=0, scale_min=1, scale_max=1, crop_scale=0.5)
    theta = affine_matrices(3000, config, generator())
    sides = torch.stack([theta[:, 0, 0], theta[:, 1, 1]], dim=1)
    area = sides.prod(dim=1)
    assert area.min() >= 0.5 - 1e-9 and area.max() <= 1 + 1e-9 and area.min() < 0.55
    assert (theta[:, :, 2].abs() <= (1 - sides) + 1e-9).all()  # the crop never leaves the image
    assert theta[:, 0, 1].abs().max() < 1e-12  # no rotation or shear was configured


def test_defaults_leave_erasing_and_crop_off():
    params = draw_params(8, AugmentConfig(), generator())
    assert params.erase is None
    plain = AugmentConfig(hflip=0, rotation=0, shear=0, scale_min=1, scale_max=1)
    assert draw_params(4, plain, generator()).theta is None
    x = torch.rand(3, 3, 8, 8)
    assert apply_params(x, draw_params(3, AugmentConfig(enabled=True, erasing=1.0, brightness=0, contrast=0, saturation=0,
                                                       grayscale=0, hflip=0, rotation=0, shear=0, scale_min=1, scale_max=1),
                                       generator())).ne(x).any()


# ---------------------------------------------------------------- EMA, sampling, limits

def test_ema_warms_up_then_uses_the_configured_decay():
    update = ema_with_warmup(0.99)
    averaged, current = torch.zeros(1), torch.ones(1)
    assert update(averaged, current, torch.tensor(0)).item() == pytest.approx(0.9)  # rate 1/10 at the start
    assert update(averaged, current, torch.tensor(10_000)).item() == pytest.approx(0.01)
    counts = torch.tensor([3])
    assert torch.equal(update(torch.tensor([1]), counts, torch.tensor(5)), counts)  # integer buffers are copied


def test_limit_per_class_keeps_at_most_n_of_each_key_reproducibly():
    keys = [("a", 0)] * 10 + [("a", 1)] * 3 + [("b", 0)] * 7
    kept = limit_per_class(keys, 4, seed=1)
    assert [keys[i] for i in kept].count(("a", 0)) == 4 and [keys[i] for i in kept].count(("a", 1)) == 3
    assert kept == limit_per_class(keys, 4, seed=1) and kept != limit_per_class(keys, 4, seed=2)
    assert limit_per_class(keys, 0, seed=1) == list(range(20))


# ---------------------------------------------------------------- --init and frozen stages

def saved_run(tmp_path: Path, name: str, arch: str, classes: list[str], image_size: int = 32, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = create_model(arch, len(classes), image_size)
    folder = tmp_path / name
    save_bundle(folder, model, bundle_metadata(model, classes, image_size, [0.4] * 3, [0.2] * 3))
    return folder


@pytest.mark.parametrize("arch", ["cnn", "resnet18"])
def test_init_copies_weights_and_matches_classifier_rows_by_class_name(tmp_path, arch):
    run = saved_run(tmp_path, "pre", arch, ["happy", "neutral", "sad"])
    bundle = load_bundle(run)
    torch.manual_seed(1)
    model = create_model(arch, 2, 32)
    init_from(model, bundle, ["sad", "happy"])
    source, target = bundle.model.state_dict(), model.state_dict()
    head = [k for k in target if source[k].shape != target[k].shape]
    assert head and all(k in target for k in head)
    for key in target:
        if key in head:
            assert torch.equal(target[key][0], source[key][2]) and torch.equal(target[key][1], source[key][0])
        else:
            assert torch.equal(target[key], source[key])


def test_init_keeps_fresh_rows_for_new_classes(tmp_path):
    bundle = load_bundle(saved_run(tmp_path, "pre", "resnet18", ["happy", "sad"]))
    torch.manual_seed(5)
    model = create_model("resnet18", 3, 32)
    fresh = model.fc.weight.detach().clone()
    init_from(model, bundle, ["happy", "neutral", "sad"])
    assert torch.equal(model.fc.weight[1], fresh[1])
    assert torch.equal(model.fc.weight[2], bundle.model.fc.weight[1])


def test_init_refuses_another_architecture_or_image_size(tmp_path):
    run = saved_run(tmp_path, "pre", "cnn", ["happy", "sad"], image_size=48)
    with pytest.raises(BabyfaceError, match="pass --model cnn"):
        load_init_run(run, "resnet18")
    with pytest.raises(BabyfaceError, match="same architecture, options and image size"):
        init_from(create_model("cnn", 2, 64), load_bundle(run), ["happy", "sad"])


def test_frozen_stages_get_no_updates_and_keep_batchnorm_statistics():
    model = create_model("resnet18", 3, 32)
    freeze_stages(model, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    train_mode(model)
    nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 0])).backward()
    optimizer.step()
    after = model.state_dict()
    frozen = [k for k in after if k.startswith(("stem.", "layer1."))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert not torch.equal(before["layer2.0.conv1.weight"], after["layer2.0.conv1.weight"])
    assert not torch.equal(before["layer2.0.bn1.running_mean"], after["layer2.0.bn1.running_mean"])
    with pytest.raises(BabyfaceError, match="only 5 stages"):
        freeze_stages(create_model("resnet18", 3, 32), 6)


def test_parameter_groups_scale_everything_but_the_classifier():
    model = create_model("cnn", 3, 32)
    groups = parameter_groups(model, 1e-3, 0.1)
    assert [g["lr"] for g in groups] == pytest.approx([1e-4, 1e-3])
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in model.parameters())
    assert groups[1]["params"][0] is model.classifier[-1].weight


# ---------------------------------------------------------------- recipes

def test_infant_recipe_ships_and_is_a_valid_train_config():
    assert {"infant", "infant-v1", "infant-v2"} <= set(recipe_names())
    config = from_dict(TrainConfig, with_recipe({"recipe": "infant"}))
    assert config.model == "xception-mini" and config.color == "gray" and config.data_options.image_size == 48
    assert config.class_balance == "sampler" and parse_seeds(config.seeds) == [0, 1, 2]
    assert config.decide_over == ["happy", "neutral", "sad"] and config.data_options.group_by == "near-duplicates"
    assert config.missing_classes == "off"
    assert config.augment == AugmentConfig()  # the reference's augmentation


def test_the_second_infant_recipe_is_kept_as_it_was_measured():
    config = from_dict(TrainConfig, with_recipe({"recipe": "infant-v2"}))
    assert config.model == "resnet18" and config.class_balance == "source" and parse_seeds(config.seeds) == [0, 1, 2]
    assert config.lr == TrainConfig().lr and config.decide_over == []


def test_fast_recipe_is_a_valid_train_config_at_48_px():
    assert "fast" in recipe_names()
    config = from_dict(TrainConfig, with_recipe({"recipe": "fast"}))
    assert config.model == "xception-mini" and config.data_options.image_size == 48
    assert config.batch_size > TrainConfig().batch_size and config.scheduler == "cosine" and config.channels_last == "auto"
    assert config.color == "gray" and TrainConfig().color == "rgb"  # the reference sees colour


def test_fast_recipe_trains_a_step_and_exports_to_onnx(tiny_data: Path, tmp_path: Path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "fast"
    config = from_dict(TrainConfig, with_recipe({"recipe": "fast", "data": str(tiny_data), "out": str(out), "epochs": 1,
                                                 "progress": False}))
    fit(config)
    assert load_bundle(out).meta.arch.name == "xception-mini" and load_bundle(out).meta.color == "gray"
    export_run(ExportConfig(run=str(out)))
    images = torch.randint(0, 256, (3, 3, 48, 48), dtype=torch.uint8)
    expected = TorchBackend(out, torch.device("cpu")).logits(images, 8)
    assert torch.allclose(OnnxBackend(out).logits(images, 8), expected, atol=1e-4)


def test_first_recipe_keeps_its_regularisers():
    config = from_dict(TrainConfig, with_recipe({"recipe": "infant-v1"}))
    assert config.mixup > 0 and config.augment.crop_scale < 1 and config.ema > 0 and config.augment.erasing > 0
    assert config.augment.rotation == AugmentConfig().rotation  # what the recipe does not set keeps its default


def test_flags_and_config_files_override_the_recipe(tmp_path):
    config = from_dict(TrainConfig, with_recipe({"recipe": "infant-v1", "epochs": 3, "augment": {"erasing": 0.0}}))
    assert config.epochs == 3 and config.augment.erasing == 0.0
    assert config.augment.crop_scale == load_recipe("infant-v1")["augment"]["crop_scale"]
    assert from_dict(TrainConfig, with_recipe({"recipe": "infant", "seeds": ""})).seeds == ""
    own = tmp_path / "mine.yaml"
    own.write_text("model: cnn\nepochs: 2\n")
    assert from_dict(TrainConfig, with_recipe({"recipe": str(own)})).model == "cnn"


def test_unknown_recipe_names_the_available_ones():
    with pytest.raises(BabyfaceError, match="available: .*infant"):
        load_recipe("toddler")


def test_configs_folder_holds_the_shipped_recipe():
    shipped = Path(__file__).resolve().parents[1] / "configs" / "infant.yaml"
    assert shipped.read_text() == (Path(__file__).resolve().parents[1] / "src/babyface/recipes/infant.yaml").read_text()


def test_model_options_add_to_the_recipes_for_its_model_and_another_model_drops_them():
    config = from_dict(TrainConfig, with_recipe({"recipe": "infant", "model_args": {"stem_stride": 1}}))
    assert config.model_args == {"width": 32, "stem_stride": 1}
    other = from_dict(TrainConfig, with_recipe({"recipe": "infant", "model": "cnn"}))
    assert other.model == "cnn" and other.model_args == {}
    assert from_dict(TrainConfig, with_recipe({"recipe": "infant", "model": "resnet18", "model_args": {"stem": "small"}})).model_args == {"stem": "small"}
