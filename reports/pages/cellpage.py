"""One page per table cell: what it is, its seeds, per-epoch curves, FLOPs and energy,
provenance, and the command that reruns it (``methods.workflow.rerun``).

Pages live at ``report/cells/<table>/<slug>.html`` (``methods.runs.cells.Cell.slug``); a cell's
curves PNG is redrawn only when one of its runs' ``result.json`` is newer than it.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from methods.runs.cells import Cell, cells_of, seed_of
from methods.base.config import RunConfig, Scale
from methods.workflow.rerun import arg_path, command
from methods.workflow.status import run_state
from methods.base.tables import TABLES

from reports import common
from reports.common import Result, Run, load_run, provenance, rel, render, scale_note
from reports.io import write_figure, write_text

def title(table: str) -> str:
    """A registered table's printed name ("EB Table 1"; ``methods.base.tables.TableDef.title``)."""
    return TABLES[table].title


def page_path(results, table: str, slug: str) -> Path:
    return Path(results) / "report" / "cells" / table / f"{slug}.html"


def digest(config: dict) -> str:
    """The run's configuration hash (``RunConfig.digest``, the checkpoint guard), "?" if unreadable."""
    try:
        return RunConfig(**config).digest()
    except (TypeError, ValueError):
        return "?"


def mask_distances(search_dir: Path, ratio: float) -> np.ndarray | None:
    """Mask distance between consecutive epochs' channel masks at ``ratio`` (EB section 3.2),
    shape (E,), entry t-1 = distance(mask after epoch t, mask after epoch t-1); None without history."""
    import torch

    from methods.pruning.eb import mask_distance, masks_from_gammas

    f = Path(search_dir) / "history.npz"
    if not f.is_file():
        return None
    masks = masks_from_gammas(torch.from_numpy(np.load(f)["gammas"]), ratio)
    return np.array([mask_distance(masks[t], masks[t - 1]) for t in range(1, len(masks))])


def _curves(png: Path, cell: Cell, own: list, ups: dict) -> bool:
    """Draw loss, accuracy, LR and mask distance against epoch for every seed; False if nothing to draw."""
    runs = [(seed_of(s), r, "own") for s, r in zip(cell.runs, own) if r.done and r.result.log]
    runs += [(seed_of(s), r, "upstream") for s, r in ups.items() if r.done and r.result.log]
    if not runs:
        return False
    # The run folders' mtimes change when a result.json appears or is deleted, so a rerun redraws.
    inputs = [f for _, r, _ in runs for f in (r.path / "result.json", r.path)]
    inputs += [r.path for r in own if r.path.is_dir()]
    if png.is_file() and png.stat().st_mtime >= max(f.stat().st_mtime for f in inputs):
        return True
    from reports.plotting import plt

    # Fixed margins: constrained layout would cost half the drawing time of hundreds of pages.
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    fig.subplots_adjust(left=0.045, right=0.99, bottom=0.16, top=0.9, wspace=0.3)
    colors = plt.get_cmap("tab10").colors
    seeds = sorted({s for s, _, _ in runs})
    for seed, run, kind in runs:
        c, ls = colors[seeds.index(seed) % 10], "-" if kind == "own" else ":"
        log = run.result.log
        ep = [row["epoch"] for row in log]
        label = f"seed {seed}" + (" (search/dense)" if kind == "upstream" else "")
        axes[0].plot(ep, [row["train_loss"] for row in log], color=c, ls=ls, label=label)
        axes[0].plot(ep, [row["test_loss"] for row in log], color=c, ls=ls, alpha=0.45)
        axes[1].plot(ep, [row["test_acc"] for row in log], color=c, ls=ls, label=label)
        axes[2].plot(ep, [row["lr"] for row in log], color=c, ls=ls, drawstyle="steps-post", label=label)
    # A channel ratio only for BN-pruned cells; weight-level and ThiNet ratios mean something else.
    ratio = cell.runs[0].ratio if getattr(cell.runs[0], "prune", None) == "bn" else 0.5
    searches = [(seed_of(s), r) for s, r in ups.items() if r.done] or [(seed_of(s), r) for s, r in zip(cell.runs, own)
                                                                      if r.done and r.result.kind == "search"]
    drawn = False
    for seed, run in searches:
        d = mask_distances(run.path, ratio)
        if d is not None:
            axes[3].plot(range(1, len(d) + 1), d, color=colors[seeds.index(seed) % 10], label=f"seed {seed}")
            drawn = True
    axes[3].axhline(0.1, color="0.4", ls="--", lw=1)  # EB's threshold epsilon
    if not drawn:
        axes[3].text(0.5, 0.5, "no BN mask history\n(RT runs prune weights, not BN channels)", ha="center", va="center",
                     transform=axes[3].transAxes, color="0.5")
    titles = ("loss (train solid, test faded)", "test accuracy (%)", "learning rate",
              f"mask distance to previous epoch (p = {ratio:g})")
    for a, t in zip(axes, titles):
        a.set_title(t)
        a.set_xlabel("epoch")
    axes[2].set_yscale("log")
    axes[1].legend(fontsize=8)
    write_figure(png, fig, dpi=80)
    plt.close(fig)
    return True


