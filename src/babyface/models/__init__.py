"""Model architectures, built by name through a small registry (see :mod:`.registry`)."""

from . import cnn, resnet  # noqa: F401  (importing registers the models)
from .registry import (
    create_model,
    list_models,
    model_info,
    model_options,
    register_model,
)

__all__ = ["create_model", "list_models", "model_info", "model_options", "register_model"]
