"""Stopping a training run cleanly on the cluster's signals, so a retry or requeue resumes it.

SLURM warns a job before its time limit or a preemption with the signal named by ``--signal``
(``slurm/resources.yaml`` asks for SIGUSR1 five minutes ahead; submitit for SIGUSR2) and ends it with SIGTERM, then,
after ``KillWait`` (30 s by default), SIGKILL. On SIGUSR1 the run finishes its epoch, writes
that epoch's checkpoint and stops; on SIGTERM it stops before its next training step, the
last epoch's checkpoint being on disk already (checkpoints are written atomically at every
epoch's end, so even SIGKILL loses at most the epoch in progress). Either way the process
exits with status 128 + the signal's number, and rerunning the stage resumes it exactly.
The handlers are installed while ``methods.train.loop.fit`` trains; outside it (data load, result
writing, between the runs of a batch) the signals keep their default action, which the
atomic writes make as safe as SIGKILL.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

#: USR1 is the profile's warning (slurm/resources.yaml ``--signal=USR1@300``), USR2 submitit's
#: (``methods rerun --slurm``): both mean "finish this epoch and stop".
WARNINGS = (signal.SIGUSR1, signal.SIGUSR2)
SIGNALS = (*WARNINGS, signal.SIGTERM)


def ignore_warnings() -> None:
    """Let a warning reach the trainer alone: SLURM sends ``--signal`` to every process of the job
    step (the in-job Snakemake, its shell, the trainer), and their default action is to die, which
    would end the step and orphan the trainer. Ignored here, in a Snakemake process (the Snakefile
    calls this), the disposition is inherited by its shell (bash cannot un-ignore it) and by the
    trainer, whose ``StopSignals`` installs its own handler while it trains."""
    for s in WARNINGS:
        signal.signal(s, signal.SIG_IGN)


def restarts(job: str) -> str:
    """How many times SLURM has requeued ``job``: ``SLURM_RESTART_COUNT``, else (the Snakemake executor's
    in-job ``srun`` drops it from the step's environment, keeping only SLURM_JOB_ID and a few) what
    ``scontrol show job`` says; "?" when neither answers."""
    if (n := os.environ.get("SLURM_RESTART_COUNT")) is not None:
        return n
    try:
        out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    return m[1] if (m := re.search(r"\bRestarts=(\d+)", out)) else "?"


def banner(argv) -> str:
    """The line that opens each attempt in a run's log (logs are appended to, so a retried or
    requeued run's log keeps every attempt): time, host, SLURM job and restart count."""
    job = os.environ.get("SLURM_JOB_ID")
    where = f"SLURM job {job} (restart {restarts(job)})" if job else "local"
    return f"== attempt {time.strftime('%Y-%m-%dT%H:%M:%S')} on {os.uname().nodename}, {where}: {' '.join(argv[:1])}"


def requeue_after_warning(signum: int) -> bool:
    """After the profile's warning (SIGUSR1) in a Snakemake SLURM job, put the job back in the queue
    (``scontrol requeue``): it keeps its job id, so Snakemake waits on and spends no retry; the
    requeued job resumes from the checkpoint just written. Not in a submitit job
    (``methods rerun --slurm``, SIGUSR2): submitit requeues those itself. True when requeued."""
    job = os.environ.get("SLURM_JOB_ID")
    if signum != signal.SIGUSR1 or not job or os.environ.get("SUBMITIT_EXECUTOR"):
        return False
    r = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    print(f"requeue of SLURM job {job}: {'done' if r.returncode == 0 else (r.stderr or r.stdout).strip()}",
          file=sys.stderr)
    return r.returncode == 0


class Preempted(BaseException):
    """Raised in the training loop after a stop signal; ``epoch``: epochs in the checkpoint.

    A BaseException, like KeyboardInterrupt: a grouped job (``methods batch``) stops too,
    rather than going on to its next run.
    """

    def __init__(self, signum: int, epoch: int):
        super().__init__(signum, epoch)
        self.signum, self.epoch = signum, epoch
        self.exit_code = 128 + signum

    def __str__(self) -> str:
        return (f"{signal.Signals(self.signum).name}: stopped with the checkpoint after epoch {self.epoch}; "
                "rerun the stage to resume it")


class StopSignals:
    """Context manager catching ``SIGNALS`` while training (main thread only; elsewhere a no-op).

    ``signum``: the signal received, or None; ``now``: stop before the next step (SIGTERM).
    The previous handlers are restored on exit.
    """

    def __init__(self):
        self.signum: int | None = None
        self.now = False
        self._old: dict = {}

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        self.now = self.now or signum == signal.SIGTERM

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
