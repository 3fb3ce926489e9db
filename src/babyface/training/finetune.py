"""Start training from an earlier run's weights (``--init RUN``): e.g. pretrain on adult faces, then
fine-tune on infants, optionally with the first stages frozen and a lower learning rate for the rest.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from babyface.bundle import load_bundle
from babyface.bundle.single import Bundle
from babyface.errors import BabyfaceError

log = logging.getLogger("babyface")

FROZEN_FLAG = "babyface_frozen"


def load_init_run(run: str | Path, model_name: str) -> Bundle:
    """The bundle of ``run``, checked to be the architecture being trained."""
    bundle = load_bundle(run)
    name = bundle.meta.arch.name
    if name != model_name:
        raise BabyfaceError(f"--init {run}: that run is a {name}, this one a {model_name}; pass --model {name}")
    return bundle


def init_from(model: nn.Module, bundle: Bundle, classes: list[str]) -> None:
    """Copy every weight of ``bundle`` into ``model``; the classifier's rows are matched by class name,
    and a class the earlier run did not have keeps its fresh initialisation."""
    source = bundle.model.state_dict()
    head = head_layer_names(model)
    state = model.state_dict()
    for key, tensor in state.items():
        if key in head:
            continue
        if key not in source or source[key].shape != tensor.shape:
            found = tuple(source[key].shape) if key in source else "nothing"
            raise BabyfaceError(f"--init {bundle.path}: weight {key} is {found} there, {tuple(tensor.shape)} here; "
                                "train with the same architecture, options and image size")
        state[key] = source[key]
    rows = [(new, bundle.classes.index(name)) for new, name in enumerate(classes) if name in bundle.classes]
    for key in head:
        state[key] = state[key].clone()
        for new, old in rows:
            state[key][new] = source[key][old]
    model.load_state_dict(state)
    fresh = [name for name in classes if name not in bundle.classes]
    log.info("initialised from %s (classes %s)%s", bundle.path, bundle.classes,
             f"; new classifier rows for {', '.join(fresh)}" if fresh else "")


def head_layer_names(model: nn.Module) -> set[str]:
    """State-dict keys of the last Linear layer: the classifier, whose rows are the classes."""
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise BabyfaceError(f"{type(model).__name__}: no Linear classifier found to re-map for --init")
    return {f"{linears[-1]}.weight", f"{linears[-1]}.bias"}


def freeze_stages(model: nn.Module, count: int) -> None:
    """Freeze the first ``count`` feature stages: no gradients, BatchNorm statistics fixed (see ``train_mode``)."""
    stages = list(model.stages())
    if count > len(stages):
        raise BabyfaceError(f"--freeze-stages {count}: {model.arch_name} has only {len(stages)} stages")
    for stage in stages[:count]:
        stage.requires_grad_(False)
        setattr(stage, FROZEN_FLAG, True)


def train_mode(model: nn.Module) -> None:
    """``model.train()`` except frozen stages, which stay in eval mode so BatchNorm keeps its statistics."""
    model.train()
    for module in model.modules():
        if getattr(module, FROZEN_FLAG, False):
            module.eval()


def parameter_groups(model: nn.Module, lr: float, backbone_scale: float) -> list[dict]:
    """Trainable parameters in two groups: the classifier at ``lr``, everything else at ``lr * backbone_scale``."""
    head = head_layer_names(model)
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for name, p in named if name not in head], "lr": lr * backbone_scale},
              {"params": [p for name, p in named if name in head], "lr": lr}]
    return [g for g in groups if g["params"]]
