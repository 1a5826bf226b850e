"""EB Table 1: retrain accuracy of subnetworks drawn at epoch 10/20/40/final (p = 0.5).

Rows model x search LR schedule, columns dataset x draw epoch, as in the paper. Each cell
shows our ``best_acc`` (best test top-1 over epochs, the papers' metric; REFERENCE.md
section 1) as the mean over seeds with the min-max spread (EB's error bars), the paper's
value and ours minus the paper's.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from methods.cells import load_tables, table1_cells
from methods.config import ROOT, Scale

from .common import completeness, load_run, mean_of, provenance, rel, render, scale_note, stats
from .io import write_text

PAPER_CSV = ROOT / "benchmarks" / "reference" / "eb_table1.csv"

#: CSV columns in order; the first twelve are the ones the workflow and tests rely on.
COLUMNS = ["model", "dataset", "schedule", "draw", "draw_epoch", "n_runs", "n_expected", "ours_mean", "ours_min",
           "ours_max", "paper", "diff", "final_mean", "dense_acc_mean", "pruned_params_mean", "pruned_flops_mean",
           "param_reduction_mean", "flop_reduction_mean", "train_flops_mean", "train_flops_eb_units_mean"]


def load_paper(path: Path = PAPER_CSV) -> dict[tuple[str, str, str, str], float]:
    """``(model, dataset, schedule, draw) -> acc`` from the transcribed paper table.

    Read as strings so that draw "10" and schedule "0-100" match the cell keys exactly. A
    missing file gives an empty dict: the page then shows our numbers without comparison.
    """
    if not Path(path).is_file():
        return {}
    df = pd.read_csv(path, dtype=str)
    return {(r.model, r.dataset, r.schedule, r.draw): float(r.acc) for r in df.itertuples()}


def collect(scale: Scale, results: str, spec: dict | None = None, paper: dict | None = None):
    """Cell rows (one per Table 1 cell), run rows (one per expected run) and the loaded runs."""
    paper = load_paper() if paper is None else paper
    cells, runs_rows, all_runs = [], [], []
    searches = {}
    for cell in table1_cells(scale, spec):
        runs = [load_run(r.path(results), scale) for r in cell.runs]
        all_runs += runs
        searches.update({r.search.path(results): None for r in cell.runs})
        s = stats([r.result["best_acc"] for r in runs if r.done])
        ref = paper.get((cell.model, cell.dataset, cell.schedule, cell.draw), math.nan)
        cells.append({
            "model": cell.model, "dataset": cell.dataset, "schedule": cell.schedule, "draw": cell.draw,
            "draw_epoch": scale.epoch(cell.draw), "n_runs": sum(r.done for r in runs), "n_expected": len(runs),
            "ours_mean": s["mean"], "ours_min": s["min"], "ours_max": s["max"], "paper": ref, "diff": s["mean"] - ref,
            "final_mean": mean_of(runs, lambda r: r["final_acc"]),
            "dense_acc_mean": mean_of(runs, lambda r: r["search_best_acc"]),
            "pruned_params_mean": mean_of(runs, lambda r: r["complexity"]["params"]),
            "pruned_flops_mean": mean_of(runs, lambda r: r["complexity"]["flops"]),
            "param_reduction_mean": mean_of(runs, lambda r: r["param_reduction"]),
            "flop_reduction_mean": mean_of(runs, lambda r: r["flop_reduction"]),
            "train_flops_mean": mean_of(runs, lambda r: r["train_flops"]),
            "train_flops_eb_units_mean": mean_of(runs, lambda r: r["train_flops_eb_units"]),
        })
        for spec_run, run in zip(cell.runs, runs):
            res = run.result or {}
            runs_rows.append({**{k: cells[-1][k] for k in ("model", "dataset", "schedule", "draw")},
                              "seed": spec_run.search.seed, "status": run.status, "path": run.path / "result.json",
                              "best_acc": res.get("best_acc", math.nan), "final_acc": res.get("final_acc", math.nan),
                              "draw_epoch": res.get("draw_epoch", scale.epoch(cell.draw)),
                              "params": res.get("complexity", {}).get("params", math.nan),
                              "flops": res.get("complexity", {}).get("flops", math.nan),
                              "param_reduction": res.get("param_reduction", math.nan)})
    all_runs += [load_run(p, scale) for p in searches]  # the search runs count as training runs too
    return cells, runs_rows, all_runs


def summary(cells: list[dict]) -> dict:
    """Completeness (a cell is done when all its seeds are) and mean |ours - paper| over the
    cells that have at least one finished run and a paper value."""
    return completeness(cells, lambda c: c["n_runs"] == c["n_expected"])


def build(scale: Scale, results: str, data_root: str | None = None, spec: dict | None = None,
          paper: dict | None = None) -> dict:
    """Write ``tables/table1.csv`` and ``report/table1.html``; return the summary."""
    spec = spec or load_tables()
    results = str(results)
    report = Path(results) / "report"
    cells, runs_rows, all_runs = collect(scale, results, spec, paper)
    write_text(Path(results) / "tables" / "table1.csv", pd.DataFrame(cells, columns=COLUMNS).to_csv(index=False))
    s = spec["table1"]
    by_key = {(c["model"], c["schedule"], c["dataset"], c["draw"]): c for c in cells}
    grid = [{"model": m, "schedule": sch, "cells": [by_key[(m, sch, ds, d)] for ds in s["datasets"] for d in s["draws"]]}
            for m in s["models"] for sch in s["schedules"]]
    for r in runs_rows:
        r["link"] = rel(r["path"], report) if r["status"] == "done" else None
    html = render("table1.html", title="EB Table 1: retraining accuracy vs draw epoch", scale=scale,
                  prov=provenance(all_runs, data_root), scale_note=scale_note(scale), spec=s, grid=grid,
                  runs=runs_rows, summary=summary(cells), has_paper=any(not math.isnan(c["paper"]) for c in cells),
                  paper_csv=PAPER_CSV.relative_to(ROOT).as_posix())
    write_text(report / "table1.html", html)
    return summary(cells)
