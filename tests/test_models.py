"""Model registry and architectures: shapes, gradients, rebuilds, sizes, FLOPs and errors (CPU, fast)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from torch import nn

from babyface.errors import BabyfaceError
from babyface.models import create_model, list_models, model_info, model_options, register_model
from babyface.models.resnet import STEMS, BasicBlock

NUM_CLASSES = 3
SMALL_SIZE = 32  # for checks that do not depend on the input size: keeps the suite fast


def _configs() -> list[Any]:
    """One (name, options) per model, and one per stem for models that have a stem option."""
    configs = []
    for name in list_models():
        stems = STEMS if "stem" in model_options(name) else (None,)
        for stem in stems:
            options = {} if stem is None else {"stem": stem}
            configs.append(pytest.param(name, options, id=name if stem is None else f"{name}-{stem}"))
    return configs


CONFIGS = _configs()
RESNETS = [name for name in list_models() if name.startswith("resnet")]


def _images(batch: int, size: int) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(("name", "options"), CONFIGS)
def test_forward_shape_and_finite_gradients(name: str, options: dict) -> None:
    model = create_model(name, NUM_CLASSES, **options).train()
    logits = model(_images(2, 64))
    assert logits.shape == (2, NUM_CLASSES)
    logits.logsumexp(dim=1).sum().backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name


@pytest.mark.parametrize(("name", "options"), CONFIGS)
def test_eval_mode_is_deterministic(name: str, options: dict) -> None:
    model = create_model(name, NUM_CLASSES, SMALL_SIZE, **options).eval()
    x = _images(2, SMALL_SIZE)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


@pytest.mark.parametrize(("name", "options"), CONFIGS)
def test_rebuild_from_arch_attributes(name: str, options: dict) -> None:
    model = create_model(name, NUM_CLASSES, SMALL_SIZE, **options).eval()
    assert model.arch_name == name
    arch_kwargs = json.loads(json.dumps(model.arch_kwargs))  # as a saved bundle would store it
    assert arch_kwargs.items() >= options.items()

    rebuilt = create_model(model.arch_name, NUM_CLASSES, SMALL_SIZE, **arch_kwargs).eval()
    original_shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == original_shapes

    rebuilt.load_state_dict(model.state_dict())
    x = _images(1, SMALL_SIZE)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))


@pytest.mark.parametrize(("name", "options"), CONFIGS)
def test_model_info(name: str, options: dict) -> None:
    info = model_info(name, **options)
    model = create_model(name, NUM_CLASSES, **options)
    assert info["name"] == name
    assert info["params"] == sum(p.numel() for p in model.parameters())
    assert info["flops"] > 0
    assert info["description"] and "\n" not in info["description"]


@pytest.mark.parametrize(("name", "options"), CONFIGS)
def test_gradcam_layer_is_last_conv_stage(name: str, options: dict) -> None:
    model = create_model(name, NUM_CLASSES, SMALL_SIZE, **options).eval()
    expected = {"cnn": lambda: model.features[-1], "xception-mini": lambda: model.blocks[-1]}.get(name, lambda: model.layer4)()
    assert model.gradcam_layer is expected
    activations = []
    model.gradcam_layer.register_forward_hook(lambda _m, _i, out: activations.append(out))
    with torch.no_grad():
        model(_images(1, SMALL_SIZE))
    assert activations and activations[0].dim() == 4


def test_list_models_is_sorted_and_complete() -> None:
    assert list_models() == sorted(list_models())
    assert {"cnn", "resnet18", "resnet34", "xception-mini"} <= set(list_models())


@pytest.mark.parametrize(("stem", "expected"), [("imagenet", 11_178_051), ("small", 11_170_371)])
def test_resnet18_param_count(stem: str, expected: int) -> None:
    """Same counts as torchvision's resnet18(num_classes=3) (≈ 11.17M); the small stem's conv is 3×3."""
    assert model_info("resnet18", stem=stem)["params"] == expected


def test_resnet34_param_count() -> None:
    assert model_info("resnet34")["params"] == 21_286_211


@pytest.mark.parametrize(("image_size", "fc_inputs"), [(64, 4096), (48, 2304), (32, 1024)])
def test_cnn_head_input_follows_image_size(image_size: int, fc_inputs: int) -> None:
    model = create_model("cnn", NUM_CLASSES, image_size)
    first_linear = next(m for m in model.classifier if isinstance(m, nn.Linear))
    assert (first_linear.in_features, first_linear.out_features) == (fc_inputs, 1024)
    assert model(_images(2, image_size)).shape == (2, NUM_CLASSES)


def test_resnet18_small_stem_costs_more_flops() -> None:
    small = model_info("resnet18", stem="small")["flops"]
    imagenet = model_info("resnet18", stem="imagenet")["flops"]
    assert small > imagenet > 0


@pytest.mark.parametrize("size", [40, 96])
def test_resnet_accepts_other_input_sizes(size: int) -> None:
    model = create_model("resnet18", NUM_CLASSES).eval()
    with torch.no_grad():
        assert model(_images(1, size)).shape == (1, NUM_CLASSES)


def test_cnn_rejects_wrong_input_size_clearly() -> None:
    model = create_model("cnn", NUM_CLASSES, 64)
    message = "cnn was built for 64×64 inputs, got 48×48; resize images to 64 or rebuild with image_size=48"
    with pytest.raises(ValueError, match=message):
        model(_images(1, 48))


@pytest.mark.parametrize("image_size", [50, 16, 0, "64", 64.0])
def test_cnn_rejects_invalid_image_size(image_size: Any) -> None:
    with pytest.raises(BabyfaceError, match="multiple of 16"):
        create_model("cnn", NUM_CLASSES, image_size)


def test_resnet_rejects_too_small_image_size() -> None:
    with pytest.raises(BabyfaceError, match="image_size"):
        create_model("resnet18", NUM_CLASSES, 16)


def test_unknown_model_lists_available_names() -> None:
    with pytest.raises(BabyfaceError) as excinfo:
        create_model("vgg16", NUM_CLASSES)
    message = str(excinfo.value)
    assert "'vgg16'" in message and ", ".join(list_models()) in message and "\n" not in message


def test_unknown_option_lists_available_options() -> None:
    with pytest.raises(BabyfaceError) as excinfo:
        create_model("resnet18", NUM_CLASSES, width=2, stem="small")
    message = str(excinfo.value)
    assert "width" in message and "drop_rate, stem, zero_init_residual" in message and "\n" not in message
    with pytest.raises(BabyfaceError, match="stem"):
        create_model("cnn", NUM_CLASSES, stem="small")


@pytest.mark.parametrize(
    ("name", "num_classes", "options"),
    [
        ("resnet18", NUM_CLASSES, {"stem": "tiny"}),
        ("resnet18", NUM_CLASSES, {"drop_rate": 1.0}),
        ("resnet18", NUM_CLASSES, {"zero_init_residual": "yes"}),
        ("cnn", NUM_CLASSES, {"drop_rate": -0.1}),
        ("xception-mini", NUM_CLASSES, {"width": 0}),
        ("xception-mini", NUM_CLASSES, {"width": 8.0}),
        ("xception-mini", NUM_CLASSES, {"stem_stride": 4}),
        ("xception-mini", NUM_CLASSES, {"drop_rate": 1.5}),
        ("cnn", 0, {}),
    ],
)
def test_invalid_values_raise_babyface_error(name: str, num_classes: int, options: dict) -> None:
    with pytest.raises(BabyfaceError):
        create_model(name, num_classes, **options)


def test_registering_a_taken_name_fails() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("cnn")(lambda num_classes, image_size=64: nn.Identity())


@pytest.mark.parametrize("name", RESNETS)
def test_zero_init_residual_zeroes_last_bn_of_each_block(name: str) -> None:
    def last_bn_weights(model: nn.Module) -> list[torch.Tensor]:
        return [m.bn2.weight for m in model.modules() if isinstance(m, BasicBlock)]

    zeroed = create_model(name, NUM_CLASSES, zero_init_residual=True)
    assert zeroed.arch_kwargs["zero_init_residual"] is True
    assert all(torch.count_nonzero(w) == 0 for w in last_bn_weights(zeroed))
    assert all(torch.all(m.bn1.weight == 1) for m in zeroed.modules() if isinstance(m, BasicBlock))
    assert all(torch.all(w == 1) for w in last_bn_weights(create_model(name, NUM_CLASSES)))


def test_xception_mini_is_a_small_fraction_of_resnet18():
    """At 48 px the default (fer's width 8) has under 1% of ResNet-18's parameters and under 10% of its FLOPs at 64 px."""
    xception, resnet = model_info("xception-mini", image_size=48), model_info("resnet18", image_size=64)
    assert xception["params"] < 0.01 * resnet["params"] and xception["flops"] < 0.1 * resnet["flops"]
    strided = model_info("xception-mini", image_size=48, stem_stride=2)
    assert strided["params"] == xception["params"] and strided["flops"] < 0.5 * xception["flops"]


@pytest.mark.parametrize(("options", "last_width"), [({}, 128), ({"width": 4}, 64)])
def test_xception_mini_widths_double_per_block(options: dict, last_width: int) -> None:
    model = create_model("xception-mini", NUM_CLASSES, 48, **options)
    assert model.fc.in_features == last_width and len(model.stages()) == 5
    with torch.no_grad():
        assert model.eval()(_images(2, 48)).shape == (2, NUM_CLASSES)


def test_xception_mini_trains_channels_last_at_full_resolution() -> None:
    """Width 8 at 48 px in channels-last: PyTorch 2.14's 1×1/2 conv kernel crashed the process here (the shortcut
    subsamples first)."""
    model = create_model("xception-mini", NUM_CLASSES, 48).train().to(memory_format=torch.channels_last)
    x = _images(16, 48).contiguous(memory_format=torch.channels_last)
    model(x).logsumexp(dim=1).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def _same_luminance(images: torch.Tensor) -> torch.Tensor:
    """``images`` with each pixel's colour changed along a direction of zero luminance (0.299 R + 0.587 G + 0.114 B)."""
    shift = torch.tensor([0.587, -0.299, 0.0]).view(1, 3, 1, 1)
    return images + shift * torch.randn(images.shape[0], 1, *images.shape[2:], generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(("name", "options"), CONFIGS)
def test_gray_model_sees_luminance_only_and_rebuilds_gray(name: str, options: dict) -> None:
    model = create_model(name, NUM_CLASSES, SMALL_SIZE, color="gray", **options).eval()
    x = _images(2, SMALL_SIZE)
    with torch.no_grad():
        logits = model(x)
        torch.testing.assert_close(model(_same_luminance(x)), logits)
        assert not torch.allclose(model(x.flip(1)), logits, atol=1e-4)  # luminance itself still counts
    assert model.arch_kwargs["color"] == "gray"
    rebuilt = create_model(name, NUM_CLASSES, SMALL_SIZE, **json.loads(json.dumps(model.arch_kwargs))).eval()
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(_same_luminance(x)), logits)


