"""The performance benchmark's parts compute what they claim (benchmarks/perf/)."""
from __future__ import annotations

import os

import pytest

from benchmarks.perf.__main__ import summary
from benchmarks.perf.dag import dag_cost, run_epochs, run_flops
from benchmarks.perf.eb_overhead import eb_seconds_per_epoch
from benchmarks.perf.smoke import _cmdline, _tree_rss
from benchmarks.perf.throughput import measure
from methods.runs.cells import RetrainRun, SearchRun
from methods.base.config import load_scale

FULL = load_scale("full")


def test_dag_trains_each_shared_run_once():
    d = dag_cost("full")
    # the full dry run's training jobs (tests/test_workflow.py): 48 searches, 645 retrains, 50 dense, 300 arms
    assert d["jobs"] == {"SearchRun": 48, "RetrainRun": 645, "DenseRun": 50, "LotteryRun": 300}
    assert d["scheduled"]["runs"] == 1043 and d["independent"]["runs"] > 2 * 1000
    assert d["ratio_epochs"] <= 0.5 and d["ratio_flops"] < d["ratio_epochs"]


def test_run_epochs_and_flops_by_hand():
    s = SearchRun("vgg16", "cifar10", "80-120", 0.1, 1)
    # methods.metrics.flops.training_flops' worked example: dense VGG16, 50,000 images, 160 epochs = 301 EB units of 5e13
    assert run_flops(s, FULL) / 5e13 == pytest.approx(301, abs=1)
    assert run_epochs(RetrainRun(s, 0.5, "40", "continue"), FULL) == 120  # EB Train from epoch 40
    assert run_epochs(RetrainRun(s, 0.5, "eb", "continue"), FULL) == 160  # t_EB unknown before the search
    assert run_flops(RetrainRun(s, 0.5, "10"), FULL) == pytest.approx(0.25 * run_flops(s, FULL), rel=1e-2)  # (1 - p)^2


def test_eb_overhead_worst_case_never_emerges():
    r = eb_seconds_per_epoch("vgg16", {}, 12)
    assert r["bn_channels"] == 4224 and r["emerged"] == 0 and 0 < r["seconds_per_epoch"] < 1


def test_throughput_loops_and_summary(data_root):
    r = measure("vgg16", {"width": 0.0625}, 32, 64, 1, str(data_root), threads=1, channels_last=True)
    assert r["images"] == 60 and r["channels_last"]  # 64 images, class-balanced: 6 per class
    assert all(r[k] > 0 for k in ("ours", "reference", "compute"))
    assert r["ours_vs_reference"] == pytest.approx(r["ours"] / r["reference"])
    md = summary({"machine": "test", "throughput": [{"scale": "tiny", **r}],
                  "smoke": {"wall_s": 600, "training_jobs": 75, "peak_tree_rss_mb": 900, "peak_process_rss_mb": 400}})
    assert ("| ours / reference-style loop, tiny |" in md
            and "| smoke all_tables wall time | 10.0 min (75 training jobs) | <= 15 min |" in md)


def test_tree_memory_counts_this_process():
    total, largest, pid = _tree_rss(os.getpid())
    assert total >= largest > 10 * 2**20 and pid > 0
    assert "python" in _cmdline(os.getpid()) and _cmdline(2**22 + 1) == ""  # no such pid: empty, no error


def test_scale_models_times_each_model_with_the_scale_s_own_settings(data_root, tmp_path):
    """benchmarks/perf/scale_models.py: one trial epoch per model at the scale's knobs, batch and images;
    the estimate is seconds per epoch x the scale's epochs, and the scale file itself is left as it was."""
    import json

    from benchmarks.perf.scale_models import main
    from methods.base.config import load_scale

    tiny = load_scale("tiny")
    assert main(["--scale", "tiny", "--data-root", str(data_root), "--out", str(tmp_path), "--models", "vgg16,resnet56"]) == 0
    rows = {r["model"]: r for r in json.loads((tmp_path / "scale_models.json").read_text())["rows"]}
    assert (rows["vgg16"]["stage"], rows["resnet56"]["stage"]) == ("search", "dense")
    # VGG16 at width 1/16: 3x3 convs of 4, 4 | 8, 8 | 16 x 3 | 32 x 3 | 32 x 3 channels at 32..2 pixels; linear 32 -> 10
    convs = [(32, 3, 4), (32, 4, 4), (16, 4, 8), (16, 8, 8), (8, 8, 16), (8, 16, 16), (8, 16, 16),
             (4, 16, 32), (4, 32, 32), (4, 32, 32), (2, 32, 32), (2, 32, 32), (2, 32, 32)]
    assert rows["vgg16"]["knobs"] == {"width": 0.0625}
    assert rows["vgg16"]["macs"] == sum(hw * hw * ci * co * 9 for hw, ci, co in convs) + 32 * 10 == 1_327_424
    assert rows["vgg16"]["batch"] == tiny.batch_size and rows["resnet56"]["batch"] == tiny.batch(64)
    for r in rows.values():
        assert r["train_images"] == tiny.train_images and r["epochs"] == tiny.epochs == load_scale("tiny").epochs
        assert r["minutes_per_run"] == pytest.approx(r["seconds_per_epoch"] * tiny.epochs / 60)
    with pytest.raises(SystemExit):
        main(["--scale", "tiny", "--models", "vgg99"])
