"""RT Tables 8 and 9: winning ticket vs random init, laid out as the paper's tables.

One table per initial LR ((a) 0.1, (b) 0.01); rows model x pruned model (Table 8) or pruning
ratio (Table 9); columns unpruned, winning ticket, random init, each ``best_acc`` (best test
top-1 over epochs, REFERENCE.md section 1) as mean (sample std) over seeds beside the paper's
mean (std). The better arm of a row is in bold as in the paper (both on a tie), ours and the
paper's each by their own means. Each LR ends in a line stating whether the paper's conclusion
(its caption) holds in our runs, judged by the rule ``verdict`` documents.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path

import pandas as pd

from methods.runs.cells import load_tables, lottery_cells
from methods.base.config import ROOT, Scale

from reports.pages import cellpage
from reports.common import (Result, MODEL_NAMES, bf16, load_run, provenance, rel, render, scale_note, table_index_entry,
                            ticket_flag)
from reports.io import write_text

PAPER_CSV = {"table8": ROOT / "benchmarks" / "reference" / "rt_table8.csv",
             "table9": ROOT / "benchmarks" / "reference" / "rt_table9.csv"}
#: Our registry names of the RT models -> the reference CSVs' model ids.
PAPER_MODEL = {"vgg16l1": "vgg16", "vgg16bn": "vgg16", "resnet56": "resnet56", "resnet110": "resnet110",
               "resnet50": "resnet50"}
MODEL_LABEL = MODEL_NAMES  # "VGG-16", "ResNet-56" (methods.models)
#: The paper's conclusion per (table, LR), from its captions: "tie" = the winning ticket brings
#: no improvement over random init; "winning" = it does (Table 9 (b) only).
CLAIMS = {("table8", 0.1): "tie", ("table8", 0.01): "tie", ("table9", 0.1): "tie", ("table9", 0.01): "winning"}
CAPTIONS = {
    "table8": "Liu et al. 2019, Table 8: L1-norm filter pruning (Li et al. 2017). &ldquo;In both cases, using winning "
              "tickets does not bring improvement on accuracy.&rdquo;",
    "table9": "Liu et al. 2019, Table 9: one-shot unstructured magnitude pruning (Han et al. 2015). &ldquo;Using the "
              "winning ticket as initialization only brings improvement when the learning rate is small (0.01).&rdquo;",
}
COLUMNS = ["table", "lr", "model", "target", "n_dense", "n_winning", "n_random", "n_expected", "unpruned_mean",
           "unpruned_std", "winning_mean", "winning_std", "random_mean", "random_std", "paper_unpruned_mean",
           "paper_unpruned_std", "paper_winning_mean", "paper_winning_std", "paper_random_mean", "paper_random_std",
           "diff_winning", "diff_random", "better", "paper_better", "relation", "paper_relation", "params_mean",
           "flops_mean", "flops_paper_mean", "flop_reduction_mean", "weight_density_mean", "bf16", "ticket_flag_winning",
           "ticket_flag_random"]


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; NaN below two values) of accuracies (%)."""
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def relation(w: float, sw: float, r: float, sr: float) -> str:
    """How the arms of a row compare: "winning" / "random" when one mean exceeds the other by more
    than the larger of the two stds, "tie" when within each other's spread, "unknown" without a
    spread (one seed) or a value."""
    if any(math.isnan(v) for v in (w, r, sw, sr)):
        return "unknown"
    gap = max(sw, sr)
    return "winning" if w - r > gap else "random" if r - w > gap else "tie"


def better(w: float, r: float) -> str:
    """The arm the paper would bold: the higher mean, "both" on a tie (as its ResNet-110-A row)."""
    if math.isnan(w) or math.isnan(r):
        return ""
    return "both" if round(w, 2) == round(r, 2) else "winning" if w > r else "random"


def verdict(rows: list[dict], claim: str) -> dict:
    """Whether the paper's conclusion for one LR holds in ``rows`` (their ``relation``).

    "tie" holds when no row has the winning ticket ahead by more than the spread; "winning" when
    more than half the rows have it ahead. Undetermined while a row lacks a spread (fewer than two
    seeds per arm) or results. Returns ``{"holds": True/False/None, "counts": {...}, "text": ...}``.
    """
    counts = {k: sum(r["relation"] == k for r in rows) for k in ("winning", "tie", "random", "unknown")}
    n = len(rows)
    if counts["unknown"]:
        holds = None
    elif claim == "tie":
        holds = counts["winning"] == 0
    else:
        holds = counts["winning"] > n / 2
    said = ("the winning ticket brings no improvement over random init" if claim == "tie"
            else "the winning ticket improves on random init")
    tally = (f"winning ticket ahead beyond the spread in {counts['winning']} of {n} rows, within each other's spread in "
             f"{counts['tie']}, random init ahead in {counts['random']}")
    if holds is None:
        text = (f"Paper: {said}. Not judged in our runs: {counts['unknown']} of {n} rows have fewer than two finished seeds "
                f"per arm, so no spread (the scale's seeds; the full scale has five).")
    else:
        text = f"Paper: {said}. In our runs this {'holds' if holds else 'does not hold'}: {tally}."
    return {"holds": holds, "counts": counts, "text": text}


