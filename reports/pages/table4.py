"""EB Table 4: Table 1's [80,120] cells under two initial LRs; built by ``reports.pages.table1``
with ``table="table4"`` (the LR 0.1 rows read Table 1's runs)."""
from __future__ import annotations

from methods.base.config import Scale

from reports.pages import table1
def collect(scale: Scale, results: str, spec: dict | None = None):
    return table1.collect(scale, results, spec, table="table4")


summary = table1.summary


def build(scale: Scale, results: str, data_root: str | None = None, spec: dict | None = None) -> dict:
    """Write ``tables/table4.csv``, ``report/table4.html`` and its cell pages."""
    return table1.build(scale, results, data_root, spec, table="table4")


def index_entry(scale: Scale, results: str, spec: dict):
    return table1.index_entry(scale, results, spec, table="table4")
