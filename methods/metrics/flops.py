"""Model complexity through fvcore in two conventions (REFERENCE.md section 1).

* **conv + linear** (``macs``, ``flops``): fvcore counts one multiply-add as one "flop"; we call
  that a MAC and report FLOPs = 2 x MACs. Only convolution and linear multiply-adds (BN, ReLU,
  pooling, biases, additions excluded). Golden: EB VGG16 313.2 M MACs, PreResNet-101 154.06 M MACs.
* **official counter** (``flops_paper``): the convention of the papers' FLOPs columns, EB
  ``compute_flops.py`` ``print_model_param_flops(multiply_adds=True)`` (the same file ships in RT
  ``cifar/l1-norm-pruning``): conv and linear 2 FLOPs per MAC plus 1 per output element for a
  bias; BatchNorm2d 2 per input element; ReLU 1 per element; MaxPool2d / AvgPool2d modules k^2 per
  output element. That counter hooks leaf modules of those types only, so functional ops (the
  AvgPool2d that EB and RT ``vgg.py`` build inside ``forward``, RT's option-A shortcut pooling,
  residual adds), AdaptiveAvgPool2d, BatchNorm1d and channel selection are not counted. Golden:
  EB VGG16 627,355,658 FLOPs (CIFAR-10) / 627,447,908 (CIFAR-100), PreResNet-101 313,959,434 /
  314,005,604 (the official counter on the official models).

Both come from one fvcore trace of ``model.eval()`` under ``no_grad`` with one 3x32x32 image; the
per-op handles below do the counting, fvcore attributes each op to the module that ran it.
"""
from __future__ import annotations

import copy
import math
from collections import Counter

import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import addmm_flop_jit, conv_flop_jit, get_shape, linear_flop_jit, matmul_flop_jit
from torch import nn

from methods.models.rt import CifarResNet, RTVGG
from methods.models.vgg import VGG

#: EB Table 2's FLOPs unit: 0.05 PFLOPs.
EB_UNIT_FLOPS = 5e13

#: Module types whose forward hooks the official counter registers (EB ``compute_flops.py``,
#: ``foo()``); nn.Upsample is hooked too but none of our models has one.
OFFICIAL_HOOKED = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d)
#: Where one of our modules and its official counterpart differ in whether the official counter
#: sees them (module name -> counted). EB ``models/vgg.py`` and RT ``l1-norm-pruning/models/vgg.py``
#: / ``weight-level/models/cifar/vgg.py`` call ``nn.AvgPool2d(2)(x)`` inside ``forward`` (not hooked;
#: ours is registered as ``pool``); RT ``resnet.py`` (both families) registers ``nn.AvgPool2d(8)``
#: (hooked, 64 per output element) where ours is ``AdaptiveAvgPool2d(1)`` over the same 8x8 map.
OFFICIAL_VIEW: dict[type, dict[str, bool]] = {VGG: {"pool": False}, RTVGG: {"pool": False},
                                              CifarResNet: {"avgpool": True}}


def _numel(val) -> int:
    return math.prod(get_shape(val))


def _bias_elems(bias, out) -> int:
    # official conv/linear hooks add one FLOP per output element when the layer has a bias
    return 0 if isinstance(bias.type(), torch.NoneType) else _numel(out)


def _conv(inputs, outputs) -> Counter:
    return Counter({"mac": conv_flop_jit(inputs, outputs)["conv"], "bias": _bias_elems(inputs[2], outputs[0])})


def _linear(inputs, outputs) -> Counter:
    return Counter({"mac": linear_flop_jit(inputs, outputs), "bias": _bias_elems(inputs[2], outputs[0])})


def _addmm(inputs, outputs) -> Counter:
    return Counter({"mac": addmm_flop_jit(inputs, outputs), "bias": _numel(outputs[0])})