def load_paper(table: str) -> dict:
    """``(lr, model id, target) -> row`` of the transcribed paper table (strings as printed)."""
    path = PAPER_CSV[table]
    if not path.is_file():
        return {}
    df = pd.read_csv(path, dtype=str)
    key = "pruned_model" if table == "table8" else "ratio"
    return {(float(r["lr"]), r["model"], r[key]): {k: float(v) for k, v in r.items() if k.endswith(("_mean", "_std"))}
            for r in df.to_dict("records")}


def _paper_key(table: str, model: str, target: str) -> str:
    return f"{PAPER_MODEL.get(model, model)}-{target}" if table == "table8" else f"{float(target):g}"


def collect(scale: Scale, results: str, table: str, spec: dict | None = None):
    """Row dicts (one per table row), run rows (one per expected run) and the loaded runs."""
    paper = load_paper(table)
    rows, run_rows, all_runs, dense_seen = [], [], [], {}
    for cell in lottery_cells(scale, table, spec):
        dense = [load_run(d.path(results), scale) for d in cell.dense]
        arms = {arm: [load_run(r.path(results), scale) for r in runs] for arm, runs in cell.arms.items()}
        dense_seen.update({str(run.path): run for run in dense})
        all_runs += [r for runs in arms.values() for r in runs]
        # a refused (disconnected) ticket has no accuracy (tables.yaml refuse_disconnected)
        acc = {arm: [r.result.best_acc for r in runs if r.done and r.result.best_acc is not None]
               for arm, runs in arms.items()}
        (um, us), (wm, ws), (rm, rs) = (mean_std([r.result.best_acc for r in dense if r.done]),
                                        mean_std(acc.get("winning", [])), mean_std(acc.get("random", [])))
        ref = paper.get((cell.lr, PAPER_MODEL.get(cell.model, cell.model), _paper_key(table, cell.model, cell.target)), {})
        p = {k: ref.get(k, math.nan) for k in ("unpruned_mean", "unpruned_std", "winning_mean", "winning_std",
                                                "random_mean", "random_std")}
        done = [r.result for runs in arms.values() for r in runs if r.done and r.result.trained]

        def avg(key):
            vals = [key(r) for r in done]
            return sum(vals) / len(vals) if vals else math.nan

        rows.append({"id": cell.id, "table": table, "lr": cell.lr, "model": cell.model, "target": cell.target,
                     "n_dense": sum(r.done for r in dense), "n_winning": len(acc.get("winning", [])),
                     "n_random": len(acc.get("random", [])), "n_expected": len(cell.dense),
                     "bf16": bf16([*dense, *(r for runs in arms.values() for r in runs)]),
                     **{f"ticket_flag_{arm}": ticket_flag(runs) for arm, runs in arms.items()},
                     "unpruned_mean": um, "unpruned_std": us, "winning_mean": wm, "winning_std": ws,
                     "random_mean": rm, "random_std": rs, **{f"paper_{k}": v for k, v in p.items()},
                     "diff_winning": wm - p["winning_mean"], "diff_random": rm - p["random_mean"],
                     "better": better(wm, rm), "paper_better": better(p["winning_mean"], p["random_mean"]),
                     "relation": relation(wm, ws, rm, rs),
                     "paper_relation": relation(p["winning_mean"], p["winning_std"], p["random_mean"], p["random_std"]),
                     "params_mean": avg(lambda r: r.cx("params")),
                     "flops_mean": avg(lambda r: r.cx("flops")),
                     # official-counter convention (conv + linear for results written before it)
                     "flops_paper_mean": avg(lambda r: r.paper_flops("flops")),
                     "flop_reduction_mean": avg(lambda r: r.flop_reduction),
                     "weight_density_mean": avg(lambda r: r.weight_density)})
        for arm, runs in arms.items():
            for spec_run, run in zip(cell.arms[arm], runs):
                res = run.result or Result()
                run_rows.append({"lr": cell.lr, "model": cell.model, "target": cell.target, "arm": arm,
                                 "seed": spec_run.dense.seed, "status": run.status, "path": run.path / "result.json",
                                 "best_acc": res.get("best_acc", math.nan), "final_acc": res.get("final_acc", math.nan),
                                 "dense_acc": res.get("dense_best_acc", math.nan),
                                 "params": res.cx("params"),
                                 "flops": res.cx("flops"),
                                 "flops_paper": res.cx("flops_paper"),
                                 "density": res.get("weight_density", math.nan)})
    return rows, run_rows, all_runs + list(dense_seen.values())


