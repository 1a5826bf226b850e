"""What every page shares: reading run folders, provenance, the scale note and rendering.

A run is *done* when its ``result.json`` exists and parses; anything else is *pending*
(the workflow writes ``result.json`` last and atomically, so its presence is the signal).
"""
from __future__ import annotations

import datetime
import functools
import math
from collections.abc import Mapping
import os
from pathlib import Path

import jinja2
from markupsafe import Markup

from methods.base.config import PAPER_EPOCHS, Scale
from methods.base.io import CorruptFile, read_json  # noqa: F401 (pages import them from here)
from methods.runs.results import Result, Run, load_run  # noqa: F401 (the pages read runs through here)
from methods.models import MODELS, knobs_at
from methods.base.tables import TABLES

TEMPLATES = Path(__file__).resolve().parent / "templates"
#: The ``--tables`` file the pages are built from (None: benchmarks/tables.yaml); cell pages
#: print it in their rerun command. Set by ``python -m reports``.
TABLES_PATH: str | None = None


def stats(values: list[float]) -> dict:
    """Mean, min and max of a list (NaN when empty): the paper's error bars are min-max."""
    if not values:
        return {"mean": math.nan, "min": math.nan, "max": math.nan}
    return {"mean": sum(values) / len(values), "min": min(values), "max": max(values)}


def mean_of(runs: list[Run], key) -> float:
    """Mean of ``key(result)`` (a ``Result``) over done runs with a trained ticket (NaN if none): e.g.
    pruned params of a cell, ``mean_of(runs, lambda r: r.cx("params"))``."""
    vals = [key(r.result) for r in runs if r.done and r.result.trained]  # no ticket, or refused
    return sum(vals) / len(vals) if vals else math.nan


#: The two FLOPs conventions (methods/metrics/flops.py), named in every FLOPs column header.
FLOPS_PAPER = "official counter: conv+linear+BN+ReLU+pool, 1 MAC = 2 FLOPs"
FLOPS_CONV = "conv+linear only, 1 MAC = 2 FLOPs"


def old_flops(runs: list[Run]) -> bool:
    """Whether a done run lacks the official-counter FLOPs (its tables show conv + linear, marked)."""
    return any(r.result.old_flops for r in runs if r.done)


#: What a cell's ticket mark means (``ticket_flag``), shown when hovering over it.
FLAG_TITLES = {"disconnected": "no path from input to logits survives the pruning: see the cell page",
               "collapsed": "a layer keeps nothing: see the cell page",
               "unchecked": "made before tickets were checked (an emptied layer was built live then): rerun the cell"}


def ticket_flag(runs: list[Run]) -> str | None:
    """"disconnected" or "collapsed" when a finished run of a cell drew such a ticket
    (``methods.pruning.ticket``; the worst of its seeds), "unchecked" when a finished retraining or lottery
    run predates the ticket report (a PreResNet layer it emptied was built live then, as ``bnlive``
    now), else None. Its table cell carries the mark and never counts as agreeing with the paper."""
    done = [r.result for r in runs if r.done]
    tickets = [r.ticket or {} for r in done]
    if any(t.get("disconnected") for t in tickets):
        return "disconnected"
    if any(t.get("collapsed") for t in tickets):
        return "collapsed"
    unchecked = any(r.kind in ("retrain", "lottery") and r.ticket is None and r.trained for r in done)
    return "unchecked" if unchecked else None


def inside(paper: float, low: float, high: float) -> bool:
    """Whether the paper's value lies in our [min, max] over seeds (EB prints single values and
    min-max error bars; one seed gives a zero-width range)."""
    return low <= paper <= high


def completeness(cells: list[dict], done) -> dict:
    """Cells done (``done(cell)``) and in all, runs done and expected, the mean |ours - paper|
    (the cells' ``diff``) over the cells that have both a result and a paper value, and how many
    of those have the paper's value inside our [min, max] (``n_inside``); a cell whose ticket is
    collapsed or disconnected (``ticket_flag``) never counts as inside."""
    compared = [c for c in cells if not math.isnan(c["diff"])]
    diffs = [abs(c["diff"]) for c in compared]
    return {"cells_done": sum(bool(done(c)) for c in cells), "cells_total": len(cells),
            "runs_done": sum(c["n_runs"] for c in cells), "runs_total": sum(c["n_expected"] for c in cells),
            "mean_abs_diff": sum(diffs) / len(diffs) if diffs else math.nan, "n_compared": len(diffs),
            "n_inside": sum(inside(c["paper"], c["ours_min"], c["ours_max"]) and not c.get("ticket_flag")
                            for c in compared)}


