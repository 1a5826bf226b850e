"""Model complexity through fvcore (REFERENCE.md section 1).

fvcore counts one multiply-add as one "flop"; we call that a MAC and report FLOPs = 2 x MACs.
Only convolution and linear layers are counted (BN, ReLU, pooling, additions excluded), on
``model.eval()`` under ``no_grad`` with one 3x32x32 image, matching the golden values
(EB VGG16 313.2 M MACs, PreResNet-101 154.06 M MACs).
"""
from __future__ import annotations

import copy

import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import addmm_flop_jit, conv_flop_jit, linear_flop_jit, matmul_flop_jit
from torch import nn

#: EB Table 2's FLOPs unit: 0.05 PFLOPs.
EB_UNIT_FLOPS = 5e13


def complexity(model: nn.Module) -> dict:
    """Forward cost of one 3x32x32 image: ``macs``, ``flops`` (= 2 MACs) and ``params``.

    The model is deep-copied, so its BN statistics and mode are untouched.
    """
    m = copy.deepcopy(model).cpu().eval()
    with torch.no_grad():
        fa = FlopCountAnalysis(m, (torch.zeros(1, 3, 32, 32),))
        fa.clear_op_handles()
        fa.set_op_handle(**{"aten::_convolution": conv_flop_jit, "aten::addmm": addmm_flop_jit,
                            "aten::linear": linear_flop_jit, "aten::matmul": matmul_flop_jit})
        fa.unsupported_ops_warnings(False)
        fa.uncalled_modules_warnings(False)
        fa.tracer_warnings("none")
        macs = int(fa.total())
    params = sum(p.numel() for p in model.parameters())
    return {"macs": macs, "flops": 2 * macs, "params": params}


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
