"""Where every cell stands, read from the run folders alone (no workflow, no scheduler).

A run is *done* when its ``result.json`` exists (written last and atomically); *failed* when
its ``log.txt`` ends in a Python error, or when its checkpoint and log have not moved for
``stale_minutes`` (a killed or preempted job: rerunning resumes it from the checkpoint);
*running* when it has a log or checkpoint that is still moving; *missing* otherwise. Given the
scale, a finished run whose config digest is not the one the current configuration gives it
(``methods.runs.digest``: a scale file's width, images or epochs changed) is *stale*, not done: the
workflow trains it again.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from methods.runs.cells import Cell, cells_of
from methods.base.tables import TABLES
from methods.runs.digest import path_stale_reason
from methods.base.io import CorruptFile, read_json

STATES = ("done", "stale", "running", "missing", "failed")
STALE_MINUTES = 30.0  # longer than one full-scale epoch of the slowest model (PreResNet-101 on a V100, ~2 min)


def run_state(path, stale_minutes: float = STALE_MINUTES, now: float | None = None, scale=None) -> str:
    """State of the run folder ``path``: one of ``STATES`` ("stale" only when ``scale`` is given)."""
    path = Path(path)
    if (path / "result.json").is_file():
        try:
            res = read_json(path / "result.json")
        except (OSError, CorruptFile):  # truncated or damaged: rerun its stage (the file named on stderr by the stage)
            return "failed"
        return "stale" if scale is not None and path_stale_reason(path, res, scale) is not None else "done"
    files = [f for f in (path / "log.txt", path / "ckpt.pt") if f.is_file()]
    if not files:
        return "missing"
    log = path / "log.txt"
    if log.is_file():
        tail = log.read_bytes()[-4000:].decode(errors="replace")
        if "Traceback (most recent call last)" in tail or "\nerror: " in "\n" + tail:
            return "failed"
    age = (time.time() if now is None else now) - max(f.stat().st_mtime for f in files)
    return "running" if age < 60 * stale_minutes else "failed"


def cell_state(cell: Cell, results: str, **kw) -> str:
    """done: every own run done; else failed, stale, running or missing by the worst of its own
    and upstream runs (a cell whose search is running is running)."""
    own = [run_state(r.path(results), **kw) for r in cell.runs]
    if all(s == "done" for s in own):
        return "done"
    states = set(own) | {run_state(u.path(results), **kw) for u in cell.upstream}
    return next((s for s in ("failed", "stale", "running") if s in states), "missing")


def table_status(scale, results: str, spec: dict, tables=None, **kw) -> dict[str, Counter]:
    """``{table: Counter(state -> cells)}`` for the tables in ``spec``; ``results`` is the scale's tree."""
    return {t: Counter(cell_state(c, results, scale=scale, **kw) for c in cells_of(scale, t, spec))
            for t in (TABLES if tables is None else tables) if t in spec}


def format_status(counts: dict[str, Counter]) -> str:
    lines = [f"{'table':<9}" + "".join(f"{s:>9}" for s in STATES) + f"{'total':>9}"]
    for t, c in counts.items():
        lines.append(f"{t:<9}" + "".join(f"{c.get(s, 0):>9}" for s in STATES) + f"{sum(c.values()):>9}")
    return "\n".join(lines)
