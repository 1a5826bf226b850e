"""Weight-level (unstructured) masks: global magnitude pruning, SNIP, lottery-ticket rewind.

Masks are held by ``torch.nn.utils.prune``: a masked module keeps ``weight_orig`` (the
parameter the optimizer updates) and a ``weight_mask`` buffer, and a forward pre-hook sets
``weight = weight_orig * weight_mask`` before every forward, so pruned weights are zero in
every forward pass and their gradient (into ``weight_orig``) is zero.

Used for EB Table 2's LT (one-shot) and SNIP rows (conv + linear weights; REFERENCE.md
section 7) and RT Table 9 (conv weights only; REFERENCE.md section 9).

Optimizer caveat. ``prune`` re-registers the *same* Parameter object as ``weight_orig`` (and
``prune.remove`` puts it back as ``weight``), so an optimizer built before ``apply_masks``
still updates it. Pruned entries of ``weight_orig`` then get gradient 0 but can still move
through a momentum buffer filled before masking (and, once moved, through weight decay);
the effective weight stays exactly zero regardless. ``apply_masks`` zeroes the pruned entries
of ``weight_orig``, so with an optimizer created *after* ``apply_masks``/``rewind`` they stay
exactly zero too (gradient 0, decay of 0, momentum 0). Create the optimizer afterwards anyway:
an old one would carry the dense run's velocity into the retraining. ``remove_masks`` only at
the end: after it nothing holds the zeros.

Snapshots. ``torch.nn.utils.prune`` alone leaves two traps, both closed by hooks that
``apply_masks`` adds to every masked module (``_portable``):
  * after a forward with grad enabled, ``module.weight`` is a non-leaf tensor and
    ``copy.deepcopy`` (hence ``methods.metrics.flops.complexity``) raises RuntimeError (PyTorch PR
    103001, as for weight_norm): a forward hook swaps it for its detached value once the forward
    is done (the autograd graph keeps its own reference, so gradients are unchanged);
  * the state dict would hold ``weight_orig`` and ``weight_mask``, which a freshly built model
    does not load: a state-dict hook writes the effective ``weight = weight_orig * weight_mask``
    instead (equal to ``weight_orig``, whose pruned entries stay zero), and a load pre-hook maps
    ``weight`` back to ``weight_orig`` keeping the module's own mask (so checkpoints resume).
    The mask itself is not in the state dict: it is ``weight != 0`` of the snapshot, and the
    callers keep it beside (``Ticket.weight_masks``). A state dict with ``weight_orig`` and
    ``weight_mask`` keys (made before these hooks) still loads into a masked model.
Neither hook changes a value the training computes.
"""
from __future__ import annotations

import copy
import math
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

from methods.metrics.flops import complexity
from methods.models.init import he_normal_
from methods.base.inputs import check_ratio

#: Layer kinds a mask can cover; "conv" is Conv2d only (RT ``cifar_prune_iterative.py``).
KINDS: dict[str, type[nn.Module]] = {"conv": nn.Conv2d, "linear": nn.Linear}