def scale_note(scale: Scale) -> str:
    """One sentence on what the scale changes, with the draw-epoch mapping spelled out."""
    draws = ", ".join(f"{e} &rarr; {scale.epoch(e)}" for e in (10, 20, 40)) + f", final &rarr; {scale.epochs}"
    imgs = ("every training image under the data root (50,000 from torchvision's CIFAR, 25,000 from the shared npz; "
            "each run records its count)" if scale.train_images is None
            else f"{scale.train_images} class-balanced training images")
    timgs = "all test images" if scale.test_images is None else f"{scale.test_images} test images"
    # the scale file's models, then those registered with knobs at this scale (a plug-in's: register_model(scales=))
    models = {**scale.models, **{m: kn for m in MODELS if m not in scale.models and (kn := knobs_at(m, scale))}}
    knobs = "; ".join(f"{m} " + ", ".join(f"{k} {v:g}" if not isinstance(v, str) else f"{k} {v}" for k, v in kn.items())
                      for m, kn in models.items() if kn)
    knobs = f"reduced ({knobs})" if knobs else "the papers' architectures"
    return (f"Scale <b>{scale.name}</b>: {scale.epochs} training epochs (papers: {PAPER_EPOCHS}), "
            f"batch {scale.batch_size} (RT: {scale.batch(64)}), "
            f"{imgs}, {timgs}, seeds {list(scale.seeds)} (each table takes its paper's number of runs from these: EB 3, RT 5); "
            f"models: {knobs}. Epochs in the paper's tables are mapped to "
            f"this scale by round(e &times; {scale.epochs}/{PAPER_EPOCHS}): draw epoch {draws}. "
            f"So at this scale column &ldquo;10&rdquo; means the subnetwork drawn after epoch {scale.epoch(10)}."
            + (" <b>This scale trains with bf16 autocast</b> (its opt-in <code>autocast: bf16</code>), not the papers' FP32;"
               " cells computed with it are marked bf16."
               if scale.autocast else "")
            + ("" if scale.name == "full" else " At this reduced scale accuracies sit far below the papers': the "
               "differences check the pipeline end to end, not the papers' numbers; run scale full for those."))


def bf16(runs: list[Run]) -> bool:
    """True when a finished run among ``runs`` (a cell's) trained under bf16 autocast (the scale's
    opt-in ``autocast``, not the papers' FP32): its table cell carries a bf16 mark."""
    return any(r.done and (r.result.config or {}).get("autocast") for r in runs)


def provenance(runs: list[Run], data_root: str | None) -> dict:
    """Commit(s), date range, device(s) and data root of the results a page shows, plus now,
    and the runs computed with bf16 autocast (``autocast``: "parent/run" names).

    The data root defaults to what the runs were trained on (their config), since the report
    itself reads no images.
    """
    from methods.base.provenance import git_commit  # deferred: runs git

    done = [r.result for r in runs if r.done]
    prov = [r.provenance or {} for r in done]
    dates = sorted(p["date"] for p in prov if p.get("date"))
    roots = sorted({(r.config or {}).get("data_root") for r in done} - {None})
    return {
        "commits": sorted({p.get("commit", "unknown") for p in prov}) or ["(no results yet)"],
        "date_first": dates[0] if dates else "(no results yet)",
        "date_last": dates[-1] if dates else "(no results yet)",
        "devices": sorted({p.get("device", "?") for p in prov}),
        "data_root": data_root or (", ".join(roots) if roots else "(unknown: no results yet)"),
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "report_commit": git_commit(),
        "n_done": len(done),
        "n_runs": len(runs),
        # opt-in bf16 autocast (Scale.autocast) is not the papers' FP32: every page names such runs
        "autocast": sorted(f"{r.path.parent.name}/{r.path.name}" for r in runs
                           if r.done and (r.result.config or {}).get("autocast")),
    }


def absent_page(results, page: str, title: str, scale: Scale, data_root: str | None) -> None:
    """Write ``report/<page>.html`` for a page whose section a trimmed ``tables=`` file leaves out."""
    from reports.io import write_text

    write_text(Path(results) / "report" / f"{page}.html",
               render("absent.html", title=title, scale=scale, prov=provenance([], data_root), scale_note=scale_note(scale),
                      section=page))


