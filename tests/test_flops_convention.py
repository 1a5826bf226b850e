"""Golden tests of the two FLOPs conventions (methods/metrics/flops.py; REFERENCE.md section 1).

Expected official-counter numbers come from EB ``compute_flops.py`` (notes/eb_official.md,
"Forward FLOPs": VGG16 627,355,658 / 627,447,908, PreResNet-101 313,959,434 / 314,005,604) or
are worked out here by formula from the architecture, per that counter's rules: conv / linear
2 per multiply-add (+1 per output element with a bias), BatchNorm2d 2 per element, ReLU 1 per
element, MaxPool2d / AvgPool2d modules k^2 per output element; in-forward pools, adaptive pools,
BatchNorm1d and channel selection not counted.
"""
from __future__ import annotations

import pytest
import torch

from methods.metrics.flops import EB_UNIT_FLOPS, complexity, training_flops
from methods.models import build_model
from methods.models.vgg import VGG16_CFG

EPOCHS, IMAGES = 160, 50_000


def units(forward_flops: float) -> float:
    """Dense 160-epoch training at 50k images in EB units (0.05 PFLOPs)."""
    return 3 * forward_flops * IMAGES * EPOCHS / EB_UNIT_FLOPS


# --- analytic official-counter FLOPs, independent of methods/metrics/flops.py ---------------------

def vgg_formula(cfg, classes: int, hidden: int | None = None, conv_bias: bool = False) -> int:
    """Conv3x3 (pad 1) -> BN -> ReLU per width, 2x2 max-pool per "M"; final AvgPool2d(2) built in
    forward (not counted); Linear(last, classes), or RT's Linear-BN1d-ReLU-Linear with ``hidden``."""
    total, c_in, hw = 0, 3, 32 * 32
    for v in cfg:
        if v == "M":
            hw //= 4
            total += 4 * c_in * hw  # k^2 = 4 per output element
        else:
            total += (2 * 9 * c_in + conv_bias) * v * hw + 2 * v * hw + v * hw
            c_in = v
    if hidden is None:
        return total + 2 * c_in * classes + classes
    return total + 2 * c_in * hidden + hidden + hidden + 2 * hidden * classes + classes  # BN1d not counted


def preresnet_formula(cfg, classes: int, n: int = 11) -> int:
    """EB PreResNet: stem conv; per block BN1(in) -> select -> ReLU(sel) -> conv1 1x1 -> BN2 -> ReLU
    -> conv2 3x3/s -> BN3 -> ReLU -> conv3 1x1 (-> 4p) [+ 1x1/s downsample conv]; head BN(256) ->
    select -> ReLU -> adaptive pool (not counted) -> Linear."""
    hw = 32 * 32
    total = 2 * 27 * 16 * hw
    inplanes, i = 16, 0
    for stage, p in enumerate((16, 32, 64)):
        for b in range(n):
            sel, c1, c2 = cfg[i]
            out_hw = hw // 4 if (stage > 0 and b == 0) else hw
            total += 2 * inplanes * hw + sel * hw                       # bn1, relu on the selected channels
            total += 2 * sel * c1 * hw + 2 * c1 * hw + c1 * hw          # conv1, bn2, relu
            total += 2 * 9 * c1 * c2 * out_hw + 2 * c2 * out_hw + c2 * out_hw  # conv2, bn3, relu
            total += 2 * c2 * 4 * p * out_hw                            # conv3
            if b == 0:
                total += 2 * inplanes * 4 * p * out_hw                  # downsample conv
            inplanes, hw, i = 4 * p, out_hw, i + 1
    final = cfg[-1][0]
    return total + 2 * inplanes * hw + final * hw + 2 * final * classes + classes


