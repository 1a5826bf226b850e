"""Physical channel pruning of EB VGG16 and PreResNet (EB ``vggprune.py``, ``resprune.py``).

``pruned_cfg`` gives the narrower architecture from per-BN masks; ``prune_channels`` builds it
and copies the kept weights. Invariant (REFERENCE.md section 5): in eval mode the pruned
network's outputs equal the dense network's with gamma and beta of pruned channels zeroed.

A layer the criterion empties keeps one channel so the architecture stays buildable. In a
residual network (PreResNet) that channel gets gamma = beta = 0 by default, as EB
``resprune.py`` does (it multiplies gamma and beta by the mask before copying and keeps
channel 0 of an empty mask): the layer passes nothing on, exactly as in the masked dense
network, and an emptied last BN of a branch leaves the block its shortcut. The pruning method
``bnlive`` keeps it live instead (its largest-|gamma| channel, unzeroed). A plain VGG always
keeps its largest channel live (zeroing it would leave a constant network; the official
``vggprune.py`` breaks here, EB issue #1); ``methods.pruning.ticket`` flags such tickets.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from methods.pruning.eb import bn_layers
from methods.models import PreResNet, VGG, build_model, family, model_name


def pruned_cfg(model: nn.Module, masks: list[torch.Tensor]) -> list:
    """Architecture cfg of ``model`` keeping the channels of ``masks`` (one bool mask per BN), by
    its family's rule (``CHANNEL_RULES``).

    VGG: kept count per BN with "M" re-inserted. PreResNet: per block ``[bn1, bn2, bn3]`` kept
    counts plus ``[final bn]``; BN1 and the final BN shrink only through channel selection.

    Raises:
        TypeError: a model family without a channel-pruning rule.
    """
    return rule_of(model).cfg(model, [int(m.sum()) for m in masks])


def _vgg_cfg(model: VGG, counts: list[int]) -> list:
    it = iter(counts)
    return [v if v == "M" else next(it) for v in model.cfg]


def _preresnet_cfg(model: PreResNet, counts: list[int]) -> list:
    return [counts[i:i + 3] for i in range(0, len(counts) - 1, 3)] + [[counts[-1]]]


def zero_pruned_bn(model: nn.Module, masks: list[torch.Tensor]) -> None:
    """Set gamma and beta of the pruned channels to zero in place (the masked dense network)."""
    with torch.no_grad():
        for bn, m in zip(bn_layers(model), masks):
            bn.weight[~m] = 0
            bn.bias[~m] = 0


def _idx(m: torch.Tensor) -> torch.Tensor:
    return torch.nonzero(m).flatten()


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, keep: torch.Tensor) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, name).data.copy_(getattr(src, name).data[keep])
    dst.num_batches_tracked.copy_(src.num_batches_tracked)


def _copy_conv(dst: nn.Conv2d, src: nn.Conv2d, keep_out: torch.Tensor, keep_in: torch.Tensor) -> None:
    dst.weight.data.copy_(src.weight.data[keep_out][:, keep_in])


def _prune_vgg(model: VGG, masks, num_classes: int) -> VGG:
    new = build_model(model_name(model), num_classes, cfg=pruned_cfg(model, masks))
    keep_in = torch.arange(3)
    convs_old = [m for m in model.features if isinstance(m, nn.Conv2d)]
    convs_new = [m for m in new.features if isinstance(m, nn.Conv2d)]
    for co, cn, bo, bn, m in zip(convs_old, convs_new, bn_layers(model), bn_layers(new), masks):
        keep = _idx(m)
        _copy_conv(cn, co, keep, keep_in)
        _copy_bn(bn, bo, keep)
        keep_in = keep
    new.classifier.weight.data.copy_(model.classifier.weight.data[:, keep_in])
    new.classifier.bias.data.copy_(model.classifier.bias.data)
    return new


def _prune_preresnet(model: PreResNet, masks, num_classes: int) -> PreResNet:
    new = build_model(model_name(model), num_classes, depth=model.depth, width=model.width, cfg=pruned_cfg(model, masks))
    new.conv1.weight.data.copy_(model.conv1.weight.data)
    for i, (bo, bn) in enumerate(zip(model.blocks, new.blocks)):
        m1, m2, m3 = (_idx(m) for m in masks[3 * i:3 * i + 3])
        bn.bn1.load_state_dict(bo.bn1.state_dict())  # BN1 keeps all channels
        bn.select.indexes = m1.clone()
        _copy_conv(bn.conv1, bo.conv1, m2, m1)
        _copy_bn(bn.bn2, bo.bn2, m2)
        _copy_conv(bn.conv2, bo.conv2, m3, m2)
        _copy_bn(bn.bn3, bo.bn3, m3)
        _copy_conv(bn.conv3, bo.conv3, torch.arange(bo.conv3.out_channels), m3)
        if bo.downsample is not None:
            bn.downsample.weight.data.copy_(bo.downsample.weight.data)
    keep = _idx(masks[-1])
    new.bn.load_state_dict(model.bn.state_dict())
    new.select.indexes = keep.clone()
    new.fc.weight.data.copy_(model.fc.weight.data[:, keep])
    new.fc.bias.data.copy_(model.fc.bias.data)
    return new


def _vgg_consumers(model: VGG) -> list[tuple[int, nn.Module]]:
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    return list(enumerate(convs[1:] + [model.classifier]))


def _preresnet_consumers(model: PreResNet) -> list[tuple[int, nn.Module]]:
    index = {id(b): i for i, b in enumerate(bn_layers(model))}
    return [pair for b in model.blocks for pair in ((index[id(b.bn2)], b.conv2), (index[id(b.bn3)], b.conv3))]


@dataclass(frozen=True)
class ChannelRule:
    """How a model family is channel-pruned (``bn``, ``bnlive``, ``thinet``).

    ``cfg(model, kept counts per BN) -> cfg``; ``build(model, masks, classes)``: the pruned copy with
    its kept weights; ``zeroes_emptied``: an emptied BN keeps one channel with gamma = beta = 0
    (residual: the block keeps its shortcut) rather than a live one (plain chain; module
    docstring); ``consumers(model)``: ``(bn index, next conv or Linear)`` for each BN whose
    channels can be removed (ThiNet); ``source``: the official file the rule follows.
    """

    cfg: Callable[[nn.Module, list[int]], list]
    build: Callable[[nn.Module, list, int], nn.Module]
    zeroes_emptied: bool
    consumers: Callable[[nn.Module], list]
    source: str


#: One rule per family (``methods.models.ModelEntry.family``); a plug-in model of family "vgg"
#: (a ``VGG`` with its own cfg) is pruned like EB's VGG16.
CHANNEL_RULES: dict[str, ChannelRule] = {
    "vgg": ChannelRule(_vgg_cfg, _prune_vgg, False, _vgg_consumers, "EB vggprune.py"),
    "preresnet": ChannelRule(_preresnet_cfg, _prune_preresnet, True, _preresnet_consumers, "EB resprune.py"),
}


def rule_of(model: nn.Module) -> ChannelRule:
    """The channel-pruning rule of ``model``'s family.

    Raises:
        TypeError: a network not built by the registry, or a family without a channel rule.
    """
    fam = family(model)
    if fam not in CHANNEL_RULES:
        raise TypeError(f"no channel-pruning rule for {model_name(model)} (family {fam!r}; rules: {sorted(CHANNEL_RULES)})")
    return CHANNEL_RULES[fam]


def zeroes_emptied(model: nn.Module) -> bool:
    """Whether an emptied BN layer of ``model``'s family is built as a zeroed channel (residual
    PreResNet: the block keeps its shortcut) rather than a live one (plain VGG; module docstring)."""
    return rule_of(model).zeroes_emptied


def prune_channels(model: nn.Module, masks: list[torch.Tensor], num_classes: int,
                   zeroed: tuple[int, ...] = ()) -> nn.Module:
    """Physically pruned copy of ``model`` holding its kept weights (``model`` is not changed).

    ``masks``: one bool mask per BatchNorm2d in module order, each with at least one True
    (see ``eb.layer_masks``). ``zeroed``: indices of layers the criterion emptied whose one kept
    channel passes nothing (gamma = beta = 0, EB ``resprune.py``). As in EB ``vggprune.py`` and
    ``resprune.py``, gamma and beta are multiplied by the mask before copying (so BN1 and the
    last BN, kept whole before their channel selection, hold zeros in unselected channels), and
    biases of removed channels are dropped with no compensation.

    Raises:
        TypeError: a model family without a pruning rule.
    """
    rule = rule_of(model)
    model = copy.deepcopy(model).cpu()
    zero_pruned_bn(model, [torch.zeros_like(m) if i in zeroed else m for i, m in enumerate(masks)])
    return rule.build(model, masks, num_classes)
