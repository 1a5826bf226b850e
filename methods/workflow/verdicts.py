"""The papers' claims judged from a results tree (``benchmarks/claims.yaml``; the rules in
``methods.base.claims``): gathers the numbers each claim reads from the result files of the cells in
the table specification. Reads only ``result.json`` and ``history.npz``, so it judges a folder of
committed results (``benchmarks/evidence/mid``) too. The claims page (``reports.pages.claims``) and
``methods status`` show its verdicts.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from methods.base import claims as C
from methods.runs.cells import figure3_searches, load_tables, lottery_cells, table1_cells, table2_cells, table4_cells
from methods.base.config import Scale
from methods.metrics.costcurve import DrawCosts
from methods.metrics.flops import EB_UNIT_FLOPS, cell_training_flops
from methods.models import knobs_at
from methods.runs.results import load_run

BASELINES = ("lt_oneshot", "snip", "ns", "thinet")


class _Reader:
    """Loads each run folder once; records the dense/search accuracies an accuracy claim rests on."""

    def __init__(self, scale: Scale, results: str):
        self.scale, self.results, self.runs = scale, results, {}

    def run(self, r):
        p = r.path(self.results)
        if p not in self.runs:
            self.runs[p] = load_run(p, self.scale)
        return self.runs[p]

    def stat(self, runs, how="range"):
        # a disconnected ticket's accuracy is not a pruned network's (methods/pruning/ticket.py): left out, so
        # a claim with too few valid seeds is not judged rather than judged on it
        done = [self.run(r).result for r in runs if self.run(r).done]
        ok = [res for res in done if not res.disconnected]
        return C.Stat.of([res.best_acc for res in ok], how, left_out=len(done) - len(ok))

    def dense(self, ups) -> dict:
        out = {}
        for u in ups:
            run = self.run(u)
            if run.done:
                out[u.name] = (u.dataset, run.result.best_acc)
        return out


def _cell(table: str, cid: str) -> tuple[str, str]:
    return (table, cid)


def _eb_searches(rd: _Reader, spec: dict) -> tuple[list[dict], dict, list]:
    """EB-1's inputs from Figure 5's searches: EB epochs, steps per epoch, first decay, later mask distances."""
    out, dense, pending = [], {}, []
    for s in figure3_searches(rd.scale, spec, "figure5") if "figure5" in spec else []:
        run = rd.run(s)
        if not run.done:
            pending.append(s.name)
            continue
        res, cfg = run.result, run.result.config or {}
        dense[s.name] = (s.dataset, res.best_acc)
        eb = {float(p): v.get("paper") for p, v in (res.eb_epochs or {}).items()}
        dist = {}
        if (run.path / "history.npz").is_file():
            with np.load(run.path / "history.npz") as h:
                for p, t in eb.items():
                    key = f"mask_p{p:g}"
                    if t is not None and key in h.files and t + 1 < len(h[key]):
                        m = h[key]
                        dist[p] = float((m[t + 1:] != m[t]).mean(axis=1).max())
        epochs = cfg.get("epochs", rd.scale.epochs)
        first = next((m for m in cfg.get("milestones", []) if m > 0), epochs)
        images = res.train_images or rd.scale.train_images or 50_000  # None: all of torchvision's set
        out.append({"name": s.name, "eb": eb, "steps_per_epoch": math.ceil(images / cfg.get("batch_size", rd.scale.batch_size)),
                    "first_decay": first, "dist_after": dist, "dataset": s.dataset, "model": s.model, "seed": s.seed,
                    "epochs": epochs, "knobs": cfg.get("knobs", knobs_at(s.model, rd.scale) or {}),
                    "cells": [_cell("figure5", f"{s.model}/{s.dataset}")]})
    return out, dense, pending


def _eb7_rows(rd: _Reader, spec: dict, searches: list[dict], ratios) -> list[dict]:
    """EB-7: total training FLOPs (EB units at 50,000 images) of the draw at the EB epoch vs the final
    epoch, each retrained the whole schedule (Figure 5's default), from the |gamma| history."""
    rows = []
    for s in searches:
        run = rd.runs[f"{rd.results}/search/{s['name']}"]
        if not (run.path / "history.npz").is_file():
            continue
        res, costs = run.result, DrawCosts(s["model"], s["knobs"], s["dataset"])
        dflops = res.paper_flops("flops")
        with np.load(run.path / "history.npz") as h:
            gammas = torch.from_numpy(h["gammas"])
        for p in ratios:
            t, E = s["eb"].get(p), s["epochs"]
            total = {}
            for when, ep in (("eb", t), ("final", E)):
                if ep is None:
                    continue
                cx = costs.pruned(gammas[ep], p)
                total[when] = (cell_training_flops(dflops, cx.get("flops_paper", cx["flops"]), ep, E, 50_000)["total"]
                               / EB_UNIT_FLOPS)
            rows.append(C.cost_row(f"{s['name']} p={p:g}: EB draw / final draw", total.get("eb"), total.get("final"),
                                   cells=[_cell("figure5", f"{s['model']}/{s['dataset']}")]))
    return rows


def _steps_per_epoch(rd, search) -> int:
    """SGD steps per epoch of a search as run (its result), else as the scale would run it."""
    run = rd.run(search)
    if run.done and run.result.train_images:
        return math.ceil(run.result.train_images / (run.result.config or {}).get("batch_size", rd.scale.batch_size))
    return math.ceil((rd.scale.train_images or 50_000) / rd.scale.batch_size)


def _early(rd, cfg, c, fl, n, other, what, paper, cells) -> dict | None:
    """An early-draw comparison, judged only where the draw had the paper's steps (``C.paper_draw``)."""
    if c.draw in ("final", "best", "eb", "0"):
        return None
    e, steps = C.paper_draw(c.draw, rd.scale.epoch(c.draw), _steps_per_epoch(rd, c.runs[0].search), cfg)
    if e is None:
        row = C.pair_row(f"{what} (draw {c.draw})", rd.stat(c.runs), rd.stat(other.runs), fl, n, cells=cells)
        row.update(ok=None, why=f"drawn after {steps:,} SGD steps; the paper's early draws come after "
                                f"{', '.join(f'{x * 196:,}' for x in cfg['early_draws']['paper'])} "
                                "(epochs 10, 20): not comparable")
        return row
    return C.pair_row(f"{what} (draw {c.draw} = {steps:,} steps ~ paper epoch {e})", rd.stat(c.runs), rd.stat(other.runs), fl, n,
                      paper=paper(str(e)), cells=cells)


def _table1_rows(rd, spec, fl, n, which, cfg) -> list[dict]:
    cells = {(c.model, c.dataset, c.schedule, c.draw): c for c in table1_cells(rd.scale, spec)} if "table1" in spec else {}
    ref = {(r["model"], r["dataset"], r["schedule"], r["draw"]): float(r["acc"]) for r in C._csv("eb_table1.csv")}
    rows = []
    for (m, ds, sched, draw), c in cells.items():
        other = cells.get((m, ds, sched, "final")) if which == "final" else cells.get((m, ds, "0-100", draw))
        if other is None or sched != "80-120":
            continue
        if which == "final":
            what, paper = f"{m} {ds} early vs final", lambda e: (ref.get((m, ds, "80-120", e)),
                                                                 ref.get((m, ds, "80-120", "final")))
        else:
            what, paper = f"{m} {ds} [80,120] vs [0,100]", lambda e: (ref.get((m, ds, "80-120", e)), ref.get((m, ds, "0-100", e)))
        row = _early(rd, cfg, c, fl, n, other, what, paper, [_cell("table1", c.id), _cell("table1", other.id)])
        if row is not None:
            rows.append(row)
    return rows


def _eb_draw_rows(rd, spec, fl, n) -> list[dict]:
    """EB-2's draw at the EB epoch: Table 2's EB Train (re-init) is the same recipe as Table 1's
    cells (fresh init, whole [80,120] schedule), drawn at the EB epoch; compared with Table 1's final draw."""
    if "table1" not in spec or "table2" not in spec:
        return []
    final = {(c.model, c.dataset): c for c in table1_cells(rd.scale, spec) if c.schedule == "80-120" and c.draw == "final"}
    ratio, rows = spec["table1"]["ratio"], []
    for c in table2_cells(rd.scale, spec):
        f = final.get((c.model, c.dataset))
        if c.method == "eb_reinit" and f is not None and math.isclose(c.ratio, ratio):
            ref = {r["draw"]: float(r["acc"]) for r in C._csv("eb_table1.csv")
                   if (r["model"], r["dataset"], r["schedule"]) == (c.model, c.dataset, "80-120")}
            eb = next((float(r["acc"]) for r in C._csv("eb_table2.csv") if (r["model"], r["dataset"], r["method"]) ==
                       (c.model, c.dataset, "eb_reinit") and math.isclose(float(r["ratio"]), ratio)), None)
            rows.append(C.pair_row(f"{c.model} {c.dataset} draw at the EB epoch vs final", rd.stat(c.runs), rd.stat(f.runs),
                                   fl, n, paper=(eb, ref.get("final")), cells=[_cell("table2", c.id), _cell("table1", f.id)]))
    return rows


def _table4_rows(rd, spec, fl, n, cfg) -> list[dict]:
    cells = {(c.model, c.dataset, c.lr, c.draw): c for c in table4_cells(rd.scale, spec)} if "table4" in spec else {}
    ref = {(r["model"], r["dataset"], float(r["lr"]), r["draw"]): float(r["acc"]) for r in C._csv("eb_table4.csv")}
    rows = []
    for (m, ds, lr, draw), c in cells.items():
        base = cells.get((m, ds, 0.1, draw))
        if not math.isclose(lr, 0.1) and base is not None:
            row = _early(rd, cfg, c, fl, n, base, f"{m} {ds} LR {lr:g} vs 0.1",
                         lambda e, m=m, ds=ds, lr=lr: (ref.get((m, ds, lr, e)), ref.get((m, ds, 0.1, e))),
                         [_cell("table4", c.id), _cell("table4", base.id)])
            if row is not None:
                rows.append(row)
    return rows


def _table2(rd, spec):
    cells = {(c.model, c.dataset, c.method, c.ratio): c for c in table2_cells(rd.scale, spec)} if "table2" in spec else {}
    ref = {(r["model"], r["dataset"], r["method"], float(r["ratio"])): r for r in C._csv("eb_table2.csv")}
    return cells, ref


def _mean(rd, runs, key):
    vals = [key(rd.run(r).result) for r in runs if rd.run(r).done and rd.run(r).result.trained]  # no ticket: no cost
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def _energy(res):
    """Modelled training energy (FLOPs x per-operation energy by bit width, methods/metrics/energy.py): the same model
    for every row; a meter, where one exists, covers only part of a cell's cost (the retraining)."""
    e = res.energy or {}
    parts = [e.get(k) for k in ("modelled_search_j", "modelled_prune_j", "modelled_retrain_j")]
    return sum(x or 0 for x in parts) if any(parts) else e.get("modelled_j")


def verdicts(scale: Scale, results: str, spec: dict | None = None, cfg: dict | None = None) -> tuple[dict, dict]:
    """``({claim id: Verdict}, extras)`` for this results tree; ``extras`` holds the figures' data."""
    spec, cfg = spec or load_tables(), cfg or C.load_claims()
    fl, n, by = cfg["min_tolerance_pp"], cfg["min_seeds"], cfg["by_id"]
    rd = _Reader(scale, str(results))
    out, gates = {}, {}
    searches, sdense, pending = _eb_searches(rd, spec)
    out["EB-1"] = C.eb_early("EB-1", searches, by["EB-1"], "eb_epoch_vs_p")
    if pending and out["EB-1"].verdict != C.NOT_JUDGED:
        out["EB-1"].reason += f"; {len(pending)} search(es) pending"
    elif not searches:
        out["EB-1"].reason = "no finished [80,120] search in this specification (figure5)"
    gates["EB-1"] = sdense
    out["EB-7"] = C.compare("EB-7", _eb7_rows(rd, spec, searches, by["EB-1"]["ratios"]), None, "(search, p) draws")
    t1_ups = [u for c in table1_cells(scale, spec) for r in c.runs for u in [r.search]] if "table1" in spec else []
    out["EB-2"] = C.compare("EB-2", _table1_rows(rd, spec, fl, n, "final", cfg) + _eb_draw_rows(rd, spec, fl, n))
    gates["EB-2"] = rd.dense(u for u in t1_ups if u.schedule == "80-120")
    t4_ups = [r.search for c in table4_cells(scale, spec) for r in c.runs] if "table4" in spec else []
    out["EB-3"] = C.compare("EB-3", _table1_rows(rd, spec, fl, n, "schedule", cfg) + _table4_rows(rd, spec, fl, n, cfg))
    gates["EB-3"] = rd.dense(t1_ups + t4_ups)
    cells, ref = _table2(rd, spec)
    t2_ups = {r.search for c in cells.values() for r in c.runs}
    settings = sorted({(m, ds, p) for (m, ds, _, p) in cells})
    for cid, arm in (("EB-4", "eb_reinit"), ("EB-5", "eb_lf")):
        rows = []
        for m, ds, p in settings:
            a, b = cells.get((m, ds, arm, p)), cells.get((m, ds, "eb_train", p))
            if a and b:
                rows.append(C.pair_row(f"{m} {ds} p={p:g}: {arm} vs eb_train", rd.stat(a.runs), rd.stat(b.runs), fl, n,
                                       paper=_ref_pair(ref, m, ds, p, arm, "eb_train"),
                                       cells=[_cell("table2", a.id), _cell("table2", b.id)]))
        out[cid] = C.compare(cid, rows)
        gates[cid] = rd.dense(t2_ups)
    rows6, rows6c = [], []
    for m, ds, p in settings:
        eb, base = cells.get((m, ds, "eb_train", p)), [cells[m, ds, b, p] for b in BASELINES if (m, ds, b, p) in cells]
        if not eb or not base:
            continue
        stats = {c.method: rd.stat(c.runs) for c in base}
        have = {k: v for k, v in stats.items() if v is not None}
        best = max(have, key=lambda k: have[k].mean) if have else base[0].method
        rows6.append(C.pair_row(f"{m} {ds} p={p:g}: eb_train vs best baseline ({best})", rd.stat(eb.runs), stats.get(best), fl, n,
                                paper=_ref_pair(ref, m, ds, p, "eb_train", best),
                                cells=[_cell("table2", eb.id), _cell("table2", cells[m, ds, best, p].id)]))
        for c in base:
            for unit, key in (("FLOPs", lambda r: r.paper_flops("train_flops")), ("energy", _energy)):
                pk = "flops_units" if unit == "FLOPs" else "energy_kj"
                pr = ref.get((m, ds, "eb_train", p)), ref.get((m, ds, c.method, p))
                rows6c.append(C.cost_row(f"{m} {ds} p={p:g}: eb_train / {c.method} {unit}", _mean(rd, eb.runs, key),
                                         _mean(rd, c.runs, key), paper=(float(pr[0][pk]) / float(pr[1][pk])) if all(pr) else None,
                                         cells=[_cell("table2", eb.id), _cell("table2", c.id)]))
    out["EB-6"], out["EB-6c"] = C.compare("EB-6", rows6), C.compare("EB-6c", rows6c)
    gates["EB-6"] = rd.dense(t2_ups)
    out["RT-1"], gates["RT-1"] = _rt(rd, spec, "table8", fl, n, cfg)
    out["RT-2"], gates["RT-2"] = _rt(rd, spec, "table9", fl, n, cfg)
    for cid, v in out.items():
        v.figure = v.figure or by[cid].get("figure")
        if not v.rows:  # nothing to compare: the specification leaves its tables out
            v.verdict, v.reason = C.NOT_JUDGED, (f"its cells ({'; '.join(f'{k}: {x}' for k, x in by[cid]['reads'].items())}) "
                                                 "are not in this table specification; benchmarks/claims_tables.yaml lists them")
        elif by[cid].get("needs_learning") and (why := C.not_learned(gates.get(cid, {}), cfg)):
            # near chance, no accuracy comparison means anything; say so first, keep any other reason
            v.reason = why + (f"; also {v.reason}" if v.verdict == C.NOT_JUDGED else "")
            v.verdict = C.NOT_JUDGED
    return {c["id"]: out[c["id"]] for c in cfg["claims"]}, {"searches": searches, "runs": list(rd.runs.values())}


def _ref_pair(ref, m, ds, p, a, b):
    ra, rb = ref.get((m, ds, a, p)), ref.get((m, ds, b, p))
    return (float(ra["acc"]) if ra else None, float(rb["acc"]) if rb else None)


def _rt(rd: _Reader, spec: dict, table: str, fl, n, cfg):
    """RT-1 (Table 8) or RT-2 (Table 9) from the lottery cells: arms' mean and std over seeds."""
    if table not in spec:
        return C.compare("RT-1" if table == "table8" else "RT-2", []), {}
    ref = {}
    for r in C._csv(f"rt_{table}.csv"):
        t = r["pruned_model"].split("-")[-1] if table == "table8" else f"{float(r['ratio']):g}"
        ref[(float(r["lr"]), r["model"], t)] = (float(r["winning_mean"]), float(r["random_mean"]))
    rows, arms, cellmap, ups = [], {}, {}, []
    for c in lottery_cells(rd.scale, table, spec):
        w, r = rd.stat(c.arms.get("winning", ()), "std"), rd.stat(c.arms.get("random", ()), "std")
        ups += list(c.dense)
        links = [_cell(table, f"{c.id}/{arm}") for arm in ("winning", "random")]
        model = {"vgg16l1": "vgg16", "vgg16bn": "vgg16"}.get(c.model, c.model)
        if table == "table8":
            rows.append(C.pair_row(f"LR {c.lr:g} {c.model}-{c.target.upper()}: winning vs random", w, r, fl, n, "agree",
                                   paper=ref.get((c.lr, model, c.target)), cells=links))
        else:
            arms[(c.lr, c.model, float(c.target))], cellmap[(c.lr, c.model, float(c.target))] = (w, r), links
    if table == "table9":
        rows = C.rt2_rows(arms, cfg["by_id"]["RT-2"]["high_sparsity"], fl, n, cellmap)
        for row in rows:  # the paper's pair beside ours, where the row names one LR and ratio
            parts = row["what"].split()
            if parts[0] == "LR":
                m = {"vgg16bn": "vgg16"}.get(parts[2], parts[2])
                row["paper"] = ref.get((float(parts[1]), m, parts[3].rstrip(":")))
    cid = "RT-1" if table == "table8" else "RT-2"
    return C.compare(cid, rows, None, "rows"), rd.dense(dict.fromkeys(ups))


# ---- page ----------------------------------------------------------------------------------------------

def summary(vs: dict) -> dict:
    """Counts of verdicts: the index's and ``methods status``'s line."""
    return {k: sum(v.verdict == k for v in vs.values()) for k in (C.HOLDS, C.FAILS, C.NOT_JUDGED)} | {"total": len(vs)}


def status_line(scale: Scale, results: str, spec: dict | None = None) -> str:
    """``methods status``'s line: "claims: 3 of 10 hold, 1 does not, 6 not judged"."""
    c = summary(verdicts(scale, results, spec)[0])
    return (f"claims: {c['holds']} of {c['total']} hold, {c['does not hold']} do not, "
            f"{c['not judged']} not judged (report/claims.html)")