def _pool(inputs, outputs) -> Counter:
    """k^2 per output element (official ``pooling_hook``); for an adaptive pool k^2 = in / out area."""
    x, y = get_shape(inputs[0]), get_shape(outputs[0])
    return Counter({"pool": math.prod(y) * (x[-2] * x[-1]) // (y[-2] * y[-1])})


_HANDLES = {
    "aten::_convolution": _conv, "aten::linear": _linear, "aten::addmm": _addmm,
    "aten::matmul": lambda i, o: Counter({"mac": matmul_flop_jit(i, o)}),
    "aten::batch_norm": lambda i, o: Counter({"bn": 2 * _numel(i[0])}),
    "aten::relu": lambda i, o: Counter({"relu": _numel(i[0])}),
    "aten::relu_": lambda i, o: Counter({"relu": _numel(i[0])}),
    "aten::max_pool2d": _pool, "aten::avg_pool2d": _pool, "aten::adaptive_avg_pool2d": _pool,
}


def _paper(counts: Counter) -> int:
    return 2 * counts["mac"] + counts["bias"] + counts["bn"] + counts["relu"] + counts["pool"]


def paper_breakdown(model: nn.Module) -> Counter:
    """Official-counter FLOPs of one 3x32x32 image by kind: ``mac`` (conv + linear multiply-adds,
    x2 in the total), ``bias``, ``bn``, ``relu``, ``pool`` (FLOPs), over the modules that counter
    sees (``OFFICIAL_HOOKED``, corrected by ``OFFICIAL_VIEW``). The model is deep-copied."""
    return _trace(model)[1]


def _trace(model: nn.Module) -> tuple[int, Counter]:
    """One fvcore trace: (conv + linear MACs of the whole model, official-counter Counter)."""
    m = copy.deepcopy(model).cpu().eval()
    with torch.no_grad():
        fa = FlopCountAnalysis(m, (torch.zeros(1, 3, 32, 32),))
        fa.clear_op_handles()
        fa.set_op_handle(**_HANDLES)
        fa.unsupported_ops_warnings(False)
        fa.uncalled_modules_warnings(False)
        fa.tracer_warnings("none")
        per_module = fa.by_module_and_operator()
    view = next((v for cls, v in OFFICIAL_VIEW.items() if isinstance(m, cls)), {})
    seen = Counter()
    for name, mod in m.named_modules():
        if name and next(mod.children(), None) is None and view.get(name, isinstance(mod, OFFICIAL_HOOKED)):
            seen += per_module[name]
    return int(per_module[""]["mac"]), seen


def complexity(model: nn.Module) -> dict:
    """Forward cost of one 3x32x32 image in both conventions (module docstring).

    Returns ``{"macs", "flops", "params", "flops_paper"}``: conv + linear MACs, ``flops`` = 2 x
    ``macs``, parameters, and FLOPs under the official counter (EB ``compute_flops.py``).
    The model is deep-copied, so its BN statistics and mode are untouched.
    """
    macs, seen = _trace(model)
    params = sum(p.numel() for p in model.parameters())
    return {"macs": macs, "flops": 2 * macs, "params": params, "flops_paper": _paper(seen)}


def training_flops(forward_flops: float, images: int, epochs: float) -> float:
    """Training FLOPs: 3 x forward FLOPs (forward + backward ~ 2 x forward) x images x epochs.

    REFERENCE.md section 1; e.g. dense VGG16, 50,000 images, 160 epochs = 1.506e16 = 301 EB units.
    """
    return 3.0 * forward_flops * images * epochs


def cell_training_flops(dense_flops: float, trained_flops: float, draw_epoch: int, retrain_epochs: int,
                        images: int, prune_flops: float = 0.0) -> dict:
    """Training FLOPs a table cell is charged (EB Table 2's cost column; REFERENCE.md section 7).

    ``dense_flops``: forward FLOPs of the dense network (one 3x32x32 image), trained for
    ``draw_epoch`` epochs before the ticket is drawn; ``trained_flops``: forward FLOPs of the
    network retrained for ``retrain_epochs`` (a weight-masked network counts at dense FLOPs);
    ``prune_flops``: FLOPs spent choosing the mask. Returns ``{"search", "prune", "retrain",
    "total"}`` in FLOPs. E.g. LT (one-shot) on VGG16: 160 dense + 160 dense epochs = 602 EB
    units (paper: 605); SNIP: 0 + 160 = 301 (paper: 302).
    """
    search = training_flops(dense_flops, images, draw_epoch)
    retrain = training_flops(trained_flops, images, retrain_epochs)
    return {"search": search, "prune": prune_flops, "retrain": retrain, "total": search + prune_flops + retrain}
