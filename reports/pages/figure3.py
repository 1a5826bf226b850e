"""EB Figure 3: pairwise mask-distance matrices over the search's epochs.

For each model (rows) and ratio p (columns), masks are recomputed from the recorded |gamma|
history with ``methods.pruning.eb.channel_mask`` (so any p works, not only the stored ones), and
``methods.pruning.eb.distance_matrix`` gives dist(m_i, m_j) for all pairs of epochs 1..E (as the paper's
160 x 160 matrices; the initial mask is left out of the plot). The
red line is the 0.1 contour (the detection threshold eps) and the circle marks the EB
epoch found by the paper's rule (``methods.pruning.eb.detect_eb``, REFERENCE.md section 4).
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from methods.runs.cells import cells_of, figure3_searches, load_tables
from methods.base.config import Scale
from methods.pruning.eb import detect_eb, distance_matrix, masks_from_gammas

from reports.pages import cellpage
from reports.common import MODEL_NAMES, DATASET_NAMES, index_entry as index_entry_of, load_run, provenance, render, scale_note
from reports.io import publish

EPS = 0.1  # EB detection threshold, drawn as the contour


def matrices(run_dir: Path, ratios: list[float]) -> dict:
    """``ratio -> (distance matrix (T, T) numpy, paper-rule EB epoch or None)`` from history.npz."""
    with np.load(Path(run_dir) / "history.npz") as h:
        gammas = torch.from_numpy(h["gammas"])
    out = {}
    for p in ratios:
        masks = masks_from_gammas(gammas, p)
        out[p] = (distance_matrix(masks).numpy(), detect_eb(masks, "paper", eps=EPS))
    return out


def collect(scale: Scale, results: str, spec: dict):
    """Loaded search runs, their matrices (None while pending) and one row per (model, ratio)."""
    s = spec["figure3"]
    ratios = [float(p) for p in s["ratios"]]
    runs, mats, rows = [], {}, []
    for sr in figure3_searches(scale, spec):
        run = load_run(sr.path(results), scale)
        runs.append(run)
        ok = run.done and (run.path / "history.npz").is_file()
        mats[sr.model] = matrices(run.path, ratios) if ok else None
        for p in ratios:
            d, eb = mats[sr.model][p] if ok else (None, None)
            stored = (run.result.eb_epochs or {}).get(str(p), {}) if ok else {}
            rows.append({"model": sr.model, "dataset": sr.dataset, "seed": sr.seed, "ratio": p,
                         "status": run.status if ok or not run.done else "history.npz missing",
                         "epochs": d.shape[0] - 1 if d is not None else math.nan,
                         "eb_epoch_paper": eb, "eb_epoch_paper_stored": stored.get("paper"),
                         "eb_epoch_official_stored": stored.get("official"),
                         "dist_final_vs_init": float(d[-1, 0]) if d is not None else math.nan})
    return runs, mats, rows


def plot(mats: dict, scale: Scale, spec: dict):
    """Rows model, columns ratio; one shared colour scale so panels compare."""
    import seaborn as sns

    from reports.plotting import plt

    s = spec["figure3"]
    models, ratios = s["models"], [float(p) for p in s["ratios"]]
    fig, axes = plt.subplots(len(models), len(ratios), figsize=(3.4 * len(ratios) + 1.2, 3.3 * len(models)),
                             squeeze=False, constrained_layout=True)
    vmax = max([d[1:, 1:].max() for m in mats.values() if m for d, _ in m.values()] + [2 * EPS])
    for i, model in enumerate(models):
        for j, p in enumerate(ratios):
            ax = axes[i][j]
            ax.set_title(f"{MODEL_NAMES.get(model, model)}, p = {p:g}")
            if not mats.get(model):
                ax.text(0.5, 0.5, "pending", transform=ax.transAxes, ha="center", va="center", fontsize=14, color="0.6")
                ax.set_xticks([]), ax.set_yticks([])
                continue
            d, eb = mats[model][p]
            # Epochs 1..E as in the paper's 160 x 160 matrices: the initial mask (all gammas equal
            # to 0.5, so the strict threshold keeps nothing) would swamp the colour scale.
            d = d[1:, 1:]
            t = d.shape[0]
            # At most ~9 round tick labels whatever the scale (16 or 160 epochs).
            step = next(n for n in (1, 2, 4, 5, 10, 20, 25, 50, 100, 200, 500, 10**9) if n >= t / 9)
            labels = [str(e) if e % step == 0 else "" for e in range(1, t + 1)]
            sns.heatmap(d, ax=ax, vmin=0, vmax=vmax, cmap="viridis", cbar=False, square=True,
                        xticklabels=labels, yticklabels=labels)
            xs = np.arange(t) + 0.5  # heatmap cell centres
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "no contour levels" when all distances lie on one side
                ax.contour(xs, xs, d, levels=[EPS], colors="red", linewidths=1.2)
            if eb is not None:
                c = eb - 0.5  # epoch eb sits in row/column eb - 1
                ax.plot(c, c, "o", ms=9, mfc="none", mec="white", mew=2)
                ax.annotate(f"EB {eb}", (c, c), xytext=(6, -12), textcoords="offset points",
                            color="white", fontsize=9, fontweight="bold")
            ax.set_xlabel("epoch")
            ax.set_ylabel("epoch")
            ax.grid(False)
    sm = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(0, vmax))
    fig.colorbar(sm, ax=axes, shrink=0.8, label="mask distance (normalised Hamming)")
    ds = DATASET_NAMES.get(s["dataset"], s["dataset"])
    fig.suptitle(f"EB Figure 3 at scale {scale.name}: pairwise mask distances on {ds} "
                 f"(red: {EPS:g} contour; circle: EB epoch, paper rule)")
    return fig


def summary(rows: list[dict]) -> dict:
    done = [r for r in rows if r["status"] == "done"]
    return {"panels_done": len(done), "panels_total": len(rows), "searches_done": len({r["model"] for r in done}),
            "searches_total": len({r["model"] for r in rows})}


def build(scale: Scale, results: str, data_root: str | None = None, spec: dict | None = None) -> dict:
    """Write ``report/figure3.png``, ``report/figure3.html`` and ``tables/figure3.csv`` (EB epochs)."""
    spec = spec or load_tables()
    runs, mats, rows = collect(scale, str(results), spec)
    # Int64 keeps "EB epoch 4" an integer in the CSV while allowing "none" (empty).
    df = pd.DataFrame(rows).astype({k: "Int64" for k in ("eb_epoch_paper", "eb_epoch_paper_stored", "eb_epoch_official_stored")})
    html = render("figure3.html", title="EB Figure 3: pairwise mask distances", scale=scale,
                  prov=provenance(runs, data_root), scale_note=scale_note(scale), spec=spec["figure3"],
                  rows=rows, summary=summary(rows), eps=EPS, cells=[c.id for c in cells_of(scale, "figure3", spec)])
    publish(results, "figure3", df, plot(mats, scale, spec), html)
    cellpage.build_all(scale, results, "figure3", spec, data_root)
    return summary(rows)


def index_entry(scale: Scale, results: str, spec: dict, figure: str = "figure3") -> tuple[dict, list]:
    """The index line (``methods.base.tables.TableDef.index``): Figure 3 counts panels (searches x
    ratios), Figure 5 searches; a search counts once its mask history is written."""
    runs = [load_run(s.path(results), scale) for s in figure3_searches(scale, spec, figure)]
    done = sum(r.done and (r.path / "history.npz").is_file() for r in runs)
    per = len(spec[figure].get("ratios", [])) if figure == "figure3" else 1
    unit = "panels" if figure == "figure3" else "searches"
    return index_entry_of(figure, done * per, len(runs) * per, done, len(runs), unit), runs
