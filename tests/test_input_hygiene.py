"""Input hygiene (issue 16 item 6): numbers written any way are one number, booleans mean what
they say, pruning methods are refused on models they have no rule for, and weight-masked models
deep-copy and reload like plain ones."""
from __future__ import annotations

import copy

import pytest
import torch

from methods.runs.cells import figure_runs, lottery_runs, table1_cells
from methods.base.config import ConfigError, load_scale
from methods.base.inputs import parse_bool, workflow_config
from methods.models import build_model
from methods.pruning.registry import check_supported
from methods.runs.spec import check_tables
from methods.pruning.unstructured import apply_masks, global_magnitude_masks, remove_masks


@pytest.mark.parametrize("written", [0.5, "0.5", "0.50", "5e-1", "5.0e-1", 5e-1])
def test_a_ratio_written_any_way_names_one_folder(written):
    spec = check_tables({"table1": {"models": ["vgg16"], "datasets": ["cifar10"], "schedules": ["80-120"], "draws": ["10"],
                                    "ratio": written, "lr": "1e-1", "runs": 1, "retrain_schedule": "80-120",
                                    "init": "fresh"}}, "t.yaml")
    assert spec["table1"]["ratio"] == 0.5 and spec["table1"]["lr"] == 0.1
    (cell,) = table1_cells(load_scale("tiny"), spec)
    assert cell.runs[0].path("R") == "R/search/vgg16-cifar10-80-120-lr0.1-s1/retrain/p0.5-e10-fresh-80-120-lr0.1"


def test_yaml_1_1_strings_in_named_ratios_and_lottery_lists_become_numbers():
    import yaml

    spec = check_tables(yaml.safe_load("""
figure1: {models: [vgg16], datasets: [cifar100], schedule: "80-120", draws: ["10"], ratios: [3e-1],
          ratios_vgg16_cifar100: [1e-1, 0.50], lr: 1e-1, runs: 1, init: fresh}
table9: {dataset: cifar10, schedule: "80-120", lrs: [1e-2], runs: 1, prune: convmagnitude, models: [resnet50],
         ratios: [9.5e-1], arms: [winning]}
"""), "t.yaml")
    scale = load_scale("tiny")
    assert {r.ratio for r in figure_runs(scale, spec)} == {0.1, 0.5}
    assert [r.path("R") for r in lottery_runs(scale, spec)] == ["R/dense/resnet50-cifar10-80-120-lr0.01-s1/lottery/"
                                                               "convmagnitude-p0.95-winning"]


@pytest.mark.parametrize("bad,needle", [("half", "ratio='half': expected a number such as 0.5 or 1e-2"),
                                        (True, "ratio=True: expected a number"), ("nan", "expected a finite number")])
def test_a_non_number_is_one_line(bad, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")) as e:
        check_tables({"table1": {"models": ["vgg16"], "datasets": ["cifar10"], "schedules": ["80-120"], "draws": ["10"],
                                 "ratio": bad, "lr": 0.1, "runs": 1, "retrain_schedule": "80-120", "init": "fresh"}}, "t.yaml")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("value,expected", [("false", False), ("no", False), ("0", False), (0, False), ("False", False),
                                            ("true", True), ("yes", True), (1, True), ("1", True), (True, True)])
def test_booleans_mean_what_they_say(value, expected):
    assert parse_bool(value, "download") is expected
    cfg = workflow_config({"scale": "smoke", "data_root": "d", "results": "r", "download": value})
    assert cfg.download is expected


@pytest.mark.parametrize("config,needle", [
    ({"download": "maybe"}, "config: download='maybe': expected true or false (also yes/no, on/off, 1/0)"),
    ({"runs_per_job": 0}, "config: runs_per_job=0: Input should be greater than 0"),
    ({"runs_per_job": "many"}, "config: runs_per_job='many': Input should be a valid integer"),
    ({"data_rot": "x"}, "unknown config key(s) ['data_rot']; known: ['data_root',"),
])
def test_a_bad_workflow_config_value_is_one_line(config, needle):
    with pytest.raises(ConfigError) as e:
        workflow_config({"scale": "smoke", "data_root": "d", "results": "r", **config})
    assert str(e.value).startswith(needle) and "\n" not in str(e.value)


def test_workflow_config_takes_numbers_for_paths():
    # Snakemake turns --config results=2024 into an int
    assert workflow_config({"scale": "smoke", "data_root": 7, "results": 2024}).results == "2024"


@pytest.mark.parametrize("method,model,ok", [("bn", "vgg16", True), ("bn", "resnet56", False), ("thinet", "vgg16bn", False),
                                             ("l1", "vgg16", False), ("l1", "resnet110", True), ("l1", "resnet50", False),
                                             ("magnitude", "resnet56", True), ("convmagnitude", "preresnet101", True)])
def test_which_method_prunes_which_model(method, model, ok):
    if ok:
        assert check_supported(method, model).name == method
    else:
        with pytest.raises(ConfigError, match=f"pruning method '{method}' has no rule for model '{model}'"):
            check_supported(method, model)


def _masked(seed=0):
    torch.manual_seed(seed)
    net = build_model("resnet56", 10, width=0.125)
    return apply_masks(net, global_magnitude_masks(net, 0.6, kinds=("conv",)), kinds=("conv",))


def test_a_masked_model_deep_copies_after_a_grad_forward_and_its_state_dict_loads_into_a_fresh_model():
    net = _masked()
    x = torch.randn(4, 3, 32, 32)
    net.train()
    net(x).sum().backward()  # grad enabled: before, module.weight was a non-leaf and deepcopy raised
    twin = copy.deepcopy(net)
    sd = net.state_dict()
    assert not any(k.endswith(("_orig", "_mask")) for k in sd)
    conv = net.blocks[0].conv1
    assert torch.equal(sd["blocks.0.conv1.weight"], conv.weight_orig * conv.weight_mask)
    fresh = build_model("resnet56", 10, width=0.125)
    fresh.load_state_dict(sd)  # strict
    net.eval(), twin.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(net(x), fresh(x)) and torch.equal(net(x), twin(x))
    density = sum(int(torch.count_nonzero(m.weight)) for m in fresh.modules() if isinstance(m, torch.nn.Conv2d))
    total = sum(m.weight.numel() for m in fresh.modules() if isinstance(m, torch.nn.Conv2d))
    assert total - density == int(0.6 * total)  # the mask survives as the snapshot's zeros


def test_a_masked_state_dict_reloads_into_a_masked_model_keeping_its_mask_and_training_alike():
    """A checkpoint round trip (methods.train.loop resumes this way) changes no later step."""
    a, b = _masked(0), _masked(0)
    with torch.no_grad():
        for p in b.parameters():  # another state, the same masks: a run before its checkpoint is loaded
            p.normal_()
    b.load_state_dict(a.state_dict())
    for m_a, m_b in zip(a.modules(), b.modules()):
        if hasattr(m_a, "weight_orig"):
            assert torch.equal(m_a.weight_orig, m_b.weight_orig) and torch.equal(m_a.weight_mask, m_b.weight_mask)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    for net in (a, b):
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        for _ in range(2):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    remove_masks(a)
    assert "blocks.0.conv1.weight" in a.state_dict() and not hasattr(a.blocks[0].conv1, "weight_orig")
