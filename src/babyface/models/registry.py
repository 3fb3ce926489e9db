"""A small timm-like model registry: register factories by name, build models by name.

A factory has the signature ``fn(num_classes: int, image_size: int = 64, **options) -> nn.Module``
where the options are keyword parameters with JSON-serialisable defaults. Every model built by
:func:`create_model` carries ``arch_name`` and ``arch_kwargs`` (all options, defaults filled in), so
``create_model(m.arch_name, num_classes, image_size, **m.arch_kwargs)`` rebuilds the same architecture.

Every model also takes ``color="gray"``: it then sees only the luminance of its (normalised) input, whatever the
photo's colours, so neither skin tone nor a dataset's colour (gray adult photos beside colour infant ones) can be a
shortcut. The conversion is a forward pre-hook, so the weights, Grad-CAM and ONNX export are those of the plain model;
training normalises such a model's input with the luminance's mean and std, so what it sees is exactly the photo's
luminance (normalised), whatever its colours.
"""

from __future__ import annotations

import inspect
import json
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from babyface.data.decoded import luminance
from babyface.errors import BabyfaceError

ModelFactory = Callable[..., nn.Module]

MIN_IMAGE_SIZE = 32
COLORS = ("rgb", "gray")
EQUALIZE = "equalize"
CONTRASTS = ("as-is", EQUALIZE)
EQUALIZE_BINS = 64
UNIFORM_STD = (1 / 12) ** 0.5
_FIXED_PARAMS = ("num_classes", "image_size")
_REGISTRY: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator that registers ``fn`` under ``name`` and returns it unchanged."""

    def decorator(fn: ModelFactory) -> ModelFactory:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return decorator


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def model_options(name: str) -> dict[str, Any]:
    """The options (keyword arguments beyond num_classes/image_size) of a model, with their defaults."""
    parameters = inspect.signature(_get_factory(name)).parameters.values()
    return {
        p.name: p.default
        for p in parameters
        if p.name not in _FIXED_PARAMS and p.default is not inspect.Parameter.empty
    }


def create_model(name: str, num_classes: int, image_size: int = 64, color: str = "rgb", contrast: str = "as-is",
                 **kwargs: Any) -> nn.Module:
    """Build model ``name`` (``color='gray'``: it sees luminance only; ``contrast='equalize'``: the luminance
    histogram-equalised per image); raises BabyfaceError for an unknown name, option or invalid value."""
    factory = _get_factory(name)
    _check_num_classes(num_classes)
    if color not in COLORS:
        raise BabyfaceError(f"model {name!r}: color must be one of {', '.join(COLORS)}, got {color!r}")
    if contrast not in CONTRASTS:
        raise BabyfaceError(f"model {name!r}: contrast must be one of {', '.join(CONTRASTS)}, got {contrast!r}")
    arch_kwargs = _resolve_options(name, factory, kwargs)
    model = factory(num_classes, image_size=image_size, **arch_kwargs)
    model.arch_name = name
    model.arch_kwargs = arch_kwargs
    if color == "gray" or contrast == EQUALIZE:  # recorded only when set: the arch kwargs of colour models stay as they were
        model.register_forward_pre_hook(luminance_input)
        model.arch_kwargs = {**arch_kwargs, "color": "gray"}
    if contrast == EQUALIZE:
        model.register_forward_pre_hook(equalized_input)
        model.arch_kwargs = {**model.arch_kwargs, "contrast": contrast}
    return model


def luminance_input(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: an N×3×H×W input replaced by its luminance in all three channels."""
    images, *rest = args
    gray = luminance(images)
    layout = torch.channels_last if images.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    return (gray.expand_as(images).contiguous(memory_format=layout), *rest)


