"""The papers' conclusions as rules over result numbers (``benchmarks/claims.yaml``, issue 17).

Pure functions: each rule takes the numbers a claim reads (gathered from result files by
``reports.pages.claims``, or from the papers' tables by ``paper_inputs``) and returns a ``Verdict``:
holds, does not hold, or not judged with the reason. Rules are stated in SGD steps, LR phases
and accuracy differences, never in fractions of the total epochs, so a reduced scale (fewer
epochs, shorter phases) is judged by the same rule as the papers' 160 epochs.
"""
from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from methods.base.config import ROOT

CLAIMS_YAML = ROOT / "benchmarks" / "claims.yaml"
REFERENCE = ROOT / "benchmarks" / "reference"
HOLDS, FAILS, NOT_JUDGED = "holds", "does not hold", "not judged"


def load_claims(path=None) -> dict:
    """``benchmarks/claims.yaml``: shared thresholds and the list of claims (by id, in order)."""
    data = yaml.safe_load(Path(path or CLAIMS_YAML).read_text())
    data["by_id"] = {c["id"]: c for c in data["claims"]}
    return data


@dataclass(frozen=True)
class Stat:
    """A group of runs' accuracies: mean, spread (EB: max - min over seeds; RT: std) and count;
    ``left_out``: finished runs not counted (disconnected tickets, ``methods.pruning.ticket``)."""

    mean: float
    spread: float
    n: int
    left_out: int = 0

    @classmethod
    def of(cls, values, how: str = "range", left_out: int = 0) -> "Stat | None":
        vals = [float(v) for v in values if v is not None]
        if not vals:
            return None
        if len(vals) < 2:
            return cls(vals[0], 0.0, 1, left_out)
        spread = max(vals) - min(vals) if how == "range" else statistics.stdev(vals)
        return cls(sum(vals) / len(vals), spread, len(vals), left_out)


@dataclass
class Verdict:
    claim: str
    verdict: str
    reason: str
    rows: list[dict] = field(default_factory=list)  # one per comparison: what, ours, paper, tol, ok
    figure: str | None = None


def learned_threshold(dataset: str, cfg: dict) -> float:
    """Accuracy a dense run must reach for an accuracy claim to mean anything: ``fraction`` of the
    way from chance to the paper's dense accuracy (claims.yaml ``learned``)."""
    lc = cfg["learned"]
    return lc["chance"][dataset] + lc["fraction"] * (lc["paper_dense"][dataset] - lc["chance"][dataset])


def not_learned(dense: dict[str, tuple[str, float]], cfg: dict) -> str | None:
    """Reason an accuracy claim is not judged, or None. ``dense``: name -> (dataset, best_acc)."""
    low = [f"{name} {acc:.1f} % < {learned_threshold(ds, cfg):.1f} %" for name, (ds, acc) in dense.items()
           if acc is None or acc < learned_threshold(ds, cfg)]
    if low:
        return ("dense accuracy too close to chance to mean anything (needs 3/4 of the way from chance to the "
                f"paper's dense accuracy): {'; '.join(low)}")
    return None


def _summarise(claim: str, rows: list[dict], fig: str | None, what: str) -> Verdict:
    """Holds when at least one comparison is judged and none fails; the reason counts them."""
    judged = [r for r in rows if r["ok"] is not None]
    bad = [r for r in judged if not r["ok"]]
    skipped = len(rows) - len(judged)
    tail = f"; {skipped} not judged ({rows[[r['ok'] for r in rows].index(None)]['why']})" if skipped else ""
    if not judged:
        why = rows[0]["why"] if rows else f"no {what} in this specification"
        return Verdict(claim, NOT_JUDGED, why, rows, fig)
    if bad:
        named = "; ".join(r["what"] + (f" ({r['text']})" if r.get("text") else "") for r in bad[:4])
        return Verdict(claim, FAILS, f"{len(bad)} of {len(judged)} {what} fail: {named}" + tail,
                       rows, fig)
    return Verdict(claim, HOLDS, f"all {len(judged)} {what} pass{tail}", rows, fig)


