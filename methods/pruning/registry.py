"""Registry of pruning methods: how a ticket (mask and pruned network) is drawn from a network.

Every method takes the dense network at the draw epoch and returns a ``Ticket``. Channel
methods remove channels physically (``methods.pruning.channels.prune_channels``); weight methods keep the
dense network and hold a weight mask through ``torch.nn.utils.prune`` (``methods.pruning.unstructured``).
What the retraining starts from (fresh init, drawn weights, theta_0) is decided by the
retraining stage, not here.

| name      | granularity | criterion                                           | source |
|-----------|-------------|-----------------------------------------------------|--------|
| bn        | channel     | global threshold on BN |gamma| (network slimming)   | Liu et al. 2017; EB ``main.py``, ``vggprune.py``/``resprune.py`` |
| bnlive    | channel     | as ``bn``; an emptied layer keeps its largest channel live | the suite's pre-``resprune.py`` behaviour (option) |
| thinet    | channel     | greedy next-layer reconstruction + least squares    | Luo et al. 2017; ``methods/pruning/thinet.py`` |
| magnitude | weight      | global |w| over conv + linear weights                | Han et al. 2015; Frankle & Carbin 2019 (LT one-shot) |
| snip      | weight      | |w dL/dw| on one mini-batch, global top-k            | Lee et al. 2019 (SNIP), section 4 |
| l1        | filter      | per-layer L1 norm of filters, counts from a variant  | Li et al. 2017; RT ``l1-norm-pruning/*prune.py`` (Table 8) |
| convmagnitude | weight  | global |w| over conv weights only                    | Han et al. 2015; RT ``weight-level/cifar_prune_iterative.py`` (Table 9) |

``l1`` takes its "ratio" as the architecture variant ("a" or "b": VGG-16-A, ResNet-56-A/B,
ResNet-110-A/B; ``methods.pruning.l1.VARIANTS``); every other method a fraction in (0, 1). The RT
methods serve the lottery stage (``methods.stages.lottery``), the EB ones the retraining stage.
"""  # noqa: E501 (the table's rows cannot wrap)
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from methods.base.config import ConfigError
from methods.base.data import Split, normalize
from methods.pruning.eb import channel_mask, emptied_layers, layer_masks
from methods.metrics.flops import complexity
from methods.pruning.l1 import VARIANTS, l1_masks, prune_filters
from methods.models import MODELS, family, model_name
from methods.pruning.channels import CHANNEL_RULES, prune_channels, zeroes_emptied
from methods.pruning.thinet import SAMPLE_IMAGES, layer_pairs, thinet_prune
from methods.pruning.unstructured import apply_masks, global_magnitude_masks, snip_masks

#: SNIP's one mini-batch on CIFAR (Lee et al. 2019, section 5; REFERENCE.md section 7).
SNIP_BATCH = 128
#: Families with a channel-pruning rule (``methods.pruning.channels.CHANNEL_RULES``: EB ``vggprune.py``/``resprune.py``).
#: L1's models are its variants' (``methods.pruning.l1.VARIANTS``).
CHANNEL_FAMILIES = tuple(CHANNEL_RULES)
L1_MODELS = tuple(dict.fromkeys(m for m, _ in VARIANTS))
#: Method names lead retraining folder names (``p0.5-...`` for bn, ``<method>-p0.5-...`` else).
NAME = re.compile(r"[a-z]+")


