"""EB Figure 5: total training FLOPs against the epoch the subnetwork is drawn at.

Nothing is trained: for every search (Figure 1's FP32 [80,120] runs) and ratio p, the mask
after draw epoch t comes from the recorded BN |gamma| history, the physically pruned
architecture from it (``methods.pruning.channels``) and its forward FLOPs from fvcore. A draw at t costs
t dense epochs plus the retraining of that architecture: the whole schedule (``retrain: full``,
as Figure 1's retrainings; default) or the remaining epochs (``continue``, EB Train). FLOPs are
EB units (0.05 PFLOPs) at the papers' 50,000 training images, as Figure 2 and Table 2. The EB
epoch of each seed (paper rule) is starred; the dashed line is one dense training.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from methods.runs.cells import cells_of, figure3_searches, load_tables
from methods.base.config import Scale
from methods.metrics.costcurve import DrawCosts
from methods.metrics.flops import EB_UNIT_FLOPS, cell_training_flops
from methods.models import knobs_at

from reports.pages import cellpage
from reports.common import DATASET_NAMES, MODEL_NAMES, absent_page, load_run, provenance, render, scale_note
from reports.io import publish, write_figure, write_text

PAPER_IMAGES = 50_000
COLUMNS = ["model", "dataset", "ratio", "seed", "draw_epoch", "paper_epoch", "on_grid", "is_eb", "pruned_flops", "dense_flops",
           "total_flops_units", "dense_training_units", "pruned_flops_paper", "dense_flops_paper", "total_flops_paper_units",
           "dense_training_paper_units", "flops_paper_old"]


def draw_epochs(scale: Scale, every: int) -> list[int]:
    """Draw epochs at this scale: one every ``every`` paper-scale epochs, up to the last."""
    return sorted({scale.epoch(e) for e in range(every, 161, every)} - {0})


def collect(scale: Scale, results: str, spec: dict | None = None):
    """One row per (search, ratio, draw epoch) with the cell's total training FLOPs; and the loaded searches."""
    spec = spec or load_tables()
    s = spec.get("figure5", {})
    rows, runs = [], []
    for search in figure3_searches(scale, spec, "figure5"):
        run = load_run(search.path(results), scale)
        runs.append(run)
        if not run.done or not (run.path / "history.npz").is_file():
            continue
        E = (run.result.config or {}).get("epochs", scale.epochs)
        costs = DrawCosts(search.model, (run.result.config or {}).get("knobs", knobs_at(search.model, scale) or {}),
                          search.dataset)
        dense_flops = run.result.cx("flops")
        # official-counter convention; a search written before it falls back to conv + linear throughout (flagged)
        old = run.result.old_flops
        dense_paper = run.result.paper_flops("flops")
        with np.load(run.path / "history.npz") as h:
            gammas = torch.from_numpy(h["gammas"])
        for p in s.get(f"ratios_{search.model}_{search.dataset}", s["ratios"]):
            eb = (run.result.eb_epochs or {}).get(str(p), {}).get("paper")
            grid = draw_epochs(scale, s.get("every", 10))
            for t in sorted(set(grid) | ({eb} if eb else set())):
                cx = costs.pruned(gammas[t], p)
                retrain = E if s.get("retrain", "full") == "full" else E - t
                cost = cell_training_flops(dense_flops, cx["flops"], t, retrain, PAPER_IMAGES)
                paper = cell_training_flops(dense_paper, cx["flops"] if old else cx["flops_paper"], t, retrain, PAPER_IMAGES)
                rows.append({"model": search.model, "dataset": search.dataset, "ratio": p, "seed": search.seed,
                             "draw_epoch": t, "paper_epoch": round(t * 160 / E), "on_grid": t in grid, "is_eb": t == eb,
                             "pruned_flops": cx["flops"], "dense_flops": dense_flops,
                             "total_flops_units": cost["total"] / EB_UNIT_FLOPS,
                             "dense_training_units": 3 * dense_flops * PAPER_IMAGES * E / EB_UNIT_FLOPS,
                             "pruned_flops_paper": cx["flops"] if old else cx["flops_paper"], "dense_flops_paper": dense_paper,
                             "total_flops_paper_units": paper["total"] / EB_UNIT_FLOPS,
                             "dense_training_paper_units": 3 * dense_paper * PAPER_IMAGES * E / EB_UNIT_FLOPS,
                             "flops_paper_old": old})
    return pd.DataFrame(rows, columns=COLUMNS), runs


