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
``vggprune.py`` breaks here, EB issue #1); ``methods.ticket`` flags such tickets.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .eb import bn_layers
from .models import PreResNet, VGG


def pruned_cfg(model: nn.Module, masks: list[torch.Tensor]) -> list:
    """Architecture cfg of ``model`` keeping the channels of ``masks`` (one bool mask per BN).

    VGG: kept count per BN with "M" re-inserted. PreResNet: per block ``[bn1, bn2, bn3]`` kept
    counts plus ``[final bn]``; BN1 and the final BN shrink only through channel selection.

    Raises:
        TypeError: a model family without a pruning rule.
    """
    counts = [int(m.sum()) for m in masks]
    if isinstance(model, VGG):
        it = iter(counts)
        return [v if v == "M" else next(it) for v in model.cfg]
    if isinstance(model, PreResNet):
        return [counts[i:i + 3] for i in range(0, len(counts) - 1, 3)] + [[counts[-1]]]
    raise TypeError(f"no channel-pruning rule for {type(model).__name__}")


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
    new = VGG(pruned_cfg(model, masks), num_classes)
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
    new = PreResNet(model.depth, num_classes, model.width, pruned_cfg(model, masks))
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


def zeroes_emptied(model: nn.Module) -> bool:
    """Whether an emptied BN layer of ``model``'s family is built as a zeroed channel (residual
    PreResNet: the block keeps its shortcut) rather than a live one (plain VGG; module docstring)."""
    return isinstance(model, PreResNet)


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
    model = copy.deepcopy(model).cpu()
    zero_pruned_bn(model, [torch.zeros_like(m) if i in zeroed else m for i, m in enumerate(masks)])
    if isinstance(model, VGG):
        return _prune_vgg(model, masks, num_classes)
    if isinstance(model, PreResNet):
        return _prune_preresnet(model, masks, num_classes)
    raise TypeError(f"no channel-pruning rule for {type(model).__name__}")
