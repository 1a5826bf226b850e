"""8-bit block floating point training (methods/train/lowp.py) against its definition, and the LF/LL stages."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from methods.base.config import ConfigError, Precision, load_precision, load_scale
from methods.train.lowp import LowPrecisionSGD, block_quantize, lower, mac_bits, quantised_layers, unlower
from methods.models import build_model

NEAREST8 = Precision(weight=8, activation=8, error=8, grad=8, momentum=8, rounding="nearest", swa_start=None)


def _step(x: torch.Tensor, wl: int) -> torch.Tensor:
    """Hand-derived quantisation step of each row: 2^(floor(log2 max|row|) + 2 - wl)."""
    top = x.abs().reshape(x.shape[0], -1).amax(1)
    return torch.tensor([2.0 ** (math.floor(math.log2(t)) + 2 - wl) for t in top.tolist()])


def test_block_quantize_worked_by_hand():
    # row 0: max 0.75 -> exponent -1 -> step 2^(-1+2-4) = 1/8: 0.75 -> 6/8, 0.3 -> 2.4/8 -> 2/8
    # row 1: max 6 -> exponent 2 -> step 1: 6 and -1 exact; row 2: 0.99/0.125 = 7.92 rounds to 8, clipped to 7
    x = torch.tensor([[0.75, 0.3], [6.0, -1.0], [0.99, -0.99]])
    q = block_quantize(x, 4, rounding="nearest")
    assert torch.equal(q, torch.tensor([[0.75, 0.25], [6.0, -1.0], [0.875, -0.875]]))
    # one exponent for the whole tensor (max 6 -> step 1) would flatten row 0 instead
    assert torch.equal(block_quantize(x, 4, dim=None, rounding="nearest")[0], torch.tensor([1.0, 0.0]))
    assert torch.equal(block_quantize(torch.zeros(2, 3), 8), torch.zeros(2, 3))


@pytest.mark.parametrize("wl", [4, 8])
def test_values_are_representable_per_row(wl):
    torch.manual_seed(0)
    # rows six orders of magnitude apart: each keeps its own exponent (weights: one per output filter)
    w = torch.randn(6, 3, 3, 3) * torch.logspace(-3, 3, 6).view(6, 1, 1, 1)
    q = block_quantize(w, wl)
    k = q / _step(w, wl).view(6, 1, 1, 1)
    assert torch.equal(k, k.round())  # integer multiples of the row's step
    assert k.abs().max() <= 2 ** (wl - 1) - 1
    for row in k:
        assert len(row.abs().unique()) <= 2 ** (wl - 1)  # magnitudes 0 .. 2^(wl-1) - 1 under one exponent
    assert (q.reshape(6, -1).abs().amax(1) > 0).all()  # no row flushed to zero by another row's scale


def test_stochastic_rounding_is_unbiased():
    torch.manual_seed(1)
    x = torch.rand(1, 64) * 2 - 1
    x[0, 0] = 1.0  # the row's max is exactly representable, so no element is clipped
    n = 20_000
    mean = torch.stack([block_quantize(x, 8) for _ in range(n)]).mean(0)
    step = 2.0 ** (0 + 2 - 8)
    # one draw errs by < step, so its std is <= step/2: the mean lies within 5 standard errors
    assert (mean - x).abs().max() < 5 * step / 2 / math.sqrt(n)
    nearest = block_quantize(x, 8, rounding="nearest")
    assert (nearest - x).abs().max() > 10 * (mean - x).abs().max()  # far more biased than the mean of stochastic draws


def test_activations_share_one_exponent_per_sample_and_logits_stay_fp32():
    torch.manual_seed(0)
    net = build_model("vgg16", 10, width=0.0625).eval()
    layers = quantised_layers(net)
    assert net.classifier not in layers and len(layers) == 13  # 13 convs; the classifier's output is the logits
    x = torch.randn(2, 3, 32, 32)
    x[0] *= 1000.0  # sample 0's activations are far larger: with one exponent per batch, sample 1 would vanish
    seen = {}
    conv = net.features[0]
    raw = conv(x)
    handles = lower(net, NEAREST8)
    try:
        conv.register_forward_hook(lambda m, i, o: seen.__setitem__("conv", o))
        net.classifier.register_forward_hook(lambda m, i, o: seen.__setitem__("logits", (i[0], o)))
        net(x)
    finally:
        unlower(handles)
    assert torch.equal(seen["conv"], block_quantize(raw, 8, rounding="nearest"))
    per_sample = seen["conv"].reshape(2, -1) / _step(raw, 8).view(2, 1)
    assert torch.equal(per_sample, per_sample.round()) and (seen["conv"][1].abs().max() > 0)
    features, logits = seen["logits"]
    assert torch.equal(logits, F.linear(features, net.classifier.weight, net.classifier.bias))  # not quantised
    net(x)
    assert torch.equal(seen["conv"], raw)  # unlower restored full precision


def test_gradients_reach_the_weights_through_quantised_errors():
    """y = L2(q(L1 x)): the gradient reaching L1's output is block-quantised (error format)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    handles = lower(net, NEAREST8)
    h = net[0](x)  # quantised by the hook
    out = net[2](net[1](h))
    g_h = torch.autograd.grad(F.cross_entropy(out, y), h, retain_graph=True)[0]
    F.cross_entropy(out, y).backward()
    unlower(handles)
    expected = block_quantize(g_h, 8, rounding="nearest").t() @ x
    assert torch.allclose(net[0].weight.grad, expected, atol=1e-7)
    assert net[0].weight.grad.abs().sum() > 0 and net[2].weight.grad.abs().sum() > 0


