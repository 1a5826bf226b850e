"""Claims page (``report/claims.html``, ``tables/claims.csv``): each paper conclusion judged at this scale.

Shows the verdict of each claim of ``benchmarks/claims.yaml`` (``methods.workflow.verdicts``, from the result
files of the cells in the table specification) beside the same rule applied to the papers' own
numbers. Reads only ``result.json`` and ``history.npz``, so it builds from a folder of committed
results (``benchmarks/evidence/mid``).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from methods.base import claims as C
from methods.base.config import Scale
from methods.workflow.verdicts import status_line, summary, verdicts  # noqa: F401 (status_line: the page's CLI users)

from reports.common import provenance, render, scale_note
from reports.io import write_figure, write_text

def _fmt(x, pct=True):
    if x is None:
        return "–"
    if isinstance(x, C.Stat):
        return f"{x.mean:.2f} ±{x.spread:.2f} (n={x.n})" if x.n > 1 else f"{x.mean:.2f} (n=1)"
    return f"{x:.2f}" if pct else f"{x:.3f}"


def _row_view(row: dict, report: Path) -> dict:
    links = []
    for table, cid in dict.fromkeys(map(tuple, row.get("cells", []))):
        page = report / "cells" / table / f"{cid.replace('/', '_')}.html"
        links.append({"text": f"{table} {cid}", "href": f"cells/{table}/{page.name}" if page.is_file() else None,
                      "table": f"{table}.html" if (report / f"{table}.html").is_file() else None})
    if "text" in row:  # EB-1: the draw in epochs and steps
        return {"what": row["what"], "ours": row["text"], "paper": row.get("paper") or "–", "links": links, "why": "",
                "ok": {True: "pass", False: "fail", None: "not judged"}[row["ok"]]}
    ours = (f"{_fmt(row['a'], False)} / {_fmt(row['b'], False)} = {row['diff']:.2f}"
            if row.get("how") == "ratio < 1" and row["diff"] is not None
            else f"{_fmt(row['a'])} vs {_fmt(row['b'])}"
            + (f" (diff {row['diff']:+.2f}, tol {row['tol']:.2f})" if row["diff"] is not None else ""))
    p = row.get("paper")
    paper = "–" if p is None else (f"ratio {p:.2f}" if isinstance(p, float) else f"{_fmt(p[0])} vs {_fmt(p[1])}")
    ok = {True: "pass", False: "fail", None: "not judged"}[row["ok"]]
    return {"what": row["what"], "ours": ours, "paper": paper, "ok": ok, "links": links, "why": row.get("why", "")}


def _figures(vs: dict, extras: dict, report: Path) -> dict:
    from reports.plotting import plt

    figs = {}
    ss = extras["searches"]
    if ss:
        fig, ax = plt.subplots(figsize=(4.2, 3.0))
        for s in ss:
            ps = sorted(p for p, t in s["eb"].items() if t is not None)
            ax.plot(ps, [s["eb"][p] * s["steps_per_epoch"] / 1000 for p in ps], "o-",
                    label=f"{s['model']} {s['dataset']} s{s['seed']}")
            ax.axhline(s["first_decay"] * s["steps_per_epoch"] / 1000, color="grey", ls="--", lw=0.8)
        ax.axhspan(10 * 196 / 1000, 20 * 196 / 1000, color="tab:green", alpha=0.15, label="paper: epochs 10-20")
        ax.set(xlabel="pruning ratio p", ylabel="EB draw (thousand SGD steps)", title="EB-1: draw vs first decay (dashed)")
        ax.legend(fontsize=6)
        fig.tight_layout()
        write_figure(report / "claims_eb1.png", fig)
        plt.close(fig)
        figs["EB-1"] = "claims_eb1.png"
    for cid in ("RT-1", "RT-2"):
        rows = [r for r in vs[cid].rows if r["diff"] is not None and "winning" in r["what"]]
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(4.6, 3.0))
        ax.errorbar(range(len(rows)), [r["diff"] for r in rows], yerr=[r["tol"] for r in rows], fmt="o", capsize=3)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(range(len(rows)), [r["what"].split(":")[0] for r in rows], rotation=60, ha="right", fontsize=6)
        ax.set(ylabel="winning - random (pp), bar = tol", title=f"{cid}: winning minus random")
        fig.tight_layout()
        write_figure(report / f"claims_{cid.lower()}.png", fig)
        plt.close(fig)
        figs[cid] = f"claims_{cid.lower()}.png"
    return figs


def build(scale: Scale, results: str, data_root: str | None = None, spec: dict | None = None) -> dict:
    """Write ``report/claims.html`` (+ figures) and ``tables/claims.csv``; return the verdict counts."""
    cfg = C.load_claims()
    vs, extras = verdicts(scale, results, spec, cfg)
    paper = C.paper_verdicts(cfg)
    report = Path(results) / "report"
    figs = _figures(vs, extras, report)
    claims = [{**c, "v": vs[c["id"]], "pv": paper.get(c["id"]), "fig": figs.get(c["id"]),
               "rows": [_row_view(r, report) for r in vs[c["id"]].rows]} for c in cfg["claims"]]
    csv = pd.DataFrame([{"claim": c["id"], "paper": c["paper"], "title": c["title"], "verdict": c["v"].verdict,
                         "reason": c["v"].reason, "paper_numbers_verdict": c["pv"].verdict if c["pv"] else None,
                         "scale": scale.name} for c in claims])
    write_text(Path(results) / "tables" / "claims.csv", csv.to_csv(index=False))
    html = render("claims.html", title="The papers' claims at this scale", scale=scale,
                  prov=provenance(extras["runs"], data_root), scale_note=scale_note(scale), claims=claims, counts=summary(vs),
                  cfg=cfg, reduced=scale.name != "full")
    write_text(report / "claims.html", html)
    return summary(vs)
