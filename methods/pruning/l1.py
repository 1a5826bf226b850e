"""L1-norm filter pruning (Li et al. 2017) of the RT L1 family: pruned architectures and physical pruning.

Source: Li et al., ICLR 2017, section 3 and Table 2; RT ``cifar/l1-norm-pruning/vggprune.py``,
``res56prune.py``, ``res110prune.py`` (and the lottery copies ``lottery_*prune.py``); REFERENCE.md section 8.

A variant's layer rules give each prunable conv's kept count, ``int(out * (1 - p))``; the kept
filters of a layer are its ``kept`` filters with the largest L1 norm sum |W_j| over
(in_channels, 3, 3) of the trained weights, ranked within the layer. The official lottery
scripts zero the wrong filters (a float array used as an index, REFERENCE.md section 8): the
intended top-k is implemented here.

Prunable convs: VGG, every conv (conv1..conv13 in order; the variant prunes some); ResNet,
only the first conv of each basic block. Conv layers are numbered with the stem as 1, so the
first conv of block i (0-based) is layer 2 + 2i.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from methods.models import CifarResNet, RTVGG
from methods.pruning.channels import _copy_bn  # the kept channels of a BN, as EB physical pruning copies them


@dataclass(frozen=True)
class VGGRule:
    """Prune the 1-based conv layers ``layers`` by ``p``."""

    layers: frozenset[int]
    p: float


@dataclass(frozen=True)
class ResNetRule:
    """Prune every block's first conv by its stage's ratio ``stage_p`` except the layers ``skip``."""

    skip: frozenset[int]
    stage_p: tuple[float, float, float]


#: Li et al. 2017 Table 2 (RT ``vggprune.py``, ``res56prune.py -v A|B``, ``res110prune.py -v A|B``).
VARIANTS: dict[tuple[str, str], VGGRule | ResNetRule] = {
    ("vgg16l1", "a"): VGGRule(frozenset({1, 8, 9, 10, 11, 12, 13}), 0.5),
    ("resnet56", "a"): ResNetRule(frozenset({16, 20, 38, 54}), (0.1, 0.1, 0.1)),
    ("resnet56", "b"): ResNetRule(frozenset({16, 18, 20, 34, 38, 54}), (0.6, 0.3, 0.1)),
    ("resnet110", "a"): ResNetRule(frozenset({36}), (0.5, 0.0, 0.0)),
    ("resnet110", "b"): ResNetRule(frozenset({36, 38, 74}), (0.5, 0.4, 0.3)),
}


def variant_rule(model_name: str, variant: str) -> VGGRule | ResNetRule:
    """The layer rule of ``model_name``-``variant`` (e.g. resnet56, "b" = ResNet-56-B).

    Raises:
        ValueError: no such variant (the message lists the known ones).
    """
    rule = VARIANTS.get((model_name, variant))
    if rule is None:
        known = ", ".join(f"{m}-{v}" for m, v in VARIANTS)
        raise ValueError(f"no L1-pruned variant {model_name}-{variant}; choose one of {known}")
    return rule


def prunable_convs(model: nn.Module) -> list[nn.Conv2d]:
    """The convs whose output filters L1 pruning may remove, in order (see the module docstring).

    Raises:
        TypeError: not an RT L1-family network.
    """
    if isinstance(model, RTVGG):
        return [m for m in model.features if isinstance(m, nn.Conv2d)]
    if isinstance(model, CifarResNet):
        return [b.conv1 for b in model.blocks]
    raise TypeError(f"no L1 filter-pruning rule for {type(model).__name__}")


def kept_counts(model: nn.Module, rule: VGGRule | ResNetRule) -> list[int]:
    """Kept filters per prunable conv: ``int(out * (1 - p))`` (at least 1) where the rule prunes,
    ``out`` elsewhere. The ResNet stage of block i is i // n (RT ``res56prune.py``: layer id <= 18, 36, 54)."""
    convs = prunable_convs(model)
    outs = [c.out_channels for c in convs]
    if isinstance(rule, VGGRule):
        ps = [rule.p if i + 1 in rule.layers else 0.0 for i in range(len(outs))]
    else:
        n = len(outs) // 3
        ps = [0.0 if 2 + 2 * i in rule.skip else rule.stage_p[i // n] for i in range(len(outs))]
    return [max(1, int(o * (1 - p))) if p else o for o, p in zip(outs, ps)]


def counts_cfg(model: nn.Module, counts: list[int]) -> list:
    """The cfg knob of the architecture that keeps ``counts`` filters per layer (``kept_counts``): the VGG
    cfg with "M" kept, or the ResNet block widths. (``methods.pruning.channels.pruned_cfg`` does the same
    from per-BN masks.)"""
    if isinstance(model, RTVGG):
        it = iter(counts)
        return [v if v == "M" else next(it) for v in model.cfg]
    return list(counts)


def filter_l1(conv: nn.Conv2d) -> torch.Tensor:
    """L1 norm of each output filter, ``(out,)``: sum |W_j| over (in, kh, kw)."""
    return conv.weight.detach().abs().sum(dim=(1, 2, 3))


def top_filters(scores: torch.Tensor, kept: int) -> torch.Tensor:
    """Bool ``(out,)``: the ``kept`` largest scores; equal scores favour the lower index (stable)."""
    order = torch.sort(-scores, stable=True).indices[:kept]
    mask = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    mask[order] = True
    return mask


def l1_masks(model: nn.Module, variant: str, model_name: str) -> list[torch.Tensor]:
    """Filter masks of ``model_name``-``variant`` ranked by ``model``'s trained weights: one bool
    ``(out,)`` per ``prunable_convs(model)`` entry, True = kept.

    Raises:
        ValueError: unknown variant; TypeError: not an L1-family network.
    """
    counts = kept_counts(model, variant_rule(model_name, variant))
    return [top_filters(filter_l1(c), k) for c, k in zip(prunable_convs(model), counts)]


def _idx(m: torch.Tensor) -> torch.Tensor:
    return torch.nonzero(m).flatten().cpu()


def _copy_conv(dst: nn.Conv2d, src: nn.Conv2d, keep_out, keep_in) -> None:
    w = src.weight.data
    w = w if keep_out is None else w[keep_out]
    dst.weight.data.copy_(w if keep_in is None else w[:, keep_in])
    if src.bias is not None:
        dst.bias.data.copy_(src.bias.data if keep_out is None else src.bias.data[keep_out])


@torch.no_grad()
def prune_filters(model: nn.Module, masks: list[torch.Tensor]) -> nn.Module:
    """Physically pruned copy of ``model`` keeping the filters of ``masks`` (``model`` unchanged).

    Kept output filters of each pruned conv, their BN (weight, bias, running statistics) and the
    matching input channels of the next layer (VGG: next conv or the first Linear; ResNet: the
    block's conv2) are copied. In eval mode its outputs equal ``model``'s with the pruned filters
    and their BN gamma and beta zeroed (RT ``vggprune.py``, ``res56prune.py``).

    Raises:
        TypeError: not an L1-family network; ValueError: masks of the wrong number or length.
    """
    convs = prunable_convs(model)
    if len(masks) != len(convs) or any(m.numel() != c.out_channels for m, c in zip(masks, convs)):
        raise ValueError(f"{len(masks)} masks do not fit the {len(convs)} prunable convs of {type(model).__name__}")
    src = copy.deepcopy(model).cpu()
    counts = [int(m.sum()) for m in masks]
    classes = (src.fc if isinstance(src, CifarResNet) else _last_linear(src)).out_features
    if isinstance(src, RTVGG):
        new = RTVGG(counts_cfg(src, counts), classes, src.hidden, src.conv_bias, src.bn1d_init)
        olds = [m for m in src.features if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
        news = [m for m in new.features if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
        keep_in = None
        for i, mask in enumerate(masks):
            keep = _idx(mask)
            _copy_conv(news[2 * i], olds[2 * i], keep, keep_in)
            _copy_bn(news[2 * i + 1], olds[2 * i + 1], keep)
            keep_in = keep
        first = new.classifier if new.hidden is None else new.classifier[0]
        ofirst = src.classifier if src.hidden is None else src.classifier[0]
        first.weight.data.copy_(ofirst.weight.data[:, keep_in])
        first.bias.data.copy_(ofirst.bias.data)
        if new.hidden is not None:
            new.classifier[1:].load_state_dict(src.classifier[1:].state_dict())
        new.registry_name = model.registry_name
        return new
    new = CifarResNet(src.depth, classes, src.width, counts_cfg(src, counts), src.shortcut)
    new.conv1.load_state_dict(src.conv1.state_dict())
    new.bn1.load_state_dict(src.bn1.state_dict())
    for bo, bn, mask in zip(src.blocks, new.blocks, masks):
        keep = _idx(mask)
        _copy_conv(bn.conv1, bo.conv1, keep, None)
        _copy_bn(bn.bn1, bo.bn1, keep)
        _copy_conv(bn.conv2, bo.conv2, None, keep)
        bn.bn2.load_state_dict(bo.bn2.state_dict())
        if bo.downsample is not None:
            bn.downsample.load_state_dict(bo.downsample.state_dict())
    new.fc.load_state_dict(src.fc.state_dict())
    new.registry_name = model.registry_name
    return new


def _last_linear(model: nn.Module) -> nn.Linear:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


@torch.no_grad()
def zero_filters(model: nn.Module, masks: list[torch.Tensor]) -> nn.Module:
    """In place: the pruned filters of ``masks`` and their BN gamma and beta set to zero: the
    masked dense network whose eval-mode outputs the physical pruning must match. (RT's lottery
    scripts zero only the conv filters; with beta starting at 0 those channels stay dead.)
    Returns ``model``."""
    for conv, mask in zip(prunable_convs(model), masks):
        conv.weight[~mask] = 0
        if conv.bias is not None:
            conv.bias[~mask] = 0
    bns = _bn_after(model)
    for bn, mask in zip(bns, masks):
        bn.weight[~mask] = 0
        bn.bias[~mask] = 0
    return model


def _bn_after(model: nn.Module) -> list[nn.BatchNorm2d]:
    if isinstance(model, RTVGG):
        return [m for m in model.features if isinstance(m, nn.BatchNorm2d)]
    return [b.bn1 for b in model.blocks]
