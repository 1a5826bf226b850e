"""EB Table 2: EB Train and its variants against LT (one-shot), SNIP, NS and ThiNet.

Per (model, dataset) block, rows are methods and columns pruning ratios; each cell shows
accuracy (``best_acc``, mean over seeds), total training FLOPs in the paper's unit of
0.05 PFLOPs (official-counter convention as the paper's, ``train_flops_paper``; conv + linear
beneath; ``methods/metrics/flops.py``) and training energy, ours beside the paper's, plus the achieved parameter and FLOP
reduction. Costs also appear relative to one dense training (ours: our search run; the
paper's: its SNIP row, which trains at dense cost, REFERENCE.md section 7), which compares
across scales and hardware where absolute FLOPs and joules cannot.

The "EB Train Improv." row is computed as the paper's printed values imply (``tests/test_table2.py``
recomputes the paper's row from its own cells: accuracy and FLOPs 12/12 entries, energy 8/12:
VGG16 CIFAR-100 has no printed LL row, and VGG16 CIFAR-10 p = 0.3 ignores ThiNet's 298.0 kJ,
a suspected typo): accuracy = the better of EB Train and
EB Train (re-init) minus the best baseline (the 8-bit rows do not count: VGG16 CIFAR-10 at
p = 0.7 gives -0.57, not the -0.37 LF would); energy and FLOPs = the cheapest baseline over
the cheapest EB row, LF and LL included (a reduction factor). Baselines: LT (one-shot), SNIP,
NS and ThiNet. The LF and LL rows search in 8 bits (``bfp8``); LL retrains in 8 bits too, so its
modelled energy is charged per stage at 8-bit cost while its FLOPs equal LF's.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pandas as pd

from methods.runs.cells import load_tables, table2_cells
from methods.base.config import ROOT, Scale
from methods.metrics.energy import modelled_energy_j

from reports.pages import cellpage
from reports.common import (Result, bf16, completeness, load_run, mean_of, old_flops, provenance, rel, render,
                     scale_note, stats)
from reports.common import table_index_entry, ticket_flag
from reports.io import write_text

PAPER_CSV = ROOT / "benchmarks" / "reference" / "eb_table2.csv"
PAPER_IMPROV_CSV = ROOT / "benchmarks" / "reference" / "eb_table2_improv.csv"
BASELINES = ("lt_oneshot", "snip", "ns", "thinet")
EB_ROWS = ("eb_reinit", "eb_train", "eb_lf", "eb_ll")
ACC_EB_ROWS = ("eb_reinit", "eb_train")
#: The paper's rows in its order and names; any other row of the specification follows them, named
#: by its ``label`` (or key) and counted in the Improv. row by its ``role`` (``methods.runs.spec.Row``).
ROW_NAMES = {"lt_oneshot": "LT (one-shot)", "snip": "SNIP", "ns": "NS", "thinet": "ThiNet",
             "eb_reinit": "EB Train (re-init)", "eb_train": "EB Train", "eb_lf": "EB Train LF (8-bit search)",
             "eb_ll": "EB Train LL (8-bit both)"}


def row_role(method: str, row: dict | None = None) -> str:
    """A row's part in the Improv. row: its ``role`` in the specification, else the paper row's
    ("baseline" or "eb"), else "extra" (shown and costed, not compared)."""
    if row and row.get("role"):
        return row["role"]
    return "baseline" if method in BASELINES else "eb" if method in EB_ROWS else "extra"


def row_label(method: str, row: dict | None = None) -> str:
    return (row or {}).get("label") or ROW_NAMES.get(method, method)


def row_order(spec_t2: dict) -> list[str]:
    """The rows of the specification (and its ``pending`` ones): the paper's first, in its order, then the others as listed."""
    names = list(dict.fromkeys([*spec_t2["rows"], *spec_t2.get("pending", [])]))
    paper = list(ROW_NAMES)
    return sorted(names, key=lambda m: (paper.index(m) if m in paper else len(paper) + names.index(m)))

COLUMNS = ["model", "dataset", "method", "ratio", "n_runs", "n_expected", "status", "ours_mean", "ours_min", "ours_max",
           "paper", "diff", "final_mean", "flops_paper_units", "flops_paper_nonzero_units", "flops_paper_rel",
           "flops_paper_old", "flops_units", "flops_nonzero_units", "flops_rel", "paper_flops_units",
           "paper_flops_rel", "energy_measured_kj", "energy_modelled_kj", "energy_rel", "paper_energy_kj",
           "paper_energy_rel", "param_reduction", "flop_reduction", "draw_epoch_mean", "granularity", "low_precision",
           "acc_key", "bf16", "ticket_flag", "role"]


