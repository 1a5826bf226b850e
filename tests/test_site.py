"""The report site's parts that need no results tree: Table 4's cells, the cell registry, the
distance summaries, the status of run folders, rerun targets and the fidelity entries."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from methods.base.tables import TABLES as CELL_TABLES
from methods.runs.cells import (cells_of, explicit_lrs, find_cell, parse_retrain, parse_search, table1_cells,
                           table4_cells)
from methods.base.config import ROOT, ConfigError, RunConfig, load_scale
from methods.workflow.status import cell_state, run_state

FULL = load_scale("full")


def test_table4_lr_rows_are_table1_runs_and_others_step_to_the_papers_lrs():
    t1 = {r for c in table1_cells(FULL) for r in c.runs}
    t4 = table4_cells(FULL)
    assert len(t4) == 32 and all(len(c.runs) == 3 for c in t4)
    shared = [c for c in t4 if c.lr == 0.1]
    assert len(shared) == 16 and all(set(c.runs) <= t1 for c in shared)
    new = [r for c in t4 if c.lr != 0.1 for r in c.runs]
    assert not set(new) & t1 and {r.lr for r in new} == {0.5, 0.2}
    r = next(r for r in new if r.lr == 0.5)
    assert r.lrs == r.search.lrs == (0.5, 0.01, 0.001)  # "starting from 0.5, decay to 0.01 at 80 ... 0.001 at 120"
    assert r.path("R") == "R/search/vgg16-cifar100-80-120-lr0.5_0.01_0.001-s1/retrain/p0.5-e10-fresh-80-120-lr0.5_0.01_0.001"
    assert parse_search(r.search.name) == r.search and parse_retrain(r.search.name, r.name) == r


def test_explicit_lrs_are_none_for_the_default_steps():
    assert explicit_lrs(0.1, [0.01, 0.001]) is None  # Table 4's LR 0.1 row names Table 1's runs
    assert explicit_lrs(0.5, None) is None           # the code's x0.1 steps: plain "lr0.5"
    assert explicit_lrs(0.2, [0.01, 0.001]) == (0.2, 0.01, 0.001)


def test_table4_search_schedule_gives_the_papers_lr_at_each_epoch():
    from methods.base.config import schedule

    ms, lrs = schedule("80-120", 0.5, FULL, list(explicit_lrs(0.5, [0.01, 0.001])))
    cfg = RunConfig(model="vgg16", dataset="cifar10", seed=1, epochs=160, batch_size=256, test_batch_size=256,
                    milestones=ms, lrs=lrs, data_root="d")
    assert (cfg.lr(79), cfg.lr(80), cfg.lr(119), cfg.lr(120)) == (0.5, 0.01, 0.01, 0.001)


def test_every_page_has_uniquely_named_cells():
    counts = {t: len(cells_of(FULL, t)) for t in CELL_TABLES}
    assert counts == {"table1": 32, "table2": 93, "table4": 32, "table8": 20, "table9": 40, "figure1": 60,
                      "figure2": 30, "figure3": 2, "figure5": 4}
    for t in CELL_TABLES:
        ids = [c.id for c in cells_of(FULL, t)]
        assert len(set(ids)) == len(ids), t
    cell = find_cell(FULL, "table8", "lr0.01/resnet110/b/random")
    assert len(cell.runs) == 5 and {r.arm for r in cell.runs} == {"random"} and len(cell.upstream) == 5
    with pytest.raises(ValueError, match="no cell 'vgg16/nope'.*status --list table1"):
        find_cell(FULL, "table1", "vgg16/nope")
    with pytest.raises(ValueError, match="unknown table 'table3'"):
        cells_of(FULL, "table3")


def test_completeness_counts_the_paper_inside_our_spread():
    from reports.common import completeness

    cells = [{"n_runs": 3, "n_expected": 3, "paper": 70.0, "ours_min": 69.5, "ours_max": 70.2, "diff": -0.1},
             {"n_runs": 3, "n_expected": 3, "paper": 70.0, "ours_min": 70.1, "ours_max": 71.0, "diff": 0.5},
             {"n_runs": 0, "n_expected": 3, "paper": 70.0, "ours_min": float("nan"), "ours_max": float("nan"),
              "diff": float("nan")}]
    s = completeness(cells, lambda c: c["n_runs"] == c["n_expected"])
    assert (s["cells_done"], s["cells_total"], s["n_compared"], s["n_inside"]) == (2, 3, 2, 1)
    assert s["mean_abs_diff"] == pytest.approx(0.3)


def test_rt_summary_counts_arms_within_the_papers_std():
    from reports.pages.lottery import summary

    row = {"n_winning": 5, "n_random": 5, "n_expected": 5, "n_dense": 5, "diff_winning": 0.3, "diff_random": -0.9,
           "paper_winning_std": 0.4, "paper_random_std": 0.5}
    s = summary([row])
    assert (s["n_compared"], s["n_inside"]) == (2, 1) and s["mean_abs_diff"] == pytest.approx(0.6)


def test_run_state_from_files_alone(tmp_path):
    def run(name, files):
        d = tmp_path / name
        d.mkdir()
        for f, text in files.items():
            (d / f).write_text(text)
        return d

    assert run_state(tmp_path / "absent") == "missing"
    assert run_state(run("done", {"result.json": "{}", "log.txt": "x"})) == "done"
    assert run_state(run("running", {"log.txt": "epoch 3/16 loss 2.1\n", "ckpt.pt": ""})) == "running"
    crashed = run("crashed", {"log.txt": "epoch 3\nTraceback (most recent call last):\n  ...\nRuntimeError: boom\n"})
    assert run_state(crashed) == "failed"
    assert run_state(run("bad", {"log.txt": "error: unknown scale 'x'\n"})) == "failed"
    stale = run("stale", {"log.txt": "epoch 3/16\n", "ckpt.pt": ""})
    old = time.time() - 3 * 3600
    for f in stale.iterdir():
        os.utime(f, (old, old))
    assert run_state(stale) == "failed"  # killed: nothing moved for hours; a rerun resumes it
    assert run_state(stale, stale_minutes=600) == "running"


def test_cell_state_takes_the_worst_of_its_runs(tmp_path):
    tiny = load_scale("tiny")
    cell = find_cell(tiny, "table1", "vgg16/80-120/cifar10/10")
    results = str(tmp_path)
    assert cell_state(cell, results) == "missing"
    search = tmp_path / "search" / cell.upstream[0].name
    search.mkdir(parents=True)
    (search / "log.txt").write_text("epoch 1/16\n")
    assert cell_state(cell, results) == "running"  # its search is training
    own = tmp_path / cell.runs[0].path("").lstrip("/")
    own.mkdir(parents=True)
    (own / "result.json").write_text("{}")
    assert cell_state(cell, results) == "done"


def test_status_command_prints_counts(tmp_path, capsys):
    from methods.__main__ import main

    assert main(["status", "--scale", "full", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("table2"))
    header = next(x for x in out.splitlines() if x.startswith("table "))
    assert header.split() == ["table", "done", "stale", "running", "missing", "failed", "total"]
    assert line.split() == ["table2", "0", "0", "0", "93", "0", "93"]
    assert main(["status", "--scale", "full", "--results", str(tmp_path), "--list", "table8"]) == 0
    listing = capsys.readouterr().out
    assert "missing  lr0.1/vgg16l1/a/winning" in listing and len(listing.splitlines()) == 20


def test_rerun_targets_are_the_cells_own_runs():
    from methods.workflow.rerun import command, targets

    own, forced = targets("table1", "vgg16/80-120/cifar100/10", "full", "results", seeds=[2])
    assert own == forced == ["results/full/search/vgg16-cifar100-80-120-lr0.1-s2/retrain/p0.5-e10-fresh-80-120-lr0.1/result.json"]
    own, forced = targets("table1", "vgg16/80-120/cifar100/10", "full", "results", upstream=True)
    assert len(own) == 3 and len(forced) == 6 and forced[-1] == "results/full/search/vgg16-cifar100-80-120-lr0.1-s3/result.json"
    with pytest.raises(ValueError, match=r"has seeds \[1, 2, 3\], not \[7\]"):
        targets("table1", "vgg16/80-120/cifar100/10", "full", seeds=[7])
    assert command("table8", "lr0.1/resnet56/a/winning", "smoke", seeds=[1]) == (
        "python -m methods rerun table8 lr0.1/resnet56/a/winning --scale smoke --results results --data-root data --seed 1")


def test_rerun_rejects_an_unknown_cell_in_one_line(capsys):
    from methods.__main__ import main

    assert main(["rerun", "table1", "vgg16/9-9/cifar10/10", "--scale", "tiny", "-n"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "status --list table1" in err


def test_fidelity_entries_are_complete(tmp_path):
    from reports.pages.fidelity import FIELDS, load

    entries = load()
    assert len(entries) >= 20 and {e["area"] for e in entries} == {"EB", "RT", "both"}
    assert all(e[f] for e in entries for f in FIELDS)
    topics = " ".join(e["topic"] for e in entries)
    for must in ("Table 4", "EB Train", "EB detection", "shortcut", "Energy", "8-bit"):
        assert must in topics
    bad = tmp_path / "f.yaml"
    bad.write_text("- {area: EB, topic: x, paper: a, code: b, ours: c, source: d, opton: e}\n")
    with pytest.raises(ConfigError, match=r"missing \['option'\], unknown \['opton'\]"):
        load(bad)


def test_string_model_knobs_from_a_scale_file_reach_the_model():
    """The fidelity page's RT options are scale knobs: shortcut A_detached, bn1d_init ones."""
    import yaml

    from methods.base.config import Scale
    from methods.models import build_model

    d = yaml.safe_load((ROOT / "benchmarks" / "scales" / "tiny.yaml").read_text())
    d["models"]["resnet56"] = {**d["models"].get("resnet56", {}), "shortcut": "A_detached"}
    d["models"]["vgg16l1"] = {**d["models"].get("vgg16l1", {}), "bn1d_init": "ones"}
    scale = Scale(name="tiny", **d)
    net = build_model("resnet56", 10, **scale.models["resnet56"])
    assert net.shortcut == "A_detached"
    vgg = build_model("vgg16l1", 10, **scale.models["vgg16l1"])
    import torch

    bn1d = next(m for m in vgg.modules() if isinstance(m, torch.nn.BatchNorm1d))
    assert torch.equal(bn1d.weight, torch.ones_like(bn1d.weight))
    cfg = RunConfig(model="resnet56", knobs=scale.models["resnet56"], dataset="cifar10", seed=1, epochs=16, batch_size=32,
                    test_batch_size=32, milestones=[8, 12], lrs=[0.1, 0.01, 0.001], data_root="d")
    assert cfg.knobs["shortcut"] == "A_detached" and cfg.digest() != cfg.model_copy(update={"knobs": {}}).digest()


