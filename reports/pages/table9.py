"""RT Table 9 (one-shot magnitude pruning, Han et al. 2015): winning ticket vs random init (``reports.pages.lottery``)."""
from __future__ import annotations

from methods.base.config import Scale

from reports.pages import lottery
def collect(scale: Scale, results: str, spec: dict | None = None):
    return lottery.collect(scale, results, "table9", spec)


def summary(rows: list[dict]) -> dict:
    return lottery.summary(rows)


def build(scale: Scale, results: str, data_root: str | None = None, spec: dict | None = None) -> dict:
    """Write ``tables/table9.csv`` and ``report/table9.html``; return the summary."""
    return lottery.build(scale, results, "table9", data_root, spec)


def index_entry(scale: Scale, results: str, spec: dict):
    return lottery.index_entry(scale, results, spec, "table9")
