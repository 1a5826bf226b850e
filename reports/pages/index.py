"""Index page: every report page with its completeness and, for the tables, the distance to the paper.

Completeness is recomputed from the run folders (not read from the other pages), so the
index is right even when it is built before or without them.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from methods.runs.cells import built_tables, load_tables
from methods.base.config import Scale
from methods.base.tables import TABLES

from reports.pages import fidelity
from reports.common import generic_index_entry, provenance, render, scale_note
from reports.io import write_text


def pages(scale: Scale, results: str, spec: dict) -> tuple[list[dict], list]:
    """One entry per page: name, file, what it shows, done/total units and runs; and every run read.

    The tables are the registered ones the specification builds (``methods.base.tables.TABLES``), each
    by its ``index`` function (``reports.common.generic_index_entry`` for a table without one).
    """
    out, read = [], []
    for t in built_tables(spec):
        fn = TABLES[t].get("index")
        entry, runs = fn(scale, results, spec) if fn else generic_index_entry(scale, results, spec, t)
        out.append(entry)
        read += runs
    out.append({"name": "Fidelity", "file": "fidelity.html", "unit": "differences", "done": len(fidelity.load()),
                "total": len(fidelity.load()),
                "what": "where our defaults differ from the papers and their official code, with the option for each",
                "runs_done": None, "runs_total": None, "mean_abs_diff": None, "n_compared": 0, "csv": None})
    # Runs shared between pages (Table 1's [80,120] searches feed Figure 1 too) count once.
    return out, list({str(r.path): r for r in read}.values())


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