def eb_early(claim: str, searches: list[dict], c: dict, fig=None) -> Verdict:
    """EB-1. ``searches``: one dict per search run: ``name``, ``eb`` {p: epoch or None},
    ``steps_per_epoch``, ``first_decay`` (epoch of the first LR drop) and optionally
    ``dist_after`` {p: max distance from the EB mask to every later mask}.

    A (search, p) passes when the ticket is drawn (1) before the first decay, i.e. in the
    large-LR phase, (2) within ``max_steps`` SGD steps (paper: epochs 10-20 x 196 steps) and
    (3) every later mask is within ``eps`` of it (Figure 3), where the distances are known.
    """
    rows = []
    for s in searches:
        for p in c["ratios"]:
            t = s["eb"].get(p)
            d = (s.get("dist_after") or {}).get(p)
            what = f"{s['name']} p={p:g}"
            if t is None:
                rows.append({"what": what, "text": "no EB epoch", "ok": False, "eb": None, "cells": s.get("cells", [])})
                continue
            steps = t * s["steps_per_epoch"]
            ok = t < s["first_decay"] and steps <= c["max_steps"] and (d is None or d < c["eps"])
            note = (f"epoch {t} = {steps:,} steps, first decay at {s['first_decay']}"
                    + ("" if d is None else f", max later distance {d:.3f}"))
            rows.append({"what": what, "text": note, "ok": ok, "eb": t, "steps": steps, "ratio": p, "dist": d,
                         "first_decay": s["first_decay"], "run": s["name"], "cells": s.get("cells", []),
                         "paper": "epochs 10-20 = 1,960-3,920 steps, first decay at 80 (15,680 steps)"})
    return _summarise(claim, rows, fig, "(search, p) tickets")


def paper_draw(draw: str, scale_epoch: int, steps_per_epoch: int, cfg: dict) -> tuple[int | None, int]:
    """(The paper's early draw epoch this draw matches in SGD steps, or None; its steps). A draw at
    epoch ``scale_epoch`` of ``steps_per_epoch`` steps matches paper epoch e when its steps are within
    ``tolerance`` of e x 196 (claims.yaml ``early_draws``)."""
    ed = cfg["early_draws"]
    steps = scale_epoch * steps_per_epoch
    if draw in ("final", "best", "eb"):
        return None, steps
    match = [e for e in ed["paper"] if abs(steps - e * ed["steps_per_epoch"]) <= ed["tolerance"] * e * ed["steps_per_epoch"]]
    return (match[0] if match else None), steps


def pair_row(what: str, a, b, floor: float, min_n: int, how: str = "at_least", paper=None, cells=()) -> dict:
    """One comparison of group ``a`` against ``b`` (``Stat``), tolerance = max(larger spread, floor).

    ``at_least``: a.mean >= b.mean - tol; ``agree``: |a - b| <= tol; ``beats``: a - b > tol;
    ``not_beats``: a - b <= tol. Not judged (ok None) when a group is missing or has < min_n runs.
    """
    row = {"what": what, "a": a, "b": b, "paper": paper, "cells": list(cells), "ok": None, "diff": None, "tol": None}
    if a is None or b is None:
        row["why"] = f"{what}: runs missing"
        return row
    if min(a.n, b.n) < min_n:
        why, out = f"fewer than {min_n} seeds for a spread rule (have {min(a.n, b.n)})", a.left_out + b.left_out
        row["why"] = (f"{why}: {out} disconnected ticket(s) left out; train more seeds" if out
                      else f"{why}; list more seeds in the scale")
        return row
    diff, tol = a.mean - b.mean, max(a.spread, b.spread, floor)
    ok = {"at_least": diff >= -tol, "agree": abs(diff) <= tol, "beats": diff > tol, "not_beats": diff <= tol}[how]
    row.update(diff=diff, tol=tol, ok=ok, how=how)
    return row


