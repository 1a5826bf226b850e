"""Per-layer ticket reports, collapse and disconnection flags, and emptied layers as EB
``resprune.py`` builds them (issue 16 items 1-3; REFERENCE.md sections 4 and 5)."""
import pytest
import torch
from torch import nn

from methods.base.data import Split
from methods.pruning.eb import bn_gammas, bn_layers, channel_mask
from methods.models import build_model
from methods.pruning.channels import zero_pruned_bn
from methods.pruning.registry import PRUNING
from methods.pruning.ticket import data_path_intact, masked_dense, raw_channel_masks, ticket_report
from methods.pruning.unstructured import removed_count
from tests.test_prune import _trained_like

VGG = ("vgg16", {"width": 0.0625})
PRERES = ("preresnet101", {"depth": 11, "width": 0.25})


def _net(name, knobs, seed=0):
    torch.manual_seed(seed)
    return _trained_like(build_model(name, 10, **knobs), seed)


def _split(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8), torch.randint(0, 10, (n,), generator=g))


def _draw(method, net, ratio):
    return PRUNING[method].draw(net, bn_gammas(net), ratio, _split(), 0, 10)


@pytest.mark.parametrize("name,knobs", [VGG, PRERES])
def test_bn_report_counts_sum_to_the_global_mask(name, knobs):
    net = _net(name, knobs)
    rep = ticket_report(net, _draw("bn", net, 0.5))
    g = bn_gammas(net)
    assert rep["unit"] == "channels"
    assert [x["total"] for x in rep["layers"]] == [bn.num_features for bn in bn_layers(net)]
    assert rep["total"] == sum(x["total"] for x in rep["layers"]) == g.numel()
    assert rep["kept"] == sum(x["kept"] for x in rep["layers"]) == int(channel_mask(g, 0.5).sum())
    assert rep["layers"][0]["name"] == ("features.1" if name == "vgg16" else "blocks.0.bn1")
    assert not rep["collapsed"] and not rep["disconnected"] and rep["emptied_layers"] is None


