"""Index page: every report page with its completeness and, for the tables, the distance to the paper.

Completeness is recomputed from the run folders (not read from the other pages), so the
index is right even when it is built before or without them.
"""
from __future__ import annotations

from pathlib import Path

from methods.cells import figure3_searches, load_tables
from methods.config import Scale

from . import figure1, figure2, lottery, table1, table2
from .common import load_run, provenance, render, scale_note
from .io import write_text


def pages(scale: Scale, results: str, spec: dict) -> tuple[list[dict], list]:
    """One entry per page: name, file, what it shows, done/total units and runs, extra figures."""
    cells, _, t1_runs = table1.collect(scale, results, spec)
    t1 = table1.summary(cells)
    t2_cells, _, t2_runs = table2.collect(scale, results, spec)
    t2 = table2.summary(t2_cells)
    f1_df, f1_runs = figure1.collect(scale, results, spec)
    f1 = figure1.summary(f1_df)
    f2_df, f2_runs = figure2.collect(scale, results, spec)
    f2 = figure2.summary(f2_df)
    f3_runs = [load_run(s.path(results), scale) for s in figure3_searches(scale, spec)]
    f3_done = sum(r.done and (r.path / "history.npz").is_file() for r in f3_runs)
    n_ratios = len(spec["figure3"]["ratios"])
    rt = {}
    for t in ("table8", "table9"):
        rows, _, runs = lottery.collect(scale, results, t, spec)
        rt[t] = (lottery.summary(rows), runs)
    out = [
        {"name": "Table 1", "file": "table1.html", "what": "retrain accuracy vs draw epoch and LR schedule (p = 0.5)",
         "unit": "cells", "done": t1["cells_done"], "total": t1["cells_total"], "runs_done": t1["runs_done"],
         "runs_total": t1["runs_total"], "mean_abs_diff": t1["mean_abs_diff"], "n_compared": t1["n_compared"]},
        {"name": "Table 2", "file": "table2.html", "what": "EB Train vs LT, SNIP, NS, ThiNet: accuracy, training FLOPs, energy",
         "unit": "cells", "done": t2["cells_done"], "total": t2["cells_total"], "runs_done": t2["runs_done"],
         "runs_total": t2["runs_total"], "mean_abs_diff": t2["mean_abs_diff"], "n_compared": t2["n_compared"]},
        {"name": "Figure 1", "file": "figure1.html", "what": "retrain accuracy vs draw epoch per pruning ratio",
         "unit": "points", "done": f1["points_done"], "total": f1["points_total"], "runs_done": f1["runs_done"],
         "runs_total": f1["runs_total"], "mean_abs_diff": None, "n_compared": 0},
        {"name": "Figure 2", "file": "figure2.html", "what": "the same with an 8-bit search (VGG16), and training FLOPs",
         "unit": "points", "done": f2["points_done"], "total": f2["points_total"], "runs_done": f2["runs_done"],
         "runs_total": f2["runs_total"], "mean_abs_diff": None, "n_compared": 0},
        {"name": "Figure 3", "file": "figure3.html", "what": "pairwise mask-distance matrices and EB epochs",
         "unit": "panels", "done": f3_done * n_ratios, "total": len(f3_runs) * n_ratios, "runs_done": f3_done,
         "runs_total": len(f3_runs), "mean_abs_diff": None, "n_compared": 0},
    ]
    for t, what in (("table8", "L1-norm filter pruning: winning ticket vs random init, LR 0.1 and 0.01"),
                    ("table9", "one-shot magnitude pruning 20-95%: winning ticket vs random init, LR 0.1 and 0.01")):
        sm = rt[t][0]
        out.append({"name": f"RT Table {t[-1]}", "file": f"{t}.html", "what": what, "unit": "rows", "done": sm["cells_done"],
                    "total": sm["cells_total"], "runs_done": sm["runs_done"], "runs_total": sm["runs_total"],
                    "mean_abs_diff": sm["mean_abs_diff"], "n_compared": sm["n_compared"]})
    # Runs shared between pages (Table 1's [80,120] searches feed Figure 1 too) count once.
    unique = {str(r.path): r for r in t1_runs + t2_runs + f1_runs + f2_runs + f3_runs + rt["table8"][1] + rt["table9"][1]}
    return out, list(unique.values())


def build(scale: Scale, results: str, data_root: str | None = None, spec: dict | None = None) -> list[dict]:
    """Write ``report/index.html``; return the page entries."""
    spec = spec or load_tables()
    report = Path(results) / "report"
    entries, runs = pages(scale, str(results), spec)
    for e in entries:
        e["exists"] = (report / e["file"]).is_file()
    html = render("index.html", title="Early-Bird tickets and Rethinking the Value of Network Pruning: report index", scale=scale,
                  prov=provenance(runs, data_root), scale_note=scale_note(scale), pages=entries)
    write_text(report / "index.html", html)
    return entries
