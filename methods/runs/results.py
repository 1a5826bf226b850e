"""A run's ``result.json`` as one typed model (``Result``), checked when a stage writes it
(``write_result``: every field its kind records) and when the pages and claims read it
(``load_run``: the fields present have their types, a trained run has its accuracy); and a results
tree as the pages read it: one expected run folder at a time, pending until its ``result.json`` is
there, never an error.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

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
    """A ``result.json`` as the pages and claims read it: every field a stage records
    (``RECORDED``), typed. Units: accuracies in % of the test set; FLOPs per run (``train_flops*``:
    the whole training, 1 MAC = 2 FLOPs; ``*_paper``: the official counter's convention,
    ``methods.metrics.flops``; ``*_eb_units``: in EB's 0.05 PFLOPs units, ``*_50k_*``: rescaled to the
    papers' 50,000 training images); epochs at the run's scale; energy in joules. A field a result does
    not record is None (older results, refused tickets); fields a plug-in adds are kept as written
    (``extra="allow"``). ``kind`` None: a result written before kinds were recorded."""

    model_config = ConfigDict(extra="allow")

    # every kind (methods.stages.common.save_result adds the digest, methods.base.io.write_json the checksum)
    kind: Literal["search", "retrain", "dense", "lottery"] | None = None
    scale: str | None = None
    config: dict | None = None
    precision: str | None = None
    log: list[dict] | None = None
    best_acc: float | None = None
    best_epoch: int | None = None
    final_acc: float | None = None
    swa_acc: float | None = None
    no_ticket: str | None = None
    complexity: dict[str, int | float] | None = None
    train_images: int | None = None
    train_flops: float | None = None
    train_flops_paper: float | None = None
    train_flops_nonzero: float | None = None
    train_flops_paper_nonzero: float | None = None
    train_flops_eb_units: float | None = None
    train_flops_50k_eb_units: float | None = None
    train_flops_paper_eb_units: float | None = None
    train_flops_paper_50k_eb_units: float | None = None
    train_flops_nonzero_eb_units: float | None = None
    train_flops_nonzero_50k_eb_units: float | None = None
    train_flops_paper_nonzero_eb_units: float | None = None
    train_flops_paper_nonzero_50k_eb_units: float | None = None
    energy: dict | None = None
    provenance: dict | None = None
    config_digest: str | None = None
    digest_inputs: dict | None = None
    checksum: str | None = None
    # search (methods.stages.eb.run_search)
    eb_epochs: dict[str, dict[str, int | None]] | None = None
    bn_channels: int | None = None
    # retrain and lottery (methods.stages.eb.run_retrain, methods.stages.lottery.run_lottery)
    prune: str | None = None
    granularity: Literal["channel", "filter", "weight"] | None = None
    ticket: dict | None = None
    dense_complexity: dict[str, int | float] | None = None
    weight_density: float | None = None
    param_reduction: float | None = None
    param_reduction_nonzero: float | None = None
    flop_reduction: float | None = None
    flop_reduction_nonzero: float | None = None
    flop_reduction_paper: float | None = None
    # retrain only
    search: str | None = None
    ratio: float | None = None
    draw: str | None = None
    init: str | None = None
    search_precision: str | None = None
    draw_epoch: int | None = None
    search_best_acc: float | None = None
    flops_search: float | None = None
    flops_prune: float | None = None
    flops_retrain: float | None = None
    flops_paper_search: float | None = None
    flops_paper_prune: float | None = None
    flops_paper_retrain: float | None = None
    # lottery only
    dense: str | None = None
    target: float | str | None = None
    arm: str | None = None
    dense_best_acc: float | None = None
    conv_weights: int | None = None
    conv_nonzero: int | None = None

    @field_validator("draw", "target", mode="before")
    @classmethod
    def _name_part(cls, v):
        # a draw ("10", "final", "eb") and an RT target ("a", "0.8") are parts of run-folder names; a caller
        # passing draw=10 means "10" (methods.runs.digest hashes str(draw)), not a result to refuse after training
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @model_validator(mode="after")
    def _trained(self):
        if self.kind is not None and self.no_ticket is None and self.best_acc is None:
            raise ValueError(f"a {self.kind} result without no_ticket must record best_acc")
        return self

    @property
    def trained(self) -> bool:
        """Whether a ticket was trained (not ``no_ticket``: no EB ticket, or refused as disconnected)."""
        return not self.no_ticket

    @property
    def disconnected(self) -> bool:
        """Whether the drawn ticket has no path from input to logits (``methods.pruning.ticket``)."""
        return bool((self.ticket or {}).get("disconnected"))

    def cx(self, key: str, default: float = math.nan) -> float:
        """``complexity[key]`` (``macs``, ``flops``, ``flops_paper``, ``params``, ...), ``default`` if not recorded."""
        return (self.complexity or {}).get(key, default)

    def get(self, key: str, default=None):
        """A field by name, ``default`` when None or absent (for keys chosen at run time, e.g. a page's column)."""
        v = getattr(self, key, None)
        return default if v is None else v

    def paper_flops(self, key: str = "train_flops_50k_eb_units") -> float:
        """The official-counter twin of the conv + linear FLOPs field ``key`` (``train_flops...`` ->
        ``train_flops_paper...``; ``"flops"``: ``complexity["flops_paper"]``; EB ``compute_flops.py``).
        A result written before that convention was recorded gives ``key`` itself (``old_flops``).

        Raises:
            KeyError: ``key`` is not recorded either.
        """
        get = (lambda k: (self.complexity or {}).get(k)) if key == "flops" else self.get
        v = get(key.replace("flops", "flops_paper", 1))
        v = get(key) if v is None else v
        if v is None:
            raise KeyError(key)
        return v

    @property
    def old_flops(self) -> bool:
        """Whether this result predates the official counter's FLOPs (``complexity`` lacks ``flops_paper``)."""
        return "flops_paper" not in (self.complexity or {})


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
    result: Result | None = None  # a dict is checked into a Result
    status: str = "pending"  # "done", "pending", "pending (checkpoint present)", "corrupt", "scale mismatch", "stale: why"

    def __post_init__(self):
        if isinstance(self.result, dict):
            self.result = check_result(self.result, str(self.path))

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
        typed = check_result(res, str(f))
    except CorruptFile as e:
        print(f"warning: {e}; shown as pending", file=sys.stderr)
        return Run(path, None, "corrupt")
    if typed.scale not in (None, scale.name):
        return Run(path, None, f"scale mismatch ({typed.scale})")
    if (why := path_stale_reason(path, res, scale)) is not None:
        return Run(path, None, f"stale: {why}")
    return Run(path, typed, "done")
