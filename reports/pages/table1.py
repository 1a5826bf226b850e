"""EB Tables 1 and 4: retrain accuracy of subnetworks drawn at epoch 10/20/40/final (p = 0.5).

Rows model x search LR schedule (Table 1) or initial LR (Table 4), columns dataset x draw
epoch, as in the paper. Each cell
shows our ``best_acc`` (best test top-1 over epochs, the papers' metric; REFERENCE.md
section 1) as the mean over seeds with the min-max spread (EB's error bars), the paper's
value and ours minus the paper's.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from methods.runs.cells import load_tables, table1_cells, table4_cells
from methods.base.config import ROOT, Scale

from reports.pages import cellpage
from reports.common import (Result, absent_page, bf16, completeness, load_run, mean_of, old_flops, provenance, rel, render,
                     scale_note, stats)
from reports.common import table_index_entry, ticket_flag
from reports.io import write_text

PAPER_CSV = ROOT / "benchmarks" / "reference" / "eb_table1.csv"
#: Per table: its cells, transcribed paper values, the row key beside the model, and the page title.
TABLES = {"table1": {"cells": table1_cells, "csv": PAPER_CSV, "row": "schedule",
                     "title": "EB Table 1: retraining accuracy vs draw epoch"},
          "table4": {"cells": table4_cells, "csv": ROOT / "benchmarks" / "reference" / "eb_table4.csv", "row": "lr",
                     "title": "EB Table 4: retraining accuracy vs draw epoch under two initial LRs"}}


def row_key(table: str, cell) -> str:
    """The row's second key as the paper CSV writes it: schedule "0-100" or LR "0.5"."""
    return cell.schedule if TABLES[table]["row"] == "schedule" else f"{cell.lr:g}"

#: CSV columns in order; the first twelve are the ones the workflow and tests rely on.
COLUMNS = ["model", "dataset", "schedule", "lr", "draw", "draw_epoch", "n_runs", "n_expected", "ours_mean", "ours_min",
           "ours_max", "paper", "diff", "final_mean", "dense_acc_mean", "pruned_params_mean", "pruned_flops_mean",
           "pruned_flops_paper_mean", "param_reduction_mean", "flop_reduction_mean", "train_flops_mean",
           "train_flops_eb_units_mean", "train_flops_paper_eb_units_mean", "flops_paper_old", "bf16", "ticket_flag"]


def load_paper(path: Path = PAPER_CSV, table: str = "table1") -> dict[tuple[str, str, str, str], float]:
    """``(model, dataset, schedule or LR, draw) -> acc`` from the transcribed paper table.

    Read as strings so that draw "10", schedule "0-100" and LR "0.5" match the cell keys
    exactly. A missing file gives an empty dict: the page then shows our numbers without comparison.
    """
    if not Path(path).is_file():
        return {}
    df = pd.read_csv(path, dtype=str)
    return {(r.model, r.dataset, getattr(r, TABLES[table]["row"]), r.draw): float(r.acc) for r in df.itertuples()}