def prunable(model: nn.Module, kinds=("conv", "linear")) -> list[tuple[nn.Module, str]]:
    """``(module, "weight")`` for every layer of the listed ``kinds`` in module order.

    Biases and BN parameters are never listed. Conv only for RT Table 9, conv + linear for
    EB's LT and SNIP rows (REFERENCE.md sections 7 and 9).

    Raises:
        ValueError: empty ``kinds`` or an unknown kind.
    """
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if not kinds or unknown:
        raise ValueError(f"kinds must be a non-empty subset of {sorted(KINDS)}, got {kinds}")
    types = tuple(KINDS[k] for k in kinds)
    return [(m, "weight") for m in model.modules() if isinstance(m, types)]


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight a forward pass uses: ``weight_orig * weight_mask`` on a masked module.

    Computed here rather than read from ``module.weight``, which a masked module only
    refreshes at its next forward (stale after an optimizer step).
    """
    if hasattr(module, "weight_orig"):
        return module.weight_orig * module.weight_mask
    return module.weight


@torch.no_grad()
def refresh_weights(model: nn.Module) -> nn.Module:
    """Recompute ``weight = weight_orig * weight_mask`` of every masked module without a graph.

    Makes ``module.weight`` current (it is otherwise refreshed only by the next forward) and a
    graph leaf, so the model can be deep-copied. Parameters and state dict are unchanged.
    Returns ``model``.
    """
    for module in model.modules():
        for h in module._forward_pre_hooks.values():
            if isinstance(h, prune.BasePruningMethod):
                setattr(module, h._tensor_name, h.apply_mask(module))
    return model


def removed_count(ratio: float, n: int) -> int:
    """floor(ratio * n) with ``ratio`` read as the decimal it was written as: 0.7 of 90 is 63,
    where float arithmetic gives 62.99999999999999 -> 62."""
    check_ratio(ratio)
    return math.floor(Fraction(repr(float(ratio))) * n)


def _global_masks(scores: list[torch.Tensor], ratio: float) -> list[torch.Tensor]:
    """Remove exactly ``floor(ratio * N)`` lowest scores pooled over all tensors.

    A stable ascending sort breaks ties by position (module order, then row-major), so the
    result is deterministic and the count exact, unlike a ``> threshold`` test.
    """
    flat = torch.cat([s.detach().flatten() for s in scores])
    k = removed_count(ratio, flat.numel())
    keep = torch.ones(flat.numel(), dtype=torch.bool, device=flat.device)
    keep[torch.sort(flat, stable=True).indices[:k]] = False
    return [m.view_as(s) for m, s in zip(keep.split([s.numel() for s in scores]), scores)]


@torch.no_grad()
def global_magnitude_masks(model: nn.Module, ratio: float, kinds=("conv", "linear")) -> list[torch.Tensor]:
    """One global magnitude threshold over |w| of all listed weights pooled.

    Removes exactly ``floor(ratio * N)`` weights (N = number of listed weights), the smallest
    |w|; equal |w| are removed in module order. On a masked model the effective weights are
    ranked, so already-pruned weights (|w| = 0) go first. Returns one bool mask per
    ``prunable(model, kinds)`` entry, the weight's shape and device, True = kept.

    Source: Han et al. 2015; Frankle & Carbin 2019 (one-shot); RT
    ``cifar/lottery-ticket/weight-level/cifar_prune_iterative.py`` keeps |w| > sorted[int(N p)],
    which removes one weight more than ``floor(N p)`` (plus any ties at the threshold).

    Raises:
        ValueError: ``ratio`` outside (0, 1); bad ``kinds``.
    """
    return _global_masks([effective_weight(m).abs() for m, _ in prunable(model, kinds)], ratio)


def snip_masks(model: nn.Module, batch_x: torch.Tensor, batch_y: torch.Tensor, ratio: float,
               kinds=("conv", "linear"), train_mode: bool = True) -> list[torch.Tensor]:
    """SNIP connection sensitivity: keep the top ``(1 - ratio)`` of |w * dL/dw| over all listed weights.

    ``batch_x``: ``(B, ...)`` float inputs on the model's device; ``batch_y``: ``(B,)`` int64
    labels. L = mean softmax cross-entropy on that one mini-batch at the current (initial)
    weights. Exactly ``floor(ratio * N)`` weights are removed (official SNIP keeps
    ``round(N (1 - ratio))``, at most one different); ties removed in module order.
    SNIP normalises s = |w g| / sum |w g|: one positive constant for every weight, so the ranking
    and the mask are the same without it. Biases are not scored (official SNIP also scores
    them): the masks cover weights only, like LT and RT.

    The forward/backward runs on a deep copy, so the model's weights, gradients, BN running
    statistics and mode are untouched. ``train_mode=True`` normalises with batch statistics
    (the usual PyTorch port); ``False`` uses eval-mode BN, as official SNIP does (``is_train=False``).

    Source: Lee et al. 2019 (SNIP), section 4; official ``namhoonlee/snip-public`` ``snip/model.py``.

    Raises:
        ValueError: ``ratio`` outside (0, 1); bad ``kinds``.
    """
    removed_count(ratio, 1)  # fail before the forward pass
    net = copy.deepcopy(refresh_weights(model))
    remove_masks(net)  # a masked copy: score its effective weights as plain leaves
    net.train(train_mode)
    weights = [m.weight for m, _ in prunable(net, kinds)]
    loss = F.cross_entropy(net(batch_x), batch_y)
    grads = torch.autograd.grad(loss, weights)
    return _global_masks([(w * g).abs() for w, g in zip(weights, grads)], ratio)


def _fitting(model: nn.Module, masks: list[torch.Tensor], kinds) -> list[tuple[nn.Module, str]]:
    """``prunable(model, kinds)``, checked to match ``masks`` one to one in shape (ValueError if not)."""
    pairs = prunable(model, kinds)
    if len(masks) != len(pairs):
        raise ValueError(f"{len(masks)} masks for {len(pairs)} prunable layers of kinds {tuple(kinds)}")
    for (module, _), mask in zip(pairs, masks):
        w = effective_weight(module)
        if mask.shape != w.shape:
            raise ValueError(f"mask {tuple(mask.shape)} does not fit weight {tuple(w.shape)} of {module}")
    return pairs


def apply_masks(model: nn.Module, masks: list[torch.Tensor], kinds=("conv", "linear")) -> nn.Module:
    """Hold ``masks`` (one per ``prunable(model, kinds)`` entry, True = kept) with
    ``prune.custom_from_mask``; a second call intersects with the masks already there.

    Pruned entries of ``weight_orig`` are set to zero (see the module docstring). Returns
    ``model``. Build the optimizer after this call.

    Raises:
        ValueError: wrong number of masks or a mask of the wrong shape.
    """
    pairs = _fitting(model, masks, kinds)
    for (module, name), mask in zip(pairs, masks):
        w = getattr(module, name)
        with torch.no_grad():  # no graph in module.weight: the model stays deep-copyable
            prune.custom_from_mask(module, name, mask.to(w.device))
            module.weight_orig.mul_(module.weight_mask)
        _portable(module)
    return refresh_weights(model)


def _masked_names(module: nn.Module) -> list[str]:
    return [h._tensor_name for h in module._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]


def _leaf_weights(module, inputs, output) -> None:
    """Forward hook: the masked ``weight`` the pre-hook computed, detached, so the module
    deep-copies; the graph of this forward already holds the tensor it needs."""
    for name in _masked_names(module):
        setattr(module, name, getattr(module, name).detach())


def _effective_state(module, state_dict, prefix, local_metadata) -> None:
    """State-dict hook: ``<name>_orig``/``<name>_mask`` -> the effective ``<name>`` a plain model loads.
    ``state_dict(keep_vars=True)`` (live Parameters, as ``torch.jit.trace`` and so fvcore read
    them) is left as it is: it must name the Parameter the forward uses."""
    for name in _masked_names(module):
        if isinstance(state_dict.get(prefix + name + "_orig"), nn.Parameter):
            continue
        orig, mask = state_dict.pop(prefix + name + "_orig"), state_dict.pop(prefix + name + "_mask")
        state_dict[prefix + name] = (orig * mask).detach()


def _masked_load(module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors) -> None:
    """Load pre-hook: a plain ``<name>`` fills ``<name>_orig``; the module keeps its own mask."""
    for name in _masked_names(module):
        if prefix + name in state_dict and prefix + name + "_orig" not in state_dict:
            state_dict[prefix + name + "_orig"] = state_dict.pop(prefix + name)
            state_dict.setdefault(prefix + name + "_mask", getattr(module, name + "_mask"))


def _portable(module: nn.Module) -> None:
    """Add the snapshot hooks of the module docstring once; they do nothing once unmasked."""
    if _leaf_weights not in module._forward_hooks.values():
        module.register_forward_hook(_leaf_weights)
        module.register_state_dict_post_hook(_effective_state)
        module.register_load_state_dict_pre_hook(_masked_load)


def remove_masks(model: nn.Module) -> nn.Module:
    """Make every mask permanent (``prune.remove``): ``weight`` becomes a plain Parameter holding
    ``weight_orig * mask`` (the same Parameter object). Returns ``model``."""
    for module in model.modules():
        names = [h._tensor_name for h in module._forward_pre_hooks.values()
                 if isinstance(h, prune.BasePruningMethod)]
        for name in names:
            prune.remove(module, name)
    return model


def rewind(model: nn.Module, init_state_dict: dict, masks: list[torch.Tensor],
           kinds=("conv", "linear")) -> nn.Module:
    """Lottery-ticket reset: every parameter and buffer back to ``init_state_dict``, masks held.

    ``init_state_dict``: a dense state dict (``weight`` keys, no ``weight_orig``) copied before
    training, e.g. ``copy.deepcopy(model.state_dict())`` at epoch 0. Afterwards surviving
    weights hold their initial values and pruned ones are zero (``weight_orig`` too); BN
    statistics are the initial ones. Existing masks are replaced by ``masks``. Returns ``model``;
    build the optimizer after this call.

    Source: Frankle & Carbin 2019 (train, prune, reset survivors to theta_0); REFERENCE.md
    sections 7 (LT one-shot) and 9 (winning ticket = theta_0 times the mask).

    Raises:
        RuntimeError: ``init_state_dict`` does not match the dense model (``load_state_dict``).
        ValueError: masks do not fit (``apply_masks``).
    """
    remove_masks(model)
    model.load_state_dict(init_state_dict)  # copies in place: Parameter objects are kept
    return apply_masks(model, masks, kinds)


@torch.no_grad()
def rescaled_he_(model: nn.Module, masks: list[torch.Tensor], kinds=("conv",)) -> nn.Module:
    """Sparsity-rescaled He init of every listed weight, in place, from torch's global RNG:
    ``w ~ N(0, sqrt(2 / n))`` with ``n = k*k*out * density`` (density = kept fraction of the
    layer's ``mask``), i.e. the dense fan-out scale divided by sqrt(density); a layer with no
    survivor is left as it is. Masks are not applied here (``apply_masks`` after).

    Source: RT ``cifar/lottery-ticket/weight-level/cifar_scratch_no_longer.py`` (n = nonzero
    mask entries / in_channels); REFERENCE.md section 9, Table 9's random-init arm.

    Raises:
        ValueError: wrong number of masks or a mask of the wrong shape.
    """
    for (module, _), mask in zip(_fitting(model, masks, kinds), masks):
        w = module.weight_orig if hasattr(module, "weight_orig") else module.weight
        kept = int(mask.sum())
        if kept:
            he_normal_(w, kept / w.shape[1])  # n = k*k*out * density
    return refresh_weights(model)


@torch.no_grad()
def sparsity_report(model: nn.Module, kinds=("conv", "linear")) -> dict:
    """Nonzero effective weights of the listed layers.

    Returns ``{"total": N, "nonzero": n, "density": n / N, "layers": {module name: density}}``
    (counts of weights; a surviving weight that is exactly zero counts as zero).
    """
    names = {id(m): name for name, m in model.named_modules()}
    total = nonzero = 0
    layers = {}
    for module, _ in prunable(model, kinds):
        w = effective_weight(module)
        nz = int(torch.count_nonzero(w))
        total += w.numel()
        nonzero += nz
        layers[names[id(module)]] = nz / w.numel()
    return {"total": total, "nonzero": nonzero, "density": nonzero / total if total else 1.0, "layers": layers}


@torch.no_grad()
def effective_macs(model: nn.Module) -> dict:
    """Dense and "nonzero" forward cost of one 3x32x32 image.

    ``macs_nonzero`` = sum over Conv2d and Linear layers of dense MACs x the layer's density of
    nonzero weights (shrinkbench ``metrics/flops.py`` ``flops()``: what sparse kernels could
    save; dense hardware still pays ``macs``). ``macs`` is ``methods.metrics.flops.complexity`` (fvcore),
    unchanged by masks (the mask multiply is an ``aten::mul``, not counted). Per-layer dense MACs
    come from forward hooks: output elements per image x weights per output (``weight[0].numel()``).

    Returns ``{"macs", "flops", "macs_nonzero", "flops_nonzero", "flops_paper",
    "flops_paper_nonzero", "layers": {name: (dense MACs, density)}}``; FLOPs = 2 x MACs
    (REFERENCE.md section 1). ``flops_paper`` is the official counter's number
    (``methods.metrics.flops``), dense as the papers count masked networks (EB Table 2's LT and SNIP rows
    cost dense training); ``flops_paper_nonzero`` takes off the pruned weights' 2 FLOPs per MAC
    only (BN, ReLU, pooling and bias terms do not shrink with a weight mask).

    Raises:
        RuntimeError: the per-layer sum differs from fvcore's count (work outside Conv2d/Linear
        modules, e.g. a functional matmul, that the nonzero count would miss).
    """
    dense = complexity(refresh_weights(model))
    m = copy.deepcopy(model).cpu().eval()
    per_layer: dict[str, int] = {}
    handles = []
    for name, mod in m.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            def hook(mod, inputs, out, name=name):
                per_layer[name] = per_layer.get(name, 0) + out[0].numel() * mod.weight[0].numel()
            handles.append(mod.register_forward_hook(hook))
    m(torch.zeros(1, 3, 32, 32))
    for h in handles:
        h.remove()
    if sum(per_layer.values()) != dense["macs"]:
        raise RuntimeError(f"Conv2d/Linear hooks count {sum(per_layer.values())} MACs, fvcore "
                           f"{dense['macs']}: the nonzero count would not match the dense one")
    mods = dict(m.named_modules())
    layers = {}
    for name, macs in per_layer.items():
        w = effective_weight(mods[name])
        layers[name] = (macs, int(torch.count_nonzero(w)) / w.numel())
    nz = sum(macs * d for macs, d in layers.values())
    return {"macs": dense["macs"], "flops": dense["flops"], "macs_nonzero": nz, "flops_nonzero": 2 * nz,
            "flops_paper": dense["flops_paper"], "flops_paper_nonzero": dense["flops_paper"] - 2 * (dense["macs"] - nz),
            "layers": layers}
