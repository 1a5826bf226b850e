"""EB Figures 1 and 2: retrain accuracy of subnetworks drawn at different epochs, per pruning ratio.

One panel per (model, dataset): x = draw epoch at this scale, y = retrain ``best_acc``
(mean over seeds, min-max error bars as EB's), one line per ratio p through the numeric and
"final" draws, the "best" draw as a hollow star at the search's best epoch, and the dense
(search) accuracy as a dashed line. Figure 2 draws from an 8-bit search (``search_precision``
in ``tables.yaml``), adds the FP32 dense accuracy dotted, and a second row of panels with the
total training FLOPs (search epochs up to the draw + retraining, EB units at 50k images).
"""
from __future__ import annotations

import math
from collections import defaultdict

import pandas as pd

from dataclasses import replace

from methods.runs.cells import figure_runs, load_tables
from methods.base.config import PAPER_EPOCHS, Scale

from reports.pages import cellpage
from reports.common import (DATASET_NAMES, MODEL_NAMES, load_run, mean_of, old_flops, provenance, render,
                     scale_note, stats)
from reports.common import index_entry as index_entry_of, ticket_flag
from reports.io import publish

COLUMNS = ["model", "dataset", "ratio", "draw", "draw_epoch", "n_runs", "n_expected", "acc_mean", "acc_min", "acc_max",
           "final_mean", "dense_acc_mean", "dense_acc_min", "dense_acc_max", "dense_fp32_acc_mean", "pruned_params_mean",
           "pruned_flops_mean", "train_flops_units_mean", "dense_train_flops_units_mean", "pruned_flops_paper_mean",
           "train_flops_paper_units_mean", "dense_train_flops_paper_units_mean", "flops_paper_old", "search_precision", "id",
           "ticket_flag"]


def collect(scale: Scale, results: str, spec: dict | None = None, figure: str = "figure1"):
    """Point rows (model, dataset, ratio, draw) and the loaded runs (retrains and searches).

    The "best" draw's x is the resolved draw epoch recorded by each retrain (the search's
    best epoch); before it is done, the search's ``best_epoch`` if that is done. ``dense_*``
    describe the searches drawn from; ``dense_fp32_acc_mean`` the FP32 searches of the same
    settings (the same runs unless ``search_precision`` is set).
    """
    groups = defaultdict(list)
    searches, fp32 = {}, {}
    for r in figure_runs(scale, spec, figure):
        groups[(r.search.model, r.search.dataset, r.ratio, r.draw)].append(r)
        searches.setdefault((r.search.model, r.search.dataset), {})[r.search] = None
        fp32.setdefault((r.search.model, r.search.dataset), {})[replace(r.search, precision="fp32")] = None
    search_runs = {k: [load_run(s.path(results), scale) for s in v] for k, v in searches.items()}
    fp32_runs = {k: [load_run(s.path(results), scale) for s in v] for k, v in fp32.items()}
    dense = {k: stats([s.result.best_acc for s in v if s.done]) for k, v in search_runs.items()}
    dense_fp32 = {k: stats([s.result.best_acc for s in v if s.done]) for k, v in fp32_runs.items()}
    rows, all_runs = [], [s for v in search_runs.values() for s in v]
    all_runs += [s for v in fp32_runs.values() for s in v if str(s.path) not in {str(r.path) for r in all_runs}]
    for (model, ds, ratio, draw), specs in groups.items():
        runs = [load_run(r.path(results), scale) for r in specs]
        all_runs += runs
        done = [r.result for r in runs if r.done and r.result.best_acc is not None]  # refused: no accuracy
        if draw == "best":
            eps = [r.draw_epoch for r in done] or [s.result.best_epoch for s in search_runs[(model, ds)] if s.done]
            x = sum(eps) / len(eps) if eps else math.nan
        else:
            x = scale.epoch(draw)
        acc = stats([r.best_acc for r in done])
        mean = lambda f: sum(f(r) for r in done) / len(done) if done else math.nan  # noqa: E731
        d = dense[(model, ds)]
        rows.append({"model": model, "dataset": ds, "ratio": ratio, "draw": draw, "draw_epoch": x, "n_runs": len(done),
                     "n_expected": len(runs), "acc_mean": acc["mean"], "acc_min": acc["min"], "acc_max": acc["max"],
                     "final_mean": mean(lambda r: r.final_acc), "dense_acc_mean": d["mean"], "dense_acc_min": d["min"],
                     "dense_acc_max": d["max"], "dense_fp32_acc_mean": dense_fp32[(model, ds)]["mean"],
                     "pruned_params_mean": mean(lambda r: r.cx("params")),
                     "pruned_flops_mean": mean(lambda r: r.cx("flops")),
                     "train_flops_units_mean": mean(lambda r: r.train_flops_50k_eb_units),
                     "dense_train_flops_units_mean": mean_of(search_runs[(model, ds)], lambda r: r.train_flops_50k_eb_units),
                     # official-counter convention, plotted (conv + linear for results written before it, flagged)
                     "pruned_flops_paper_mean": mean(lambda r: r.paper_flops("flops")),
                     "train_flops_paper_units_mean": mean(lambda r: r.paper_flops("train_flops_50k_eb_units")),
                     "dense_train_flops_paper_units_mean": mean_of(search_runs[(model, ds)],
                                                                   lambda r: r.paper_flops("train_flops_50k_eb_units")),
                     "flops_paper_old": old_flops(runs) or old_flops(search_runs[(model, ds)]),
                     "search_precision": specs[0].search.precision, "id": f"{model}/{ds}/p{ratio:g}/{draw}",
                     "ticket_flag": ticket_flag(runs)})
    return pd.DataFrame(rows, columns=COLUMNS), all_runs


