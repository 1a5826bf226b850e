"""Weight-level masks on hand-made nets and a small EB VGG16 (REFERENCE.md sections 7 and 9)."""
import copy
import math
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from methods.metrics.flops import complexity
from methods.models import build_model
from methods.pruning.unstructured import (apply_masks, effective_macs, effective_weight, global_magnitude_masks,
                                  prunable, remove_masks, rewind, snip_masks, sparsity_report)


def _two_layer() -> nn.Sequential:
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[0.1, -0.5], [0.9, 0.05]]))
        net[2].weight.copy_(torch.tensor([[2.0, -0.3], [1.5, 1.0]]))
    return net


def test_global_threshold_by_hand():
    net = _two_layer()
    # |w| pooled: 0.1 0.5 0.9 0.05 | 2.0 0.3 1.5 1.0; p=0.5 removes the 4 smallest:
    # 0.05, 0.1, 0.3, 0.5 -> 3 of layer 1 and 1 of layer 2 (per-layer 50% would remove 2 + 2)
    m1, m2 = global_magnitude_masks(net, 0.5, kinds=("linear",))
    assert m1.tolist() == [[False, False], [True, False]]
    assert m2.tolist() == [[True, False], [True, True]]
    # ties: all |w| = 1, p = 0.25 removes floor(2) = 2, the first two in module order
    with torch.no_grad():
        for m in (net[0], net[2]):
            m.weight.fill_(-1.0)
    m1, m2 = global_magnitude_masks(net, 0.25, kinds=("linear",))
    assert m1.tolist() == [[False, False], [True, True]] and m2.all()
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"\(0, 1\)"):
            global_magnitude_masks(net, bad, kinds=("linear",))
    with pytest.raises(ValueError, match="kinds"):
        prunable(net, ("bn",))


def test_decimal_ratio_count():
    lin = nn.Linear(9, 10)  # 90 weights; in floats 0.7 * 90 = 62.99999999999999
    (m,) = global_magnitude_masks(lin, 0.7, kinds=("linear",))
    assert int((~m).sum()) == 63


@pytest.mark.parametrize("p", [0.2, 0.95])
def test_exact_count_on_vgg16_conv_only(p):
    torch.manual_seed(0)
    model = build_model("vgg16", 10, width=0.0625)
    before = copy.deepcopy(model.state_dict())
    convs = [m for m, _ in prunable(model, ("conv",))]
    assert len(convs) == 13 and all(isinstance(c, nn.Conv2d) for c in convs)
    n = sum(c.weight.numel() for c in convs)
    masks = global_magnitude_masks(model, p, kinds=("conv",))
    k = math.floor(Fraction(str(p)) * n)
    assert sum(int((~m).sum()) for m in masks) == k
    # every removed |w| <= every kept |w| (one global threshold)
    w = torch.cat([c.weight.detach().abs().flatten() for c in convs])
    keep = torch.cat([m.flatten() for m in masks])
    assert w[~keep].max() <= w[keep].min()
    dense_macs = complexity(model)["macs"]
    apply_masks(model, masks, kinds=("conv",))
    assert complexity(model)["macs"] == dense_macs  # the mask's aten::mul is not counted
    rep = sparsity_report(model, kinds=("conv",))
    assert (rep["total"], rep["nonzero"]) == (n, n - k)
    # Linear, BN and every non-conv tensor untouched and not reparametrised
    assert not hasattr(model.classifier, "weight_orig")
    after = model.state_dict()
    conv_masks = dict(zip([k for k, v in before.items() if v.dim() == 4], masks))
    assert len(conv_masks) == 13
    for key, v in before.items():
        if key in conv_masks:  # the effective weight (pruned entries zero), as a plain model's state dict
            assert torch.equal(after[key], v * conv_masks[key]) and key + "_mask" not in after, key
        else:  # Linear weight and bias, BN parameters and buffers
            assert torch.equal(after[key], v), key


def test_snip_by_hand():
    net = nn.Sequential(nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.3, 1.0, -0.4]]))
    x, y = torch.tensor([[2.0, 0.1, 1.0]]), torch.tensor([1])
    # two classes, one sample: dL/dz = p - e_y = (p0, -p0), so dL/dW_ij = +-p0 x_j and
    # |w g| = p0 |W_ij x_j| = p0 * [[2.0, 0.2, 0.5], [0.6, 0.1, 0.4]]. p = 0.5 removes 3:
    # 0.1, 0.2, 0.4. (|W| alone would remove 0.3, 0.4, 0.5; |g| alone columns 1 and (0, 2).)
    (m,) = snip_masks(net, x, y, 0.5, kinds=("linear",))
    assert m.tolist() == [[True, False, True], [True, False, False]]
    # the same ranking from autograd-free arithmetic
    p0 = torch.softmax(net[0].weight.detach() @ x[0], 0)[0]
    s = (net[0].weight.detach() * torch.outer(torch.stack([p0, -p0]), x[0])).abs()
    assert torch.allclose(s, p0 * torch.tensor([[2.0, 0.2, 0.5], [0.6, 0.1, 0.4]]))
    assert net[0].weight.grad is None


def test_snip_leaves_model_untouched():
    torch.manual_seed(0)
    model = build_model("vgg16", 10, width=0.0625).eval()
    before = copy.deepcopy(model.state_dict())
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    masks = snip_masks(model, x, y, 0.9)
    assert len(masks) == 14  # 13 conv + 1 linear
    total = sum(m.numel() for m in masks)
    assert sum(int((~m).sum()) for m in masks) == math.floor(Fraction("0.9") * total)
    assert not model.training
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k  # weights and BN running stats


