"""RT Tables 8 and 9: the two model families, L1-norm filter pruning, conv-only magnitude
pruning, both lottery arms (REFERENCE.md sections 1, 8 and 9)."""
import math

import pytest
import torch
from torch import nn

from methods.base.config import load_scale
from methods.metrics.flops import complexity
from methods.runs.cells import DenseRun, LotteryRun
from methods.stages.common import StageContext
from methods.pruning.l1 import VARIANTS, filter_l1, kept_counts, l1_masks, prune_filters, variant_rule, zero_filters
from methods.stages.lottery import RANDOM_SEED_OFFSET, run_dense, run_lottery, start_network
from methods.models import build_model, model_name
from methods.pruning.registry import get_pruning
from methods.pruning.unstructured import rescaled_he_, sparsity_report


@pytest.mark.parametrize("name,params,macs", [
    ("vgg16l1", 14.99e6, 313.5e6),      # REFERENCE.md section 1
    ("resnet56", 0.853e6, 125.5e6),
    ("resnet110", 1.728e6, 252.9e6),
    ("vgg16bn", 14_728_266, 313.2e6),   # section 9 / notes: 14,710,464 conv weights; convs as EB VGG16 + Linear(512, 10)
    ("resnet50", 0.7586e6, None),       # section 9: about 0.76 M params
])
def test_rt_models_match_the_reference(name, params, macs):
    cx = complexity(build_model(name, 10))
    assert cx["params"] == pytest.approx(params, rel=0.005)
    if macs:
        assert cx["macs"] == pytest.approx(macs, rel=0.005)


def test_resnet50_is_basic_blocks_with_conv_shortcuts():
    m = build_model("resnet50", 10)
    assert len(m.blocks) == 24 and all(not hasattr(b, "conv3") for b in m.blocks)
    shortcuts = [b.downsample for b in m.blocks if b.downsample is not None]
    assert len(shortcuts) == 2 and all(isinstance(s[0], nn.Conv2d) and s[0].kernel_size == (1, 1) for s in shortcuts)
    conv_weights = sum(c.weight.numel() for c in m.modules() if isinstance(c, nn.Conv2d))
    assert conv_weights == 754_096  # notes: including the two 1x1 shortcut convs


@pytest.mark.parametrize("name,variant,params,macs,reduction", [
    # Li et al. 2017 Table 2 / notes section 1: params, MACs and the FLOP reduction of each pruned model
    ("vgg16l1", "a", 5_397_034, 206.3e6, 0.342),
    ("resnet56", "a", 773_336, 112.4e6, 0.104),
    ("resnet56", "b", 735_712, 90.9e6, 0.276),
    ("resnet110", "a", 1_688_522, 212.8e6, 0.159),
    ("resnet110", "b", 1_168_424, 155.1e6, 0.386),
])
def test_pruned_architectures(name, variant, params, macs, reduction):
    dense = build_model(name, 10)
    pruned = prune_filters(dense, l1_masks(dense, variant, name))
    cx, dcx = complexity(pruned), complexity(dense)
    assert cx["params"] == params
    assert cx["macs"] == pytest.approx(macs, rel=0.005)
    assert 1 - cx["macs"] / dcx["macs"] == pytest.approx(reduction, abs=0.001)


