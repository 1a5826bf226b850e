"""``methods.workflow.jobs.train`` takes a run dataclass and trains it in this process exactly as the
workflow's job for it does on the command line (``retrain_args``): the same numbers, the same folder."""
from __future__ import annotations

import shlex

import pytest

from methods.runs.cells import RetrainRun, SearchRun
from methods.base.config import load_scale
from methods.base.io import read_json
from methods.stages.common import StageContext
from methods.workflow.jobs import retrain_args, train


@pytest.mark.slow
def test_train_equals_the_workflow_command(tmp_path, data_root):
    from methods.__main__ import main

    tiny = load_scale("tiny")
    run = RetrainRun(SearchRun("vgg16", "cifar10", "80-120", 0.1, 1), 0.5, "10", "fresh")
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    ctx = StageContext(tiny, str(data_root), results=a)
    train(run.search, ctx)
    res = train(run, ctx)
    assert res.kind == "retrain" and read_json(f"{run.path(a)}/result.json")["best_acc"] == res.best_acc
    search = run.search
    assert main(["search", "--scale", "tiny", "--data-root", str(data_root), "--model", "vgg16", "--dataset", "cifar10",
                 "--seed", str(search.seed), "--out", search.path(b)]) == 0
    assert main(shlex.split(retrain_args(run, tiny, b, f"--data-root {data_root}"))) == 0
    cli = read_json(f"{run.path(b)}/result.json")
    assert [e["test_acc"] for e in cli["log"]] == [e["test_acc"] for e in res.log]
    assert (cli["best_acc"], cli["draw_epoch"], cli["ticket"]) == (res.best_acc, res.draw_epoch, res.ticket)