def _tiny_conv(bn: bool = False) -> nn.Sequential:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 4, 3, padding=1, bias=False)] + ([nn.BatchNorm2d(4)] if bn else []) + [
        nn.ReLU(), nn.Conv2d(4, 2, 3, stride=2, padding=1, bias=False), nn.Flatten(), nn.Linear(2 * 16 * 16, 10)]
    return nn.Sequential(*layers)


@pytest.mark.parametrize("fresh_optimizer", [True, False])
def test_pruned_weights_stay_zero_through_sgd(fresh_optimizer):
    net = _tiny_conv(bn=True)
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    conv0 = net[0]
    if not fresh_optimizer:  # dense steps first: the momentum buffer is nonzero everywhere
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        for _ in range(2):
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
    masks = global_magnitude_masks(net, 0.6)
    apply_masks(net, masks)
    if fresh_optimizer:
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    else:  # prune re-registered the same Parameter object as weight_orig
        assert any(q is conv0.weight_orig for q in opt.param_groups[0]["params"])
    start = conv0.weight_orig.detach().clone()
    for _ in range(5):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        assert torch.all(conv0.weight_orig.grad[~masks[0]] == 0)
        opt.step()
        for (m, _), mask in zip(prunable(net), masks):
            assert torch.all(effective_weight(m)[~mask] == 0)
    net(x)
    assert torch.all(conv0.weight[~masks[0]] == 0)  # what the forward used
    assert not torch.equal(conv0.weight_orig[masks[0]], start[masks[0]])  # survivors trained
    drift = conv0.weight_orig.detach()[~masks[0]].abs().max()
    if fresh_optimizer:
        assert drift == 0  # grad 0, decay of 0, no momentum: weight_orig stays zero too
    else:
        assert drift > 0  # stale momentum moves weight_orig; the effective weight is still 0
    assert sparsity_report(net)["nonzero"] == sum(int(m.sum()) for m in masks)
    # after a forward with grad, module.weight would be a non-leaf that deepcopy (so complexity)
    # refuses (PyTorch limitation); apply_masks' forward hook leaves it detached
    F.cross_entropy(net(x), y)
    assert effective_macs(net)["macs"] == complexity(copy.deepcopy(net))["macs"] == 134144


def test_rewind_and_forward_equivalence():
    net = _tiny_conv(bn=True)
    init = copy.deepcopy(net.state_dict())
    with torch.no_grad():  # "training": move every tensor away from theta_0
        for p in net.parameters():
            p.add_(0.5)
        net[1].running_mean.fill_(0.3)
    masks = global_magnitude_masks(net, 0.7)
    apply_masks(net, masks)
    rewind(net, init, masks)
    for (m, _), mask, key in zip(prunable(net), masks, ["0.weight", "3.weight", "5.weight"]):
        w = effective_weight(m)
        assert torch.equal(w[mask], init[key][mask])
        assert torch.all(w[~mask] == 0) and torch.all(m.weight_orig[~mask] == 0)
    assert torch.equal(net[5].bias, init["5.bias"]) and torch.equal(net[1].running_mean, init["1.running_mean"])
    # masked forward == dense forward with the pruned weights zeroed
    dense = _tiny_conv(bn=True)
    dense.load_state_dict(init)
    with torch.no_grad():
        for (m, _), mask in zip(prunable(dense), masks):
            m.weight[~mask] = 0
    x = torch.randn(4, 3, 32, 32)
    net.eval()
    dense.eval()
    assert torch.equal(net(x), dense(x))
    # remove_masks keeps the values and drops the reparametrisation
    param = net[0].weight_orig
    remove_masks(net)
    assert net[0].weight is param and not hasattr(net[0], "weight_mask")
    assert torch.equal(net(x), dense(x))
    with pytest.raises(ValueError, match="masks for"):
        apply_masks(net, masks[:2])


def test_effective_macs_by_hand():
    net = _tiny_conv()
    # conv1: 32*32*4 outputs x 3*9 = 110592; conv2: 16*16*2 x 4*9 = 18432; linear 512*10 = 5120
    dense_macs = 110592 + 18432 + 5120
    assert complexity(net)["macs"] == dense_macs
    m1 = torch.zeros(4, 3, 3, 3, dtype=torch.bool)
    m1[0] = True  # 27 of 108 kept: density 1/4
    m2 = torch.zeros(2, 4, 3, 3, dtype=torch.bool)
    m2[:, :2] = True  # 36 of 72: density 1/2
    apply_masks(net, [m1, m2], kinds=("conv",))
    r = effective_macs(net)
    assert r["macs"] == dense_macs and r["flops"] == 2 * dense_macs  # fvcore unchanged by the mask mul
    assert r["macs_nonzero"] == 110592 / 4 + 18432 / 2 + 5120 == 41984
    assert r["flops_nonzero"] == 2 * 41984
    assert r["layers"] == {"0": (110592, 0.25), "2": (18432, 0.5), "4": (5120, 1.0)}
    rep = sparsity_report(net, kinds=("conv",))
    assert rep == {"total": 180, "nonzero": 63, "density": 0.35, "layers": {"0": 0.25, "2": 0.5}}
