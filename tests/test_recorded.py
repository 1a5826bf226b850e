"""``methods.runs.recorded``: the run an upstream folder holds, read back from its result.json, is the
run that trained it (what ``python -m methods retrain --search DIR`` builds its retraining on)."""
from __future__ import annotations

import pytest

from methods.base.config import ConfigError, load_scale
from methods.base.io import write_json
from methods.runs import digest as dg
from methods.runs.cells import DenseRun, SearchRun
from methods.runs.recorded import dense_run_of, search_run_of

TINY = load_scale("tiny")


def _result(folder, run, kind="search"):
    """A result.json recording ``run``'s inputs as its stage records them (``methods.runs.digest``)."""
    inputs = (dg.search_inputs(TINY, run.model, run.dataset, run.schedule, run.lr, run.seed, run.lrs, run.precision)
              if kind == "search" else dg.dense_inputs(TINY, run.model, run.dataset, run.schedule, run.lr, run.seed))
    write_json(folder / "result.json", {"kind": kind, "config": {"model": run.model}, **dg.record(inputs)})
    return folder


@pytest.mark.parametrize("run", [
    SearchRun("vgg16", "cifar100", "80-120", 0.1, 2),
    SearchRun("preresnet101", "cifar10", "0-100", 0.1, 3),
    # Table 4's explicit LRs, 8-bit: the name keeps them (vgg16-cifar100-80-120-lr0.5_0.01_0.001-bfp8-s2)
    SearchRun("vgg16", "cifar100", "80-120", 0.5, 2, "bfp8", (0.5, 0.01, 0.001)),
], ids=lambda r: r.name)
def test_a_freely_named_search_folder_reads_back_as_its_run(tmp_path, run):
    got = search_run_of(_result(tmp_path / "my-search", run))
    assert got == run and got.name == run.name


def test_a_dense_folder_reads_back_as_its_run(tmp_path):
    run = DenseRun("resnet56", "cifar10", "80-120", 0.01, 4)
    got = dense_run_of(_result(tmp_path / "d", run, "dense"))
    assert got == run and got.name == "resnet56-cifar10-80-120-lr0.01-s4"


def test_an_old_result_is_read_from_its_workflow_name_or_refused(tmp_path):
    run = SearchRun("vgg16", "cifar10", "0-100", 0.1, 5)
    old = {"kind": "search", "config": {"model": "vgg16"}}  # written before digest_inputs were recorded
    write_json(tmp_path / run.path("r") / "result.json", old)
    assert search_run_of(tmp_path / run.path("r")) == run
    write_json(tmp_path / "elsewhere" / "result.json", old)
    with pytest.raises(ConfigError, match="records no inputs .* 'elsewhere' is not a search run name: rerun its search"):
        search_run_of(tmp_path / "elsewhere")


def test_a_missing_or_other_kind_of_upstream_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="dense run .*nowhere has no result.json: run its dense stage first"):
        dense_run_of(tmp_path / "nowhere")
    search = _result(tmp_path / "s", SearchRun("vgg16", "cifar10", "80-120", 0.1, 1))
    with pytest.raises(ConfigError, match="--dense .*s holds a search run, not a dense run"):
        dense_run_of(search)


@pytest.mark.slow
def test_the_tiny_search_reads_back_as_the_run_that_trained_it(tiny_search):
    folder, res = tiny_search
    assert search_run_of(folder) == SearchRun("vgg16", "cifar10", "80-120", 0.1, 1) and res.config["seed"] == 1