def _key(model, dataset, method, ratio):
    return (model, dataset, method, f"{float(ratio):g}")


def load_paper(path: Path = PAPER_CSV) -> dict:
    """``(model, dataset, method, ratio) -> {"acc", "energy_kj", "flops_units"}``; {} if the file is missing."""
    if not Path(path).is_file():
        return {}
    df = pd.read_csv(path)
    return {_key(r.model, r.dataset, r.method, r.ratio): {"acc": r.acc, "energy_kj": r.energy_kj,
                                                          "flops_units": r.flops_units} for r in df.itertuples()}


def load_paper_improv(path: Path = PAPER_IMPROV_CSV) -> dict:
    """``(model, dataset, ratio) -> {"acc", "energy", "flops"}`` of the paper's Improv. row; {} if missing."""
    if not Path(path).is_file():
        return {}
    df = pd.read_csv(path)
    return {(r.model, r.dataset, f"{float(r.ratio):g}"): {"acc": r.acc_improv, "energy": r.energy_improv,
                                                           "flops": r.flops_improv} for r in df.itertuples()}


def _reduction(res: dict, kind: str) -> float:
    """Achieved reduction: physical for channel pruning, of nonzero weights/FLOPs for weight-level masks."""
    return res.get(f"{kind}_reduction_nonzero" if res.granularity == "weight" else f"{kind}_reduction")