def _by_hand(n: int, skip_blocks: set[int], kept: tuple[int, int, int], full=(16, 32, 64)) -> list[int]:
    """Block conv1 widths from the notes' table: 1-based block numbers that keep their width, else the stage's kept count."""
    return [full[(b - 1) // n] if b in skip_blocks else kept[(b - 1) // n] for b in range(1, 3 * n + 1)]


def test_resnet56b_and_110b_widths_follow_the_layer_rules():
    # ResNet-56-B: 6 (16 at blocks 8-9), 22 (32 at blocks 10, 17), 57 (64 at blocks 19, 27)
    assert kept_counts(build_model("resnet56", 10), variant_rule("resnet56", "b")) == \
        _by_hand(9, {8, 9, 10, 17, 19, 27}, (6, 22, 57))
    # ResNet-110-B: 8 (16 at block 18), 19 (32 at block 19), 44 (64 at block 37): 50/40/30 %
    assert kept_counts(build_model("resnet110", 10), variant_rule("resnet110", "b")) == \
        _by_hand(18, {18, 19, 37}, (int(16 * 0.5), int(32 * 0.6), int(64 * 0.7)))
    assert build_model("resnet110", 10).blocks[0].conv1.out_channels == 16


def test_vgg16a_cfg_and_unknown_variant():
    m = build_model("vgg16l1", 10)
    pruned = prune_filters(m, l1_masks(m, "a", "vgg16l1"))
    assert pruned.cfg == [32, 64, "M", 128, 128, "M", 256, 256, 256, "M", 256, 256, 256, "M", 256, 256, 256]
    with pytest.raises(ValueError, match="no L1-pruned variant resnet56-c; choose one of .*resnet110-b"):
        variant_rule("resnet56", "c")
    assert set(VARIANTS) == {("vgg16l1", "a"), ("resnet56", "a"), ("resnet56", "b"), ("resnet110", "a"), ("resnet110", "b")}


def test_l1_ranking_picks_the_filters_a_hand_computation_picks():
    m = build_model("vgg16l1", 10, width=0.0625)  # conv1: 3 -> 4 filters, VGG-16-A keeps int(4 * 0.5) = 2
    conv1 = m.features[0]
    with torch.no_grad():
        conv1.weight.zero_()
        conv1.weight[0, 0, 0, 0] = 1.0                   # L1 = 1
        conv1.weight[1] = -0.1                           # 27 entries: L1 = 2.7
        conv1.weight[2, :, 1, 1] = torch.tensor([0.5, -0.5, 0.9])  # L1 = 1.9
        conv1.weight[3, 2] = 0.05                        # L1 = 0.45
    assert filter_l1(conv1).tolist() == pytest.approx([1.0, 2.7, 1.9, 0.45])
    masks = l1_masks(m, "a", "vgg16l1")
    assert masks[0].tolist() == [False, True, True, False]
    assert all(mk.all() for mk in masks[1:7])            # conv2..conv7 unpruned in VGG-16-A
    assert [int(mk.sum()) for mk in masks[7:]] == [16] * 6  # conv8..13: 32 -> 16


@pytest.mark.parametrize("name,variant", [("vgg16l1", "a"), ("resnet56", "b"), ("resnet110", "a")])
def test_physically_pruned_network_equals_the_masked_dense_one(name, variant):
    torch.manual_seed(0)
    m = build_model(name, 10, width=0.25)
    for mod in m.modules():  # non-trivial BN statistics and betas
        if isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm1d)):
            mod.running_mean.normal_(0, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
            mod.bias.data.normal_(0, 0.1)
    m.eval()
    masks = l1_masks(m, variant, name)
    assert any(not mk.all() for mk in masks)
    pruned = prune_filters(m, masks).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        ref = zero_filters(m, masks)(x)
        assert torch.allclose(pruned(x), ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    assert model_name(pruned) == name


def test_conv_magnitude_removes_exactly_floor_p_and_leaves_the_rest_dense():
    torch.manual_seed(0)
    m = build_model("vgg16bn", 10, width=0.125)
    for mod in m.modules():
        if isinstance(mod, nn.Conv2d):
            mod.bias.data.normal_()
    biases = [c.bias.clone() for c in m.modules() if isinstance(c, nn.Conv2d)]
    linear, bn = m.classifier.weight.clone(), m.features[1].weight.clone()
    n = sum(c.weight.numel() for c in m.modules() if isinstance(c, nn.Conv2d))
    for p in (0.2, 0.95):
        ticket = get_pruning("convmagnitude").draw(m, None, p, None, 0, 10)
        rep = sparsity_report(ticket.model, ("conv",))
        assert rep["total"] == n and n - rep["nonzero"] == math.floor(p * n)
        kept = torch.cat([w[mk] for w, mk in zip([c.weight for c in m.modules() if isinstance(c, nn.Conv2d)],
                                                 ticket.weight_masks)]).abs()
        cut = torch.cat([w[~mk] for w, mk in zip([c.weight for c in m.modules() if isinstance(c, nn.Conv2d)],
                                                 ticket.weight_masks)]).abs()
        assert cut.max() <= kept.min()  # one global threshold
        t = ticket.model
        assert torch.equal(t.classifier.weight, linear) and torch.equal(t.features[1].weight, bn)
        assert all(torch.equal(c.bias, b) for c, b in zip([c for c in t.modules() if isinstance(c, nn.Conv2d)], biases))
        assert sparsity_report(t, ("linear",))["density"] == 1.0


def test_random_init_std_matches_the_rescaled_formula():
    torch.manual_seed(0)
    conv = nn.Conv2d(32, 64, 3, bias=False)
    mask = torch.rand_like(conv.weight) < 0.25
    density = mask.float().mean().item()
    rescaled_he_(nn.Sequential(conv), [mask])
    want = math.sqrt(2 / (9 * 64 * density))  # RT cifar_scratch_no_longer.py: n = 9 * out * density
    assert conv.weight.std().item() == pytest.approx(want, rel=0.03)
    assert want == pytest.approx(2 * math.sqrt(2 / (9 * 64)), rel=0.05)  # x 1/sqrt(density) = x 2 at 25 %


def test_winning_arm_is_theta0_times_mask_and_random_arm_a_fresh_draw():
    torch.manual_seed(3)
    dense = build_model("vgg16bn", 10, width=0.125)
    theta0 = {k: v.clone() for k, v in dense.state_dict().items()}
    trained = build_model("vgg16bn", 10, width=0.125)  # stands for the trained weights
    ticket = get_pruning("convmagnitude").draw(trained, None, 0.6, None, 0, 10)
    win = start_network("winning", "convmagnitude", ticket, theta0, "vgg16bn", {"width": 0.125}, 10, seed=1)
    convs = [c for c in win.modules() if isinstance(c, nn.Conv2d)]
    for c, mk, key in zip(convs, ticket.weight_masks, [k for k in theta0 if k.endswith("weight") and theta0[k].dim() == 4]):
        assert torch.equal(c.weight, theta0[key] * mk)
    rnd = start_network("random", "convmagnitude", ticket, theta0, "vgg16bn", {"width": 0.125}, 10, seed=1)
    rc = [c for c in rnd.modules() if isinstance(c, nn.Conv2d)]
    assert all(torch.equal(c.weight[~mk], torch.zeros_like(c.weight[~mk])) for c, mk in zip(rc, ticket.weight_masks))
    assert not torch.equal(rc[3].weight, convs[3].weight)
    torch.manual_seed(1 + RANDOM_SEED_OFFSET)
    fresh = build_model("vgg16bn", 10, width=0.125)
    assert torch.equal(rnd.classifier.weight, fresh.classifier.weight)  # the non-conv parameters of that fresh draw


def test_l1_random_arm_keeps_the_dense_scale():
    """Table 8's random init: kept filters of a fresh dense-scale He draw, not a He draw at the pruned width."""
    dense = build_model("resnet56", 10)
    ticket = get_pruning("l1").draw(dense, None, "b", None, 0, 10)
    net = start_network("random", "l1", ticket, dense.state_dict(), "resnet56", {}, 10, seed=1)
    w = net.blocks[0].conv1.weight  # 16 -> 6 filters
    assert w.shape[0] == 6
    assert w.std().item() == pytest.approx(math.sqrt(2 / (9 * 16)), rel=0.1)  # not sqrt(2 / (9 * 6))
    assert not torch.equal(net.conv1.weight, dense.conv1.weight)  # every conv redrawn
    assert torch.equal(net.fc.weight, dense.fc.weight) and torch.equal(net.bn1.weight, dense.bn1.weight)  # theta_0's


@pytest.mark.slow
def test_masked_weights_stay_exactly_zero_through_training_and_resume(tmp_path, data_root):
    scale = load_scale("tiny").model_copy(update={"epochs": 3})
    ctx = StageContext(scale, str(data_root))
    d = DenseRun("vgg16bn", "cifar10", "80-120", 0.1, 1)
    dense = run_dense(d, ctx, tmp_path / "dense")
    assert dense.config["batch_size"] == 32 and dense.config["sparsity"] == 0.0  # min(64, tiny's 32), no BN L1
    assert ((tmp_path / "dense" / "snapshots" / "epoch0.pt").is_file()
            and (tmp_path / "dense" / "snapshots" / "final.pt").is_file())
    res = run_lottery(LotteryRun(d, "convmagnitude", "0.8", "winning"), ctx, tmp_path / "w", tmp_path / "dense")
    n = res.conv_weights
    assert n - res.conv_nonzero == math.floor(0.8 * n)  # after 3 epochs of SGD with momentum and weight decay
    assert res.config["lrs"] == dense.config["lrs"] and res.dense_best_acc == dense.best_acc
    again = run_lottery(LotteryRun(d, "convmagnitude", "0.8", "winning"), ctx, tmp_path / "w", tmp_path / "dense")
    assert again == res  # a finished run is read back, not retrained
    rnd = run_lottery(LotteryRun(d, "convmagnitude", "0.2", "random"), ctx, tmp_path / "r", tmp_path / "dense")
    assert rnd.arm == "random" and 0 <= rnd.best_acc <= 100


def test_lottery_bad_input_is_one_clear_error(tmp_path, data_root):
    from methods.base.config import ConfigError

    ctx = StageContext(load_scale("tiny").model_copy(update={"epochs": 1}), str(data_root))
    d = DenseRun("resnet56", "cifar10", "80-120", 0.1, 1)
    run_dense(d, ctx, tmp_path / "d")

    def lottery(prune, target, arm):
        return run_lottery(LotteryRun(d, prune, target, arm), ctx, tmp_path / "x", tmp_path / "d")

    with pytest.raises(ConfigError, match="pruning ratio must lie in \\(0, 1\\)"):
        lottery("convmagnitude", "1.2", "winning")
    with pytest.raises(ConfigError, match="no L1-pruned variant resnet56-c"):
        lottery("l1", "c", "winning")
    with pytest.raises(ConfigError, match="EB Table 2 method"):
        lottery("bn", "0.5", "winning")
    with pytest.raises(ConfigError, match="arm='best'"):
        lottery("l1", "a", "best")
