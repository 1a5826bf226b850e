"""Registry of the pages that have cells: the papers' tables and figures, and a plug-in's own.

One ``TableDef`` per page says everything the suite needs: the specification schema (its key in
``tables.yaml``), how a specification expands into cells (``methods.runs.cells.Cell``), which stage
trains the cells' runs, the page builder and its files, its title and index line. The Snakefile
(training and report rules, targets), ``methods status``, ``methods rerun``, the index and the
cell pages iterate over ``TABLES``; adding a table is one ``register_table`` call (README,
"Extending"; a plug-in module, ``methods.base.plugins``).

Callables may be given as ``"module:attribute"`` strings, imported when first used, so that this
module imports nothing of the suite and every layer can read the registry.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

#: Table names are specification keys, page file names and rule names.
NAME = re.compile(r"[a-z][a-z0-9_]*")
#: Pages without cells, built after every table (``reports``).
OTHER_PAGES = ("fidelity", "claims", "index")
STAGES = ("retrain", "lottery", "search")


def resolve(ref: Any) -> Any:
    """``ref`` itself, or the object a ``"module:attribute"`` string names."""
    if isinstance(ref, str):
        module, _, attr = ref.partition(":")
        return getattr(importlib.import_module(module), attr)
    return ref


@dataclass(frozen=True)
class TableDef:
    """A page with cells.

    ``name``: its key in the specification and its page (``report/<name>.html``). ``title``: as
    printed ("EB Table 1"); ``what``: its index line. ``schema``: a pydantic model of its
    specification block (``methods.runs.spec``). ``cells(scale, spec, name) -> list[Cell]`` in the
    paper's order. ``stage``: what trains a cell's own runs, "retrain" (``RetrainRun`` from a
    search), "lottery" (``LotteryRun`` from a dense run) or "search" (the page reads searches
    only). ``page(scale, results, data_root, spec) -> dict``: writes the page, its CSV and its cell
    pages (``reports.pages.cellpage.build_all``) and returns a summary. ``outputs``: its files relative
    to the results tree, ``{name}`` filled in. ``extra_inputs(scale, spec, results) -> [paths]``:
    files it reads beyond its cells' and their upstream runs' ``result.json``. ``prunes(block) ->
    [(field, method, model)]``: the pruning each cell asks for, checked against the methods'
    rules before anything trains (``methods.pruning.registry.check_supported``). ``index(scale, results,
    spec) -> (entry, runs)``: its index line and the runs it read (None: cells done/total).
    """

    name: str
    title: str
    what: str
    schema: Any
    cells: Any
    stage: str
    page: Any
    outputs: tuple[str, ...] = ("tables/{name}.csv", "report/{name}.html")
    extra_inputs: Any = None
    prunes: Any = None
    index: Any = None

    def get(self, field: str) -> Any:
        """The field's callable or class, imported if it was given as a string."""
        return resolve(getattr(self, field))

    def files(self) -> list[str]:
        return [o.format(name=self.name) for o in self.outputs]


TABLES: dict[str, TableDef] = {}


def register_table(table: TableDef) -> TableDef:
    """Add a page with cells to the registry.

    Raises:
        ValueError: a bad or taken name, or an unknown stage.
    """
    if not NAME.fullmatch(table.name) or table.name in OTHER_PAGES:
        raise ValueError(f"table name {table.name!r} must be lowercase letters, digits and _ and not one of {OTHER_PAGES}")
    if table.name in TABLES:
        raise ValueError(f"table {table.name!r} is registered already; pick another name")
    if table.stage not in STAGES:
        raise ValueError(f"table {table.name!r}: stage {table.stage!r} is not one of {STAGES}")
    TABLES[table.name] = table
    return table


def _csv_png_html(name: str) -> tuple[str, ...]:
    return ("tables/{name}.csv", "report/{name}.png", "report/{name}.html")


_C = "methods.runs.cells:"
_S = "methods.runs.spec:"
for _t in (
    TableDef("table1", "EB Table 1", "retrain accuracy vs draw epoch and LR schedule (p = 0.5)", _S + "Table1",
             _C + "eb_table_cells", "retrain", "reports.pages.table1:build", index="reports.pages.table1:index_entry",
             prunes=_S + "bn_prunes"),
    TableDef("table2", "EB Table 2", "EB Train vs LT, SNIP, NS, ThiNet: accuracy, training FLOPs, energy", _S + "Table2",
             _C + "eb_table_cells", "retrain", "reports.pages.table2:build",
             ("tables/{name}.csv", "tables/{name}_improv.csv", "report/{name}.html"),
             extra_inputs=_C + "fp32_searches", prunes=_S + "row_prunes", index="reports.pages.table2:index_entry"),
    TableDef("table4", "EB Table 4", "retrain accuracy vs draw epoch under two initial LRs (LR 0.1 rows shared with Table 1)",
             _S + "Table4", _C + "eb_table_cells", "retrain", "reports.pages.table4:build", prunes=_S + "bn_prunes",
             index="reports.pages.table4:index_entry"),
    TableDef("figure1", "EB Figure 1", "retrain accuracy vs draw epoch per pruning ratio", _S + "Figure1",
             _C + "figure_cells", "retrain", "reports.pages.figure1:build", _csv_png_html("figure1"), prunes=_S + "bn_prunes",
             index="reports.pages.figure1:index_entry"),
    TableDef("figure2", "EB Figure 2", "the same with an 8-bit search (VGG16), and training FLOPs", _S + "Figure1",
             _C + "figure_cells", "retrain", "reports.pages.figure2:build", _csv_png_html("figure2"),
             extra_inputs=_C + "fp32_searches", prunes=_S + "bn_prunes", index="reports.pages.figure2:index_entry"),
    TableDef("figure3", "EB Figure 3", "pairwise mask-distance matrices and EB epochs", _S + "Figure3",
             _C + "search_cells", "search", "reports.pages.figure3:build", _csv_png_html("figure3"),
             index="reports.pages.figure3:index_entry"),
    TableDef("figure5", "EB Figure 5", "total training FLOPs vs draw epoch, from the searches' mask history",
             _S + "Figure5", _C + "search_cells", "search", "reports.pages.figure5:build", _csv_png_html("figure5"),
             extra_inputs=_C + "search_histories", prunes=_S + "bn_prunes", index="reports.pages.figure5:index_entry"),
    TableDef("table8", "RT Table 8", "L1-norm filter pruning: winning ticket vs random init, LR 0.1 and 0.01",
             _S + "Lottery", _C + "lottery_table_cells", "lottery", "reports.pages.table8:build", prunes=_S + "lottery_prunes",
             index="reports.pages.table8:index_entry"),
    TableDef("table9", "RT Table 9", "one-shot magnitude pruning 20-95%: winning ticket vs random init, LR 0.1 and 0.01",
             _S + "Lottery", _C + "lottery_table_cells", "lottery", "reports.pages.table9:build", prunes=_S + "lottery_prunes",
             index="reports.pages.table9:index_entry"),
):
    register_table(_t)
