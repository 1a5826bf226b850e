"""Command line: ``python -m reports PAGE --scale S --results results/S [--data-root D]``.

PAGE is table1, table2, table4, figure1, figure2, figure3, figure5, table8, table9, fidelity, claims, index (or all).
Outputs, relative to ``--results``: table1 and table4 -> tables/tableN.csv, report/tableN.html; table2 -> tables/table2.csv,
tables/table2_improv.csv, report/table2.html; figure1 and figure2 -> tables/figureN.csv,
report/figureN.png, report/figureN.html (figure5 likewise); fidelity -> report/fidelity.html; table8 and table9 ->
tables/tableN.csv, report/tableN.html; figure3 -> report/figure3.png, report/figure3.html
(+ tables/figure3.csv); claims -> report/claims.html, tables/claims.csv; index -> report/index.html. Table pages also write
their cell pages, report/cells/<table>/<cell>.html. Bad input ends with one line on stderr
and exit status 2.
"""
from __future__ import annotations

import argparse
import sys
import warnings

from methods.base.inputs import OneLineParser

from reports import page_names


def parser() -> argparse.ArgumentParser:
    ap = OneLineParser(prog="python -m reports", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("page", choices=[*page_names(), "all"], help="page to build ('all' builds every page, index last)")
    ap.add_argument("--scale", required=True, help="benchmarks/scales/<scale>.yaml (full, smoke, tiny)")
    ap.add_argument("--results", required=True, help="results tree of that scale, e.g. results/tiny")
    ap.add_argument("--tables", default=None, help="table specification (default benchmarks/tables.yaml)")
    ap.add_argument("--data-root", default=None,
                    help="data root to state on the pages (default: the data_root the runs were trained with)")
    return ap


def build(page: str, scale, results: str, data_root: str | None = None, spec: dict | None = None):
    """Build one page: a registered table's ``TableDef.page`` (imported per page, so the index does
    not pull in seaborn), or ``reports.<page>.build``."""
    from importlib import import_module

    from methods.base.tables import TABLES

    fn = TABLES[page].get("page") if page in TABLES else import_module(f"reports.pages.{page}").build
    return fn(scale, results, data_root, spec)


def main(argv=None) -> int:
    from methods.base.config import ConfigError
    from methods.base.plugins import load_configured

    try:
        load_configured()  # a plug-in's tables are pages, its models and methods rows (methods.base.plugins)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args = parser().parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)
    import torch

    # Pages trace small graphs (fvcore FLOPs of drawn tickets, figure5 and claims) beside training jobs:
    # one intra-op thread, as a second one only oversubscribes the cores Snakemake gave those jobs.
    torch.set_num_threads(1)
    from methods.runs.cells import built_tables, load_tables
    from methods.base.tables import TABLES
    from methods.base.config import ConfigError, load_scale
    from methods.base.io import CorruptFile

    from reports import common

    common.TABLES_PATH = args.tables

    try:
        scale = load_scale(args.scale)
        spec = load_tables(args.tables)
        skip = set(TABLES) - set(built_tables(spec))  # left out of the specification, or without models
        if args.page in skip:
            raise ConfigError(f"{args.page} is not in the table specification {args.tables or 'benchmarks/tables.yaml'} "
                              f"(or lists no models); add it there, or build another page")
        for page in [p for p in page_names() if p not in skip] if args.page == "all" else [args.page]:
            out = build(page, scale, args.results, args.data_root, spec)
            if page == "index":  # one line per page: "Table 1: 2/32 cells"
                out = ", ".join(f"{p['name']}: {p['done']}/{p['total']} {p['unit']}" for p in out)
            print(f"{page}: {out}")
    except (ConfigError, CorruptFile, FileNotFoundError, ValueError) as e:  # ConfigError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
