"""babyface: infant facial emotion recognition (happy / sad / neutral), trained from scratch.

    import babyface
    model = babyface.load("runs/r18")
    model.predict("baby.jpg")

``load``, ``measure``, ``train``, ``evaluate``, ``cv`` and ``code`` (see ``babyface.api``) and the configs are imported on first use, so that
``import babyface`` and ``babyface --help`` stay fast.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__version__ = "0.1.0"

# No telemetry. onnxruntime (1.2x) writes a persistent device id and queues usage events for Microsoft under
# ~/.cache/Microsoft from the moment it is imported, unless this is set first; every babyface module is imported
# after this one, and child processes inherit it. (FastAPI's OpenTelemetry is switched off in serve/app.py.)
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

_LAZY = {
    "load": "babyface.api", "measure": "babyface.api", "train": "babyface.api", "evaluate": "babyface.api", "cv": "babyface.api",
    "code": "babyface.api", "CodeConfig": "babyface.config",
    "Classifier": "babyface.inference.classifier", "Prediction": "babyface.inference.classifier",
    "TrainConfig": "babyface.config", "EvalConfig": "babyface.config", "CvConfig": "babyface.config",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'babyface' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
