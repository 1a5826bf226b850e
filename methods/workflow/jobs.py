"""What the Snakefile needs to turn runs (``methods.runs.cells``) into jobs: each stage's command
line, the epochs a run trains, its SLURM time limit (``slurm/runtime.yaml``) and the grouping of
short runs into one job (a scale's ``runs_per_job``; ``python -m methods batch`` runs a group).
"""
from __future__ import annotations

from pathlib import Path

import yaml

from methods.runs.cells import DenseRun, LotteryRun, RetrainRun, SearchRun
from methods.runs.results import Result
from methods.base.config import Scale
from methods.stages.common import StageContext
from methods.stages.eb import CONTINUING

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_YAML = ROOT / "slurm" / "runtime.yaml"


def lrs_flag(run) -> str:
    """``--lrs a,b,c`` for a run with explicit LRs (Table 4), else empty."""
    return f"--lrs {','.join(f'{x:g}' for x in run.lrs)}" if run.lrs else ""


def retrain_args(r: RetrainRun, scale: Scale, results: str, data: str, refuse: bool = False) -> str:
    """The ``python -m methods`` arguments of one retraining; ``data`` is ``--data-root ...``;
    ``refuse``: a table asks not to train a disconnected ticket (``methods.runs.cells.refused_runs``)."""
    return (f"retrain --scale {scale.name} {data} --search {r.search.path(results)} --ratio {r.ratio:g} --prune {r.prune}"
            f" --draw {r.draw} --init {r.init} --schedule {r.schedule} --lr {r.lr:g} {lrs_flag(r)} --seed {r.search.seed}"
            f" --precision {r.precision} --out {r.path(results)}" + (" --refuse-disconnected" if refuse else ""))


def lottery_args(t: LotteryRun, scale: Scale, results: str, data: str, refuse: bool = False) -> str:
    """The ``python -m methods`` arguments of one lottery arm (``refuse`` as in ``retrain_args``)."""
    return (f"lottery --scale {scale.name} {data} --dense {t.dense.path(results)} --prune {t.prune} --target {t.target}"
            f" --arm {t.arm} --seed {t.dense.seed} --out {t.path(results)}" + (" --refuse-disconnected" if refuse else ""))


def run_epochs(run, scale: Scale) -> int:
    """Epochs the stage of ``run`` trains at ``scale``: the scale's epochs, except EB Train
    (init continue/continuefresh) from a numbered draw epoch t, which trains epochs - t. An EB
    draw's epoch is known only after its search: counted as a whole run (an upper bound)."""
    if isinstance(run, RetrainRun) and run.init in CONTINUING and run.draw not in ("eb", "eb_official", "best"):
        return scale.epochs - scale.epoch(run.draw)
    return scale.epochs


def model_of(run) -> str:
    """The architecture a run trains (a retraining's or arm's is its search's or dense run's)."""
    return (run.search if isinstance(run, RetrainRun) else run.dense if isinstance(run, LotteryRun) else run).model


def runtime_minutes(run, scale: Scale, table: dict | None = None) -> int:
    """SLURM time limit of a job training ``run``: ``margin`` x the model's minutes per 160 epochs
    x the epochs it trains / 160, at least ``minimum`` (``slurm/runtime.yaml``; an unlisted model
    gets the longest)."""
    t = table or yaml.safe_load(RUNTIME_YAML.read_text())
    per = t["minutes_per_160_epochs"]
    minutes = per.get(model_of(run), max(per.values()))
    return max(t["minimum"], int(t["margin"] * minutes * run_epochs(run, scale) / 160 + 0.5))


def groups(runs, upstream, size: int) -> list[tuple[object, list]]:
    """``runs`` grouped by ``upstream(run)`` (their search or dense run) and cut into chunks of at
    most ``size``, in path order: [(upstream run, [runs])]. The chunks depend only on the runs."""
    by: dict = {}
    for r in sorted(runs, key=lambda r: r.path("")):
        by.setdefault(upstream(r), []).append(r)
    return [(up, rs[i:i + size]) for up, rs in sorted(by.items(), key=lambda kv: kv[0].path(""))
            for i in range(0, len(rs), size)]


def train(run, ctx: StageContext, refuse: bool = False, snapshot_epochs=()) -> Result:
    """Train one run dataclass in this process, into ``ctx.folder(run)``: the stage its type names,
    with the arguments its workflow job passes (``retrain_args``, ``lottery_args``; the search's
    ``snapshot_epochs`` are ``methods.runs.cells.snapshot_draws``). Returns the typed result the
    stage wrote (``methods.runs.results.Result``, as the pages and claims read it).

    Raises:
        TypeError: not a run dataclass; what the stage raises (ConfigError, FileNotFoundError for a
            missing upstream run, DatasetError).
    """
    from methods.stages.lottery import run_dense, run_lottery
    from methods.stages.eb import run_retrain, run_search

    if isinstance(run, SearchRun):
        return run_search(run, ctx, snapshot_epochs=list(snapshot_epochs))
    if isinstance(run, RetrainRun):
        return run_retrain(run, ctx, refuse_disconnected=refuse)
    if isinstance(run, DenseRun):
        return run_dense(run, ctx)
    if isinstance(run, LotteryRun):
        return run_lottery(run, ctx, refuse_disconnected=refuse)
    raise TypeError(f"{type(run).__name__} is not a run (SearchRun, RetrainRun, DenseRun, LotteryRun)")
