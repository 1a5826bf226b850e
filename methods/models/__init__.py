"""Model registry: one name per architecture family, built from keyword knobs.

``build_model(name, num_classes, **knobs)`` is the only way the suite makes a network, so a
pruned cfg, a width or a depth is just another knob.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from .preresnet import PreResNet, preresnet101
from .vgg import VGG, vgg16

MODELS: dict[str, Callable[..., nn.Module]] = {
    "vgg16": vgg16,
    "preresnet101": preresnet101,
}


def build_model(name: str, num_classes: int, **knobs) -> nn.Module:
    """Build model ``name`` (a key of ``MODELS``) for ``num_classes`` classes.

    Raises:
        ValueError: unknown model name (the message lists the known ones).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](num_classes=num_classes, **knobs)


__all__ = ["MODELS", "build_model", "VGG", "PreResNet"]