def collect(scale: Scale, results: str, spec: dict | None = None, paper: dict | None = None):
    """Cell rows, run rows and every loaded run (retrains and their searches)."""
    paper = load_paper() if paper is None else paper
    spec_t2 = (spec or load_tables())["table2"]
    cells, runs_rows, all_runs, searches = [], [], [], {}
    for cell in table2_cells(scale, spec):
        ref = paper.get(_key(cell.model, cell.dataset, cell.method, cell.ratio))
        if not cell.runs and ref is None:
            continue  # a pending row the paper does not have either (no LL row for VGG16 on CIFAR-100)
        runs = [load_run(r.path(results), scale) for r in cell.runs]
        all_runs += runs
        # "x dense" compares with one FP32 dense training, also for the rows that search in 8 bits
        fp32 = [replace(r.search, precision="fp32") for r in cell.runs]
        for search in [r.search for r in cell.runs] + fp32:
            if search.path(results) not in searches:
                searches[search.path(results)] = load_run(search.path(results), scale)
        ticket = [r for r in runs if r.done and r.result.trained]
        low = any(r.precision != "fp32" or r.search.precision != "fp32" for r in cell.runs)
        # an 8-bit retraining may report its SWA model instead (tables.yaml table2.lowp_accuracy)
        acc_key = spec_t2.get("lowp_accuracy", "best_acc") if any(r.precision != "fp32" for r in cell.runs) else "best_acc"
        s = stats([r.result.get(acc_key) for r in ticket if r.result.get(acc_key) is not None])
        dense = [searches[search.path(results)] for search in fp32]
        dense_flops = mean_of(dense, lambda r: r.train_flops)
        dense_paper = mean_of(dense, lambda r: r.paper_flops("train_flops"))
        # searches written before energy was recorded: the same model from their counted FLOPs
        dense_energy = mean_of(dense, lambda r: (r.energy or {}).get("modelled_j", modelled_energy_j(r.train_flops)))
        pref = ref or {}
        psnip = paper.get(_key(cell.model, cell.dataset, "snip", cell.ratio), {})
        status = ("pending: " + ("not built yet" if not cell.runs else "not run yet")
                  if not runs or not any(r.done for r in runs) else
                  "no EB ticket: " + "; ".join(r.result.no_ticket for r in runs if r.done and not r.result.trained)
                  if not ticket else "done")
        row = spec_t2["rows"].get(cell.method)
        cells.append({
            "id": cell.id, "model": cell.model, "dataset": cell.dataset, "method": cell.method, "ratio": cell.ratio,
            "label": row_label(cell.method, row), "role": row_role(cell.method, row),
            "n_runs": len(ticket), "n_expected": len(runs), "status": status, "bf16": bf16(runs),
            "ticket_flag": ticket_flag(runs),
            "ours_mean": s["mean"], "ours_min": s["min"], "ours_max": s["max"],
            "paper": pref.get("acc", math.nan), "diff": s["mean"] - pref.get("acc", math.nan),
            "final_mean": mean_of(ticket, lambda r: r.final_acc),
            # official-counter convention beside the paper's column (conv + linear for older results, flagged)
            "flops_paper_units": mean_of(ticket, lambda r: r.paper_flops("train_flops_50k_eb_units")),
            "flops_paper_nonzero_units": mean_of(ticket, lambda r: r.paper_flops("train_flops_nonzero_50k_eb_units")),
            "flops_paper_rel": mean_of(ticket, lambda r: r.paper_flops("train_flops")) / dense_paper,
            "flops_paper_old": old_flops(ticket) or old_flops(dense),
            "flops_units": mean_of(ticket, lambda r: r.train_flops_50k_eb_units),
            "flops_nonzero_units": mean_of(ticket, lambda r: r.train_flops_nonzero_50k_eb_units),
            "flops_rel": mean_of(ticket, lambda r: r.train_flops) / dense_flops,
            "paper_flops_units": pref.get("flops_units", math.nan),
            "paper_flops_rel": pref.get("flops_units", math.nan) / psnip.get("flops_units", math.nan),
            "energy_measured_kj": _measured_kj(ticket),
            "energy_modelled_kj": mean_of(ticket, lambda r: r.energy["modelled_j"]) / 1e3,
            "energy_rel": mean_of(ticket, lambda r: r.energy["modelled_j"]) / dense_energy,
            "paper_energy_kj": pref.get("energy_kj", math.nan),
            "paper_energy_rel": pref.get("energy_kj", math.nan) / psnip.get("energy_kj", math.nan),
            "param_reduction": mean_of(ticket, lambda r: _reduction(r, "param")),
            "flop_reduction": mean_of(ticket, lambda r: _reduction(r, "flop")),
            "draw_epoch_mean": mean_of(ticket, lambda r: r.draw_epoch),
            "granularity": ticket[0].result.granularity if ticket else "",
            "low_precision": low, "acc_key": acc_key,
        })
        for spec_run, run in zip(cell.runs, runs):
            res = run.result or Result()
            runs_rows.append({"model": cell.model, "dataset": cell.dataset, "method": cell.method, "ratio": cell.ratio,
                              "seed": spec_run.search.seed, "status": run.status if res.trained else "no EB ticket",
                              "path": run.path / "result.json", "best_acc": res.get("best_acc", math.nan),
                              "draw_epoch": res.get("draw_epoch", math.nan), "prune": spec_run.prune,
                              "init": spec_run.init, "draw": spec_run.draw,
                              "precision": f"{spec_run.search.precision} / {spec_run.precision}",
                              "energy": res.energy or {}})
    all_runs += list(searches.values())
    return cells, runs_rows, all_runs


def _measured_kj(runs) -> float:
    vals = [(r.result.energy or {}).get("measured_j") for r in runs]
    return sum(vals) / len(vals) / 1e3 if vals and None not in vals else math.nan


def improvement(cells: list[dict], paper_improv: dict | None = None) -> list[dict]:
    """The "EB Train Improv." row per (model, dataset, ratio), ours and the paper's.

    acc = max over EB Train and its re-init - max over baselines (percentage points); flops
    (official-counter convention, as the paper's), energy = min over baselines / min over all EB rows (factor; energy uses
    measured kJ when every row has it and none is 8-bit, else modelled: a meter measures our 8-bit rows' FP32
    simulation, not 8-bit arithmetic). NaN when a side has no result.
    """
    paper_improv = load_paper_improv() if paper_improv is None else paper_improv
    out = []
    groups = {}
    for c in cells:
        groups.setdefault((c["model"], c["dataset"], c["ratio"]), []).append(c)
    for (model, ds, p), group in groups.items():
        base = [c for c in group if _role(c) == "baseline" and c["n_runs"]]
        eb = [c for c in group if _role(c) == "eb" and c["n_runs"]]
        measured = all(not math.isnan(c["energy_measured_kj"]) and not c["low_precision"] for c in base + eb)
        ekey = "energy_measured_kj" if measured and base and eb else "energy_modelled_kj"
        fkey = "flops_paper_units" if all("flops_paper_units" in c for c in base + eb) else "flops_units"
        ref = paper_improv.get((model, ds, f"{float(p):g}"), {})

        def best(rows, key, fn):
            return fn(c[key] for c in rows) if rows else math.nan

        out.append({"model": model, "dataset": ds, "ratio": p,
                    "acc": best([c for c in eb if c["method"] in ACC_EB_ROWS
                                 or (c["method"] not in EB_ROWS and not c["low_precision"])], "ours_mean", max)
                    - best(base, "ours_mean", max),
                    "flops": best(base, fkey, min) / best(eb, fkey, min),
                    "energy": best(base, ekey, min) / best(eb, ekey, min), "energy_basis": ekey.split("_")[1],
                    "eb_rows": ", ".join(c["method"] for c in eb),
                    "paper_acc": ref.get("acc", math.nan), "paper_flops": ref.get("flops", math.nan),
                    "paper_energy": ref.get("energy", math.nan)})
    return out