def compare(claim: str, rows: list[dict], fig=None, what: str = "comparisons") -> Verdict:
    """EB-2..6, RT-1, RT-2: the rows are ``pair_row`` comparisons built by the gatherer."""
    return _summarise(claim, rows, fig, what)


def cost_row(what: str, ours: float | None, ref: float | None, paper=None, cells=()) -> dict:
    """EB-6c, EB-7: ours / ref < 1 (strictly cheaper). No spread, no learning needed: a cost is
    fixed by the architectures and epochs that ran."""
    row = {"what": what, "a": ours, "b": ref, "paper": paper, "cells": list(cells), "ok": None, "diff": None, "tol": None}
    if ours is None or ref is None or not ref:
        row["why"] = f"{what}: runs missing"
        return row
    row.update(diff=ours / ref, ok=ours / ref < 1, how="ratio < 1")
    return row


# ---- the papers' own numbers, through the same rules -------------------------------------------------

def _csv(name: str) -> list[dict]:
    with open(REFERENCE / name, newline="") as f:
        return list(csv.DictReader(f))


def paper_stat(mean, std=0.0, n=3) -> Stat:
    """A paper's number: EB prints means of 3 runs only (spread 0 here, so the floor applies);
    RT prints mean and std of 5."""
    return Stat(float(mean), float(std), n)


