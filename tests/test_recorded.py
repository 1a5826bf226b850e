"""``methods.runs.recorded``: the run an upstream folder holds, read back from its result.json, is the
run that trained it (what ``python -m methods retrain --search DIR`` builds its retraining on)."""
from __future__ import annotations

import pytest

from methods.base.config import ConfigError, load_scale
from methods.base.io import write_json
from methods.runs.cells import DenseRun, SearchRun
from methods.runs.recorded import dense_run_of, search_run_of


def _upstream(folder, kind, milestones, lrs, seed=2, **extra):
    write_json(folder / "result.json", {"kind": kind, "config": {"model": "vgg16", "dataset": "cifar100", "seed": seed,
                                                                  "milestones": milestones, "lrs": lrs}, **extra})
    return folder


@pytest.mark.parametrize("milestones,lrs,precision,run", [
    ([8, 12], [0.1, 0.01, 0.001], None, SearchRun("vgg16", "cifar100", "80-120", 0.1, 2)),
    ([0, 10], [0.1, 0.01, 0.001], "fp32", SearchRun("vgg16", "cifar100", "0-100", 0.1, 2)),
    # Table 4's explicit LRs, 8-bit: the name keeps them (vgg16-cifar100-80-120-lr0.5_0.01_0.001-bfp8-s2)
    ([8, 12], [0.5, 0.01, 0.001], "bfp8", SearchRun("vgg16", "cifar100", "80-120", 0.5, 2, "bfp8", (0.5, 0.01, 0.001))),
])
def test_a_search_folder_reads_back_as_its_run(tmp_path, milestones, lrs, precision, run):
    extra = {"precision": precision} if precision else {}
    got = search_run_of(_upstream(tmp_path, "search", milestones, lrs, **extra), load_scale("tiny"))
    assert got == run and got.name == run.name


def test_a_dense_folder_reads_back_as_its_run(tmp_path):
    got = dense_run_of(_upstream(tmp_path, "dense", [20, 30], [0.01, 0.001, 0.0001], seed=4), load_scale("mid"))
    assert got == DenseRun("vgg16", "cifar100", "80-120", 0.01, 4) and got.name == "vgg16-cifar100-80-120-lr0.01-s4"


def test_an_upstream_of_another_scale_or_none_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"milestones \[20, 30\] are not one schedule of scale 'tiny'"):
        search_run_of(_upstream(tmp_path, "search", [20, 30], [0.1, 0.01, 0.001]), load_scale("tiny"))
    with pytest.raises(FileNotFoundError, match="dense run .*nowhere has no result.json: run its dense stage first"):
        dense_run_of(tmp_path / "nowhere", load_scale("tiny"))


@pytest.mark.slow
def test_the_tiny_search_reads_back_as_the_run_that_trained_it(tiny_search):
    folder, res = tiny_search
    assert search_run_of(folder, load_scale("tiny")) == SearchRun("vgg16", "cifar10", "80-120", 0.1, 1)
    assert res.precision == "fp32" and res.config["seed"] == 1
