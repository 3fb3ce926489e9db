"""Model architectures, built by name through a small registry (see :mod:`.registry`)."""

from babyface.models import cnn, resnet, xception  # noqa: F401  (importing registers the models)
from babyface.models.registry import create_model, list_models, model_info, model_options, register_model

__all__ = ["create_model", "list_models", "model_info", "model_options", "register_model"]
