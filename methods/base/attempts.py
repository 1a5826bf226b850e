"""A training run's log keeps every attempt.

Snakemake deletes a job's ``log:`` file before each run of the job (``Job.remove_existing_output``),
so a retried or requeued run would lose the epochs of its earlier attempts. While a stage trains,
everything it prints is also appended, line by line, to ``<out>/.log.history``; the next attempt
first replays that file into its fresh log, so ``log.txt`` shows the whole history, each attempt
opening with a ``== attempt`` line (``methods.base.preempt.banner``). A run that ends well removes it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from methods.base.preempt import banner


class _Tee:
    def __init__(self, stream, copy):
        self._stream, self._copy = stream, copy

    def write(self, s):
        n = self._stream.write(s)
        self._copy.write(s)
        self._copy.flush()  # a SIGKILL must not lose what was printed
        return n

    def flush(self):
        self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


class AttemptLog:
    """Context manager around one stage's run in ``out``; set ``ok`` when it succeeded."""

    def __init__(self, out, cmd: str):
        self.out, self.cmd, self.ok = Path(out), cmd, False
        self.hist = self.out / ".log.history"

    def __enter__(self) -> "AttemptLog":
        # No folder yet: not a Snakemake job (it makes the log's folder); bad input must leave nothing behind.
        self._copy = None
        if not self.out.is_dir():
            return self
        log = self.out / "log.txt"
        had = self.hist.is_file()
        # Replay only into a log Snakemake emptied; a log appended to (batch jobs) still has it all.
        if self.hist.is_file() and (not log.is_file() or log.stat().st_size == 0):
            sys.stderr.write(self.hist.read_text(errors="replace"))
            sys.stderr.flush()
        self._copy = open(self.hist, "a")
        self._saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(sys.stdout, self._copy), _Tee(sys.stderr, self._copy)
        # The attempt line: in a SLURM job, or after an earlier attempt; not in a first local run, whose
        # expected errors stay one line on stderr (tests/test_cli.py).
        if had or os.environ.get("SLURM_JOB_ID"):
            print(banner([self.cmd]), file=sys.stderr, flush=True)
        return self

    def __exit__(self, *exc) -> None:
        if self._copy is None:
            return
        sys.stdout, sys.stderr = self._saved
        self._copy.close()
        if self.ok:
            self.hist.unlink(missing_ok=True)
