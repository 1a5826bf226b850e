"""The run an upstream folder holds, read from its ``result.json``: what the command line needs to
retrain from ``--search DIR`` or prune ``--dense DIR`` when the folder is named freely (the
workflow's folders are ``SearchRun.path`` / ``DenseRun.path``; ``methods.runs.cells``).
"""
from __future__ import annotations

from pathlib import Path

from methods.base.config import SCHEDULES, ConfigError, Scale, schedule
from methods.base.io import read_json
from methods.runs.cells import DenseRun, SearchRun, explicit_lrs


def search_run_of(folder, scale: Scale) -> SearchRun:
    """The ``SearchRun`` whose result is in ``folder``, its schedule named at ``scale``.

    Raises:
        FileNotFoundError: no ``result.json`` (the search has not run); ConfigError: its
            milestones are no schedule of ``scale``; methods.base.io.CorruptFile: unreadable.
    """
    res = _result(folder, "search", "--search")
    lr, later, name = _recipe(res["config"], scale, folder)
    return SearchRun(res["config"]["model"], res["config"]["dataset"], name, lr, int(res["config"]["seed"]),
                     res.get("precision", "fp32"), explicit_lrs(lr, later))


def dense_run_of(folder, scale: Scale) -> DenseRun:
    """The ``DenseRun`` whose result is in ``folder`` (RT Tables 8/9), as ``search_run_of``.

    Raises:
        as ``search_run_of``.
    """
    res = _result(folder, "dense", "--dense")
    lr, _, name = _recipe(res["config"], scale, folder)
    return DenseRun(res["config"]["model"], res["config"]["dataset"], name, lr, int(res["config"]["seed"]))


def _result(folder, kind: str, flag: str) -> dict:
    f = Path(folder) / "result.json"
    if not f.is_file():
        raise FileNotFoundError(f"{kind} run {folder} has no result.json: run its {kind} stage first (or fix {flag})")
    return read_json(f)


def _recipe(cfg: dict, scale: Scale, folder) -> tuple[float, list[float], str]:
    """(first LR, later LRs, schedule name) of a recorded config: the name whose milestones at
    ``scale`` (``methods.base.config.schedule``) are the recorded ones."""
    lr, later = float(cfg["lrs"][0]), [float(x) for x in cfg["lrs"][1:]]
    names = [n for n in SCHEDULES if schedule(n, lr, scale)[0] == list(cfg["milestones"])]
    if len(names) != 1:
        raise ConfigError(f"{folder}: milestones {cfg['milestones']} are not one schedule of scale {scale.name!r} "
                          f"({sorted(SCHEDULES)}); was it trained at another --scale?")
    return lr, later, names[0]