def summary(rows: list[dict]) -> dict:
    """Rows done (every seed of both arms and the dense runs), runs done/expected, mean |ours -
    paper| over both arms of the rows with results, and how many of those arms sit within the
    paper's std of its mean (``n_inside``; RT prints mean +- std over 5 runs)."""
    arms = [(r, a) for r in rows for a in ("winning", "random") if not math.isnan(r[f"diff_{a}"])]
    diffs = [abs(r[f"diff_{a}"]) for r, a in arms]
    n_inside = sum(abs(r[f"diff_{a}"]) <= r[f"paper_{a}_std"] and not r.get(f"ticket_flag_{a}") for r, a in arms)
    return {"cells_done": sum(r["n_winning"] == r["n_random"] == r["n_expected"] == r["n_dense"] for r in rows),
            "cells_total": len(rows),
            "runs_done": sum(r["n_winning"] + r["n_random"] for r in rows),
            "runs_total": sum(2 * r["n_expected"] for r in rows),  # the two arms; dense runs are listed apart
            "mean_abs_diff": sum(diffs) / len(diffs) if diffs else math.nan, "n_compared": len(diffs),
            "n_inside": n_inside}


def target_label(table: str, model: str, target: str) -> str:
    """"ResNet-56-B" (Table 8) or "95%" (Table 9)."""
    if table == "table8":
        return f"{MODEL_LABEL.get(model, model)}-{target.upper()}"
    return f"{100 * float(target):g}%"


def build(scale: Scale, results: str, table: str, data_root: str | None = None, spec: dict | None = None) -> dict:
    """Write ``tables/<table>.csv`` and ``report/<table>.html``; return the summary."""
    spec = spec or load_tables()
    results = str(results)
    report = Path(results) / "report"
    rows, run_rows, all_runs = collect(scale, results, table, spec)
    write_text(Path(results) / "tables" / f"{table}.csv", pd.DataFrame(rows, columns=COLUMNS).to_csv(index=False))
    s = spec[table]
    blocks = []
    for lr in s["lrs"]:
        lr_rows = [r for r in rows if r["lr"] == lr]
        for r in lr_rows:
            r["label"] = target_label(table, r["model"], r["target"])
        groups = []
        for r in lr_rows:
            if groups and groups[-1]["model"] == r["model"]:
                groups[-1]["rows"].append(r)
            else:
                groups.append({"model": r["model"], "label": MODEL_LABEL.get(r["model"], r["model"]), "rows": [r]})
        claim = CLAIMS.get((table, lr), "tie")
        blocks.append({"lr": lr, "groups": groups, "verdict": verdict(lr_rows, claim),
                       "paper_verdict": verdict([{**r, "relation": r["paper_relation"]} for r in lr_rows], claim)})
    for r in run_rows:
        r["link"] = rel(r["path"], report) if r["status"] == "done" else None
        r["label"] = target_label(table, r["model"], r["target"])
    seeds = scale.seeds_for(s["runs"])
    title = ("RT Table 8: winning ticket vs random init, L1-norm filter pruning" if table == "table8"
             else "RT Table 9: winning ticket vs random init, one-shot magnitude pruning")
    html = render("lottery.html", title=title, scale=scale, prov=provenance(all_runs, data_root),
                  scale_note=scale_note(scale), table=table, spec=s, blocks=blocks, runs=run_rows, summary=summary(rows),
                  seeds=seeds, caption=CAPTIONS[table], paper_csv=PAPER_CSV[table].relative_to(ROOT).as_posix(),
                  has_paper=PAPER_CSV[table].is_file())
    write_text(report / f"{table}.html", html)
    cellpage.build_all(scale, results, table, spec, data_root,
                       {f"{r['id']}/{a}": {"ours": r[f"{a}_mean"], "paper": r[f"paper_{a}_mean"], "diff": r[f"diff_{a}"]}
                        for r in rows for a in ("winning", "random")})
    return summary(rows)


def index_entry(scale: Scale, results: str, spec: dict, table: str) -> tuple[dict, list]:
    """The index line (``methods.base.tables.TableDef.index``): rows done, and the runs read."""
    rows, _, runs = collect(scale, results, table, spec)
    return table_index_entry(table, summary(rows), "rows"), runs
