"""Stopping a training run cleanly on the cluster's signals, so a retry or requeue resumes it.

SLURM warns a job before its time limit or a preemption with the signal named by ``--signal``
(``slurm/config.yaml`` asks for SIGUSR1 five minutes ahead) and ends it with SIGTERM, then,
after ``KillWait`` (30 s by default), SIGKILL. On SIGUSR1 the run finishes its epoch, writes
that epoch's checkpoint and stops; on SIGTERM it stops before its next training step, the
last epoch's checkpoint being on disk already (checkpoints are written atomically at every
epoch's end, so even SIGKILL loses at most the epoch in progress). Either way the process
exits with status 128 + the signal's number, and rerunning the stage resumes it exactly.
The handlers are installed while ``methods.train.fit`` trains; outside it (data load, result
writing, between the runs of a batch) the signals keep their default action, which the
atomic writes make as safe as SIGKILL.
"""
from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGUSR1, signal.SIGTERM)


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
