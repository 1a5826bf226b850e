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
import shlex
import subprocess
import sys
import time
from pathlib import Path

from methods.runs.cells import cells_of, find_cell, load_tables, seed_of
from methods.base.tables import TABLES
from methods.base.config import ROOT, load_scale
from methods.runs.digest import path_stale_reason
from methods.base.io import CorruptFile, read_json
from methods.base.plugins import ENV as PLUGINS_ENV


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
    """The shell command that reruns a cell, as its page prints it; with the plug-ins loaded here
    (``methods.base.plugins``) in front, as its table may need their models or methods."""
    plugins = os.environ.get(PLUGINS_ENV)
    args = ["python", "-m", "methods", "rerun", table, cell_id, "--scale", scale, "--results", results,
            "--data-root", data_root]
    if tables:
        args += ["--tables", tables]
    for s in seeds or ():
        args += ["--seed", str(s)]
    return (f"{PLUGINS_ENV}={shlex.quote(plugins)} " if plugins else "") + shlex.join(args)


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
    return [t for t in TABLES
            if any(f"{r.path(root)}/result.json" in wanted for c in cells_of(sc, t, spec) for r in (*c.runs, *c.upstream))]


def why(table: str, cell_id: str, scale: str, results: str = "results", seeds=None, tables: str | None = None,
        upstream: bool = False) -> list[str]:
    """Why each of the cell's runs (at ``seeds``) trains: "<folder>: <reason>", own runs always
    (forced), upstream runs when missing, corrupt or stale (the workflow retrains those by itself)
    or forced (``upstream``). Stale: its config digest is not the current one (``methods.runs.digest``)."""
    sc, spec = load_scale(scale), load_tables(tables)
    cell = find_cell(sc, table, cell_id, spec)
    root = f"{arg_path(results)}/{sc.name}"
    own = table not in SEARCH_FIGURES
    lines = []
    for runs, mine in ((cell.runs, own), (cell.upstream, False)):
        for r in runs:
            if seeds and seed_of(r) not in seeds:
                continue
            folder = ROOT / r.path(root)
            if not (folder / "result.json").is_file():
                reason = "no result yet"
            else:
                try:
                    stale = path_stale_reason(folder, read_json(folder / "result.json"), sc)
                except (OSError, CorruptFile):
                    stale = "corrupt result"
                reason = (f"stale, {stale}" if stale else "current result, forced" if mine or upstream else None)
            if reason:
                lines.append(f"{r.path(root)}: {reason}")
    return lines


def job_counts(out: str) -> dict[str, int]:
    """Snakemake's "Job stats" table as {rule: count} ({} when nothing is to be done)."""
    if "Job stats:" not in out:
        return {}
    table = out[out.index("Job stats:"):]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"}


def rerun(table: str, cell_id: str, scale: str, results: str = "results", data_root: str = "data", seeds=None,
          tables: str | None = None, cores: int = 1, upstream: bool = False, dry_run: bool = False,
          since: float | None = None) -> dict:
    """Rerun the cell; returns ``{"jobs": {rule: n}, "runs": [{"path", "best_acc", ...}], "why": [lines]}``
    (``why``: what made each run train, said before it trains).

    Raises:
        ValueError: unknown table, cell or seed.
        RuntimeError: the workflow failed (its last lines are in the message).
    """
    own, forced = targets(table, cell_id, scale, results, seeds, tables, upstream)
    if since is not None:  # a requeued SLURM job: what it retrained before its interruption stays
        forced = [f for f in forced if not (ROOT / f).is_file() or (ROOT / f).stat().st_mtime < since]
    reasons = why(table, cell_id, scale, results, seeds, tables, upstream)  # before the workflow changes them
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
    run = _snakemake(cmd, own)
    if run.returncode != 0:
        raise RuntimeError(f"the workflow failed:\n{(run.stdout + run.stderr)[-3000:]}")
    out = {"jobs": job_counts(run.stdout + run.stderr), "runs": [], "why": reasons}
    if dry_run:
        return out
    rtree = f"{arg_path(results)}/{scale}"
    extra = ["--tables", arg_path(tables)] if tables else []
    # The pages through the report command line, as the workflow's report rules build them (methods
    # never import reports): not as workflow targets, which would train every pending cell of the table.
    for page in (*pages_showing(scale, own, results, tables), "index"):
        built = subprocess.run([sys.executable, "-m", "reports", page, "--scale", scale, "--results", str(ROOT / rtree),
                                *extra], cwd=ROOT, capture_output=True, text=True)
        if built.returncode != 0:
            raise RuntimeError(f"rebuilding the {page} page failed: {(built.stdout + built.stderr)[-1000:]}")
    for f in own:
        res = read_json(ROOT / f)
        out["runs"].append({"path": str(Path(ROOT / f).parent), "best_acc": res.get("best_acc"),
                            "final_acc": res.get("final_acc"), "no_ticket": res.get("no_ticket")})
    return out


