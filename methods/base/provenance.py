"""Where a result came from: commit, versions, device, date and the command line."""
from __future__ import annotations

import datetime
import functools
import platform
import subprocess
import sys

import torch

from methods.base.config import ROOT


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """HEAD commit of the suite, suffixed "+dirty" when the tree has uncommitted changes (read
    once per process: a report writes hundreds of pages)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return (head or "unknown") + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(device: torch.device) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    from methods import __version__

    return {"commit": git_commit(), "suite": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "device": f"{device.type}: {name}", "threads": torch.get_num_threads(), "host": platform.node(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["python -m methods"] + sys.argv[1:])}
