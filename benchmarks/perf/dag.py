"""What the full-scale ``all_tables`` DAG trains, against every cell trained on its own.

The DAG trains each search and dense run once for every cell that reads it (Table 1's LR 0.1
rows are Table 4's, one search serves 4 draw epochs x several ratios, one dense run all of RT's
arms of its model). "Independent" charges every cell of every table and figure its own runs plus
its own copy of the runs they start from (``methods.runs.cells.cells_of``: ``runs`` + ``upstream``).

Epochs per run: ``methods.workflow.jobs.run_epochs`` (the scale's epochs; EB Train from a numbered draw
epoch t: epochs - t; from an EB draw, known only after the search: the whole run, an upper bound). FLOPs:
3 x forward FLOPs (fvcore, one 3x32x32 image) x 50,000 images x epochs (``methods.metrics.flops.training_flops``);
a channel-pruned retraining at ratio p is counted at (1 - p)^2 x the dense FLOPs (the actual
network is known only after the search; weight-masked networks are charged at dense FLOPs,
as Table 2 charges them), RT Table 8's L1 variants at their exact pruned FLOPs.
"""
from __future__ import annotations

import functools

from methods.runs.cells import DenseRun, LotteryRun, RetrainRun, SearchRun, cells_of, load_tables
from methods.base.tables import TABLES
from methods.base.config import Scale, load_scale
from methods.base.data import num_classes
from methods.metrics.flops import complexity, training_flops
from methods.workflow.jobs import run_epochs
from methods.stages.common import PAPER_TRAIN_IMAGES


@functools.lru_cache(maxsize=None)
def _dense_flops(model: str, dataset: str, knobs: tuple) -> float:
    from methods.models import build_model

    return complexity(build_model(model, num_classes(dataset), **dict(knobs)))["flops"]


@functools.lru_cache(maxsize=None)
def _l1_flops(model: str, dataset: str, knobs: tuple, variant: str) -> float:
    from methods.pruning.l1 import counts_cfg, kept_counts, variant_rule
    from methods.models import build_model

    dense = build_model(model, num_classes(dataset), **dict(knobs))
    cfg = counts_cfg(dense, kept_counts(dense, variant_rule(model, variant)))
    return complexity(build_model(model, num_classes(dataset), **dict(knobs), cfg=cfg))["flops"]


def run_flops(run, scale: Scale) -> float:
    """Training FLOPs of ``run`` at ``scale`` over the paper's 50,000 images per epoch."""
    base = run.search if isinstance(run, RetrainRun) else run.dense if isinstance(run, LotteryRun) else run
    knobs = tuple(sorted(scale.models.get(base.model, {}).items()))
    fwd = _dense_flops(base.model, base.dataset, knobs)
    if isinstance(run, RetrainRun) and run.prune in ("bn", "thinet"):  # channel pruning
        fwd *= (1.0 - run.ratio) ** 2
    elif isinstance(run, LotteryRun) and run.prune == "l1":
        fwd = _l1_flops(base.model, base.dataset, knobs, run.target)
    return training_flops(fwd, PAPER_TRAIN_IMAGES, run_epochs(run, scale))


def dag_cost(scale_name: str = "full", tables: str | None = None) -> dict:
    """``{"scheduled": {...}, "independent": {...}, "ratio_epochs", "ratio_flops", "jobs"}``:
    training runs, epochs and FLOPs of the DAG (every run once) and of the cells trained independently."""
    scale, spec = load_scale(scale_name), load_tables(tables)
    cells = [c for t in TABLES for c in cells_of(scale, t, spec)]
    unique = {r for c in cells for r in (*c.runs, *c.upstream)}
    independent = [r for c in cells for r in (*c.runs, *c.upstream)]

    def total(runs):
        return {"runs": len(runs), "epochs": sum(run_epochs(r, scale) for r in runs),
                "flops": sum(run_flops(r, scale) for r in runs)}

    kinds = {k.__name__: sum(isinstance(r, k) for r in unique) for k in (SearchRun, RetrainRun, DenseRun, LotteryRun)}
    s, i = total(unique), total(independent)
    return {"scale": scale.name, "cells": len(cells), "scheduled": s, "independent": i, "jobs": kinds,
            "ratio_epochs": s["epochs"] / i["epochs"], "ratio_flops": s["flops"] / i["flops"]}
