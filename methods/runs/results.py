"""A run's ``result.json`` as one typed model (``Result``), checked when a stage writes it
(``write_result``: every field its kind records) and when the pages and claims read it
(``load_run``: the fields present have their types, a trained run has its accuracy); and a results
tree as the pages read it: one expected run folder at a time, pending until its ``result.json`` is
there, never an error.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from methods.base.config import Scale
from methods.runs.digest import path_stale_reason
from methods.base.io import CorruptFile, read_json, write_json

#: What each stage records beyond the common fields (``methods.stages.eb.run_search``/``run_retrain``,
#: ``methods.stages.lottery.run_dense``/``run_lottery``); a run without a ticket (``no_ticket``) records less.
RECORDED = {
    "search": ("config", "log", "best_acc", "final_acc", "eb_epochs", "complexity", "train_flops", "train_flops_paper",
               "energy", "provenance", "config_digest"),
    "retrain": ("config", "log", "best_acc", "final_acc", "search", "ratio", "draw", "init", "prune", "draw_epoch",
                "ticket", "complexity", "dense_complexity", "train_flops", "train_flops_paper", "energy", "provenance",
                "config_digest"),
    "dense": ("config", "log", "best_acc", "final_acc", "complexity", "train_flops", "provenance", "config_digest"),
    "lottery": ("config", "log", "best_acc", "final_acc", "prune", "arm", "ticket", "complexity", "train_flops",
                "provenance", "config_digest"),
}
NO_TICKET_RECORDED = ("best_acc", "final_acc", "no_ticket", "provenance", "config_digest")


class Result(BaseModel):
    """The typed core of a ``result.json`` (accuracies in %, FLOPs per run, epochs at the run's
    scale); every other field is kept as written. ``kind`` None: a result written before kinds
    were recorded."""

    model_config = ConfigDict(extra="allow")

    kind: Literal["search", "retrain", "dense", "lottery"] | None = None
    scale: str | None = None
    config: dict | None = None
    no_ticket: str | None = None
    best_acc: float | None = None
    final_acc: float | None = None
    best_epoch: int | None = None
    draw_epoch: int | None = None
    ratio: float | None = None
    log: list[dict] | None = None
    complexity: dict[str, float] | None = None
    dense_complexity: dict[str, float] | None = None
    train_flops: float | None = None
    train_flops_paper: float | None = None
    eb_epochs: dict[str, dict[str, int | None]] | None = None
    ticket: dict | None = None
    energy: dict | None = None
    provenance: dict | None = None

    @model_validator(mode="after")
    def _trained(self):
        if self.kind is not None and self.no_ticket is None and self.best_acc is None:
            raise ValueError(f"a {self.kind} result without no_ticket must record best_acc")
        return self


def check_result(res: dict, where: str = "result") -> Result:
    """``res`` as a ``Result``.

    Raises:
        CorruptFile: a field of the wrong type, or a trained run without its accuracy.
    """
    try:
        return Result.model_validate(res)
    except ValidationError as e:
        err = e.errors()[0]
        raise CorruptFile(f"{where}: {'.'.join(map(str, err['loc'])) or 'result'}: {err['msg']}") from None


def write_result(path: Path, res: dict) -> dict:
    """Check ``res`` (its types, and every field its kind records, ``RECORDED``) and write it
    atomically to ``path`` (``methods.base.io.write_json``, with its checksum). Returns ``res``.

    Raises:
        ValueError: a recorded field missing or of the wrong type: a bug in the stage, caught
            before a result the pages would misread is written.
    """
    try:
        check_result(res, str(path))
    except CorruptFile as e:
        raise ValueError(str(e)) from None
    need = NO_TICKET_RECORDED if res.get("no_ticket") is not None else RECORDED[res["kind"]]
    missing = [k for k in need if k not in res]
    if missing:
        raise ValueError(f"{path}: a {res['kind']} result must record {missing}")
    write_json(path, res)
    return res


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
    a stale one (status "stale: <what changed>", ``methods.runs.digest``): its config digest is not
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
    try:
        check_result(res, str(f))
    except CorruptFile as e:
        print(f"warning: {e}; shown as pending", file=sys.stderr)
        return Run(path, None, "corrupt")
    if res.get("scale") not in (None, scale.name):
        return Run(path, None, f"scale mismatch ({res.get('scale')})")
    if (why := path_stale_reason(path, res, scale)) is not None:
        return Run(path, None, f"stale: {why}")
    return Run(path, res, "done")