def test_colour_models_see_colour_and_record_no_color_option() -> None:
    model = create_model("cnn", NUM_CLASSES, SMALL_SIZE).eval()
    x = _images(2, SMALL_SIZE)
    with torch.no_grad():
        assert not torch.allclose(model(_same_luminance(x)), model(x), atol=1e-4)
    assert "color" not in model.arch_kwargs


def test_unknown_color_is_refused() -> None:
    with pytest.raises(BabyfaceError, match="color must be one of rgb, gray"):
        create_model("cnn", NUM_CLASSES, color="grey")


@pytest.mark.parametrize(("name", "options"), CONFIGS)
def test_equalizing_model_ignores_brightness_and_contrast_and_rebuilds(name: str, options: dict) -> None:
    model = create_model(name, NUM_CLASSES, SMALL_SIZE, contrast="equalize", **options).eval()
    x = _images(2, SMALL_SIZE)
    with torch.no_grad():
        logits = model(x)
        torch.testing.assert_close(model(x * 2.5 - 0.7), logits)  # any increasing change of levels: the same faces
        assert not torch.allclose(model(-x), logits, atol=1e-4)  # a negative is another picture
    assert model.arch_kwargs["contrast"] == "equalize" and model.arch_kwargs["color"] == "gray"
    rebuilt = create_model(name, NUM_CLASSES, SMALL_SIZE, **json.loads(json.dumps(model.arch_kwargs))).eval()
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), logits)
    with pytest.raises(BabyfaceError, match="contrast must be one of as-is, equalize"):
        create_model(name, NUM_CLASSES, SMALL_SIZE, contrast="stretch", **options)


def test_equalized_input_is_a_uniform_histogram() -> None:
    from babyface.models.registry import equalized_input

    x = torch.rand(3, 3, 32, 32) ** 3  # skewed towards dark
    out = equalized_input(torch.nn.Identity(), (x,))[0]
    assert abs(out.mean().item()) < 0.05 and abs(out.std().item() - 1) < 0.05
    assert torch.equal(out[:, 0], out[:, 1]) and out.shape == x.shape
