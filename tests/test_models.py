"""Golden complexity of the EB models (REFERENCE.md section 1) and the registry."""
import json

import pytest

from methods.pruning.eb import bn_layers
from methods.metrics.flops import complexity, training_flops
from methods.models import build_model


@pytest.mark.parametrize("name,classes,macs,params,bn", [
    ("vgg16", 10, 313.2e6, 14.72e6, 4224),
    ("vgg16", 100, 313.2e6, 14.77e6, 4224),
    ("preresnet101", 10, 154.06e6, 1.054e6, 7408),
    ("preresnet101", 100, 154.06e6, 1.077e6, 7408),
])
def test_golden_complexity(name, classes, macs, params, bn):
    m = build_model(name, classes)
    cx = complexity(m)
    assert cx["macs"] == pytest.approx(macs, rel=0.005)
    assert cx["params"] == pytest.approx(params, rel=0.005)
    assert sum(b.num_features for b in bn_layers(m)) == bn


def test_dense_vgg16_training_cost_is_301_eb_units():
    cx = complexity(build_model("vgg16", 10))
    assert training_flops(cx["flops"], 50_000, 160) / 5e13 == pytest.approx(301, abs=1)


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match="unknown model 'resnet9'.*preresnet101"):
        build_model("resnet9", 10)


def test_flops_cli_prints_one_json_line(capsys):
    from methods.__main__ import main

    assert main(["flops", "--model", "preresnet101", "--dataset", "cifar10"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    d = json.loads(out[0])
    assert d["macs"] == pytest.approx(154.06e6, rel=0.005) and d["flops"] == pytest.approx(308.12e6, rel=0.005)
    assert d["params"] == 1054106 and d["bn_channels"] == 7408


def test_width_and_depth_knobs_shrink_the_model():
    small = build_model("preresnet101", 10, depth=11, width=0.5)
    assert len(small.blocks) == 3 and small.conv1.out_channels == 8
    assert build_model("vgg16", 10, width=0.125).cfg[:3] == [8, 8, "M"]
    with pytest.raises(ValueError, match="9n\\+2"):
        build_model("preresnet101", 10, depth=100)
