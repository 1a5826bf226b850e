"""EB Figure 2: Figure 1 with the ticket searched in 8 bits (and retrained in 32), VGG16, with
the total training FLOPs of each draw; built by ``reports.pages.figure1`` with ``figure="figure2"``."""
from __future__ import annotations

from methods.base.config import Scale

from reports.pages import figure1
def collect(scale: Scale, results: str, spec: dict | None = None):
    return figure1.collect(scale, results, spec, "figure2")


summary = figure1.summary


def build(scale: Scale, results: str, data_root: str | None = None, spec: dict | None = None) -> dict:
    """Write ``tables/figure2.csv``, ``report/figure2.png`` and ``report/figure2.html``."""
    return figure1.build(scale, results, data_root, spec, "figure2")


def index_entry(scale: Scale, results: str, spec: dict):
    return figure1.index_entry(scale, results, spec, "figure2")