#: The Snakemake process ``rerun`` is waiting on (a SLURM job's checkpoint waits for it to end).
_CHILD: subprocess.Popen | None = None


def _snakemake(cmd: list[str], own: list[str]) -> subprocess.CompletedProcess:
    """Run the workflow; its lock never outlives it. It ignores SLURM's warnings (the trainer acts on
    them, ``methods.base.preempt``), stops gracefully on SIGTERM (unlocking), and if killed outright
    (SIGKILL, OOM) the locks it left naming this cell's results are removed."""
    global _CHILD
    from methods.base.preempt import ignore_warnings

    locks = ROOT / ".snakemake" / "locks"
    before = set(locks.glob("*.lock")) if locks.is_dir() else set()
    _CHILD = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=ignore_warnings)
    try:
        out, err = _CHILD.communicate()
    finally:
        rc, _CHILD = _CHILD.returncode, None
    if rc is not None and rc < 0:
        drop_locks(own, keep=before)
    return subprocess.CompletedProcess(cmd, rc, out, err)


def drop_locks(own: list[str], keep=()) -> list[Path]:
    """Remove Snakemake lock files (``.snakemake/locks``) that name one of ``own`` (result paths
    relative to the root), except those in ``keep``: locks of a Snakemake of this cell that was
    killed before it could unlock. Returns the files removed."""
    mine = {str(ROOT / f) for f in own}
    gone = []
    for f in sorted((ROOT / ".snakemake" / "locks").glob("*.lock")):
        if f not in keep and mine & set(f.read_text().split()):
            f.unlink(missing_ok=True)
            gone.append(f)
    return gone


def _child_done(timeout: float) -> bool:
    """Wait up to ``timeout`` s for the Snakemake child to exit, without reaping it (the main thread,
    interrupted inside ``communicate``, reaps it): its /proc entry turns zombie or disappears."""
    end = time.time() + timeout
    while time.time() < end:
        child = _CHILD
        if child is None:
            return True
        try:
            state = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.5)
    return False


class CellJob:
    """``rerun`` as a checkpointable submitit job (``methods rerun --slurm``).

    SLURM warns it (submitit's ``--signal=USR2@delay``) before its time limit or a preemption: the
    signal reaches the trainer, which finishes its epoch and stops (``methods.base.preempt``); Snakemake
    ignores it, sees the stage stop and exits, unlocking; then ``checkpoint`` lets submitit requeue
    the job. A requeued (or SLURM-requeued) attempt forces only the runs it has not retrained since
    the submission (``since``): an interrupted run resumes from its checkpoint, a finished one stays.
    """

    def __init__(self, submitted: float | None = None, delay: float = 180):
        self.submitted = submitted or time.time()
        self.delay = delay  # seconds from SLURM's warning to the end of the job

    def __call__(self, **kwargs) -> dict:
        from methods.base.plugins import load_configured

        load_configured()  # a fresh worker: the submitter's plug-ins reach it through the environment sbatch passes
        restarted = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0
        if restarted:  # SLURM killed the previous attempt's processes; their locks on this cell are stale
            own, _ = targets(kwargs["table"], kwargs["cell_id"], kwargs["scale"], kwargs.get("results", "results"),
                             kwargs.get("seeds"), kwargs.get("tables"), kwargs.get("upstream", False))
            for f in drop_locks(own):
                print(f"removed the stale lock {f} of this cell's previous attempt", file=sys.stderr)
        return rerun(**kwargs, since=self.submitted if restarted else None)

    def checkpoint(self, **kwargs):
        import submitit

        # Requeueing kills this attempt: first let the trainer finish its epoch and Snakemake unlock.
        if not _child_done(max(5.0, self.delay - 15)):
            print("the workflow did not stop before the requeue; SLURM's SIGTERM will stop it", file=sys.stderr)
        return submitit.helpers.DelayedSubmission(self, **kwargs)


