"""``methods batch``: the stage command lines of one grouped job, run in one process (``runs_per_job``
in a scale file: one Python start-up and one data load for many tiny runs)."""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Callable

from methods.base.preempt import SIGNALS

BATCHABLE = ("search", "retrain", "dense", "lottery")
STOP_CODES = {128 + s for s in SIGNALS}  # a stage stopped by a cluster signal (methods.base.preempt)


def run_batch(commands: list[str], parser: argparse.ArgumentParser, main: Callable[[list[str]], int]) -> int:
    """Run each stage command line of ``commands`` in turn, as its own job would (same stage
    code, seeds and files; ``tests/test_batch.py`` checks the results are bitwise equal), with
    stdout and stderr appended to ``<--out>/log.txt`` (a resumed or skipped run keeps its
    earlier log). Every line is parsed before any runs; a failing run does not stop the others.

    ``parser`` parses a stage line (``methods.__main__.parser()``), ``main`` runs one (its ``main``):
    passed in, so that this module does not import the command line that calls it.

    Returns 0 when every run succeeded, else 1 (the failed runs are printed), or a stop code.

    Raises:
        ValueError: a line that is not a training stage command or does not parse.
    """
    import shlex

    argvs, p = [shlex.split(c) for c in commands], parser
    outs = []
    for argv in argvs:
        if not argv or argv[0] not in BATCHABLE:
            raise ValueError(f"batch runs stage command lines ({', '.join(BATCHABLE)} ... --out DIR), got {argv[:1]}")
        with contextlib.redirect_stderr(io.StringIO()) as err:
            try:
                outs.append(p.parse_args(argv).out)
            except SystemExit:
                raise ValueError(f"batch line {shlex.join(argv)!r}: {err.getvalue().strip().splitlines()[-1]}") from None
    failed = []
    for argv, out in zip(argvs, outs):
        with _output_to(Path(out) / "log.txt"):
            try:
                rc = main(argv)
            except (Exception, SystemExit):  # one broken run must not lose the group's others
                import traceback

                traceback.print_exc()
                rc = 1
        print(f"{'done' if rc == 0 else 'FAILED'} {out}", flush=True)
        if rc in STOP_CODES:  # preempted: the whole job stops and its retry resumes this run
            print(f"preempted during {out}; the group's remaining runs are left to the retry", file=sys.stderr)
            return rc
        if rc:
            failed.append(out)
    if failed:
        print(f"error: {len(failed)} of {len(argvs)} runs failed; see their log.txt: {' '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


@contextlib.contextmanager
def _output_to(log: Path):
    """Append this process's stdout and stderr to ``log``: ``sys.stdout``/``sys.stderr`` and file
    descriptors 1 and 2 (C++ warnings too)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log, "a", buffering=1) as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