@dataclass
class Ticket:
    """A drawn subnetwork.

    ``model``: the pruned network holding the weights it was drawn from (channel: physically
    pruned, ``(B, 3, 32, 32) -> (B, classes)``; weight: the dense network with masks held).
    ``channel_masks``: one bool ``(C,)`` per BatchNorm2d (channel methods) or None.
    ``weight_masks``: one bool mask per weight of the method's ``kinds`` (weight methods) or None.
    ``filter_masks``: one bool ``(out,)`` per prunable conv (``l1``; ``methods.pruning.l1.prunable_convs``) or None.
    ``prune_flops``: FLOPs spent choosing the mask (forward/backward passes), beyond training.
    ``emptied``: indices of the BN layers in which the criterion kept no channel (``channel_masks``
    then keep one so the architecture builds); ``zeroed``: those whose kept channel has gamma =
    beta = 0 in ``model`` (EB ``resprune.py``; ``methods.pruning.channels``).
    """

    model: nn.Module
    channel_masks: list[torch.Tensor] | None = None
    weight_masks: list[torch.Tensor] | None = None
    filter_masks: list[torch.Tensor] | None = None
    prune_flops: float = 0.0
    emptied: tuple[int, ...] = ()
    zeroed: tuple[int, ...] = ()


@dataclass(frozen=True)
class PruningMethod:
    """A registered pruning method.

    ``draw(model, gammas, ratio, train, seed, classes) -> Ticket``: ``model`` the dense network
    at the draw epoch (SNIP and ThiNet move it to ``train``'s device), ``gammas`` its |gamma|
    ``(N,)`` from the search history, ``ratio`` in (0, 1), ``train`` the training split (SNIP's
    batch and ThiNet's samples, drawn with ``seed``), ``classes`` the number of classes. Raises
    ValueError for a ratio outside (0, 1) and TypeError for a model family without a rule.
    """

    name: str
    granularity: str  # "channel", "filter" or "weight"
    needs_weights: bool  # False: the mask depends only on the BN |gamma| history
    source: str
    draw: Callable[..., Ticket]
    kinds: tuple[str, ...] = ("conv", "linear")  # layers a weight mask covers (methods.pruning.unstructured.prunable)
    models: tuple[str, ...] | None = None  # registry models it has a rule for (check_supported); None = every one
    families: tuple[str, ...] | None = None  # or the model families it has a rule for (methods.models.ModelEntry.family)

    def supports(self, model: str) -> bool:
        """Whether registry model ``model`` has a rule here (``models`` or ``families``; neither: every model)."""
        if self.models is None and self.families is None:
            return True
        return model in (self.models or ()) or (model in MODELS and family(model) in (self.families or ()))