def _row(spec_run, run: Run, here: Path) -> dict:
    res = run.result or Result()
    prov = res.provenance or {}
    energy = res.energy or {}
    state = run.status if run.status.startswith("stale") else run_state(run.path)  # load_run judged the digest
    return {"seed": seed_of(spec_run), "name": spec_run.name, "state": state,
            "result": rel(run.path / "result.json", here) if run.done else None,
            "log": rel(run.path / "log.txt", here) if (run.path / "log.txt").is_file() else None,
            "best_acc": res.get("best_acc", math.nan), "final_acc": res.get("final_acc", math.nan),
            "best_epoch": res.best_epoch, "draw_epoch": res.draw_epoch,
            "params": res.cx("params"),
            "flops": res.cx("flops"),
            "train_flops": res.get("train_flops", math.nan), "train_flops_units": res.get("train_flops_eb_units", math.nan),
            # official-counter convention; NaN (shown as a dash) in results written before it was recorded
            "flops_paper": res.cx("flops_paper"),
            "train_flops_paper": res.get("train_flops_paper", math.nan),
            "measured_j": energy.get("measured_j"), "modelled_j": energy.get("modelled_j"),
            "commit": prov.get("commit", "–"), "suite": prov.get("suite", "–"), "torch": prov.get("torch", "–"),
            "python": prov.get("python", "–"), "device": prov.get("device", "–"), "host": prov.get("host", "–"),
            "date": prov.get("date", "–"), "recorded_command": prov.get("command", "–"),
            "digest": digest(res.config) if res.config is not None else "–",
            "config": json.dumps(res.config, indent=1, sort_keys=True) if res.config is not None else None}


def ticket_table(cell: Cell, own: list[Run]) -> dict | None:
    """Per-layer kept / total of each seed's ticket as its stage recorded it (``methods.pruning.ticket``):
    ``{"unit", "seeds", "rows": [{"name", "total", "kept": [per seed]}], "flags": [per seed]}``;
    None when no finished run of the cell recorded a ticket (dense and search runs, older results)."""
    done = [(seed_of(s), r.result.ticket) for s, r in zip(cell.runs, own) if r.done and r.result.ticket]
    if not done:
        return None
    names = [x["name"] for x in done[0][1]["layers"]]
    kept = {seed: {x["name"]: x["kept"] for x in t["layers"]} for seed, t in done}
    rows = [{"name": n, "total": x["total"], "kept": [kept[seed].get(n) for seed, _ in done]}
            for n, x in zip(names, done[0][1]["layers"])]
    flags = [{"seed": seed, "kept": t["kept"], "total": t["total"], "collapsed": t["collapsed"],
              "disconnected": t["disconnected"], "emptied_layers": t.get("emptied_layers")} for seed, t in done]
    return {"unit": done[0][1]["unit"], "seeds": [seed for seed, _ in done], "rows": rows, "flags": flags}


def build(scale: Scale, results: str, cell: Cell, data_root: str | None = None, summary: dict | None = None) -> Path:
    """Write one cell's page (and curves PNG); return its path."""
    out = page_path(results, cell.table, cell.slug)
    here = out.parent
    own = [load_run(r.path(results), scale) for r in cell.runs]
    ups = {u: load_run(u.path(results), scale) for u in cell.upstream}
    png = out.with_suffix(".png")
    has_png = _curves(png, cell, own, ups)
    roots = sorted({(r.result.config or {}).get("data_root") for r in own if r.done} - {None})
    data = data_root or (roots[0] if roots else _checked_root(results))
    cmd = command(cell.table, cell.id, scale.name, arg_path(Path(results).parent), data, tables=common.TABLES_PATH)
    seeds = sorted({seed_of(r) for r in cell.runs})
    fields = dataclasses.asdict(cell.runs[0])
    html = render("cell.html", title=f"{title(cell.table)} cell {cell.id}", scale=scale, root="../../",
                  prov=provenance(own + list(ups.values()), data_root), scale_note=scale_note(scale), cell=cell,
                  table_title=title(cell.table), table_page=f"../../{cell.table}.html", fields=_flatten(fields),
                  seeds=seeds, rows=[_row(s, r, here) for s, r in zip(cell.runs, own)],
                  upstream=[_row(s, r, here) for s, r in ups.items()], png=png.name if has_png else None,
                  command=cmd, seed_command=f"{cmd} --seed {seeds[0]}", summary=summary or {},
                  ticket=ticket_table(cell, own))
    write_text(out, html)
    return out


def _checked_root(results) -> str:
    """The data root the workflow's ``data`` stage checked for this tree, else "data"."""
    f = Path(results) / "data.json"
    try:
        return json.loads(f.read_text())["data_root"]
    except (OSError, ValueError, KeyError):
        return "data"


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, str]]:
    """A run dataclass as (field, value) rows; nested runs (its search or dense run) get a prefix."""
    rows = []
    for k, v in d.items():
        if k == "seed":
            continue
        if isinstance(v, dict):
            rows += _flatten(v, f"{prefix}{k}.")
        elif v is not None:
            rows.append((prefix + k, ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)))
    return rows


def build_all(scale: Scale, results: str, table: str, spec: dict, data_root: str | None = None,
              summaries: dict | None = None) -> int:
    """Every cell page of ``table``; ``summaries``: cell id -> {"ours", "paper", "diff"} from the table page."""
    cells = cells_of(scale, table, spec)
    for c in cells:
        build(scale, results, c, data_root, (summaries or {}).get(c.id))
    return len(cells)
