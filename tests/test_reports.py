"""Report pages (``python -m reports``) on a small real results tree.

The tree holds a handful of tiny-scale runs (real training on ``../shared/data`` when it
is there, otherwise result files with the same keys written by hand), so most Table 1 cells
and Figure 1 points are pending, which the pages must show and count correctly. A second
copy of the tree is reported with seeds [1, 2] to check the mean/min/max over seeds and a
partially done cell.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, not only the repo root

from methods.runs.cells import RetrainRun, SearchRun
from methods.base.config import ROOT, load_scale
from methods.base.io import read_json, write_json
from reports.__main__ import build
from reports.pages.table1 import load_paper

DATA = Path(os.environ.get("CIFAR_ROOT", ROOT.parent / "shared" / "data"))  # as tests/conftest.py
REAL = (DATA / "cifar100.npz").is_file()
PAGES = ("table1", "table2", "table4", "figure1", "figure2", "figure3", "figure5", "fidelity", "claims", "index")

VGG1 = SearchRun("vgg16", "cifar100", "80-120", 0.1, 1)
VGG2 = SearchRun("vgg16", "cifar100", "80-120", 0.1, 2)
PRN1 = SearchRun("preresnet101", "cifar100", "80-120", 0.1, 1)
# Table 1 cells (vgg16, cifar100, [80,120]) at draws 10 and final; Figure 1 points p0.1 at 10 and best.
RETRAINS = [RetrainRun(VGG1, 0.5, "10"), RetrainRun(VGG1, 0.5, "final"), RetrainRun(VGG1, 0.1, "10"),
            RetrainRun(VGG1, 0.1, "best"), RetrainRun(VGG2, 0.5, "10")]


def _fake_search(out: Path, sr: SearchRun, scale, rng) -> None:
    """A search result with the keys the reports read, for machines without the CIFAR data."""
    n, t = 64, scale.epochs + 1
    gammas = np.abs(rng.normal(0.5, 0.2, (t, n))).cumsum(0).astype(np.float32) / np.arange(1, t + 1)[:, None]
    from methods.pruning.eb import masks_from_gammas
    from methods.stages.eb import SEARCH_RATIOS
    import torch

    masks = {f"mask_p{p}": masks_from_gammas(torch.from_numpy(gammas), p).numpy() for p in SEARCH_RATIOS}
    out.mkdir(parents=True)
    np.savez_compressed(out / "history.npz", gammas=gammas, **masks)
    from methods.pruning.eb import detect_eb

    log = [{"epoch": e, "test_acc": float(rng.uniform(1, 5))} for e in range(1, scale.epochs + 1)]
    best = max(log, key=lambda r: r["test_acc"])
    eb = {str(p): {r: detect_eb(torch.from_numpy(masks[f"mask_p{p}"]), r) for r in ("paper", "official")} for p in SEARCH_RATIOS}
    res = {"kind": "search", "scale": scale.name, "config": {"data_root": "fake", "seed": sr.seed}, "log": log,
           "best_acc": best["test_acc"], "best_epoch": best["epoch"], "final_acc": log[-1]["test_acc"], "eb_epochs": eb,
           "complexity": {"macs": 1000, "flops": 2000, "params": 500}, "bn_channels": n, "train_flops": 1e9,
           "train_flops_eb_units": 2e-5, "provenance": {"commit": "fake", "date": "2020-01-01T00:00:00+00:00", "device": "cpu"}}
    (out / "result.json").write_text(json.dumps(res))


def _fake_retrain(out: Path, r: RetrainRun, scale, search_dir: Path, rng) -> None:
    s = json.loads((search_dir / "result.json").read_text())
    acc = float(rng.uniform(1, 5))
    res = {"kind": "retrain", "scale": scale.name, "config": {"data_root": "fake", "seed": r.search.seed},
           "best_acc": acc, "final_acc": acc - 0.5, "best_epoch": 3, "ratio": r.ratio, "draw": r.draw,
           "draw_epoch": s["best_epoch"] if r.draw == "best" else scale.epoch(r.draw), "init": "fresh",
           "search_best_acc": s["best_acc"], "complexity": {"macs": 400, "flops": 800, "params": 200},
           "dense_complexity": s["complexity"], "param_reduction": 0.6, "flop_reduction": 0.6, "train_flops": 5e8,
           "train_flops_eb_units": 1e-5, "provenance": {"commit": "fake", "date": "2020-01-02T00:00:00+00:00", "device": "cpu"}}
    out.mkdir(parents=True)
    (out / "result.json").write_text(json.dumps(res))


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """``results/tiny`` with 3 searches and 5 retrains, plus one run that has only a checkpoint."""
    results = tmp_path_factory.mktemp("rep") / "results" / "tiny"
    scale = load_scale("tiny").model_copy(update={"seeds": [1, 2]})
    if REAL:
        from methods.stages.common import StageContext
        from methods.workflow.jobs import train

        ctx = StageContext(scale, str(DATA), results=str(results))
        for run in (VGG1, VGG2, PRN1, *RETRAINS):
            train(run, ctx)
    else:
        rng = np.random.default_rng(0)
        for sr in (VGG1, VGG2, PRN1):
            _fake_search(Path(sr.path(str(results))), sr, scale, rng)
        for r in RETRAINS:
            _fake_retrain(Path(r.path(str(results))), r, scale, Path(r.search.path(str(results))), rng)
    # A started but unfinished retrain: must count as pending, not done.
    running = Path(RetrainRun(VGG1, 0.5, "20").path(str(results)))
    running.mkdir(parents=True)
    (running / "ckpt.pt").write_bytes(b"")
    return results


def _result(run, results: Path) -> dict:
    return json.loads((Path(run.path(str(results))) / "result.json").read_text())


@pytest.fixture(scope="module")
def built(tree) -> Path:
    """Every page built through the command line's arguments, as the Snakefile calls ``python -m reports``
    (in this process: the workflow's own report jobs run it as a process, tests/test_workflow.py)."""
    from reports.__main__ import main

    for page in PAGES:
        assert main([page, "--scale", "tiny", "--results", str(tree), "--data-root", str(DATA)]) == 0, page
    return tree


@pytest.fixture(scope="module")
def built2(tree, tmp_path_factory) -> Path:
    """The same runs reported with seeds [1, 2]: cell "10" has both seeds, "final" only one (Table 1
    and the index, the pages that count seeds; the others share their code with ``built``)."""
    copy = tmp_path_factory.mktemp("rep2") / "results" / "tiny"
    shutil.copytree(tree, copy, ignore=shutil.ignore_patterns("report", "tables"))
    scale = load_scale("tiny").model_copy(update={"seeds": [1, 2]})
    for page in ("table1", "index"):
        build(page, scale, str(copy))
    return copy


@pytest.mark.slow
def test_outputs_exist(built):
    for f in ["tables/table1.csv", "report/table1.html", "tables/figure1.csv", "report/figure1.png", "report/figure1.html",
              "report/figure3.png", "report/figure3.html", "report/index.html"]:
        assert (built / f).stat().st_size > 0, f
    for png in ("figure1.png", "figure3.png"):
        assert (built / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    leftovers = [p for p in built.rglob("*.tmp")]
    assert not leftovers, leftovers  # atomic writes leave no temporaries


@pytest.mark.slow
def test_table1_csv_values(built):
    df = pd.read_csv(built / "tables" / "table1.csv", dtype={"draw": str})
    assert len(df) == 32
    paper = load_paper()
    cell = df[(df.model == "vgg16") & (df.dataset == "cifar100") & (df.schedule == "80-120") & (df.draw == "10")].iloc[0]
    res = _result(RETRAINS[0], built)
    assert cell.n_runs == 1 and cell.n_expected == 1 and cell.draw_epoch == 1  # tiny: 16 epochs, "10" -> epoch 1
    assert cell.ours_mean == pytest.approx(res["best_acc"])
    assert cell.ours_min == pytest.approx(res["best_acc"]) and cell.ours_max == pytest.approx(res["best_acc"])
    assert cell.paper == pytest.approx(paper[("vgg16", "cifar100", "80-120", "10")]) == pytest.approx(71.11)
    assert cell["diff"] == pytest.approx(res["best_acc"] - 71.11)
    assert cell.pruned_params_mean == res["complexity"]["params"]
    assert cell.train_flops_mean == pytest.approx(res["train_flops"])
    # The run with only a checkpoint and the never-started ones are pending: no value.
    pending = df[(df.model == "vgg16") & (df.schedule == "80-120") & (df.dataset == "cifar100") & (df.draw == "20")].iloc[0]
    assert pending.n_runs == 0 and math.isnan(pending.ours_mean) and pending.paper == pytest.approx(71.07)
    assert df.n_runs.sum() == 2


@pytest.mark.slow
def test_table1_html(built):
    html = (built / "report" / "table1.html").read_text()
    res = _result(RETRAINS[0], built)
    assert "paper 71.11" in html and f"{res['best_acc']:.2f}" in html
    assert f"{res['best_acc'] - 71.11:+.2f}".replace("-", "&minus;") in html
    assert "pending (checkpoint present)" in html
    assert "16 training epochs" in html and "epoch 1" in html  # the scale note
    # Links to result.json are relative and resolve from the report folder.
    links = re.findall(r'href="([^"]*result\.json)"', html)
    assert len(links) == 2
    for link in links:
        assert not os.path.isabs(link) and (built / "report" / link).resolve().is_file()


@pytest.mark.slow
def test_no_remote_urls_or_scripts(built):
    pages = list((built / "report").rglob("*.html"))
    assert len(pages) > 100  # the cell pages too
    for page in pages:
        text = page.read_text()
        assert "http" not in text.lower(), page
        assert "<script" not in text.lower(), page
        assert "src=\"/" not in text  # images are relative too


@pytest.mark.slow
def test_provenance_stated(built):
    res = _result(RETRAINS[0], built)
    for page in set(PAGES) - {"fidelity"}:
        html = (built / "report" / f"{page}.html").read_text()
        assert str(DATA) in html and "tiny" in html and "Page generated" in html
        assert res["provenance"]["commit"] in html


@pytest.mark.slow
def test_index_completeness(built):
    html = (built / "report" / "index.html").read_text()
    assert "2 / 32 cells" in html        # Table 1: draws 10 and final of one row, one seed each
    assert "4 / 60 points" in html       # Figure 1: p0.5 at 10/final, p0.1 at 10/best
    assert "8 / 8 panels" in html        # Figure 3: both searches, 4 ratios each
    t1 = pd.read_csv(built / "tables" / "table1.csv")
    mad = t1["diff"].abs().mean()
    assert f"{mad:.2f}" in html


@pytest.mark.slow
def test_figure1_csv(built):
    df = pd.read_csv(built / "tables" / "figure1.csv", dtype={"draw": str})
    assert len(df) == 60
    search = json.loads((Path(VGG1.path(str(built))) / "result.json").read_text())
    best = df[(df.model == "vgg16") & (df.dataset == "cifar100") & (df.ratio == 0.1) & (df.draw == "best")].iloc[0]
    res = _result(RETRAINS[3], built)
    assert best.draw_epoch == search["best_epoch"] == res["draw_epoch"]
    assert best.acc_mean == pytest.approx(res["best_acc"])
    assert best.dense_acc_mean == pytest.approx(search["best_acc"])
    final = df[(df.model == "vgg16") & (df.dataset == "cifar100") & (df.ratio == 0.5) & (df.draw == "final")].iloc[0]
    assert final.draw_epoch == 16 and final.n_runs == 1


@pytest.mark.slow
def test_figure3_eb_epochs_match_search(built):
    df = pd.read_csv(built / "tables" / "figure3.csv")
    assert len(df) == 8 and (df.status == "done").all() and (df.epochs == 16).all()
    # The page recomputes masks from gammas; its paper-rule EB epoch must match the search's record.
    for r in df.itertuples():
        a, b = r.eb_epoch_paper, r.eb_epoch_paper_stored
        assert (pd.isna(a) and pd.isna(b)) or a == b
    assert "figure3.png" in (built / "report" / "figure3.html").read_text()


@pytest.mark.slow
def test_two_seeds_mean_min_max_and_partial(built2):
    df = pd.read_csv(built2 / "tables" / "table1.csv", dtype={"draw": str})
    sel = (df.model == "vgg16") & (df.dataset == "cifar100") & (df.schedule == "80-120")
    ten, final = df[sel & (df.draw == "10")].iloc[0], df[sel & (df.draw == "final")].iloc[0]
    accs = [json.loads((Path(r.path(str(built2))) / "result.json").read_text())["best_acc"] for r in (RETRAINS[0], RETRAINS[4])]
    assert ten.n_runs == 2 and ten.n_expected == 2
    assert ten.ours_mean == pytest.approx(sum(accs) / 2)
    assert ten.ours_min == pytest.approx(min(accs)) and ten.ours_max == pytest.approx(max(accs))
    assert ten["diff"] == pytest.approx(sum(accs) / 2 - 71.11)
    assert final.n_runs == 1 and final.n_expected == 2
    html = (built2 / "report" / "table1.html").read_text()
    assert f"[{min(accs):.2f}&ndash;{max(accs):.2f}]" in html and "1/2 runs" in html
    index = (built2 / "report" / "index.html").read_text()
    assert "1 / 32 cells" in index and "3 / 64" in index  # only draw 10 has every seed
    assert "1 / 60 points" in index


def test_bad_scale_exits_2(tmp_path, capsys):
    from reports.__main__ import main

    assert main(["table1", "--scale", "nope", "--results", str(tmp_path)]) == 2
    assert "unknown scale" in capsys.readouterr().err


@pytest.mark.slow
def test_empty_tree_renders_all_pending(tmp_path):
    """Before any run finishes every page still renders, with everything pending."""
    results = tmp_path / "results" / "tiny"
    scale = load_scale("tiny")
    for page in PAGES:
        build(page, scale, str(results))
    assert "0 / 32 cells" in (results / "report" / "index.html").read_text()
    assert "pending" in (results / "report" / "table1.html").read_text()
    assert pd.read_csv(results / "tables" / "table1.csv").n_runs.sum() == 0
    t2 = pd.read_csv(results / "tables" / "table2.csv")
    # every cell the paper prints: 72 FP32 + 12 LF + 9 LL (no LL row for VGG16 on CIFAR-100), all with runs
    assert len(t2) == 93 and t2.n_runs.sum() == 0 and (t2.n_expected == 1).all()
    assert set(t2.method) == {"lt_oneshot", "snip", "ns", "thinet", "eb_reinit", "eb_train", "eb_lf", "eb_ll"}
    html = (results / "report" / "table2.html").read_text()
    assert "pending: not run yet" in html and "not built yet" not in html
    assert "baselines here are LT (one-shot), SNIP, NS, ThiNet. Recomputed" in html  # the paper's own: no caveat
    f2 = pd.read_csv(results / "tables" / "figure2.csv")
    assert len(f2) == 2 * 3 * 5 and (f2.search_precision == "bfp8").all() and f2.n_runs.sum() == 0
    assert "0 / 30 points" in (results / "report" / "index.html").read_text()


def test_table2_names_the_baselines_its_improv_row_compares(tmp_path):
    """The paper's four baselines in another order or under other labels are still the paper's; dropping one
    (role: extra) is not, and the page says so."""
    from methods.runs.cells import load_tables

    spec = load_tables()
    rows = spec["table2"]["rows"]
    spec["table2"]["rows"] = dict(reversed(list(rows.items())))
    spec["table2"]["rows"]["snip"] = {**rows["snip"], "label": "SNIP (ours)"}
    build("table2", load_scale("tiny"), str(tmp_path), spec=spec)
    html = (tmp_path / "report" / "table2.html").read_text()
    assert "baselines here are ThiNet, NS, SNIP (ours), LT (one-shot). Recomputed" in html
    spec["table2"]["rows"]["thinet"] = {**rows["thinet"], "role": "extra"}
    build("table2", load_scale("tiny"), str(tmp_path), spec=spec)
    html = (tmp_path / "report" / "table2.html").read_text()
    assert "baselines here are NS, SNIP (ours), LT (one-shot) (the paper's:\nLT (one-shot), SNIP, NS, ThiNet;" in html


def test_result_files_are_readable_by_others(tmp_path):
    from methods.base.io import write_json

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644  # mkstemp alone would leave 0600


CELL = "vgg16/80-120/cifar100/10"  # RETRAINS[0]


@pytest.mark.slow
def test_cell_page_has_its_result_provenance_curves_and_rerun_command(built):
    page = built / "report" / "cells" / "table1" / "vgg16_80-120_cifar100_10.html"
    html = page.read_text()
    res = _result(RETRAINS[0], built)
    assert f"python -m methods rerun table1 {CELL} --scale tiny" in html and f"--data-root {DATA}" in html
    assert f"{res['best_acc']:.2f}" in html and "paper 71.11" in html
    assert res["provenance"]["commit"] in html and "Config hash" in html
    if REAL:  # real runs record their full configuration and torch version
        from methods.base.config import RunConfig
        import torch

        assert RunConfig(**res["config"]).digest() in html and torch.__version__ in html
    png = page.with_suffix(".png")
    assert 'src="vgg16_80-120_cifar100_10.png"' in html and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    links = re.findall(r'href="([^"#]+)"', html)
    assert "../../table1.html" in links and "../../index.html" in links
    for link in links:  # the table page, the index and the run files resolve (this tree builds no RT pages)
        if "table8" not in link and "table9" not in link:
            assert (page.parent / link).resolve().exists(), link
    table = (built / "report" / "table1.html").read_text()
    assert 'href="cells/table1/vgg16_80-120_cifar100_10.html"' in table
    pending = (built / "report" / "cells" / "table1" / "vgg16_0-100_cifar10_40.html").read_text()
    assert "No run of this cell has finished yet" in pending and "rerun table1 vgg16/0-100/cifar10/40" in pending


@pytest.mark.slow
def test_index_counts_and_distances_match_the_result_files(built):
    """Recount Table 1 from the result.json files alone and compare with the index's entry."""
    from methods.runs.cells import load_tables, table1_cells
    from reports.pages.index import pages

    scale, paper = load_scale("tiny"), load_paper()
    done, diffs, inside = 0, [], 0
    for cell in table1_cells(scale):
        accs = [json.loads((Path(r.path(str(built))) / "result.json").read_text())["best_acc"]
                for r in cell.runs if (Path(r.path(str(built))) / "result.json").is_file()]
        done += len(accs) == len(cell.runs)
        if accs:
            ref = paper[(cell.model, cell.dataset, cell.schedule, cell.draw)]
            diffs.append(abs(sum(accs) / len(accs) - ref))
            inside += min(accs) <= ref <= max(accs)
    entry = next(p for p in pages(scale, str(built), load_tables())[0] if p["name"] == "EB Table 1")
    assert (entry["done"], entry["total"], entry["n_compared"], entry["n_inside"]) == (done, 32, len(diffs), inside)
    assert entry["mean_abs_diff"] == pytest.approx(sum(diffs) / len(diffs))
    assert f"{entry['mean_abs_diff']:.2f}" in (built / "report" / "index.html").read_text()


@pytest.mark.slow
def test_table4_reads_table1s_runs_for_its_lr_01_rows(built):
    t1 = pd.read_csv(built / "tables" / "table1.csv", dtype={"draw": str})
    t4 = pd.read_csv(built / "tables" / "table4.csv", dtype={"draw": str})
    assert len(t4) == 32
    a = t1[(t1.model == "vgg16") & (t1.schedule == "80-120") & (t1.dataset == "cifar100") & (t1.draw == "10")].iloc[0]
    b = t4[(t4.model == "vgg16") & (t4.lr == 0.1) & (t4.dataset == "cifar100") & (t4.draw == "10")].iloc[0]
    assert b.ours_mean == a.ours_mean and b.paper == pytest.approx(71.11)
    high = t4[(t4.model == "vgg16") & (t4.lr == 0.5) & (t4.dataset == "cifar100") & (t4.draw == "20")].iloc[0]
    assert high.n_runs == 0 and high.paper == pytest.approx(71.65)
    assert "Initial LR" in (built / "report" / "table4.html").read_text()


@pytest.mark.slow
def test_figure5_flops_from_the_mask_history(built):
    """At the final draw the pruned architecture is the final-draw retraining's; the total is
    t dense + E pruned epochs x 3 x forward FLOPs x 50k images, in 0.05 PFLOPs."""
    df = pd.read_csv(built / "tables" / "figure5.csv")
    search = json.loads((Path(VGG1.path(str(built))) / "result.json").read_text())
    assert set(df.seed[df.model == "vgg16"]) == {1} and set(df.draw_epoch) == set(range(1, 17))  # tiny: every epoch
    final = df[(df.model == "vgg16") & (df.dataset == "cifar100") & (df.ratio == 0.5) & (df.draw_epoch == 16)].iloc[0]
    dense = search["complexity"]["flops"]
    assert final.dense_flops == dense
    assert final.total_flops_units == pytest.approx(3 * (16 * dense + 16 * final.pruned_flops) * 50_000 / 5e13)
    assert final.dense_training_units == pytest.approx(3 * 16 * dense * 50_000 / 5e13)
    if REAL:
        assert final.pruned_flops == _result(RETRAINS[1], built)["complexity"]["flops"]
    early = df[(df.model == "vgg16") & (df.dataset == "cifar100") & (df.ratio == 0.5) & (df.draw_epoch == 1)].iloc[0]
    assert early.total_flops_units < final.total_flops_units  # an early draw saves the dense epochs
    assert "figure5.png" in (built / "report" / "figure5.html").read_text()


@pytest.mark.slow
def test_fidelity_page_lists_every_entry(built):
    from reports.pages.fidelity import load

    html = (built / "report" / "fidelity.html").read_text()
    from markupsafe import escape

    for e in load():
        assert str(escape(e["topic"])) in html
    assert "table4.later_lrs: null" in html and "shortcut: A_detached" in html


@pytest.mark.slow
def test_a_bf16_cell_is_marked(tree, tmp_path):
    """A run trained under the opt-in bf16 autocast marks its own cell (CSV column, HTML badge), no other."""
    copy = tmp_path / "results" / "tiny"
    shutil.copytree(tree, copy, ignore=shutil.ignore_patterns("report", "tables"))
    f = Path(RETRAINS[0].path(str(copy))) / "result.json"
    res = read_json(f)  # a real run's result (checksummed) or a fake one
    res["config"]["autocast"] = "bf16"
    write_json(f, res)
    build("table1", load_scale("tiny"), str(copy))
    df = pd.read_csv(copy / "tables" / "table1.csv", dtype={"draw": str})
    marked = df[df.bf16]
    assert len(marked) == 1 and marked.iloc[0].ours_mean == pytest.approx(res["best_acc"]) and marked.iloc[0].draw == "10"
    html = (copy / "report" / "table1.html").read_text()
    assert html.count('<span class="warn">bf16</span>') == 1 and "bf16 autocast (not the papers' FP32)" in html


@pytest.mark.slow
def test_a_disconnected_ticket_is_marked_and_never_inside_the_spread(tree, tmp_path):
    """A cell whose ticket is disconnected carries the mark (CSV column, HTML badge), its cell page
    the per-layer table, and it does not count as agreeing with the paper even with the paper's
    value inside our [min, max]."""
    copy = tmp_path / "results" / "tiny"
    shutil.copytree(tree, copy, ignore=shutil.ignore_patterns("report", "tables"))
    f = Path(RETRAINS[0].path(str(copy))) / "result.json"
    res = read_json(f)
    res["best_acc"] = 71.11  # the paper's value for this cell: inside a one-seed [min, max]
    res["ticket"] = {"unit": "channels", "kept": 3, "total": 12, "collapsed": ["features.4"], "disconnected": True,
                     "emptied_layers": "live", "layers": [{"name": "features.1", "kept": 3, "total": 4},
                                                          {"name": "features.4", "kept": 0, "total": 8}]}
    write_json(f, res)
    scale = load_scale("tiny")
    build("table1", scale, str(copy))
    df = pd.read_csv(copy / "tables" / "table1.csv", dtype={"draw": str})
    marked = df[df.ticket_flag.notna()]
    assert len(marked) == 1 and marked.iloc[0].ticket_flag == "disconnected" and marked.iloc[0].paper == 71.11
    html = (copy / "report" / "table1.html").read_text()
    assert html.count('>disconnected</span>') == 1
    assert "the paper's value inside our [min&ndash;max]: 0 /" in html
    cell = (copy / "report" / "cells" / "table1" / "vgg16_80-120_cifar100_10.html").read_text()
    assert "Ticket, layer by layer" in cell and "<b>Disconnected</b>" in cell and "<code>features.4</code>" in cell
    assert "keeps 3 of 12 channels (25.0%)" in cell and ">0 (0.0%)<" in cell


@pytest.mark.slow
@pytest.mark.skipif(not REAL, reason="needs real training (../shared/data) for recorded tickets")
def test_cell_page_shows_the_recorded_per_layer_ticket(built):
    res = _result(RETRAINS[0], built)
    t = res["ticket"]
    assert t["unit"] == "channels" and t["kept"] == sum(x["kept"] for x in t["layers"])
    assert t["total"] == sum(x["total"] for x in t["layers"]) == res["dense_complexity"].get("bn_channels", t["total"])
    html = (built / "report" / "cells" / "table1" / "vgg16_80-120_cifar100_10.html").read_text()
    assert "Ticket, layer by layer" in html and f"keeps {t['kept']} of {t['total']} channels" in html
    assert all(f"<code>{x['name']}</code>" in html for x in t["layers"])


@pytest.mark.slow
def test_a_refused_ticket_shows_no_accuracy_and_its_mark(tree, tmp_path):
    """refuse_disconnected: the run's result has no accuracy and no costs; the table still builds."""
    from methods.stages.common import REFUSED

    copy = tmp_path / "results" / "tiny"
    shutil.copytree(tree, copy, ignore=shutil.ignore_patterns("report", "tables"))
    f = Path(RETRAINS[1].path(str(copy))) / "result.json"  # draw "final", one seed
    ticket = {"unit": "weights", "kept": 0, "total": 10, "collapsed": ["classifier"], "disconnected": True,
              "emptied_layers": None, "layers": [{"name": "classifier", "kept": 0, "total": 10}]}
    write_json(f, {"kind": "retrain", "scale": "tiny", "no_ticket": REFUSED, "ticket": ticket, "best_acc": None,
                   "final_acc": None, "draw_epoch": 16, "provenance": {"commit": "x", "date": "2020-01-01T00:00:00+00:00"}})
    build("table1", load_scale("tiny"), str(copy))
    df = pd.read_csv(copy / "tables" / "table1.csv", dtype={"draw": str})
    row = df[(df.model == "vgg16") & (df.draw == "final") & (df.schedule == "80-120") & (df.dataset == "cifar100")].iloc[0]
    assert row.ticket_flag == "disconnected" and math.isnan(row.ours_mean) and math.isnan(row.pruned_flops_mean)


@pytest.mark.slow
def test_a_flagged_figure1_point_is_marked_and_the_others_are_not(tree, tmp_path):
    """One flagged point among unflagged ones (pandas makes their missing flag NaN)."""
    copy = tmp_path / "results" / "tiny"
    shutil.copytree(tree, copy, ignore=shutil.ignore_patterns("report", "tables"))
    f = Path(RETRAINS[2].path(str(copy))) / "result.json"  # Figure 1's p = 0.1 point at draw 10
    res = read_json(f)
    res["ticket"] = {"unit": "channels", "kept": 1, "total": 2, "collapsed": ["features.1"], "disconnected": False,
                     "emptied_layers": "live", "layers": [{"name": "features.1", "kept": 0, "total": 1},
                                                          {"name": "features.4", "kept": 1, "total": 1}]}
    write_json(f, res)
    build("figure1", load_scale("tiny"), str(copy))
    html = (copy / "report" / "figure1.html").read_text()
    assert html.count(">collapsed</span>") == 1
    df = pd.read_csv(copy / "tables" / "figure1.csv", dtype={"draw": str})
    assert (df.ticket_flag == "collapsed").sum() == 1