def _role(c: dict) -> str:
    return c.get("role") or row_role(c["method"])


def summary(cells: list[dict]) -> dict:
    """Cells done / built (rows without runs in ``tables.yaml`` not counted), runs, and mean |ours - paper| accuracy."""
    built = [c for c in cells if c["n_expected"]]
    return {**completeness(built, lambda c: c["status"] == "done"), "cells_pending_rows": len(cells) - len(built)}


def build(scale: Scale, results: str, data_root: str | None = None, spec: dict | None = None,
          paper: dict | None = None) -> dict:
    """Write ``tables/table2.csv``, ``tables/table2_improv.csv`` and ``report/table2.html``; return the summary."""
    spec = spec or load_tables()
    results = str(results)
    report = Path(results) / "report"
    cells, runs_rows, all_runs = collect(scale, results, spec, paper)
    imp = improvement(cells)
    write_text(Path(results) / "tables" / "table2.csv", pd.DataFrame(cells, columns=COLUMNS).to_csv(index=False))
    write_text(Path(results) / "tables" / "table2_improv.csv", pd.DataFrame(imp).to_csv(index=False))
    s = spec["table2"]
    blocks = []
    for model in s["models"]:
        for ds in s["datasets"]:
            ratios = s.get(f"ratios_{model}_{ds}", s["ratios"])
            mine = [c for c in cells if c["model"] == model and c["dataset"] == ds]
            methods = [m for m in row_order(s) if any(c["method"] == m for c in mine)]
            rows = [{"method": m, "name": row_label(m, s["rows"].get(m)), "cells": [next((c for c in mine if c["method"] == m
                                                                         and c["ratio"] == p), None) for p in ratios]}
                    for m in methods]
            improv = [next(i for i in imp if i["model"] == model and i["dataset"] == ds and i["ratio"] == p) for p in ratios]
            blocks.append({"model": model, "dataset": ds, "ratios": ratios, "rows": rows, "improv": improv})
    for r in runs_rows:
        r["link"] = rel(r["path"], report) if r["status"] in ("done", "no EB ticket") else None
    energy = {"meter": None, "reason": None, "model": None,
              **next((r["energy"] for r in runs_rows if r["energy"]), {})}
    baselines = [m for m, r in s["rows"].items() if row_role(m, r) == "baseline"]  # the rows the Improv. row compares
    html = render("table2.html", title="EB Table 2: accuracy, training FLOPs and energy against the baselines",
                  scale=scale, prov=provenance(all_runs, data_root), scale_note=scale_note(scale), spec=s,
                  blocks=blocks, runs=runs_rows, summary=summary(cells), energy=energy,
                  baselines=[row_label(m, s["rows"][m]) for m in baselines], paper_baselines=[ROW_NAMES[m] for m in BASELINES],
                  own_baselines=set(baselines) == set(BASELINES),
                  paper_csv=PAPER_CSV.relative_to(ROOT).as_posix())
    write_text(report / "table2.html", html)
    cellpage.build_all(scale, results, "table2", spec, data_root,
                       {c["id"]: {"ours": c["ours_mean"], "paper": c["paper"], "diff": c["diff"]} for c in cells})
    return summary(cells)


def index_entry(scale: Scale, results: str, spec: dict) -> tuple[dict, list]:
    """The index line (``methods.base.tables.TableDef.index``) and the runs read."""
    cells, _, runs = collect(scale, results, spec)
    return table_index_entry("table2", summary(cells)), runs