def plot(df: pd.DataFrame, scale: Scale, spec: dict, figure: str = "figure1", flops: bool = False):
    """Rows model (and, with ``flops``, a FLOPs row under each), columns dataset."""
    from matplotlib.lines import Line2D

    from reports.plotting import plt

    s = spec[figure]
    models, datasets = s["models"], s["datasets"]
    per_model = 2 if flops else 1
    fig, axes = plt.subplots(per_model * len(models), len(datasets), figsize=(5.2 * len(datasets), 4.0 * per_model * len(models)),
                             squeeze=False, constrained_layout=True)
    numeric = [d for d in s["draws"] if d != "best"]
    ticks = sorted({scale.epoch(d) for d in numeric})
    # Tick label: epoch at this scale over the paper's epoch, e.g. "1 (10)" at 16 epochs.
    labels = {scale.epoch(d): str(scale.epoch(d)) if str(scale.epoch(d)) == d or (d == "final" and scale.epochs == PAPER_EPOCHS)
              else f"{scale.epoch(d)}\n({d})" for d in numeric}
    # Draws 10/20/40/final sit at 1/16, 1/8, 1/4 and all of the run: a log2 axis spaces them
    # evenly at every scale, where a linear one crowds the early draws into one corner.
    log_x = min(ticks) > 0
    # One colour per ratio across all panels (VGG16 on CIFAR-100 uses other ratios).
    all_ratios = sorted(df.ratio.unique())
    colors = dict(zip(all_ratios, plt.get_cmap("tab10").colors))
    lowp = s.get("search_precision", "fp32") != "fp32"

    def epoch_axis(a):
        if log_x:
            a.set_xscale("log", base=2)
            a.set_xlim(min(ticks) / 1.4, max(ticks) * 1.4)
        a.set_xticks(ticks, [labels[t] for t in ticks])
        a.minorticks_off()
        a.set_xlabel(f"draw epoch at scale {scale.name}" + (" (paper epoch)" if scale.epochs != PAPER_EPOCHS else ""))

    for i, model in enumerate(models):
        for j, ds in enumerate(datasets):
            ax = axes[per_model * i][j]
            panel = df[(df.model == model) & (df.dataset == ds)]
            done = panel[panel.n_runs > 0]
            ax.set_title(f"{MODEL_NAMES.get(model, model)} on {DATASET_NAMES.get(ds, ds)} "
                         f"({int(panel.n_runs.sum())}/{int(panel.n_expected.sum())} runs)")
            panel_ratios = sorted(panel.ratio.unique())
            for k, ratio in enumerate(panel_ratios):
                c = colors[ratio]
                # Dodge ratios slightly sideways (x the epoch by 2^(+-0.06)) so equal values stay visible.
                dodge = 2 ** (0.06 * (k - (len(panel_ratios) - 1) / 2)) if log_x else 1.0
                line = done[(done.ratio == ratio) & (done.draw != "best")].sort_values("draw_epoch")
                if len(line):
                    ax.errorbar(line.draw_epoch * dodge, line.acc_mean,
                                yerr=[line.acc_mean - line.acc_min, line.acc_max - line.acc_mean],
                                color=c, marker="o", ms=5, capsize=3, lw=1.5, label=f"p = {ratio:g}")
                star = done[(done.ratio == ratio) & (done.draw == "best")]
                if len(star):
                    ax.errorbar(star.draw_epoch * dodge, star.acc_mean,
                                yerr=[star.acc_mean - star.acc_min, star.acc_max - star.acc_mean],
                                fmt="*", ms=15, mfc="none", mec=c, mew=1.5, ecolor=c, capsize=3,
                                label="_nolegend_" if len(line) else f"p = {ratio:g}")
            dense = panel.dense_acc_mean.dropna()
            if len(dense):
                ax.axhline(dense.iloc[0], color="0.3", ls="--", lw=1.2)
                ax.annotate(f"dense {dense.iloc[0]:.2f}", (0.01, dense.iloc[0]), xycoords=("axes fraction", "data"),
                            xytext=(0, 3), textcoords="offset points", fontsize=8, color="0.3")
            dense32 = panel.dense_fp32_acc_mean.dropna()
            if lowp and len(dense32):
                ax.axhline(dense32.iloc[0], color="0.5", ls=":", lw=1.2)
                ax.annotate(f"dense FP32 {dense32.iloc[0]:.2f}", (0.99, dense32.iloc[0]), xycoords=("axes fraction", "data"),
                            xytext=(0, 3), textcoords="offset points", fontsize=8, color="0.5", ha="right")
            if not len(done):
                ax.text(0.5, 0.75, "retraining pending", transform=ax.transAxes, ha="center", va="center", fontsize=14,
                        color="0.55")
            epoch_axis(ax)
            ax.set_ylabel("retrain accuracy (%)")
            if flops:
                fx = axes[per_model * i + 1][j]
                for k, ratio in enumerate(sorted(panel.ratio.unique())):
                    line = done[(done.ratio == ratio) & (done.draw != "best")].sort_values("draw_epoch")
                    if len(line):
                        fx.plot(line.draw_epoch, line.train_flops_paper_units_mean, color=colors[ratio], marker="o", ms=5, lw=1.5)
                dflops = panel.dense_train_flops_paper_units_mean.dropna()
                if len(dflops):
                    fx.axhline(dflops.iloc[0], color="0.3", ls="--", lw=1.2)
                epoch_axis(fx)
                fx.set_title(f"{MODEL_NAMES.get(model, model)} on {DATASET_NAMES.get(ds, ds)}: total training FLOPs")
                fx.set_ylabel("training FLOPs (x 0.05 PFLOPs, 50k images;\nofficial counter)")
    # One legend for the whole figure, above the panels: visible without scrolling, never over a
    # point. No suptitle: it would collide with the legend, and the page's heading names the figure.
    handles = [Line2D([], [], color=colors[p], marker="o", ms=5, label=f"p = {p:g}") for p in all_ratios]
    if "best" in s["draws"]:
        handles.append(Line2D([], [], ls="none", marker="*", ms=12, mfc="none", mec="0.3",
                              label="drawn at the search's best epoch"))
    handles.append(Line2D([], [], color="0.3", ls="--", label="dense (search run)" + (" in 8 bits" if lowp else "")
                          + (": best accuracy / training FLOPs" if flops else " best accuracy")))
    if lowp:
        handles.append(Line2D([], [], color="0.5", ls=":", label="dense FP32 search best accuracy"))
    fig.legend(handles=handles, loc="outside upper center", ncol=min(len(handles), 4), fontsize=9, frameon=False)
    return fig