def equalized_input(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook after :func:`luminance_input`: each image's luminance replaced by its histogram equalisation
    over EQUALIZE_BINS levels (the share of the image's pixels below each pixel's level, half of those at it), scaled
    to mean 0 and std 1 for a uniform histogram. Any increasing change of brightness and contrast (the normalisation too) gives the
    same result, so contrast-equalised FER2013 copies and raw infant photos look alike to the model."""
    images, *rest = args
    n, _, h, w = images.shape
    flat = images[:, 0].reshape(n, h * w).float()
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    levels = ((flat - low) / (high - low).clamp_min(1e-6) * (EQUALIZE_BINS - 1)).round()
    steps = torch.arange(EQUALIZE_BINS, device=images.device, dtype=flat.dtype)
    at_or_below = (levels.unsqueeze(2) <= steps).to(flat.dtype).mean(1)  # N × bins: the cumulative histogram
    below = torch.cat([torch.zeros_like(at_or_below[:, :1]), at_or_below[:, :-1]], dim=1)
    equalized = torch.gather((at_or_below + below) / 2, 1, levels.long())  # mid-rank: mean exactly 0.5
    scaled = ((equalized - 0.5) / UNIFORM_STD).reshape(n, 1, h, w).to(images.dtype)
    layout = torch.channels_last if images.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    return (scaled.expand_as(images).contiguous(memory_format=layout), *rest)


def model_info(name: str, num_classes: int = 3, image_size: int = 64, **kwargs: Any) -> dict[str, Any]:
    """Name, trainable parameter count, forward FLOPs for one image and one-line description."""
    model = create_model(name, num_classes, image_size, **kwargs).eval()
    return {
        "name": name,
        "params": count_params(model),
        "flops": count_flops(model, image_size),
        "description": _first_doc_line(_get_factory(name)),
    }


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(model: nn.Module, image_size: int) -> int:
    """Forward FLOPs for one 3-channel image (a multiply-add counts as 2, as FlopCounterMode does)."""
    x = torch.zeros(1, 3, image_size, image_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def init_conv_bn(model: nn.Module) -> None:
    """Kaiming-normal (fan_out, relu) conv weights, BatchNorm γ=1 β=0, as torchvision's ResNets. Nothing on the meta
    device (a bundle's architecture before its weights are loaded): initialising there costs seconds of imports."""
    if any(p.is_meta for p in model.parameters()):
        return
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def validate_image_size(arch: str, image_size: int, multiple_of: int = 1) -> None:
    """Raise BabyfaceError unless image_size is an int ≥ MIN_IMAGE_SIZE and divisible by ``multiple_of``."""
    valid = (
        isinstance(image_size, int)
        and not isinstance(image_size, bool)
        and image_size >= MIN_IMAGE_SIZE
        and image_size % multiple_of == 0
    )
    if not valid:
        rule = f"an integer ≥ {MIN_IMAGE_SIZE}"
        if multiple_of > 1:
            rule += f" and a multiple of {multiple_of}"
        raise BabyfaceError(f"{arch}: image_size must be {rule}, got {image_size!r}")


def validate_drop_rate(arch: str, drop_rate: float) -> None:
    """Raise BabyfaceError unless 0 ≤ drop_rate < 1."""
    if not isinstance(drop_rate, (int, float)) or isinstance(drop_rate, bool) or not 0 <= drop_rate < 1:
        raise BabyfaceError(f"{arch}: drop_rate must be a number in [0, 1), got {drop_rate!r}")


def _get_factory(name: str) -> ModelFactory:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise BabyfaceError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None


def _check_num_classes(num_classes: int) -> None:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise BabyfaceError(f"num_classes must be a positive integer, got {num_classes!r}")


def _resolve_options(name: str, factory: ModelFactory, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``kwargs``; unknown or non-JSON-serialisable options raise BabyfaceError."""
    options = model_options(name)
    unknown = sorted(set(kwargs) - set(options))
    if unknown and not _accepts_any_kwargs(factory):
        available = ", ".join(sorted(options)) or "none"
        raise BabyfaceError(
            f"unknown option(s) for model {name!r}: {', '.join(unknown)}; available: {available}"
        )
    resolved = {**options, **kwargs}
    try:
        json.dumps(resolved)
    except (TypeError, ValueError) as exc:
        raise BabyfaceError(f"options for model {name!r} must be JSON-serialisable: {exc}") from None
    return resolved


def _accepts_any_kwargs(factory: ModelFactory) -> bool:
    parameters = inspect.signature(factory).parameters.values()
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _first_doc_line(fn: ModelFactory) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc.splitlines()[0] if doc else ""