def test_a_rerun_refreshes_every_page_showing_the_run():
    from methods.workflow.rerun import SEARCH_FIGURES, pages_showing, targets

    own, _ = targets("table1", "vgg16/80-120/cifar100/10", "full", seeds=[1])
    assert set(pages_showing("full", own)) == {"table1", "table4", "figure1"}  # the same run is on all three
    own, forced = targets("figure5", "vgg16/cifar100", "full")
    assert "figure5" in SEARCH_FIGURES and len(own) == 3 and forced == []  # searches are shared: forced only with --upstream
    assert len(targets("figure5", "vgg16/cifar100", "full", upstream=True)[1]) == 3
    assert set(pages_showing("full", own)) >= {"table1", "table2", "table4", "figure1", "figure5"}


@pytest.mark.slow
def test_a_specification_without_the_new_sections_still_works(tmp_path):
    """A tables= copy trimmed before Table 4 and Figure 5 existed: no cells, no page, a valid workflow for the rest."""
    import yaml

    from methods.runs.cells import figure3_searches, load_tables

    spec = load_tables()
    del spec["table4"], spec["figure5"]
    assert (table4_cells(FULL, spec) == [] and figure3_searches(FULL, spec, "figure5") == []
            and cells_of(FULL, "table4", spec) == [])
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(spec))
    run = subprocess.run([sys.executable, "-m", "snakemake", "all_tables", "-n", "--config", "scale=smoke",
                          f"results={tmp_path}", f"tables={tmp_path / 'old.yaml'}"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "report_table4" not in run.stdout and "report_figure5" not in run.stdout
    assert "report_table1" in run.stdout and "report_index" in run.stdout and "retrain_group" in run.stdout
