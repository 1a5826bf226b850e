"""Extending the suite without editing it (README, "Extending"): a plug-in module, written here,
registers a random channel-pruning method (a new Table 2 row), a small VGG (a new Table 1 model)
and a table of its own; ``--config plugins=...`` runs them through the unchanged workflow at tiny
scale, costed and paged like the papers' rows. The registries' name checks come first.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from methods.base.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

PLUGIN = '''
"""A researcher's plug-in: a pruning method, a model and a table (the suite's README, Extending)."""
import torch
from pydantic import BaseModel, ConfigDict

from methods.runs.cells import Cell, RetrainRun, SearchRun
from methods.pruning.eb import channel_mask, layer_masks
from methods.models import register_model
from methods.models.vgg import VGG, scaled_cfg
from methods.pruning.channels import prune_channels, zeroes_emptied
from methods.pruning.registry import PruningMethod, Ticket, register_pruning
from methods.base.tables import TableDef, register_table


def draw_random(model, gammas, ratio, train, seed, classes):
    """Random channels: a global threshold on uniform scores instead of |gamma|."""
    scores = torch.rand(gammas.numel(), generator=torch.Generator().manual_seed(seed))
    masks = layer_masks(model, channel_mask(scores, ratio), scores)
    return Ticket(prune_channels(model, masks, classes), channel_masks=masks)


register_pruning(PruningMethod("random", "channel", False, "uniform random channels (plug-in)", draw_random,
                               families=("vgg", "preresnet")))


def vgg5(num_classes=10, width=1.0, cfg=None):
    return VGG(cfg if cfg is not None else scaled_cfg([16, "M", 32, "M", 64, "M", 64, "M", 64], width), num_classes)


register_model("vgg5", vgg5, family="vgg", display="VGG-5", source="plug-in", scales={"tiny": {}})


class Sweep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[str]
    dataset: str
    ratios: list[float]
    runs: int


def sweep_cells(scale, spec, name):
    s = spec[name]
    out = []
    for m in s["models"]:
        searches = tuple(SearchRun(m, s["dataset"], "80-120", 0.1, seed) for seed in scale.seeds_for(s["runs"]))
        for p in s["ratios"]:
            out.append(Cell(name, f"{m}/p{p:g}", tuple(RetrainRun(x, p, "final") for x in searches), searches))
    return out


def sweep_page(scale, results, data_root, spec):
    from pathlib import Path

    from methods.base.io import read_json
    from reports.pages import cellpage
    from reports.io import write_text

    rows = []
    for c in sweep_cells(scale, spec, "sweep"):
        accs = [read_json(Path(r.path(results)) / "result.json")["best_acc"] for r in c.runs]
        rows.append(f"{c.id},{sum(accs) / len(accs):.2f}")
    write_text(Path(results) / "tables" / "sweep.csv", "cell,best_acc\\n" + "\\n".join(rows) + "\\n")
    write_text(Path(results) / "report" / "sweep.html", "<h1>Ratio sweep</h1>" + "<br>".join(rows))
    cellpage.build_all(scale, results, "sweep", spec, data_root)
    return {"cells": len(rows)}


register_table(TableDef("sweep", "Ratio sweep", "accuracy vs pruning ratio (a plug-in table)", Sweep, sweep_cells,
                        "retrain", sweep_page, prunes=lambda block: [("models", "bn", m) for m in block["models"]]))
'''


def test_registries_refuse_names_run_folders_cannot_carry():
    from methods.models import register_model, vgg16
    from methods.pruning.registry import PRUNING, PruningMethod, register_pruning
    from methods.base.tables import TABLES, TableDef, register_table

    with pytest.raises(ValueError, match="lowercase letters only"):
        register_pruning(PruningMethod("my-method", "channel", False, "", PRUNING["bn"].draw))
    with pytest.raises(ValueError, match="registered already"):
        register_pruning(PRUNING["snip"])
    with pytest.raises(ValueError, match="granularity"):
        register_pruning(PruningMethod("blocks", "block", False, "", PRUNING["bn"].draw))
    with pytest.raises(ValueError, match="lowercase letters and digits"):
        register_model("VGG_7", vgg16, "vgg")
    with pytest.raises(ValueError, match="registered already"):
        register_model("vgg16", vgg16, "vgg")
    with pytest.raises(ValueError, match="num_classes"):
        register_model("vggx", lambda width=1.0: None, "vgg")
    with pytest.raises(ValueError, match="not one of"):
        register_table(TableDef("index", "Index", "", None, None, "retrain", None))
    with pytest.raises(ValueError, match="stage"):
        register_table(TableDef("tablex", "X", "", None, None, "train", None))
    from methods.models import MODELS

    assert "tablex" not in TABLES and "vggx" not in MODELS and "blocks" not in PRUNING


def test_a_missing_plugin_is_one_line(tmp_path):
    from methods.base.plugins import load

    with pytest.raises(ConfigError, match=r"plugin nope\.py not found"):
        load(["nope.py"])
    env = {**os.environ, "PRUNING_SUITE_PLUGINS": str(tmp_path / "gone.py")}
    run = subprocess.run([sys.executable, "-m", "methods", "status", "--scale", "tiny", "--results", str(tmp_path)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "gone.py not found" in run.stderr, run.stderr
    assert "(named by PRUNING_SUITE_PLUGINS=" in run.stderr  # where the bad name came from


def test_entry_point_plugins_are_loaded_but_never_exported(monkeypatch):
    """An entry point ("pkg.mod:attr") is each process's own to load: exported in PRUNING_SUITE_PLUGINS, a
    child would try to import it as a module name and fail."""
    import types

    import methods.base.plugins as plugins

    module = types.ModuleType("fakeplug")
    ep = types.SimpleNamespace(value="fakeplug:register", load=lambda: module)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [ep] if group == plugins.GROUP else [])
    monkeypatch.setattr(plugins, "_ENTRY", {})
    monkeypatch.setenv(plugins.ENV, "")
    assert module in plugins.load_configured()
    plugins.load([])  # e.g. the Snakefile's plugins key, loaded after the entry points
    assert "fakeplug" not in os.environ[plugins.ENV]


def test_plugins_add_a_table2_row_a_table1_model_and_a_table(tmp_path, data_root):
    """A random channel-pruning row in Table 2, a 5-conv VGG in Table 1 (and Table 2) and a plug-in
    table, all through ``--config plugins=`` with no change to the suite: trained, costed, paged,
    indexed. One search serves the three tables."""
    plugin = tmp_path / "my_plugins.py"
    plugin.write_text(PLUGIN)
    spec = yaml.safe_load((ROOT / "benchmarks" / "tables.yaml").read_text())
    spec = {
        "table1": dict(spec["table1"], models=["vgg5"], datasets=["cifar10"], schedules=["80-120"], draws=["10"], runs=1),
        "table2": dict({k: v for k, v in spec["table2"].items() if not k.startswith(("absent_", "ratios_"))},
                       models=["vgg5"], datasets=["cifar10"], ratios=[0.5], runs=1,  # one search serves every table
                       rows={"ns": spec["table2"]["rows"]["ns"],
                             "random": {"prune": "random", "draw": "final", "init": "drawn", "label": "Random channels",
                                        "role": "baseline"}}),
        "sweep": {"models": ["vgg5"], "dataset": "cifar10", "ratios": [0.3, 0.7], "runs": 1},
    }
    (tmp_path / "tables.yaml").write_text(yaml.safe_dump(spec))
    out = tmp_path / "results"
    cmd = SNAKEMAKE + ["all_tables", "--cores", "2", "--config", "scale=tiny", f"results={out}", f"data_root={data_root}",
                       f"tables={tmp_path / 'tables.yaml'}", f"plugins={plugin}"]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    tiny = out / "tiny"

    t2 = pd.read_csv(tiny / "tables" / "table2.csv").set_index("method")
    assert list(t2.index) == ["ns", "random"] and (t2.status == "done").all()
    rnd = t2.loc["random"]
    assert rnd.role == "baseline" and rnd.flops_paper_units > 0 and rnd.energy_modelled_kj > 0 and rnd.flop_reduction > 0
    html = (tiny / "report" / "table2.html").read_text()
    assert "Random channels" in html
    assert "baselines here are NS, Random channels (the paper's:\nLT (one-shot), SNIP, NS, ThiNet;" in html
    # the Improv. row compares the EB rows with the baselines; none has an EB row here
    improv = pd.read_csv(tiny / "tables" / "table2_improv.csv")
    assert len(improv) == 1 and improv.eb_rows.isna().all()
    res = json.loads((tiny / "search" / "vgg5-cifar10-80-120-lr0.1-s1" / "retrain" / "random-p0.5-efinal-drawn-80-120-lr0.1"
                      / "result.json").read_text())
    ticket = res["ticket"]
    # network slimming's strict threshold (EB main.py): kept iff score > sorted(scores)[int(N p)]
    assert ticket["unit"] == "channels" and ticket["kept"] == ticket["total"] - int(0.5 * ticket["total"]) - 1
    assert (tiny / "report" / "cells" / "table2" / "vgg5_cifar10_random_0.5.html").is_file()

    t1 = pd.read_csv(tiny / "tables" / "table1.csv")
    assert list(t1.model) == ["vgg5"] and t1.ours_mean.notna().all()
    t1_html = (tiny / "report" / "table1.html").read_text()
    assert "VGG-5" in t1_html and "eb_table1.csv</code> has none of these rows" in t1_html  # the file is there
    t1_run = tiny / "search" / "vgg5-cifar10-80-120-lr0.1-s1" / "retrain" / "p0.5-e10-fresh-80-120-lr0.1" / "result.json"
    # conv MACs at 32, 16, 8, 4 and 2 pixels square, plus the Linear(64, 10): the plug-in's dense network
    macs = 16 * 3 * 9 * 32 ** 2 + 32 * 16 * 9 * 16 ** 2 + 64 * 32 * 9 * 8 ** 2 + 64 * 64 * 9 * 4 ** 2 + 64 * 64 * 9 * 2 ** 2 + 640
    assert json.loads(t1_run.read_text())["dense_complexity"]["macs"] == macs == 3_539_584

    assert (tiny / "tables" / "sweep.csv").read_text().count("vgg5/p") == 2
    assert len(list((tiny / "report" / "cells" / "sweep").glob("*.html"))) == 2
    index = (tiny / "report" / "index.html").read_text()
    assert "Ratio sweep" in index and "accuracy vs pruning ratio" in index
    env = {**os.environ, "PRUNING_SUITE_PLUGINS": str(plugin)}
    status = subprocess.run([sys.executable, "-m", "methods", "status", "--scale", "tiny", "--results", str(out),
                             "--tables", str(tmp_path / "tables.yaml")], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    # "sweep  2  0  0  0  0  2": both cells done
    assert status.returncode == 0 and ["sweep", "2", "0", "0", "0", "0", "2"] in [ln.split() for ln in status.stdout.splitlines()]
    # a plug-in cell's page gives a rerun command that loads the plug-in, and that command finds the cell's jobs
    cell_page = (tiny / "report" / "cells" / "table2" / "vgg5_cifar10_random_0.5.html").read_text()
    assert f"PRUNING_SUITE_PLUGINS={plugin} python -m methods rerun table2 vgg5/cifar10/random/0.5" in cell_page
    # as its --slurm variant, the harder path: submitit's job is a fresh process that loads the plug-ins the environment
    # names ("local": no SLURM), then starts the workflow (the Snakefile loads them from the environment too)
    slurm = subprocess.run([sys.executable, "-m", "methods", "rerun", "table2", "vgg5/cifar10/random/0.5", "--scale",
                            "tiny", "--results", str(out), "--data-root", str(data_root), "--tables",
                            str(tmp_path / "tables.yaml"), "-n", "--slurm", "--cluster", "local", "--wait"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert slurm.returncode == 0 and '"retrain": 1' in slurm.stdout, slurm.stdout[-2000:] + slurm.stderr[-2000:]


def test_a_pruned_plugin_model_equals_its_masked_dense_network():
    """The family rule ("vgg") prunes a registered model other than VGG16 exactly (eval mode)."""
    from methods.pruning.eb import bn_layers
    from methods.models import MODELS, build_model, model_name, register_model
    from methods.models.vgg import VGG
    from methods.pruning.channels import prune_channels, zero_pruned_bn

    register_model("vgg6", lambda num_classes=10, cfg=None: VGG(cfg or [8, "M", 16, "M", 16, "M", 32, "M", 32, 32],
                                                               num_classes), "vgg", "VGG-6")
    try:
        _check_vgg6(build_model, model_name, prune_channels, zero_pruned_bn, bn_layers)
    finally:
        MODELS.pop("vgg6")


def _check_vgg6(build_model, model_name, prune_channels, zero_pruned_bn, bn_layers):
    dense = build_model("vgg6", 10).eval()
    g = torch.Generator().manual_seed(0)
    for bn in bn_layers(dense):
        bn.weight.data = torch.rand(bn.num_features, generator=g)
        bn.running_mean.data = torch.randn(bn.num_features, generator=g)
    masks = [torch.rand(b.num_features, generator=g) > 0.4 for b in bn_layers(dense)]
    for m in masks:
        m[0] = True
    pruned = prune_channels(dense, masks, 10).eval()
    assert model_name(pruned) == "vgg6" and pruned.cfg == [int(masks[0].sum()), "M", int(masks[1].sum()), "M",
                                                           int(masks[2].sum()), "M", int(masks[3].sum()), "M",
                                                           int(masks[4].sum()), int(masks[5].sum())]
    zero_pruned_bn(dense, masks)
    x = torch.randn(4, 3, 32, 32, generator=g)
    with torch.no_grad():
        assert torch.allclose(pruned(x), dense(x), atol=1e-5)


def test_the_scale_note_names_a_plugin_model_s_knobs(monkeypatch):
    """A model registered with knobs at a scale (``register_model(scales=)``) is reduced there like the
    suite's own, so each page's scale note says so; the scale file's models come first, as before."""
    from methods.base.config import load_scale
    from methods.models import MODELS, ModelEntry
    from reports.common import scale_note

    tiny = load_scale("tiny")
    before = scale_note(tiny)
    monkeypatch.setitem(MODELS, "vgg7", ModelEntry("vgg7", lambda num_classes=10, width=1.0: None, "vgg", "VGG-7", "",
                                                   {"tiny": {"width": 0.5}}))
    note = scale_note(tiny)
    assert "resnet50 width 0.125; vgg7 width 0.5)" in note and note.replace("; vgg7 width 0.5", "") == before
