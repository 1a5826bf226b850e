"""The training speed-ups leave results unchanged: bitwise where the arithmetic is the same
(device-side sums, grouped jobs: tests/test_batch.py, the streaming EB detector: tests/test_eb.py),
within rounding where only the memory layout changes (channels-last, the CPU scales), and bf16
autocast stays opt-in and marked."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from methods.base.config import RunConfig, load_scale
from methods.base.data import balanced_subset, load_cifar, normalize
from methods.models import build_model
from methods.train.loop import evaluate, fit, nhwc_safe

TINY = load_scale("tiny")


def _cfg(**kw):
    return RunConfig(**{**dict(model="vgg16", dataset="cifar10", seed=1, epochs=3, batch_size=32, test_batch_size=64,
                               milestones=[2], lrs=[0.1, 0.01], data_root="."), **kw})


@pytest.fixture(scope="module")
def splits(data_root):
    train, test = load_cifar(data_root, "cifar10")
    return balanced_subset(train, 200, 10), balanced_subset(test, 130, 10)  # 130: a last batch of 2


def test_channels_last_is_the_same_step_within_fp32_rounding():
    """In float64 the NHWC step gives the NCHW gradients to 1e-10: the same maths. In float32 the
    CPU's NHWC batch norm rounds 10-30x more than NCHW's (~1e-6 against ~1e-7 per layer), which
    56-110 narrow layers amplify to ~1e-2 in the gradient (NCHW ~1e-6): well inside SGD's noise,
    so the smoke and tiny scales (pipeline checks on CPUs) use it; full keeps PyTorch's NCHW."""
    errors = {False: [], True: []}
    for model in ("vgg16", "resnet56", "preresnet101", "resnet50"):
        torch.manual_seed(0)
        net = build_model(model, 10, **TINY.models[model])
        # RT ResNet-50's strided 1x1 shortcut with 2 input channels: oneDNN corrupts the heap in NHWC
        # (methods.train.loop.nhwc_safe), so fit trains it in NCHW and it is not compared here
        safe = nhwc_safe(net, torch.device("cpu"))
        assert safe == (model != "resnet50"), model
        x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
        grads = {}
        for dt in (torch.float32, torch.float64):
            for cl in (False, True) if safe else (False,):
                m, inp = copy.deepcopy(net).to(dt), x.to(dt)
                if cl:
                    m, inp = m.to(memory_format=torch.channels_last), inp.contiguous(memory_format=torch.channels_last)
                F.cross_entropy(m(inp), y).backward()
                grads[dt, cl] = torch.cat([p.grad.double().flatten() for p in m.parameters()])
        exact = grads[torch.float64, False]
        if not safe:
            continue
        assert (grads[torch.float64, True] - exact).norm() <= 1e-10 * exact.norm(), model
        for cl in (False, True):
            errors[cl].append(float((grads[torch.float32, cl] - exact).norm() / exact.norm()))
    assert max(errors[False]) < 1e-4 and max(errors[True]) < 0.05, errors


@pytest.mark.slow
def test_channels_last_training_stays_within_rounding(splits, tmp_path):
    train, test = splits
    logs = {}
    for cl in (False, True):
        torch.manual_seed(0)
        net = build_model("vgg16", 10, **TINY.models["vgg16"])
        logs[cl] = fit(net, _cfg(channels_last=cl), train, test, tmp_path / f"{cl}.pt")["log"]
    for a, b in zip(logs[False], logs[True]):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-3)
        assert b["test_loss"] == pytest.approx(a["test_loss"], rel=1e-3)
    assert TINY.channels_last and load_scale("smoke").channels_last and not load_scale("full").channels_last
    assert _cfg(channels_last=True).digest() == _cfg().digest()  # the same maths: a run resumes across it


def test_evaluation_sums_on_the_device_bitwise(splits):
    """One host sync per evaluation gives exactly what a .item() per batch gave (EB main.py's test())."""
    _, test = splits
    torch.manual_seed(0)
    net = build_model("vgg16", 10, **TINY.models["vgg16"]).eval()
    loss, correct, accs = 0.0, 0, []
    with torch.no_grad():
        for i in range(0, len(test.y), 64):
            out = net(normalize(test.x[i:i + 64]))
            y = test.y[i:i + 64]
            loss += F.cross_entropy(out, y, reduction="sum").item()
            c = (out.argmax(1) == y).sum().item()
            correct, accs = correct + c, accs + [c / len(y)]
    got = evaluate(net, test, 64)
    assert got == {"test_loss": loss / len(test.y), "test_acc": 100.0 * correct / len(test.y),
                   "test_acc_batchmean": 100.0 * sum(accs) / len(accs)}


def test_bf16_autocast_is_opt_in_close_and_marked(splits, tmp_path):
    from reports.common import Run, provenance, scale_note

    assert all(load_scale(s).autocast is None for s in ("full", "smoke", "tiny"))
    assert _cfg(autocast="bf16").digest() != _cfg().digest()  # never resumes an FP32 checkpoint
    train, test = splits
    logs = {}
    for ac in (None, "bf16"):
        torch.manual_seed(0)
        net = build_model("vgg16", 10, **TINY.models["vgg16"])
        logs[ac] = fit(net, _cfg(autocast=ac, epochs=1, milestones=[], lrs=[0.1]), train, test, tmp_path / f"{ac}.pt")["log"]
    assert logs["bf16"][0]["train_loss"] != logs[None][0]["train_loss"]  # it did run in bf16
    assert logs["bf16"][0]["train_loss"] == pytest.approx(logs[None][0]["train_loss"], rel=0.05)
    runs = [Run(tmp_path / "search" / "a", {"config": {"autocast": "bf16"}}, "done"),
            Run(tmp_path / "search" / "b", {"config": {}}, "done")]
    assert provenance(runs, None)["autocast"] == ["search/a"]
    assert "bf16 autocast" in scale_note(TINY.model_copy(update={"autocast": "bf16"}))


def test_compile_is_refused_with_low_precision():
    from methods.base.config import Precision

    with pytest.raises(ValueError, match="compile: true works with FP32 runs only"):
        _cfg(compile=True, precision=Precision(weight=8, activation=8, error=8, grad=8, momentum=8, swa_start=None))