def _sample(train: Split, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` training images (normalised, not augmented) and labels from a seeded permutation."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(train.y), generator=g)[:n].to(train.y.device)
    return normalize(train.x[idx]), train.y[idx]


def _bn(model, gammas, ratio, train, seed, classes, live: bool = False) -> Ticket:
    mask = channel_mask(gammas, ratio)
    emptied = emptied_layers(model, mask)
    zero = not live and zeroes_emptied(model)  # resprune.py keeps channel 0 of an empty mask, zeroed
    masks = layer_masks(model, mask, gammas, survivor="first" if zero else "largest")
    zeroed = emptied if zero else ()
    return Ticket(prune_channels(model, masks, classes, zeroed), channel_masks=masks, emptied=emptied, zeroed=zeroed)


def _bnlive(model, gammas, ratio, train, seed, classes) -> Ticket:
    return _bn(model, gammas, ratio, train, seed, classes, live=True)


def _thinet(model, gammas, ratio, train, seed, classes) -> Ticket:
    x, _ = _sample(train, min(SAMPLE_IMAGES, len(train.y)), seed)
    net, masks = thinet_prune(model.to(x.device), x, ratio, seed)
    # one forward over the samples per pruned layer, on a network no larger than the dense one
    cost = len(layer_pairs(net)) * len(x) * complexity(model)["flops"]
    return Ticket(prune_channels(net, masks, classes), channel_masks=masks, prune_flops=cost)


def _magnitude(model, gammas, ratio, train, seed, classes) -> Ticket:
    masks = global_magnitude_masks(model, ratio)
    return Ticket(apply_masks(copy.deepcopy(model), masks), weight_masks=masks)


def _snip(model, gammas, ratio, train, seed, classes) -> Ticket:
    x, y = _sample(train, min(SNIP_BATCH, len(train.y)), seed)
    model = model.to(x.device)
    masks = snip_masks(model, x, y, ratio)
    cost = 3.0 * complexity(model)["flops"] * len(x)  # one forward + backward
    return Ticket(apply_masks(copy.deepcopy(model), masks), weight_masks=masks, prune_flops=cost)


def _l1(model, gammas, variant, train, seed, classes) -> Ticket:
    masks = l1_masks(model, variant, model_name(model))
    return Ticket(prune_filters(model, masks), filter_masks=masks)


def _convmagnitude(model, gammas, ratio, train, seed, classes) -> Ticket:
    masks = global_magnitude_masks(model, ratio, kinds=("conv",))
    return Ticket(apply_masks(copy.deepcopy(model), masks, kinds=("conv",)), weight_masks=masks)


PRUNING: dict[str, PruningMethod] = {m.name: m for m in (
    PruningMethod("bn", "channel", False, "Liu et al. 2017 (network slimming); EB main.py, vggprune.py, resprune.py", _bn,
                  families=CHANNEL_FAMILIES),
    PruningMethod("bnlive", "channel", False, "as bn; an emptied layer keeps its largest-|gamma| channel live "
                  "(option; resprune.py zeroes it)", _bnlive, families=CHANNEL_FAMILIES),
    PruningMethod("thinet", "channel", True, "Luo et al. 2017 (ThiNet); methods/pruning/thinet.py", _thinet,
                  families=CHANNEL_FAMILIES),
    PruningMethod("magnitude", "weight", True, "Han et al. 2015; Frankle & Carbin 2019", _magnitude),
    PruningMethod("snip", "weight", True, "Lee et al. 2019 (SNIP)", _snip),
    PruningMethod("l1", "filter", True, "Li et al. 2017; RT l1-norm-pruning/lottery_*prune.py", _l1, models=L1_MODELS),
    PruningMethod("convmagnitude", "weight", True, "Han et al. 2015; RT weight-level/cifar_prune_iterative.py",
                  _convmagnitude, kinds=("conv",)),
)}


def register_pruning(method: PruningMethod) -> PruningMethod:
    """Add ``method`` to ``PRUNING`` (a plug-in's method, README "Extending"; ``methods.base.plugins``).
    A Table 2 row or lottery table then names it as ``prune:``.

    Raises:
        ValueError: a name that is not lowercase letters (it leads run folder names), a name
            registered already, or a granularity other than channel, filter or weight.
    """
    if not NAME.fullmatch(method.name):
        raise ValueError(f"pruning method name {method.name!r} must be lowercase letters only (it leads run folder names)")
    if method.name in PRUNING:
        raise ValueError(f"pruning method {method.name!r} is registered already ({PRUNING[method.name].source}); "
                         "pick another name")
    if method.granularity not in ("channel", "filter", "weight"):
        raise ValueError(f"pruning method {method.name!r}: granularity {method.granularity!r} is not channel, filter or weight")
    PRUNING[method.name] = method
    return method


def get_pruning(name: str) -> PruningMethod:
    """The registered method ``name``.

    Raises:
        ConfigError: unknown name (the message lists the known ones).
    """
    if name not in PRUNING:
        raise ConfigError(f"unknown pruning method {name!r}; choose one of {sorted(PRUNING)} "
                          "(or register yours: README, Extending)")
    return PRUNING[name]


def check_supported(method: str, model: str) -> PruningMethod:
    """The registered method ``method``, checked to have a rule for registry model ``model``
    (``PruningMethod.models``/``families``), so a table specification or a command line asking
    e.g. ``bn`` of ``resnet56`` is refused before anything trains, not as a TypeError after a search.

    Raises:
        ConfigError: unknown method, or no rule for ``model`` (the message names the models it prunes).
    """
    m = get_pruning(method)
    if not m.supports(model):
        able = sorted(n for n, p in PRUNING.items() if p.supports(model))
        prunes = [n for n in MODELS if m.supports(n)]
        raise ConfigError(f"pruning method {method!r} has no rule for model {model!r} (it prunes {', '.join(prunes)}); "
                          f"{model} takes {', '.join(able)}")
    return m