@pytest.mark.parametrize("method", ["magnitude", "snip"])
def test_weight_report_counts_exact_removals(method):
    net = _net(*VGG)
    rep = ticket_report(net, _draw(method, net, 0.5), PRUNING[method].kinds)
    n = sum(m.weight.numel() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert rep["unit"] == "weights" and rep["total"] == n
    assert rep["kept"] == n - removed_count(0.5, n)
    assert [x["name"] for x in rep["layers"]][-1] == "classifier"


def test_l1_and_convmagnitude_reports():
    net = _net("resnet56", {"width": 0.25})
    rep = ticket_report(net, _draw("l1", net, "b"))
    assert rep["unit"] == "filters" and len(rep["layers"]) == 27  # the first conv of each block
    # ResNet-56-B: stage widths 4/8/16, 60/30/10 % pruned, layers 16, 18, 20, 34, 38, 54 skipped
    assert [x["kept"] for x in rep["layers"]][:3] == [1, 1, 1] and rep["layers"][7]["kept"] == 4  # layer 16
    assert not rep["disconnected"]
    rep = ticket_report(net, _draw("convmagnitude", net, 0.8), ("conv",))
    n = sum(m.weight.numel() for m in net.modules() if isinstance(m, nn.Conv2d))
    assert rep["total"] == n and rep["kept"] == n - removed_count(0.8, n)


@pytest.mark.parametrize("name,knobs", [VGG, PRERES])
@pytest.mark.parametrize("method", ["magnitude", "snip"])
def test_weight_methods_at_99_percent_collapse_and_disconnect(name, knobs, method):
    net = _net(name, knobs)
    rep = ticket_report(net, _draw(method, net, 0.995), PRUNING[method].kinds)
    assert rep["collapsed"], "99.5 % of a narrow network's weights must empty some layer"
    assert all(x["kept"] == 0 for x in rep["layers"] if x["name"] in rep["collapsed"])
    assert rep["disconnected"]


def _tiny_gammas(net, layer):
    with torch.no_grad():
        bn_layers(net)[layer].weight.mul_(1e-4)  # every gamma of this layer below the global threshold


def test_network_slimming_vgg_layer_emptied_is_disconnected_and_kept_live():
    net = _net(*VGG)
    _tiny_gammas(net, 3)
    ticket = _draw("bn", net, 0.3)
    rep = ticket_report(net, ticket)
    assert rep["collapsed"] == ["features.11"] and rep["disconnected"] and rep["emptied_layers"] == "live"
    # the pruned VGG keeps the emptied layer's largest-|gamma| channel, live (not zeroed)
    bn3 = bn_layers(ticket.model)[3]
    assert bn3.num_features == 1 and bn3.weight.item() == pytest.approx(bn_layers(net)[3].weight[bn_gammas(net)[
        sum(b.num_features for b in bn_layers(net)[:3]):][:bn_layers(net)[3].num_features].argmax()].item())


def test_preresnet_emptied_branch_is_collapsed_not_disconnected_and_block_is_its_shortcut():
    net = _net(*PRERES)
    _tiny_gammas(net, 5)  # blocks.1.bn3: the last BN of block 1's branch (depth 11: a strided conv shortcut)
    ticket = _draw("bn", net, 0.3)
    rep = ticket_report(net, ticket)
    assert rep["collapsed"] == ["blocks.1.bn3"] and not rep["disconnected"] and rep["emptied_layers"] == "zeroed"
    assert ticket.emptied == ticket.zeroed == (5,)
    pruned = ticket.model.eval()
    x = torch.randn(2, pruned.blocks[1].bn1.num_features, 8, 8)
    with torch.no_grad():
        # the branch passes nothing: the block is its shortcut
        assert torch.equal(pruned.blocks[1](x), pruned.blocks[1].downsample(x))
        bn3 = pruned.blocks[1].bn3
        assert bn3.num_features == 1 and bn3.weight.item() == 0 and bn3.bias.item() == 0
    # and the whole pruned network equals the masked dense one (gamma, beta of the emptied layer zero too)
    ref = masked_dense(net, ticket).eval()
    xs = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(pruned(xs), ref(xs), atol=1e-5, rtol=1e-4)


def test_preresnet_live_option_keeps_todays_behaviour():
    net = _net(*PRERES)
    _tiny_gammas(net, 5)
    ticket = _draw("bnlive", net, 0.3)
    assert ticket.emptied == (5,) and ticket.zeroed == ()
    assert ticket_report(net, ticket)["emptied_layers"] == "live"
    assert ticket.model.blocks[1].bn3.weight.abs().item() > 0


@pytest.mark.parametrize("layer,name", [(-1, "bn"), (0, "blocks.0.bn1")])
def test_preresnet_emptied_last_bn_disconnects(layer, name):
    net = _net(*PRERES)
    _tiny_gammas(net, layer)
    rep = ticket_report(net, _draw("bn", net, 0.4 if name == "bn" else 0.3))  # the last BN holds 64 of 172 channels
    assert rep["collapsed"] == [name]
    # the final BN feeds the classifier: nothing passes; block 0's bn1 only cuts its branch (shortcut conv)
    assert rep["disconnected"] == (name == "bn")


def test_data_path_by_hand():
    vgg = _net(*VGG)
    assert data_path_intact(vgg)
    with torch.no_grad():
        vgg.features[7].weight.zero_()  # one conv of a plain network: no path left
    assert not data_path_intact(vgg)
    res = _net("resnet56", {"width": 0.25})  # option-A shortcuts: a branch cut is bypassed
    with torch.no_grad():
        res.blocks[4].conv2.weight.zero_()
    assert data_path_intact(res)
    with torch.no_grad():
        res.fc.weight.zero_()
    assert not data_path_intact(res)
    r50 = _net("resnet50", {"width": 0.25})  # conv shortcut at stage 2: cut both paths of its first block
    first = r50.blocks[8]
    with torch.no_grad():
        first.conv1.weight.zero_()
        assert data_path_intact(r50)
        first.downsample[0].weight.zero_()
    assert not data_path_intact(r50)


def test_raw_masks_give_the_masked_dense_network():
    net = _net(*PRERES)
    _tiny_gammas(net, 5)
    ticket = _draw("bn", net, 0.3)
    raw = raw_channel_masks(ticket)
    assert not raw[5].any() and ticket.channel_masks[5].sum() == 1
    ref = masked_dense(net, ticket)
    zero_pruned_bn(net, raw)
    assert all(torch.equal(a, b) for a, b in zip(bn_gammas(ref), bn_gammas(net)))


def test_ticket_flags_of_a_cell_and_the_spread_count():
    from pathlib import Path

    from reports.common import Run, completeness, mean_of, ticket_flag

    def run(**res):
        return Run(Path("r"), {"kind": "retrain", "best_acc": 70.0, **res}, "done")

    ok = run(ticket={"collapsed": [], "disconnected": False})
    collapsed = run(ticket={"collapsed": ["blocks.1.bn3"], "disconnected": False})
    cut = run(ticket={"collapsed": ["bn"], "disconnected": True})
    refused = Run(Path("r"), {"kind": "retrain", "best_acc": None, "no_ticket": "refused: ...", "ticket": cut.result.ticket},
                  "done")
    old = run()  # made before tickets were recorded
    assert ticket_flag([ok]) is None and ticket_flag([ok, collapsed]) == "collapsed"
    assert ticket_flag([collapsed, cut]) == "disconnected" and ticket_flag([refused]) == "disconnected"
    assert ticket_flag([ok, old]) == "unchecked" and ticket_flag([Run(Path("p"))]) is None
    assert mean_of([ok, refused], lambda r: r.best_acc) == 70.0  # a refused run has no accuracy to average
    cells = [{"diff": 0.0, "paper": 70.0, "ours_min": 70.0, "ours_max": 70.0, "n_runs": 1, "n_expected": 1, "ticket_flag": f}
             for f in (None, "collapsed", "disconnected", "unchecked")]
    assert completeness(cells, lambda c: True)["n_inside"] == 1  # only the valid ticket agrees with the paper


def test_refuse_disconnected_is_part_of_the_config_digest():
    from methods.runs import digest as dg
    from methods.runs.cells import RetrainRun, SearchRun
    from methods.base.config import load_scale

    tiny = load_scale("tiny")
    r = RetrainRun(SearchRun("vgg16", "cifar10", "80-120", 0.1, 1), 0.5, "10")
    assert dg.inputs_of(r, tiny) == dg.inputs_of(r, tiny, refuse=False)  # older digests unchanged
    assert dg.digest_of(dg.inputs_of(r, tiny, refuse=True)) != dg.expected(r, tiny)
