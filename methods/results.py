"""A results tree as the pages and claims read it: one expected run folder at a time, pending
until its ``result.json`` is there, never an error (``load_run``).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .config import Scale
from .digest import path_stale_reason
from .io import CorruptFile, read_json


@dataclass
class Run:
    """One expected run folder and, when done, its parsed ``result.json``."""

    path: Path
    result: dict | None = None
    status: str = "pending"  # "done", "pending", "pending (checkpoint present)", "corrupt", "scale mismatch", "stale: why"

    @property
    def done(self) -> bool:
        return self.result is not None


def load_run(path, scale: Scale) -> Run:
    """Read ``path/result.json``; a missing file means pending, never an error.

    A result written at another scale is set aside (status "scale mismatch"), so a results tree
    reused across scales cannot silently mix 16-epoch and 160-epoch numbers into one cell; so is
    a stale one (status "stale: <what changed>", ``methods.digest``): its config digest is not
    what the current scale file and precisions give the run (a result without a digest, made
    before digests, is judged by its recorded config), so its number is never shown as done.
    """
    path = Path(path)
    f = path / "result.json"
    if not f.is_file():
        return Run(path, None, "pending (checkpoint present)" if (path / "ckpt.pt").is_file() else "pending")
    try:
        res = read_json(f)
    except (OSError, CorruptFile) as e:  # truncated, damaged (checksum) or unreadable: never shown as a number
        print(f"warning: {str(e).split(';')[0]}; shown as pending", file=sys.stderr)
        return Run(path, None, "corrupt")
    if res.get("scale") not in (None, scale.name):
        return Run(path, None, f"scale mismatch ({res.get('scale')})")
    if (why := path_stale_reason(path, res, scale)) is not None:
        return Run(path, None, f"stale: {why}")
    return Run(path, res, "done")