def cifar_resnet_formula(widths, classes: int, n: int) -> int:
    """RT ResNet: stem conv-BN-ReLU; per block conv1/s -> BN -> ReLU -> conv2 -> BN -> add -> ReLU
    (option-A shortcut pooling built in a function: not counted); registered AvgPool2d(8): 64 per
    output element; Linear(64, classes)."""
    hw = 32 * 32
    total = 2 * 27 * 16 * hw + 2 * 16 * hw + 16 * hw
    inplanes, i = 16, 0
    for stage, p in enumerate((16, 32, 64)):
        for b in range(n):
            mid = widths[i]
            hw = hw // 4 if (stage > 0 and b == 0) else hw
            total += 2 * 9 * inplanes * mid * hw + 2 * mid * hw + mid * hw
            total += 2 * 9 * mid * p * hw + 2 * p * hw + p * hw
            inplanes, i = p, i + 1
    return total + 64 * 64 + 2 * 64 * classes + classes


# --- EB dense: the official counter's own numbers ----------------------------------------

@pytest.mark.parametrize("model, classes, golden, golden_units", [
    ("vgg16", 10, 627_355_658, 301.1), ("vgg16", 100, 627_447_908, None),
    ("preresnet101", 10, 313_959_434, 150.7), ("preresnet101", 100, 314_005_604, None)])
def test_dense_eb_models_match_the_official_counter(model, classes, golden, golden_units):
    cx = complexity(build_model(model, classes))
    assert cx["flops_paper"] == golden
    if golden_units is not None:
        assert round(units(cx["flops_paper"]), 1) == golden_units
        assert round(units(cx["flops"]), 1) == {"vgg16": 300.7, "preresnet101": 147.9}[model]  # conv + linear, unchanged


def test_formulas_reproduce_the_official_golden_numbers():
    """The analytic formulas used below give the official counter's numbers on the dense nets."""
    from methods.models.preresnet import default_cfg

    assert vgg_formula(VGG16_CFG, 10) == 627_355_658
    assert vgg_formula(VGG16_CFG, 100) == 627_447_908
    assert preresnet_formula(default_cfg(101), 10) == 313_959_434
    assert preresnet_formula(default_cfg(101), 100) == 314_005_604


# --- EB pruned: fixed cfgs worked out by formula -----------------------------------------

PRUNED_VGG = [32, 64, "M", 100, 128, "M", 200, 256, 180, "M", 300, 512, 400, "M", 256, 300, 212]


def test_pruned_vgg16():
    expected = vgg_formula(PRUNED_VGG, 100)
    cx = complexity(build_model("vgg16", 100, cfg=PRUNED_VGG))
    assert cx["flops_paper"] == expected
    assert cx["flops"] == expected - _vgg_non_mac(PRUNED_VGG, 100)


def _vgg_non_mac(cfg, classes):
    """BN + ReLU + max-pool + linear bias FLOPs of a VGG (what conv + linear leaves out)."""
    hw, c, extra = 32 * 32, 3, classes
    for v in cfg:
        if v == "M":
            hw //= 4
            extra += 4 * c * hw
        else:
            extra += 3 * v * hw
            c = v
    return extra


def _pruned_preresnet_cfg():
    """A fixed irregular cfg: every block loses some selected inputs and conv1/conv2 widths."""
    from methods.models.preresnet import default_cfg

    cfg = default_cfg(101)
    out = [[max(1, sel - 3 * (i % 4)), max(1, c1 - (i % 5)), max(1, c2 - 2 * (i % 3))]
           for i, (sel, c1, c2) in enumerate(cfg[:-1])]
    return out + [[cfg[-1][0] - 17]]


def test_pruned_preresnet101():
    cfg = _pruned_preresnet_cfg()
    net = build_model("preresnet101", 10, cfg=cfg)
    # channel selection keeps the first `sel` channels (as a pruned ticket's indexes would)
    for blk, (sel, _, _) in zip(net.blocks, cfg[:-1]):
        blk.select.indexes = torch.arange(sel)
    net.select.indexes = torch.arange(cfg[-1][0])
    assert complexity(net)["flops_paper"] == preresnet_formula(cfg, 10)


# --- RT models ----------------------------------------------------------------------------

