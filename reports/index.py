"""Index page: every report page with its completeness and, for the tables, the distance to the paper.

Completeness is recomputed from the run folders (not read from the other pages), so the
index is right even when it is built before or without them.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from methods.cells import built_tables, figure3_searches, load_tables
from methods.config import Scale

from . import fidelity, figure1, figure2, lottery, table1, table2
from .common import load_run, provenance, render, scale_note
from .io import write_text


def pages(scale: Scale, results: str, spec: dict) -> tuple[list[dict], list]:
    """One entry per page: name, file, what it shows, done/total units and runs, extra figures."""
    cells, _, t1_runs = table1.collect(scale, results, spec)
    t1 = table1.summary(cells)
    t4_cells, _, t4_runs = table1.collect(scale, results, spec, table="table4")
    t4 = table1.summary(t4_cells)
    t2_cells, _, t2_runs = table2.collect(scale, results, spec) if "table2" in spec else ([], None, [])
    t2 = table2.summary(t2_cells)
    f1_df, f1_runs = figure1.collect(scale, results, spec)
    f1 = figure1.summary(f1_df)
    f2_df, f2_runs = figure2.collect(scale, results, spec)
    f2 = figure2.summary(f2_df)
    f3_runs = [load_run(s.path(results), scale) for s in figure3_searches(scale, spec)]
    f5_runs = [load_run(s.path(results), scale) for s in figure3_searches(scale, spec, "figure5")]
    f5_done = sum(r.done and (r.path / "history.npz").is_file() for r in f5_runs)
    f3_done = sum(r.done and (r.path / "history.npz").is_file() for r in f3_runs)
    n_ratios = len(spec.get("figure3", {}).get("ratios", []))
    rt = {}
    for t in ("table8", "table9"):
        rows, _, runs = lottery.collect(scale, results, t, spec) if t in spec else ([], None, [])
        rt[t] = (lottery.summary(rows), runs)
    def table(name, file, what, sm):
        return {"name": name, "file": file, "what": what, "unit": "cells", "done": sm["cells_done"],
                "total": sm["cells_total"], "runs_done": sm["runs_done"], "runs_total": sm["runs_total"],
                "mean_abs_diff": sm["mean_abs_diff"], "n_compared": sm["n_compared"], "n_inside": sm["n_inside"],
                "csv": f"../tables/{file.replace('.html', '.csv')}"}

    out = [
        table("Table 1", "table1.html", "retrain accuracy vs draw epoch and LR schedule (p = 0.5)", t1),
        table("Table 2", "table2.html", "EB Train vs LT, SNIP, NS, ThiNet: accuracy, training FLOPs, energy", t2),
        table("Table 4", "table4.html", "retrain accuracy vs draw epoch under two initial LRs (LR 0.1 rows shared with Table 1)", t4),
        {"name": "Figure 1", "file": "figure1.html", "what": "retrain accuracy vs draw epoch per pruning ratio",
         "unit": "points", "done": f1["points_done"], "total": f1["points_total"], "runs_done": f1["runs_done"],
         "runs_total": f1["runs_total"], "mean_abs_diff": None, "n_compared": 0, "csv": "../tables/figure1.csv"},
        {"name": "Figure 2", "file": "figure2.html", "what": "the same with an 8-bit search (VGG16), and training FLOPs",
         "unit": "points", "done": f2["points_done"], "total": f2["points_total"], "runs_done": f2["runs_done"],
         "runs_total": f2["runs_total"], "mean_abs_diff": None, "n_compared": 0, "csv": "../tables/figure2.csv"},
        {"name": "Figure 3", "file": "figure3.html", "what": "pairwise mask-distance matrices and EB epochs",
         "unit": "panels", "done": f3_done * n_ratios, "total": len(f3_runs) * n_ratios, "runs_done": f3_done,
         "runs_total": len(f3_runs), "mean_abs_diff": None, "n_compared": 0, "csv": "../tables/figure3.csv"},
        {"name": "Figure 5", "file": "figure5.html", "what": "total training FLOPs vs draw epoch, from the searches' mask history",
         "unit": "searches", "done": f5_done, "total": len(f5_runs), "runs_done": f5_done, "runs_total": len(f5_runs),
         "mean_abs_diff": None, "n_compared": 0, "csv": "../tables/figure5.csv"},
    ]
    for t, what in (("table8", "L1-norm filter pruning: winning ticket vs random init, LR 0.1 and 0.01"),
                    ("table9", "one-shot magnitude pruning 20-95%: winning ticket vs random init, LR 0.1 and 0.01")):
        sm = rt[t][0]
        out.append({**table(f"RT Table {t[-1]}", f"{t}.html", what, sm), "unit": "rows"})
    out.append({"name": "Fidelity", "file": "fidelity.html", "unit": "differences", "done": len(fidelity.load()),
                "total": len(fidelity.load()), "what": "where our defaults differ from the papers and their official code, with the option for each",
                "runs_done": None, "runs_total": None, "mean_abs_diff": None, "n_compared": 0, "csv": None})
    built = {f"{t}.html" for t in built_tables(spec)} | {"fidelity.html"}  # a table left out has no page
    out = [e for e in out if e["file"] in built]
    # Runs shared between pages (Table 1's [80,120] searches feed Figure 1 too) count once.
    unique = {str(r.path): r for r in t1_runs + t2_runs + t4_runs + f1_runs + f2_runs + f3_runs + f5_runs + rt["table8"][1]
              + rt["table9"][1]}
    return out, list(unique.values())


def build(scale: Scale, results: str, data_root: str | None = None, spec: dict | None = None) -> list[dict]:
    """Write ``report/index.html``; return the page entries."""
    spec = spec or load_tables()
    report = Path(results) / "report"
    entries, runs = pages(scale, str(results), spec)
    for e in entries:
        e["exists"] = (report / e["file"]).is_file()
    claims = Path(results) / "tables" / "claims.csv"  # written by the claims page, built just before the index
    verdicts = pd.read_csv(claims)["verdict"].value_counts().to_dict() if claims.is_file() else None
    html = render("index.html", title="Early-Bird tickets and Rethinking the Value of Network Pruning: report index", scale=scale,
                  prov=provenance(runs, data_root), scale_note=scale_note(scale), pages=entries, claims=verdicts,
                  claims_page=(report / "claims.html").is_file())
    write_text(report / "index.html", html)
    return entries
