"""Physical pruning equals the masked dense network (REFERENCE.md section 5)."""
import pytest
import torch

from methods.pruning.eb import bn_gammas, bn_layers, channel_mask, layer_masks
from methods.metrics.flops import complexity
from methods.models import build_model
from methods.pruning.channels import prune_channels, pruned_cfg, zero_pruned_bn


def _trained_like(model, seed=0):
    """Random BN statistics and scaling factors, as after training, so masks are non-trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in bn_layers(model):
            n = bn.num_features
            bn.weight.copy_(torch.rand(n, generator=g) * torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0))
            bn.bias.copy_(torch.randn(n, generator=g) * 0.1)
            bn.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            bn.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model.eval()


CASES = [("vgg16", {}, 0.3), ("vgg16", {}, 0.7), ("vgg16", {}, "empty"),
         ("preresnet101", {}, 0.5), ("preresnet101", {}, 0.7), ("preresnet101", {}, "empty"),
         ("preresnet101", {"depth": 20, "width": 0.5}, 0.3)]


@pytest.mark.parametrize("name,knobs,ratio", CASES)
def test_pruned_outputs_equal_masked_dense(name, knobs, ratio):
    torch.manual_seed(0)
    dense = _trained_like(build_model(name, 10, **knobs))
    empties = ratio == "empty"
    if empties:  # push one whole layer (the 3rd BN) under the global threshold
        bn = bn_layers(dense)[2]
        with torch.no_grad():
            bn.weight.mul_(1e-4)
        ratio = 0.3
    g = bn_gammas(dense)
    masks = layer_masks(dense, channel_mask(g, ratio), g)
    if empties:  # the global threshold really removes all of layer 2; one channel survives
        sizes = [b.num_features for b in bn_layers(dense)]
        assert not channel_mask(g, ratio).split(sizes)[2].any() and masks[2].sum() == 1
    pruned = prune_channels(dense, masks, 10).eval()
    zero_pruned_bn(dense, masks)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, out = dense(x), pruned(x)
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-4), (out - ref).abs().max()
    assert complexity(pruned)["macs"] < complexity(dense)["macs"]


def test_empty_layer_survives_with_one_channel():
    dense = _trained_like(build_model("vgg16", 10))
    with torch.no_grad():
        bn_layers(dense)[4].weight.mul_(1e-4)
    g = bn_gammas(dense)
    masks = layer_masks(dense, channel_mask(g, 0.3), g)
    cfg = pruned_cfg(dense, masks)
    assert [c for c in cfg if c != "M"][4] == 1
    assert prune_channels(dense, masks, 10).cfg == cfg


def test_preresnet_residual_width_and_selection():
    dense = _trained_like(build_model("preresnet101", 10))
    g = bn_gammas(dense)
    masks = layer_masks(dense, channel_mask(g, 0.5), g)
    pruned = prune_channels(dense, masks, 10)
    b0, d0 = pruned.blocks[5], dense.blocks[5]
    assert b0.conv3.out_channels == d0.conv3.out_channels == 64  # residual stream never shrinks
    assert b0.bn1.num_features == 64 and b0.select.indexes.tolist() == torch.nonzero(masks[15]).flatten().tolist()
    assert b0.conv1.in_channels == int(masks[15].sum())
    assert pruned.fc.in_features == int(masks[-1].sum())
