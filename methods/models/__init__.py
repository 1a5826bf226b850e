"""Model registry: one entry per architecture, built from keyword knobs.

``build_model(name, num_classes, **knobs)`` is the only way the suite makes a network, so a
pruned cfg, a width or a depth is just another knob. A plug-in registers its own network with
``register_model`` (README, "Extending"; ``methods.base.plugins``).

The contract a registered network keeps (``Prunable``), as the stages and pruning methods use it:

* ``forward``: ``(B, 3, 32, 32)`` float -> logits ``(B, num_classes)``;
* ``reset_parameters()``: re-draws every weight (a ``fresh`` retraining, RT's random arm);
* ``registry_name``: its entry's name, set by ``build_model`` and carried by pruned copies;
* the builder takes ``num_classes`` and keyword knobs only (a scale file's ``models.<name>``);
* for channel pruning (``bn``, ``thinet``): it belongs to a ``family`` with a rule in
  ``methods.pruning.channels.CHANNEL_RULES`` ("vgg": a ``VGG`` with its ``cfg``; "preresnet": ``PreResNet``),
  and its builder takes ``cfg=`` (the pruned widths) — weight-level methods need nothing more.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Callable, Protocol, runtime_checkable

import torch
from torch import nn

from methods.models.preresnet import PreResNet, preresnet101
from methods.models.rt import CifarResNet, RTVGG, resnet50, resnet56, resnet110, vgg16bn, vgg16l1
from methods.models.vgg import VGG, vgg16

#: Model names start run folder names (``methods.workflow`` names, ``cells.py`` regexes).
NAME = re.compile(r"[a-z][a-z0-9]*")


@runtime_checkable
class Prunable(Protocol):
    """What the stages and pruning methods ask of a network (module docstring)."""

    registry_name: str

    def reset_parameters(self) -> None: ...

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture: ``build(num_classes=..., **knobs) -> nn.Module``; ``family``: its
    pruning rules (``methods.pruning.channels.CHANNEL_RULES``; "rtvgg"/"rtresnet": RT's L1 rules, ``methods.pruning.l1``;
    any other name: weight-level methods only); ``display``: its name on the pages; ``source``;
    ``scales``: its knobs per scale name where the scale file has no ``models.<name>`` entry (a
    plug-in's model at ``tiny``, ``smoke`` or ``mid``, e.g. ``{"tiny": {"width": 0.25}}``)."""

    name: str
    build: Callable[..., nn.Module]
    family: str
    display: str
    source: str
    scales: dict = field(default_factory=dict)

    def knobs(self, scale_name: str, scale_models: dict) -> dict | None:
        """Its knobs at a scale: the scale file's ``models.<name>``, else ``scales[scale_name]``, else None."""
        return scale_models.get(self.name, self.scales.get(scale_name))


MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, build: Callable[..., nn.Module], family: str, display: str | None = None,
                   source: str = "", scales: dict | None = None) -> ModelEntry:
    """Add ``name`` to the registry (a plug-in's models, README "Extending").

    Raises:
        ValueError: a name that is not lowercase letters and digits (run folders start with it), a
            name already registered, or a builder without a ``num_classes`` parameter.
    """
    if not NAME.fullmatch(name):
        raise ValueError(f"model name {name!r} must be lowercase letters and digits, starting with a letter "
                         "(run folder names start with it)")
    if name in MODELS:
        raise ValueError(f"model {name!r} is registered already ({MODELS[name].source or 'the suite'}); pick another name")
    if "num_classes" not in inspect.signature(build).parameters:
        raise ValueError(f"model {name!r}: its builder must take num_classes= (and keyword knobs)")
    MODELS[name] = entry = ModelEntry(name, build, family, display or name, source, dict(scales or {}))
    return entry


#: EB (You et al. 2020): vgg16, preresnet101. RT (Liu et al. 2019) L1-norm family (Table 8):
#: vgg16l1, resnet56, resnet110; weight-level family (Table 9): vgg16bn, resnet50.
for _e in (("vgg16", vgg16, "vgg", "VGG16", "EB models/vgg.py"),
           ("preresnet101", preresnet101, "preresnet", "PreResNet-101", "EB models/preresnet.py"),
           ("vgg16l1", vgg16l1, "rtvgg", "VGG-16", "RT cifar/l1-norm-pruning/models/vgg.py"),
           ("resnet56", resnet56, "rtresnet", "ResNet-56", "RT cifar/l1-norm-pruning/models/resnet.py"),
           ("resnet110", resnet110, "rtresnet", "ResNet-110", "RT cifar/l1-norm-pruning/models/resnet.py"),
           ("vgg16bn", vgg16bn, "rtvgg", "VGG-16", "RT cifar/weight-level/models/cifar/vgg.py"),
           ("resnet50", resnet50, "rtresnet", "ResNet-50", "RT cifar/weight-level/models/cifar/resnet.py")):
    register_model(*_e)


def build_model(name: str, num_classes: int, **knobs) -> nn.Module:
    """Build model ``name`` (a key of ``MODELS``) for ``num_classes`` classes; the network
    carries ``registry_name = name``.

    Raises:
        ValueError: unknown model name or knob (e.g. a misspelt ``width`` in a scale file's
            ``models``); the message lists the known ones.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)} (or register it: README, Extending)")
    params = inspect.signature(MODELS[name].build).parameters
    known = set(params) - {"num_classes"}
    if set(knobs) - known and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        raise ValueError(f"model {name}: unknown knob(s) {sorted(set(knobs) - known)}; known: {sorted(known)}")
    net = MODELS[name].build(num_classes=num_classes, **knobs)
    net.registry_name = name
    return net


def knobs_at(name: str, scale) -> dict | None:
    """Model ``name``'s knobs at ``scale`` (a ``methods.base.config.Scale``): its scale file's
    ``models.<name>``, else the registry entry's ``scales`` (``ModelEntry.knobs``); None if neither has one."""
    models = scale.models
    return MODELS[name].knobs(scale.name, models) if name in MODELS else models.get(name)


def model_name(model: nn.Module) -> str:
    """The registry name a network carries (``build_model``; pruned copies keep it).

    Raises:
        TypeError: a network no registry entry built.
    """
    name = getattr(model, "registry_name", None)
    if name not in MODELS:
        raise TypeError(f"{type(model).__name__} was not built by the model registry ({sorted(MODELS)}); "
                        "build it with methods.models.build_model")
    return name


def family(model: nn.Module | str) -> str:
    """The pruning family of a network or registry name (``ModelEntry.family``).

    Raises:
        TypeError: a network no registry entry built; KeyError: an unknown name.
    """
    return MODELS[model if isinstance(model, str) else model_name(model)].family


__all__ = ["MODELS", "ModelEntry", "Prunable", "build_model", "knobs_at", "register_model", "family", "VGG", "PreResNet", "RTVGG",
           "CifarResNet", "model_name"]