@pytest.mark.parametrize("model, n, macs_m", [("resnet56", 9, 125.5), ("resnet110", 18, 252.9)])
def test_rt_resnets(model, n, macs_m):
    cx = complexity(build_model(model, 10))
    assert round(cx["macs"] / 1e6, 1) == macs_m  # REFERENCE.md section 1, conv + linear
    widths = [p for p in (16, 32, 64) for _ in range(n)]
    assert cx["flops_paper"] == cifar_resnet_formula(widths, 10, n)


def test_rt_resnet56_b_pruned():
    """ResNet-56-B's block conv1 widths (notes/rethinking_official.md section 1)."""
    widths = [6] * 7 + [16, 16] + [32] + [22] * 6 + [32, 22] + [64] + [57] * 7 + [64]
    assert len(widths) == 27
    cx = complexity(build_model("resnet56", 10, cfg=widths))
    assert cx["flops_paper"] == cifar_resnet_formula(widths, 10, 9)


def test_rt_vgg16_l1_and_weight_level():
    assert complexity(build_model("vgg16l1", 10))["flops_paper"] == vgg_formula(VGG16_CFG, 10, hidden=512)
    assert complexity(build_model("vgg16bn", 10))["flops_paper"] == vgg_formula(VGG16_CFG, 10, conv_bias=True)


# --- masked networks, cost fields, report fallback ----------------------------------------

def test_masked_network_counts_dense_and_nonzero():
    from methods.pruning.unstructured import apply_masks, effective_macs, global_magnitude_masks

    net = build_model("vgg16", 10, width=0.125)
    dense = complexity(net)
    eff = effective_macs(apply_masks(net, global_magnitude_masks(net, 0.5)))
    assert eff["flops_paper"] == dense["flops_paper"]  # the paper charges LT / SNIP at dense cost
    assert eff["flops_paper_nonzero"] == dense["flops_paper"] - 2 * (dense["macs"] - eff["macs_nonzero"])
    # half the weights go, but BN, ReLU, pooling and bias terms stay: strictly between the two
    assert dense["flops_paper"] - dense["flops"] < eff["flops_paper_nonzero"] < dense["flops_paper"]
    assert eff["macs_nonzero"] == pytest.approx(dense["macs"] / 2, rel=0.3)


def test_paper_cost_fields():
    """_paper_cost: EB units as run and rescaled to 50k images, the mask selection not rescaled."""
    from methods.stages.eb import _paper_cost

    res = {"train_images": 5_000, "train_flops": 1.1e13, "flops_prune": 1e12,
           "train_flops_paper": 2.2e13, "flops_paper_prune": 2e12}
    _paper_cost(res)
    assert res["train_flops_paper_eb_units"] == pytest.approx(0.44)
    assert res["train_flops_paper_50k_eb_units"] == pytest.approx((20e13 + 2e12) / 5e13)  # 4.04
    assert res["train_flops_50k_eb_units"] == pytest.approx((10e13 + 1e12) / 5e13)  # 2.02
    assert training_flops(627_355_658, 50_000, 160) / EB_UNIT_FLOPS == pytest.approx(301.1307, abs=1e-4)


def test_reports_fall_back_to_conv_linear_for_old_results(tmp_path):
    from reports.common import Result, Run, old_flops

    new = {"complexity": {"flops": 10, "flops_paper": 12}, "train_flops_50k_eb_units": 3.0,
           "train_flops_paper_50k_eb_units": 3.5}
    old = {"complexity": {"flops": 10}, "train_flops_50k_eb_units": 3.0}
    n, o = Result(**new), Result(**old)
    assert n.paper_flops() == 3.5 and o.paper_flops() == 3.0
    assert n.paper_flops("flops") == 12 and o.paper_flops("flops") == 10
    assert (n.old_flops, o.old_flops) == (False, True)
    with pytest.raises(KeyError, match="train_flops"):
        o.paper_flops("train_flops")  # neither convention recorded: not a number to show
    assert not old_flops([Run(tmp_path, new, "done")]) and old_flops([Run(tmp_path, new, "done"), Run(tmp_path, old, "done")])