def test_low_precision_sgd_step_quantises_grad_weight_and_momentum():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(3, 4))
    w0 = w.detach().clone()
    w.grad = torch.randn(3, 4)
    g = w.grad.clone()
    opt = LowPrecisionSGD([w], NEAREST8, lr=0.1, momentum=0.9, weight_decay=1e-4)
    opt.step()
    q = lambda t: block_quantize(t, 8, rounding="nearest")  # noqa: E731
    buf = q(g) + 1e-4 * w0  # first step: the buffer is the (quantised) gradient plus weight decay
    w1 = q(w0 - 0.1 * buf)
    assert torch.equal(w.detach(), w1)
    assert torch.equal(opt.state[w]["momentum_buffer"], q(buf))
    g2 = torch.randn(3, 4)
    w.grad = g2.clone()
    opt.step()  # second step: momentum compounds the quantised buffer
    buf2 = 0.9 * q(buf) + (q(g2) + 1e-4 * w1)  # torch's order: d_p = g + wd * w, then buf = m * buf + d_p
    assert torch.equal(opt.state[w]["momentum_buffer"], q(buf2))
    assert torch.equal(w.detach(), q(w1 - 0.1 * buf2))
    assert isinstance(opt.state_dict()["state"][0]["momentum_buffer"], torch.Tensor)  # SGD's state: resumable


def test_swa_averages_weights_and_reestimates_bn_per_sample():
    from methods.train.lowp import bn_update, swa_model

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2))
    swa = swa_model(net)
    handles = lower(net, NEAREST8)  # hooks on the trained network only
    w1 = net[0].weight.detach().clone()
    swa.update_parameters(net)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    swa.update_parameters(net)
    assert torch.allclose(swa.module[0].weight, (w1 + net[0].weight) / 2)  # alpha = 1/(n+1): the mean
    assert not swa.module[0]._forward_hooks and net[0]._forward_hooks
    unlower(handles)
    # batches of 3 and 1 images: every image weighs the same (a batch-weighted mean would differ)
    bn = nn.BatchNorm2d(3)
    model = nn.Sequential(bn).eval()
    a, b = torch.randn(3, 3, 4, 4), torch.randn(1, 3, 4, 4) + 5.0
    bn_update(model, [a, b])
    assert torch.allclose(bn.running_mean, torch.cat([a, b]).mean((0, 2, 3)), atol=1e-5)
    assert not model.training and bn.momentum == 0.1  # mode and momentum restored