def collect(scale: Scale, results: str, spec: dict | None = None, paper: dict | None = None, table: str = "table1"):
    """Cell rows (one per table cell), run rows (one per expected run) and the loaded runs."""
    t = TABLES[table]
    paper = load_paper(t["csv"], table) if paper is None else paper
    cells, runs_rows, all_runs = [], [], []
    searches = {}
    for cell in t["cells"](scale, spec):
        runs = [load_run(r.path(results), scale) for r in cell.runs]
        all_runs += runs
        searches.update({r.search.path(results): None for r in cell.runs})
        s = stats([r.result.best_acc for r in runs if r.done and r.result.best_acc is not None])  # refused: None
        ref = paper.get((cell.model, cell.dataset, row_key(table, cell), cell.draw), math.nan)
        cells.append({
            "id": cell.id, "model": cell.model, "dataset": cell.dataset, "schedule": cell.schedule, "lr": cell.lr,
            "draw": cell.draw, "draw_epoch": scale.epoch(cell.draw), "n_runs": sum(r.done for r in runs), "n_expected": len(runs),
            "bf16": bf16(runs), "ticket_flag": ticket_flag(runs),
            "ours_mean": s["mean"], "ours_min": s["min"], "ours_max": s["max"], "paper": ref, "diff": s["mean"] - ref,
            "final_mean": mean_of(runs, lambda r: r.final_acc),
            "dense_acc_mean": mean_of(runs, lambda r: r.search_best_acc),
            "pruned_params_mean": mean_of(runs, lambda r: r.cx("params")),
            "pruned_flops_mean": mean_of(runs, lambda r: r.cx("flops")),
            "param_reduction_mean": mean_of(runs, lambda r: r.param_reduction),
            "flop_reduction_mean": mean_of(runs, lambda r: r.flop_reduction),
            "train_flops_mean": mean_of(runs, lambda r: r.train_flops),
            "train_flops_eb_units_mean": mean_of(runs, lambda r: r.train_flops_eb_units),
            # official-counter convention (conv + linear for results written before it, flagged)
            "pruned_flops_paper_mean": mean_of(runs, lambda r: r.paper_flops("flops")),
            "train_flops_paper_eb_units_mean": mean_of(runs, lambda r: r.paper_flops("train_flops_eb_units")),
            "flops_paper_old": old_flops(runs),
        })
        for spec_run, run in zip(cell.runs, runs):
            res = run.result or Result()
            runs_rows.append({**{k: cells[-1][k] for k in ("id", "model", "dataset", "schedule", "lr", "draw")},
                              "seed": spec_run.search.seed, "status": run.status, "path": run.path / "result.json",
                              "best_acc": res.get("best_acc", math.nan), "final_acc": res.get("final_acc", math.nan),
                              "draw_epoch": res.get("draw_epoch", scale.epoch(cell.draw)),
                              "params": res.cx("params"),
                              "flops": res.cx("flops"),
                              "flops_paper": res.cx("flops_paper"),
                              "param_reduction": res.get("param_reduction", math.nan)})
    all_runs += [load_run(p, scale) for p in searches]  # the search runs count as training runs too
    return cells, runs_rows, all_runs


def summary(cells: list[dict]) -> dict:
    """Completeness (a cell is done when all its seeds are) and mean |ours - paper| over the
    cells that have at least one finished run and a paper value."""
    return completeness(cells, lambda c: c["n_runs"] == c["n_expected"])


def build(scale: Scale, results: str, data_root: str | None = None, spec: dict | None = None,
          paper: dict | None = None, table: str = "table1") -> dict:
    """Write ``tables/<table>.csv``, ``report/<table>.html`` and its cell pages; return the summary."""
    spec = spec or load_tables()
    results = str(results)
    report = Path(results) / "report"
    cells, runs_rows, all_runs = collect(scale, results, spec, paper, table)
    write_text(Path(results) / "tables" / f"{table}.csv", pd.DataFrame(cells, columns=COLUMNS).to_csv(index=False))
    if table not in spec:
        absent_page(results, table, TABLES[table]["title"], scale, data_root)
        return summary(cells)
    s = spec[table]
    rows = {}  # (model, row label) -> its cells in column order, rows in the paper's order
    for c in cells:
        label = c["schedule"] if TABLES[table]["row"] == "schedule" else f"LR {c['lr']:g}"
        rows.setdefault((c["model"], label), []).append(c)
    order = {(ds, d): i for i, (ds, d) in enumerate((ds, d) for ds in s["datasets"] for d in s["draws"])}
    grid = [{"model": m, "label": label, "cells": sorted(cs, key=lambda c: order[(c["dataset"], c["draw"])])}
            for (m, label), cs in rows.items()]
    n_rows = {m: sum(g["model"] == m for g in grid) for m in {g["model"] for g in grid}}
    for r in runs_rows:
        r["link"] = rel(r["path"], report) if r["status"] == "done" else None
    html = render("table1.html", title=TABLES[table]["title"], scale=scale, table=table,
                  prov=provenance(all_runs, data_root), scale_note=scale_note(scale), spec=s, grid=grid, n_rows=n_rows,
                  runs=runs_rows, summary=summary(cells), has_paper=any(not math.isnan(c["paper"]) for c in cells),
                  paper_csv=TABLES[table]["csv"].relative_to(ROOT).as_posix(), paper_file=TABLES[table]["csv"].is_file(),
                  by_lr=TABLES[table]["row"] == "lr")
    write_text(report / f"{table}.html", html)
    cellpage.build_all(scale, results, table, spec, data_root,
                       {c["id"]: {"ours": c["ours_mean"], "paper": c["paper"], "diff": c["diff"]} for c in cells})
    return summary(cells)


def index_entry(scale: Scale, results: str, spec: dict, table: str = "table1") -> tuple[dict, list]:
    """The index line (``methods.base.tables.TableDef.index``) and the runs read."""
    cells, _, runs = collect(scale, results, spec, table=table)
    return table_index_entry(table, summary(cells)), runs