#: Seconds between SLURM's warning and the end of a ``--slurm`` cell job: the epoch in progress
#: must finish in it (an epoch at full scale takes about 1-2 minutes on a V100-class GPU).
SIGNAL_DELAY_S = 180


def cell_minutes(table: str, cell_id: str, scale: str, results: str = "results", seeds=None, tables: str | None = None,
                 upstream: bool = False, **_) -> int:
    """Time limit of a ``--slurm`` cell job: the slurm/runtime.yaml limits of the runs it trains
    (its own, plus upstream runs without a result or forced), one after another."""
    from methods.workflow.jobs import runtime_minutes

    sc = load_scale(scale)
    cell = find_cell(sc, table, cell_id, load_tables(tables))
    root = f"{arg_path(results)}/{sc.name}"
    runs = [r for r in cell.runs if table not in SEARCH_FIGURES or upstream]
    runs += [u for u in cell.upstream if upstream or not (ROOT / u.path(root) / "result.json").is_file()]
    runs = [r for r in runs if not seeds or seed_of(r) in seeds]
    return sum(runtime_minutes(r, sc) for r in runs) or 1


def submit(cluster: str | None = None, folder: str | None = None, minutes: int | None = None, **kwargs):
    """Send ``rerun(**kwargs)`` to SLURM (or ``cluster`` "local"/"debug") through submitit as a
    ``CellJob``, with a training job's resources (slurm/resources.yaml) and a time limit sized from the
    cell's runs (``cell_minutes``, or ``minutes``); returns the submitit job."""
    import submitit
    import yaml

    res = yaml.safe_load((ROOT / "slurm" / "resources.yaml").read_text())
    limit = minutes or cell_minutes(**kwargs)
    ex = submitit.AutoExecutor(folder=folder or os.path.join(kwargs.get("results", "results"), "submitit"), cluster=cluster)
    kwargs = {**kwargs, "cores": int(res["cpus_per_task"])}
    ex.update_parameters(timeout_min=limit, cpus_per_task=int(res["cpus_per_task"]),
                         mem_gb=max(1, int(res["mem_mb"]) // 1000), name=f"rerun-{kwargs['table']}-{kwargs['cell_id']}")
    if ex.cluster == "slurm":
        extra = {k: res[k] for k in ("slurm_account", "slurm_partition") if res.get(k)}
        if "SLURM_PARTITION" in os.environ:
            extra["slurm_partition"] = os.environ["SLURM_PARTITION"]
        # the warning comes SIGNAL_DELAY_S before the limit, or at a quarter of a short limit
        ex.update_parameters(slurm_gpus_per_node=int(res["gpu"]), slurm_signal_delay_s=min(SIGNAL_DELAY_S, limit * 15),
                             slurm_comment=f"rerun {kwargs['table']} {kwargs['cell_id']}",
                             **extra)
    return ex.submit(CellJob(delay=min(SIGNAL_DELAY_S, limit * 15)), **kwargs)


def list_cells(scale: str, table: str, tables: str | None = None) -> list[str]:
    return [c.id for c in cells_of(load_scale(scale), table, load_tables(tables))]