def test_a_quantised_tiny_model_learns_a_separable_problem():
    torch.manual_seed(0)
    x = torch.randn(256, 2) + torch.tensor([3.0, 0.0]) * (torch.arange(256) % 2).unsqueeze(1)
    y = torch.arange(256) % 2
    net = nn.Sequential(nn.Linear(2, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    p = NEAREST8.model_copy(update={"rounding": "stochastic"})
    handles = lower(net, p)
    opt = LowPrecisionSGD(net.parameters(), p, lr=0.1, momentum=0.9)
    for _ in range(100):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    net.eval()
    acc = (net(x).argmax(1) == y).float().mean().item()
    unlower(handles)
    assert acc > 0.95
    k = net[0].weight / _step(net[0].weight.detach(), 8).view(-1, 1)
    assert torch.equal(k, k.round())  # the weights stay on the 8-bit grid after every step


def test_precision_config():
    bfp8 = load_precision("bfp8")
    assert (bfp8.weight, bfp8.activation, bfp8.error, bfp8.grad, bfp8.momentum, bfp8.rounding, bfp8.swa_start) == \
        (8, 8, 8, 8, 8, "stochastic", 140)
    assert load_precision("fp32") is None and mac_bits(None) == 32 and mac_bits(bfp8) == 8
    assert mac_bits(bfp8.model_copy(update={"activation": None})) == 32  # an FP32 operand makes FP32 MACs
    with pytest.raises(ConfigError, match="unknown precision 'bfp7'"):
        load_precision("bfp7")
    from methods.base.config import validate

    with pytest.raises(ConfigError, match="wieght"):
        validate(Precision, {**bfp8.model_dump(), "wieght": 8}, "precisions.yaml bfp8")


def test_a_misspelt_precision_key_is_named(tmp_path, monkeypatch):
    import methods.base.config as config

    (tmp_path / "p.yaml").write_text("bfp6: {weigth: 6, activation: 6, error: 6, grad: 6, momentum: 6, swa_start: null}\n")
    monkeypatch.setattr(config, "PRECISIONS_YAML", tmp_path / "p.yaml")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['weigth'\]"):
        load_precision("bfp6")


@pytest.mark.slow
def test_8bit_search_then_lf_and_ll_retraining(tmp_path, data_root, monkeypatch):
    """An 8-bit search feeds EB Train in FP32 (LF) and in 8 bits (LL): same ticket, same FLOPs,
    energy modelled per stage at its width, SWA from epoch 14 of 16, and an exact resume."""
    from methods.runs.cells import RetrainRun, SearchRun
    from methods.stages.common import StageContext
    from methods.stages.eb import run_retrain, run_search
    from tests.test_train import _comparable, killed_at_checkpoint

    tiny = load_scale("tiny")
    ctx, search = StageContext(tiny, str(data_root)), SearchRun("vgg16", "cifar10", "80-120", 0.1, 1, precision="bfp8")
    s = run_search(search, ctx, tmp_path / "s8")
    assert s.config["precision"]["swa_start"] == 14 and s.energy["bits"] == 8
    assert [r.get("swa_test_acc") is not None for r in s.log] == [False] * 14 + [True] * 2
    assert s.swa_acc == s.log[-1]["swa_test_acc"]
    ratio = next(float(p) for p, r in s.eb_epochs.items() if r["paper"] is not None and r["paper"] < tiny.epochs - 1)
    lf_run = RetrainRun(search, ratio, "eb", "continue", "80-120", 0.1)
    ll_run = RetrainRun(search, ratio, "eb", "continue", "80-120", 0.1, precision="bfp8")
    lf = run_retrain(lf_run, ctx, tmp_path / "lf", tmp_path / "s8")
    ll = run_retrain(ll_run, ctx, tmp_path / "ll", tmp_path / "s8")
    assert lf.draw_epoch == ll.draw_epoch == s.eb_epochs[str(ratio)]["paper"]
    assert lf.config["precision"] is None and ll.config["precision"]["weight"] == 8
    assert lf.train_flops == ll.train_flops
    assert all(lf.complexity[k] == ll.complexity[k] for k in ("macs", "flops", "params"))  # one architecture
    e_lf, e_ll = lf.energy, ll.energy
    assert (e_lf["bits_search"], e_lf["bits_retrain"], e_ll["bits_retrain"]) == (8, 32, 8)
    assert e_lf["modelled_search_j"] == e_ll["modelled_search_j"]
    assert e_lf["modelled_retrain_j"] == pytest.approx(20 * e_ll["modelled_retrain_j"])  # 4.6 / 0.23 pJ per MAC
    assert ll.swa_acc is not None and lf.swa_acc is None
    for e in (e_lf, e_ll):
        assert e["modelled_j"] == pytest.approx(e["modelled_search_j"] + e["modelled_prune_j"] + e["modelled_retrain_j"])
    # killed while writing the last checkpoint: resumes at epoch 15 with one SWA average already made
    with killed_at_checkpoint(tiny.epochs - ll.draw_epoch, monkeypatch):
        run_retrain(ll_run, ctx, tmp_path / "ll2", tmp_path / "s8")
    ck = torch.load(tmp_path / "ll2" / "ckpt.pt", weights_only=True)
    assert ck["epoch"] == 15 and int(ck["swa"]["n_averaged"]) == 1
    resumed = run_retrain(ll_run, ctx, tmp_path / "ll2", tmp_path / "s8")
    assert _comparable(resumed) == _comparable(ll) and resumed.swa_acc == ll.swa_acc


@pytest.mark.slow
def test_8bit_search_resumes_exactly_after_swa_started(tmp_path, data_root, monkeypatch):
    import numpy as np

    from methods.runs.cells import SearchRun
    from methods.stages.common import StageContext
    from methods.stages.eb import run_search
    from tests.test_train import _comparable, killed_at_checkpoint

    tiny = load_scale("tiny")
    args = (SearchRun("preresnet101", "cifar10", "80-120", 0.1, 2, precision="bfp8"), StageContext(tiny, str(data_root)))
    full = run_search(*args, tmp_path / "a")
    with killed_at_checkpoint(tiny.epochs, monkeypatch):
        run_search(*args, tmp_path / "b")
    assert int(torch.load(tmp_path / "b" / "ckpt.pt", weights_only=True)["swa"]["n_averaged"]) == 1
    resumed = run_search(*args, tmp_path / "b")
    assert _comparable(resumed) == _comparable(full) and resumed.swa_acc == full.swa_acc
    assert np.array_equal(np.load(tmp_path / "a" / "history.npz")["gammas"], np.load(tmp_path / "b" / "history.npz")["gammas"])


def test_run_names_round_trip_with_precisions():
    from methods.runs.cells import figure_runs, parse_retrain, parse_search, table2_cells

    full = load_scale("full")
    runs = ([r for c in table2_cells(full) for r in c.runs]
            + figure_runs(full, None, "figure1") + figure_runs(full, None, "figure2"))
    assert {r.precision for r in runs} == {"fp32", "bfp8"} and {r.search.precision for r in runs} == {"fp32", "bfp8"}
    for r in runs:
        assert parse_search(r.search.name) == r.search
        assert parse_retrain(r.search.name, r.name) == r
    with pytest.raises(ValueError, match="not a retraining run name"):
        parse_retrain(runs[0].search.name, "p0.5-e10")


def test_speed_benchmark_reports_both_precisions(data_root, capsys):
    """The benchmark runs end to end (its numbers are a measurement, not asserted)."""
    import json

    from benchmarks.lowp_speed import main

    assert main(["--scale", "tiny", "--data-root", str(data_root), "--epochs", "1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out["images_per_s"]) == {"fp32", "bfp8"} and out["slowdown"] > 0 and out["images"] == 200
    assert main(["--scale", "tiny", "--data-root", str(data_root), "--precision", "bfp4"]) == 2
    assert "unknown precision 'bfp4'" in capsys.readouterr().err