def summary(df: pd.DataFrame) -> dict:
    return {"points_done": int((df.n_runs == df.n_expected).sum()), "points_total": len(df),
            "runs_done": int(df.n_runs.sum()), "runs_total": int(df.n_expected.sum())}


TITLES = {"figure1": "EB Figure 1: retrain accuracy vs draw epoch",
          "figure2": "EB Figure 2: retrain accuracy and training FLOPs vs draw epoch, 8-bit search"}


def build(scale: Scale, results: str, data_root: str | None = None, spec: dict | None = None,
          figure: str = "figure1") -> dict:
    """Write ``tables/<figure>.csv``, ``report/<figure>.png`` and ``report/<figure>.html``."""
    spec = spec or load_tables()
    df, runs = collect(scale, str(results), spec, figure)
    html = render(f"{figure}.html", title=TITLES[figure], scale=scale, figure=figure,
                  prov=provenance(runs, data_root), scale_note=scale_note(scale), spec=spec[figure],
                  points=df.to_dict("records"), summary=summary(df))
    publish(results, figure, df, plot(df, scale, spec, figure, flops=figure == "figure2"), html)
    cellpage.build_all(scale, results, figure, spec, data_root,
                       {p["id"]: {"ours": p["acc_mean"]} for p in df.to_dict("records")})
    return summary(df)


def index_entry(scale: Scale, results: str, spec: dict, figure: str = "figure1") -> tuple[dict, list]:
    """The index line (``methods.base.tables.TableDef.index``): points done, and the runs read."""
    df, runs = collect(scale, results, spec, figure)
    sm = summary(df)
    return index_entry_of(figure, sm["points_done"], sm["points_total"], sm["runs_done"], sm["runs_total"], "points"), runs
