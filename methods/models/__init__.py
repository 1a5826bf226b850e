"""Model registry: one name per architecture family, built from keyword knobs.

``build_model(name, num_classes, **knobs)`` is the only way the suite makes a network, so a
pruned cfg, a width or a depth is just another knob.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from .preresnet import PreResNet, preresnet101
from .rt import CifarResNet, RTVGG, resnet50, resnet56, resnet110, vgg16bn, vgg16l1
from .vgg import VGG, vgg16

#: EB (You et al. 2020): vgg16, preresnet101. RT (Liu et al. 2019) L1-norm family (Table 8):
#: vgg16l1, resnet56, resnet110; weight-level family (Table 9): vgg16bn, resnet50. Names are
#: lowercase letters and digits: they start run folder names (methods/cells.py).
MODELS: dict[str, Callable[..., nn.Module]] = {
    "vgg16": vgg16,
    "preresnet101": preresnet101,
    "vgg16l1": vgg16l1,
    "resnet56": resnet56,
    "resnet110": resnet110,
    "vgg16bn": vgg16bn,
    "resnet50": resnet50,
}


def build_model(name: str, num_classes: int, **knobs) -> nn.Module:
    """Build model ``name`` (a key of ``MODELS``) for ``num_classes`` classes.

    Raises:
        ValueError: unknown model name or knob (e.g. a misspelt ``width`` in a scale file's
            ``models``); the message lists the known ones.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    import inspect

    known = set(inspect.signature(MODELS[name]).parameters) - {"num_classes"}
    if set(knobs) - known:
        raise ValueError(f"model {name}: unknown knob(s) {sorted(set(knobs) - known)}; known: {sorted(known)}")
    return MODELS[name](num_classes=num_classes, **knobs)


def model_name(model: nn.Module) -> str:
    """The registry name of a network's family, from its structure (pruned networks included).

    Raises:
        TypeError: a network no registry entry builds.
    """
    if isinstance(model, RTVGG):
        return "vgg16l1" if model.hidden is not None else "vgg16bn"
    if isinstance(model, CifarResNet):
        name = {56: "resnet56", 110: "resnet110", 50: "resnet50"}.get(model.depth)
        if name is not None and (model.shortcut == "conv") == (name == "resnet50"):
            return name
    if isinstance(model, VGG):
        return "vgg16"
    if isinstance(model, PreResNet):
        return "preresnet101"
    raise TypeError(f"{type(model).__name__} is not built by the model registry ({sorted(MODELS)})")


__all__ = ["MODELS", "build_model", "VGG", "PreResNet", "RTVGG", "CifarResNet", "model_name"]