def paper_verdicts(cfg: dict | None = None) -> dict[str, Verdict]:
    """Every claim judged on ``benchmarks/reference/*.csv`` (and EB's stated EB epochs for EB-1)."""
    cfg = cfg or load_claims()
    fl, by = cfg["min_tolerance_pp"], cfg["by_id"]
    t1 = {(r["model"], r["dataset"], r["schedule"], r["draw"]): float(r["acc"]) for r in _csv("eb_table1.csv")}
    t4 = {(r["model"], r["dataset"], float(r["lr"]), r["draw"]): float(r["acc"]) for r in _csv("eb_table4.csv")}
    t2 = {(r["model"], r["dataset"], r["method"], float(r["ratio"])): r for r in _csv("eb_table2.csv")}
    out = {}
    # EB-1: the paper states tickets at epochs 10-20 of 160 (196 steps each), decay at 80; Figure 3's
    # distances are an image, not transcribed, so only the epoch and step conditions are checked.
    out["EB-1"] = eb_early("EB-1", [{"name": f"paper (EB epoch {t})", "eb": {p: t for p in by["EB-1"]["ratios"]},
                                     "steps_per_epoch": 196, "first_decay": 80} for t in (10, 20)], by["EB-1"])
    rows2, rows3 = [], []
    for (m, ds, sched, draw), acc in t1.items():
        if sched == "80-120" and draw in ("10", "20"):
            rows2.append(pair_row(f"{m} {ds} draw {draw} vs final", paper_stat(acc),
                                  paper_stat(t1[m, ds, sched, "final"]), fl, 2))
            rows3.append(pair_row(f"{m} {ds} draw {draw}: [80,120] vs [0,100]", paper_stat(acc),
                                  paper_stat(t1[m, ds, "0-100", draw]), fl, 2))
    for (m, ds, lr, draw), acc in t4.items():
        if lr != 0.1 and draw in ("10", "20"):
            rows3.append(pair_row(f"{m} {ds} draw {draw}: LR {lr:g} vs 0.1", paper_stat(acc),
                                  paper_stat(t4[m, ds, 0.1, draw]), fl, 2))
    out["EB-2"], out["EB-3"] = compare("EB-2", rows2), compare("EB-3", rows3)
    settings = sorted({(m, ds, p) for (m, ds, _, p) in t2})
    for cid, arm in (("EB-4", "eb_reinit"), ("EB-5", "eb_lf")):
        out[cid] = compare(cid, [pair_row(f"{m} {ds} p={p:g}: {arm} vs eb_train", paper_stat(t2[m, ds, arm, p]["acc"]),
                                          paper_stat(t2[m, ds, "eb_train", p]["acc"]), fl, 2) for m, ds, p in settings])
    base = ("lt_oneshot", "snip", "ns", "thinet")
    rows6, rows6c = [], []
    for m, ds, p in settings:
        best = max(base, key=lambda b: float(t2[m, ds, b, p]["acc"]))
        rows6.append(pair_row(f"{m} {ds} p={p:g}: eb_train vs {best}", paper_stat(t2[m, ds, "eb_train", p]["acc"]),
                              paper_stat(t2[m, ds, best, p]["acc"]), fl, 2))
        for b in base:
            for key, unit in (("flops_units", "FLOPs"), ("energy_kj", "energy")):
                rows6c.append(cost_row(f"{m} {ds} p={p:g}: eb_train / {b} {unit}", float(t2[m, ds, "eb_train", p][key]),
                                       float(t2[m, ds, b, p][key])))
    out["EB-6"], out["EB-6c"] = compare("EB-6", rows6), compare("EB-6c", rows6c)
    # EB-7 from Table 2: EB Train (draw at the EB epoch) vs NS (draw at the final epoch, then fine-tune).
    out["EB-7"] = compare("EB-7", [cost_row(f"{m} {ds} p={p:g}: eb_train / ns FLOPs",
                                            float(t2[m, ds, "eb_train", p]["flops_units"]),
                                            float(t2[m, ds, "ns", p]["flops_units"])) for m, ds, p in settings])
    t8 = _csv("rt_table8.csv")
    out["RT-1"] = compare("RT-1", [pair_row(f"LR {r['lr']} {r['pruned_model']}",
                                            paper_stat(r["winning_mean"], r["winning_std"], 5),
                                            paper_stat(r["random_mean"], r["random_std"], 5), fl, 2, "agree") for r in t8])
    out["RT-2"] = compare("RT-2", rt2_rows({(float(r["lr"]), r["model"], float(r["ratio"])):
                                            (paper_stat(r["winning_mean"], r["winning_std"], 5),
                                             paper_stat(r["random_mean"], r["random_std"], 5)) for r in _csv("rt_table9.csv")},
                                           by["RT-2"]["high_sparsity"], fl, 2))
    return out


def rt2_rows(arms: dict, high: float, floor: float, min_n: int, cells=None) -> list[dict]:
    """RT-2's comparisons from ``{(lr, model, ratio): (winning Stat, random Stat)}``: winning beats
    random at LR 0.01 and ratio >= ``high``; never beats it at LR 0.1; the better arm at LR 0.1
    beats the better arm at LR 0.01 at each ratio."""
    cells = cells or {}
    rows = []
    for (lr, m, p), (w, r) in sorted(arms.items()):
        c = cells.get((lr, m, p), ())
        if math.isclose(lr, 0.01) and p >= high:
            rows.append(pair_row(f"LR 0.01 {m} {p:g}: winning beats random", w, r, floor, min_n, "beats", cells=c))
        if math.isclose(lr, 0.1):
            rows.append(pair_row(f"LR 0.1 {m} {p:g}: winning does not beat random", w, r, floor, min_n, "not_beats", cells=c))
            lo = arms.get((0.01, m, p))
            if lo:
                best_hi = max((x for x in (w, r) if x), key=lambda x: x.mean, default=None)
                best_lo = max((x for x in lo if x), key=lambda x: x.mean, default=None)
                rows.append(pair_row(f"{m} {p:g}: LR 0.1 beats LR 0.01 (better arm)", best_hi, best_lo, floor, min_n, "beats",
                                     cells=c + cells.get((0.01, m, p), ())))
    return rows