def rel(target, start) -> str:
    """Relative link from folder ``start`` to ``target`` with forward slashes (file:// safe)."""
    return Path(os.path.relpath(Path(target).resolve(), Path(start).resolve())).as_posix()


# --- formatting filters used by the templates -------------------------------------------

def _isnum(x) -> bool:
    return isinstance(x, (int, float)) and not (isinstance(x, float) and math.isnan(x))


def f_acc(x, digits: int = 2) -> str:
    return f"{x:.{digits}f}" if _isnum(x) else "&ndash;"


def f_signed(x) -> str:
    return f"{x:+.2f}".replace("-", "&minus;") if _isnum(x) else "&ndash;"


def f_si(x) -> str:
    """Engineering notation (15.8 k, 1.33 M, 2.1 G) for params and FLOPs."""
    if not _isnum(x):
        return "&ndash;"
    for div, unit in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g} {unit}"
    return f"{x:.3g}"


def f_pct(x) -> str:
    return f"{100 * x:.1f}%" if _isnum(x) else "&ndash;"


def f_schedule(s: str) -> str:
    """"80-120" -> "[80,120]" as the paper prints it."""
    return "[" + s.replace("-", ",") + "]"


DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


class _ModelNames(Mapping):
    """Registry name -> the name pages print (``methods.models.ModelEntry.display``; plug-ins included)."""

    def __getitem__(self, name: str) -> str:
        return MODELS[name].display

    def __iter__(self):
        return iter(MODELS)

    def __len__(self) -> int:
        return len(MODELS)


MODEL_NAMES = _ModelNames()


@functools.lru_cache(maxsize=1)
def env() -> jinja2.Environment:
    """The one template environment of a process: building it per page recompiled every template."""
    e = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                           undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    # The filters return HTML entities (&ndash;, &minus;), so mark them safe.
    for name, fn in {"acc": f_acc, "signed": f_signed, "si": f_si, "pct": f_pct}.items():
        e.filters[name] = lambda x, *a, _fn=fn: Markup(_fn(x, *a))
    e.filters["schedule"] = f_schedule
    e.filters["dataset"] = lambda d: DATASET_NAMES.get(d, d)
    e.filters["model"] = lambda m: MODEL_NAMES.get(m, m)
    e.globals["FLOPS_PAPER"], e.globals["FLOPS_CONV"] = FLOPS_PAPER, FLOPS_CONV
    e.globals["FLAG_TITLES"] = FLAG_TITLES
    e.globals["cell_link"] = lambda table, cell_id: f"cells/{table}/{cell_id.replace('/', '_')}.html"
    return e


def render(template: str, **ctx) -> str:
    return env().get_template(template).render(**ctx)


def index_entry(table: str, done: int, total: int, runs_done, runs_total, unit: str = "cells",
                compared: dict | None = None) -> dict:
    """One line of the index for registered table ``table`` (``methods.base.tables.TABLES``: its title
    and what it shows); ``compared``: a table summary's distance to the paper (``completeness``)."""
    t = TABLES[table]
    e = {"name": t.title, "file": f"{table}.html", "what": t.what, "unit": unit, "done": done, "total": total,
         "runs_done": runs_done, "runs_total": runs_total, "mean_abs_diff": None, "n_compared": 0,
         "csv": f"../tables/{table}.csv"}
    if compared:
        e.update(mean_abs_diff=compared["mean_abs_diff"], n_compared=compared["n_compared"], n_inside=compared["n_inside"])
    return e


def table_index_entry(table: str, sm: dict, unit: str = "cells") -> dict:
    """``index_entry`` from a table summary (``completeness``: cells and runs done, distance to the paper)."""
    return index_entry(table, sm["cells_done"], sm["cells_total"], sm["runs_done"], sm["runs_total"], unit, sm)


def generic_index_entry(scale: Scale, results: str, spec: dict, table: str) -> tuple[dict, list]:
    """The index line of a table without its own (a plug-in's): cells whose runs are all done."""
    from methods.runs.cells import cells_of

    cells = cells_of(scale, table, spec)
    runs = {c.id: [load_run(r.path(results), scale) for r in c.runs] for c in cells}
    every = [r for rs in runs.values() for r in rs]
    return (index_entry(table, sum(all(r.done for r in rs) for rs in runs.values()), len(cells),
                        sum(r.done for r in every), len(every)), every)
