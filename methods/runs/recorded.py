"""The run an upstream folder holds, read back from its ``result.json``: what the command line needs to
retrain from ``--search DIR`` or prune ``--dense DIR`` when the folder is named freely (the workflow's
folders are ``SearchRun.path`` / ``DenseRun.path``; ``methods.runs.cells``). A stage records the inputs
it was called with (``digest_inputs``, ``methods.runs.digest``); a result written before those were
recorded is read from its canonical folder name.
"""
from __future__ import annotations

from pathlib import Path

from methods.base.config import ConfigError
from methods.base.io import read_json
from methods.runs.cells import DenseRun, SearchRun
from methods.runs.digest import run_of


def search_run_of(folder) -> SearchRun:
    """The ``SearchRun`` that trained the result in ``folder``.

    Raises:
        FileNotFoundError: no ``result.json`` (the search has not run); ConfigError: another kind
            of run, or an old result in a folder not named as a search run;
            methods.base.io.CorruptFile: unreadable.
    """
    got = _recorded(folder, "search", "--search")
    if isinstance(got, SearchRun):
        return got
    lrs = got.get("lrs")
    return SearchRun(got["model"], got["dataset"], got["schedule"], float(got["lr"]), int(got["seed"]),
                     got.get("precision", "fp32"), tuple(lrs) if lrs else None)


def dense_run_of(folder) -> DenseRun:
    """The ``DenseRun`` (RT Tables 8/9) that trained the result in ``folder``.

    Raises:
        as ``search_run_of``.
    """
    got = _recorded(folder, "dense", "--dense")
    if isinstance(got, DenseRun):
        return got
    return DenseRun(got["model"], got["dataset"], got["schedule"], float(got["lr"]), int(got["seed"]))


def _recorded(folder, kind: str, flag: str):
    """The recorded inputs of the ``kind`` run in ``folder`` (a dict), or the run its canonical name gives."""
    f = Path(folder) / "result.json"
    if not f.is_file():
        raise FileNotFoundError(f"{kind} run {folder} has no result.json: run its {kind} stage first (or fix {flag})")
    res = read_json(f)
    if res.get("kind") not in (kind, None):
        raise ConfigError(f"{flag} {folder} holds a {res['kind']} run, not a {kind} run: point {flag} at a {kind} run")
    inputs = res.get("digest_inputs") or {}
    if inputs.get("stage") == kind and all(k in inputs for k in ("model", "dataset", "schedule", "lr", "seed")):
        return inputs
    named = run_of(folder)
    if isinstance(named, SearchRun if kind == "search" else DenseRun):
        return named
    raise ConfigError(f"{f} records no inputs (it predates config digests) and {Path(folder).name!r} is not a {kind} "
                      f"run name: rerun its {kind} stage, or give the folder its workflow name")
