"""What a drawn ticket keeps, layer by layer, and whether it is still a network.

``ticket_report`` is computed once, where the ticket is drawn (the retraining and lottery
stages), and stored in the run's ``result.json``; reports only read it.

* **Per-layer counts**: kept / total per prunable layer, in the method's unit: BN channels for
  channel methods (``bn``, ``thinet``; network slimming's mask, REFERENCE.md section 4), filters
  of the prunable convs for ``l1`` (RT Table 8, REFERENCE.md section 8), weights of the masked
  conv/linear layers for weight methods (``magnitude``, ``snip``, ``convmagnitude``; sections 7, 9).
  Counts are the criterion's own: a layer the criterion empties counts 0 kept even where the
  pruned architecture keeps one channel to stay buildable (``methods.pruning.channels.prune_channels``).
* **Collapsed**: some prunable layer keeps nothing (0 weights of a conv or linear layer, 0
  channels of a BN layer, 0 filters of a conv).
* **Disconnected**: no path from the input to the logits survives in the masked dense network
  (pruned BN channels with gamma and beta zero, pruned weights and filters zero): a plain
  network's emptied layer, an emptied classifier or last BN, a residual network whose every
  path (branches and shortcuts) is cut. Tested structurally, not numerically: every kept weight
  and BN channel counts as a live edge (``data_path_intact``), so a plug-in model needs no rule.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from methods.pruning.eb import bn_layers
from methods.pruning.channels import zero_pruned_bn
from methods.pruning.l1 import prunable_convs, zero_filters
from methods.pruning.unstructured import prunable, remove_masks


def _names(model: nn.Module) -> dict[int, str]:
    return {id(m): name for name, m in model.named_modules()}


@torch.no_grad()
def data_path_intact(masked: nn.Module) -> bool:
    """Whether any input pixel still reaches any logit of ``masked`` (a network with its pruned
    weights, filters and BN channels set to zero; it is not changed).

    Reachability, exact and free of overflow: on a copy every conv/linear weight becomes 1 where
    it is nonzero, every bias 0, every BN the identity on channels whose gamma is nonzero (0
    elsewhere: such a channel passes only a constant), and every conv/linear output is reduced
    to 0/1 (reached or not); an all-ones ``(1, 3, 32, 32)`` input then gives a positive logit iff
    some path survives. ReLU, pooling, channel selection, padding and residual sums keep positive
    values positive, so any architecture built from them is covered.
    """
    net = remove_masks(copy.deepcopy(masked)).cpu().double().eval()
    hooks = []
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.weight.copy_((m.weight != 0).double())
            if m.bias is not None:
                m.bias.zero_()
            hooks.append(m.register_forward_hook(lambda mod, inp, out: (out > 0).double()))
        elif isinstance(m, _BatchNorm) and m.affine:
            m.weight.copy_((m.weight != 0).double())
            m.bias.zero_()
            m.running_mean.zero_()
            m.running_var.fill_(1.0 - m.eps)
    out = net(torch.ones(1, 3, 32, 32, dtype=torch.float64))
    for h in hooks:
        h.remove()
    return bool((out > 0).any())


def masked_dense(dense: nn.Module, ticket) -> nn.Module:
    """The dense network with the ticket's criterion applied as zeros (a copy): pruned BN
    channels' gamma and beta (channel methods, the criterion's masks, emptied layers empty),
    pruned filters (``l1``), or the held weight masks (weight methods)."""
    if ticket.channel_masks is not None:
        net = copy.deepcopy(dense)
        zero_pruned_bn(net, raw_channel_masks(ticket))
        return net
    if ticket.filter_masks is not None:
        return zero_filters(copy.deepcopy(dense), ticket.filter_masks)
    return ticket.model


def raw_channel_masks(ticket) -> list[torch.Tensor]:
    """The criterion's per-BN masks: the ticket's, with its emptied layers all False."""
    return [torch.zeros_like(m) if i in ticket.emptied else m for i, m in enumerate(ticket.channel_masks)]


def _layers(dense: nn.Module, ticket, kinds) -> tuple[str, list[dict]]:
    names = _names(dense)
    if ticket.channel_masks is not None:
        return "channels", [{"name": names[id(bn)], "kept": int(m.sum()), "total": m.numel()}
                            for bn, m in zip(bn_layers(dense), raw_channel_masks(ticket))]
    if ticket.filter_masks is not None:
        return "filters", [{"name": names[id(c)], "kept": int(m.sum()), "total": m.numel()}
                           for c, m in zip(prunable_convs(dense), ticket.filter_masks)]
    return "weights", [{"name": names[id(mod)], "kept": int(m.sum()), "total": m.numel()}
                       for (mod, _), m in zip(prunable(dense, kinds), ticket.weight_masks)]


def ticket_report(dense: nn.Module, ticket, kinds=("conv", "linear")) -> dict:
    """Per-layer kept / total and the validity flags of ``ticket`` drawn from ``dense``.

    ``dense``: the dense network the ticket was drawn from (its module names label the layers);
    ``kinds``: the layer kinds a weight method masks (``PruningMethod.kinds``).
    Returns ``{"unit": "channels" | "filters" | "weights", "layers": [{"name", "kept", "total"}],
    "kept", "total", "collapsed": [names of layers that keep nothing], "disconnected": bool,
    "emptied_layers": "zeroed" | "live" | None}`` (how the pruned network builds an emptied
    channel layer: ``methods.pruning.channels.prune_channels``; None when none is emptied).
    """
    unit, layers = _layers(dense, ticket, kinds)
    collapsed = [x["name"] for x in layers if x["kept"] == 0]
    emptied = None
    if unit == "channels" and ticket.emptied:
        emptied = "zeroed" if ticket.zeroed else "live"
    return {"unit": unit, "layers": layers, "kept": sum(x["kept"] for x in layers),
            "total": sum(x["total"] for x in layers), "collapsed": collapsed,
            "disconnected": not data_path_intact(masked_dense(dense, ticket)), "emptied_layers": emptied}


def warning(report: dict) -> str | None:
    """One log line for a collapsed or disconnected ticket, or None for a valid one."""
    if not report["collapsed"] and not report["disconnected"]:
        return None
    what = "disconnected (no path from input to logits survives)" if report["disconnected"] else "collapsed"
    layers = ", ".join(report["collapsed"]) or "no single layer emptied"
    return f"warning: ticket {what}; layers left with nothing: {layers}"