def plot(df: pd.DataFrame, scale: Scale, spec: dict):
    from matplotlib.lines import Line2D

    from reports.plotting import plt

    s = spec["figure5"]
    fig, axes = plt.subplots(len(s["models"]), len(s["datasets"]), figsize=(5.2 * len(s["datasets"]), 3.8 * len(s["models"])),
                             squeeze=False, constrained_layout=True)
    ratios = sorted(set(s["ratios"]) | {p for k, v in s.items() if k.startswith("ratios_") for p in v})
    colors = dict(zip(ratios, plt.get_cmap("tab10").colors))
    for i, model in enumerate(s["models"]):
        for j, ds in enumerate(s["datasets"]):
            ax = axes[i][j]
            panel = df[(df.model == model) & (df.dataset == ds)]
            ax.set_title(f"{MODEL_NAMES.get(model, model)} on {DATASET_NAMES.get(ds, ds)} ({panel.seed.nunique()} seed(s))")
            if not len(panel):
                ax.text(0.5, 0.5, "search pending", transform=ax.transAxes, ha="center", va="center", fontsize=14, color="0.55")
            for p, g in panel.groupby("ratio"):
                line = g[g.on_grid].groupby("draw_epoch").total_flops_paper_units.mean()
                ax.plot(line.index, line.values, color=colors[p], marker="o", ms=4, lw=1.5)
                eb = g[g.is_eb]
                if len(eb):
                    ax.plot(eb.draw_epoch.mean(), eb.total_flops_paper_units.mean(), "*", ms=14, mfc="none", mec=colors[p],
                            mew=1.5)
            if len(panel):
                ax.axhline(panel.dense_training_paper_units.iloc[0], color="0.3", ls="--", lw=1.2)
            ax.set_xlabel(f"draw epoch at scale {scale.name} (of {scale.epochs})")
            ax.set_ylabel("total training FLOPs (x 0.05 PFLOPs, 50k images;\nofficial counter)")
    handles = [Line2D([], [], color=colors[p], marker="o", ms=4, label=f"p = {p:g}") for p in ratios]
    handles += [Line2D([], [], ls="none", marker="*", ms=12, mfc="none", mec="0.3", label="EB ticket (mean EB epoch)"),
                Line2D([], [], color="0.3", ls="--", label="one dense training")]
    fig.legend(handles=handles, loc="outside upper center", ncol=min(len(handles), 5), fontsize=9, frameon=False)
    return fig


def summary(df: pd.DataFrame, runs: list) -> dict:
    done = sum(r.done for r in runs)
    return {"searches_done": done, "searches_total": len(runs), "points": len(df)}


def build(scale: Scale, results: str, data_root: str | None = None, spec: dict | None = None) -> dict:
    """Write ``tables/figure5.csv``, ``report/figure5.png`` and ``report/figure5.html``."""
    spec = spec or load_tables()
    df, runs = collect(scale, str(results), spec)
    if "figure5" not in spec:
        from reports.plotting import plt

        write_text(Path(results) / "tables" / "figure5.csv", df.to_csv(index=False))
        fig = plt.figure(figsize=(4, 1))
        fig.text(0.5, 0.5, "figure5 is not in this table specification", ha="center")
        write_figure(Path(results) / "report" / "figure5.png", fig)
        plt.close(fig)
        absent_page(results, "figure5", "EB Figure 5: total training FLOPs vs draw epoch", scale, data_root)
        return summary(df, runs)
    eb = df[df.is_eb.astype(bool)]
    final = df[df.draw_epoch == scale.epochs]
    compare = []
    for (model, ds, p), g in (eb.groupby(["model", "dataset", "ratio"]) if len(eb) else ()):
        f = final[(final.model == model) & (final.dataset == ds) & (final.ratio == p)]
        compare.append({"model": model, "dataset": ds, "ratio": p, "eb_epoch": g.draw_epoch.mean(),
                        "eb_units": g.total_flops_paper_units.mean(),
                        "final_units": f.total_flops_paper_units.mean() if len(f) else math.nan,
                        "old": bool(g.flops_paper_old.any())})
    for c in compare:
        c["saving"] = 1 - c["eb_units"] / c["final_units"]
    html = render("figure5.html", title="EB Figure 5: total training FLOPs vs draw epoch", scale=scale,
                  prov=provenance(runs, data_root), scale_note=scale_note(scale), spec=spec["figure5"],
                  summary=summary(df, runs), compare=compare, cells=[c.id for c in cells_of(scale, "figure5", spec)])
    publish(results, "figure5", df, plot(df, scale, spec), html)
    cellpage.build_all(scale, results, "figure5", spec, data_root)
    return summary(df, runs)


def index_entry(scale: Scale, results: str, spec: dict):
    """As Figure 3's, counting searches (``reports.pages.figure3.index_entry``)."""
    from reports.pages.figure3 import index_entry as searches_entry

    return searches_entry(scale, results, spec, "figure5")
