"""Rerun one cell: force its own stages through the workflow, refresh its pages, print its result.

``python -m methods rerun TABLE CELL_ID --scale S [--seed N]`` builds the Snakemake targets
of the cell's own runs (retrainings or lottery arms, one per seed), forces just those with
``--forcerun``, builds shared upstream runs (searches, dense runs) only when they are missing
(``--upstream`` forces them too, which changes every cell that shares them), then rebuilds the
table's page and the index. ``--slurm`` sends the same function to SLURM through submitit.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .cells import CELL_TABLES, cells_of, find_cell, load_tables, seed_of
from .config import ROOT, load_scale
from .io import read_json


def arg_path(p) -> str:
    """A path as the workflow (run from the suite's root) must see it: relative to the root
    when inside it, else absolute."""
    p = Path(p).resolve()
    try:
        return p.relative_to(ROOT).as_posix()
    except ValueError:
        return str(p)


#: Figures drawn from the searches alone: rerunning one rebuilds its page; ``--upstream`` retrains the searches.
SEARCH_FIGURES = ("figure3", "figure5")


def command(table: str, cell_id: str, scale: str, results: str = "results", data_root: str = "data",
            seeds=None, tables: str | None = None) -> str:
    """The shell command that reruns a cell, as its page prints it."""
    parts = ["python -m methods rerun", table, cell_id, "--scale", scale, "--results", results, "--data-root", data_root]
    if tables:
        parts += ["--tables", tables]
    for s in seeds or ():
        parts += ["--seed", str(s)]
    return " ".join(parts)


def targets(table: str, cell_id: str, scale: str, results: str = "results", seeds=None, tables: str | None = None,
            upstream: bool = False) -> tuple[list[str], list[str]]:
    """(Snakemake targets, files to force) of the cell's runs at ``seeds`` (all when None).

    Raises:
        ValueError: unknown table or cell, or a seed the cell does not have.
    """
    sc, spec = load_scale(scale), load_tables(tables)
    cell = find_cell(sc, table, cell_id, spec)
    runs = [r for r in cell.runs if not seeds or seed_of(r) in seeds]
    if not runs:
        raise ValueError(f"{table} {cell_id} has seeds {sorted({seed_of(r) for r in cell.runs})}, not {sorted(seeds)}")
    root = f"{arg_path(results)}/{sc.name}"
    own = [f"{r.path(root)}/result.json" for r in runs]
    ups = [f"{u.path(root)}/result.json" for u in cell.upstream if not seeds or seed_of(u) in seeds]
    if table in SEARCH_FIGURES:  # their "runs" are searches every table shares: forced only on request
        return own, own if upstream else []
    return own, own + (ups if upstream else [])


def pages_showing(scale: str, runs: list[str], results: str = "results", tables: str | None = None) -> list[str]:
    """Every page with a cell whose own or upstream runs include one of ``runs`` (result.json
    paths as ``targets`` gives them)."""
    sc, spec = load_scale(scale), load_tables(tables)
    root = f"{arg_path(results)}/{sc.name}"
    wanted = set(runs)
    return [t for t in CELL_TABLES
            if any(f"{r.path(root)}/result.json" in wanted for c in cells_of(sc, t, spec) for r in (*c.runs, *c.upstream))]


def job_counts(out: str) -> dict[str, int]:
    """Snakemake's "Job stats" table as {rule: count} ({} when nothing is to be done)."""
    if "Job stats:" not in out:
        return {}
    table = out[out.index("Job stats:"):]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"}


def rerun(table: str, cell_id: str, scale: str, results: str = "results", data_root: str = "data", seeds=None,
          tables: str | None = None, cores: int = 1, upstream: bool = False, dry_run: bool = False) -> dict:
    """Rerun the cell; returns ``{"jobs": {rule: n}, "runs": [{"path", "best_acc", ...}]}``.

    Raises:
        ValueError: unknown table, cell or seed.
        RuntimeError: the workflow failed (its last lines are in the message).
    """
    own, forced = targets(table, cell_id, scale, results, seeds, tables, upstream)
    # A job per run: at scales that group runs (runs_per_job), the cell's own runs alone, not their group.
    config = [f"scale={scale}", f"results={arg_path(results)}", f"data_root={arg_path(data_root)}", "runs_per_job=1"]
    if tables:
        config.append(f"tables={arg_path(tables)}")
    # mtime only: what must rerun is forced explicitly; a changed rule text or params since a run
    # (an older suite) must not retrain the shared searches behind the cell.
    cmd = [sys.executable, "-m", "snakemake", *own, *(["--forcerun", *forced] if forced else []), "--cores", str(cores),
           "--rerun-triggers", "mtime", "--config", *config]
    if dry_run:
        cmd.append("-n")
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"the workflow failed:\n{(run.stdout + run.stderr)[-3000:]}")
    out = {"jobs": job_counts(run.stdout + run.stderr), "runs": []}
    if dry_run:
        return out
    from reports.__main__ import main as report

    rtree = f"{arg_path(results)}/{scale}"
    extra = ["--tables", arg_path(tables)] if tables else []
    for page in (*pages_showing(scale, own, results, tables), "index"):
        if report([page, "--scale", scale, "--results", str(ROOT / rtree), *extra]) != 0:
            raise RuntimeError(f"rebuilding the {page} page failed")
    for f in own:
        res = read_json(ROOT / f)
        out["runs"].append({"path": str(Path(ROOT / f).parent), "best_acc": res.get("best_acc"),
                            "final_acc": res.get("final_acc"), "no_ticket": res.get("no_ticket")})
    return out


def submit(cluster: str | None = None, folder: str | None = None, **kwargs):
    """Send ``rerun(**kwargs)`` to SLURM (or ``cluster`` "local"/"debug") through submitit with the
    resources ``slurm/config.yaml`` gives a training job; returns the submitit job."""
    import submitit
    import yaml

    res = yaml.safe_load((ROOT / "slurm" / "config.yaml").read_text())["set-resources"]["retrain"]
    # One job runs the cell's training jobs one after another: give it the time of all of them,
    # each at the longest per-run limit of slurm/runtime.yaml.
    planned = rerun(**{**kwargs, "dry_run": True})["jobs"]
    n = max(1, sum(v for k, v in planned.items() if k in ("search", "retrain", "dense", "lottery")))
    rt = yaml.safe_load((ROOT / "slurm" / "runtime.yaml").read_text())
    per_run = max(rt["minimum"], int(rt["margin"] * max(rt["minutes_per_160_epochs"].values())))
    ex = submitit.AutoExecutor(folder=folder or os.path.join(kwargs.get("results", "results"), "submitit"), cluster=cluster)
    kwargs = {**kwargs, "cores": int(res["cpus_per_task"])}
    ex.update_parameters(timeout_min=n * per_run, cpus_per_task=int(res["cpus_per_task"]),
                         mem_gb=max(1, int(res["mem_mb"]) // 1000), name=f"rerun-{kwargs['table']}")
    if ex.cluster == "slurm":
        ex.update_parameters(slurm_gpus_per_node=int(res["gpu"]),
                             **({"slurm_partition": os.environ["SLURM_PARTITION"]} if "SLURM_PARTITION" in os.environ else {}))
    return ex.submit(rerun, **kwargs)


def list_cells(scale: str, table: str, tables: str | None = None) -> list[str]:
    return [c.id for c in cells_of(load_scale(scale), table, load_tables(tables))]
