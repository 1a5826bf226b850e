"""Schema of the table specification (``benchmarks/tables.yaml`` or the workflow's ``tables=``
file), checked before anything runs: every key, model, dataset, schedule, draw, ratio, method
and precision is validated, and a bad one is named in one line with the allowed values.

The keys mirror ``tables.yaml``; their meaning is documented there and in ``methods/runs/cells.py``.
``ratios_<model>_<dataset>`` (another ratio list for one setting) and ``absent_<model>_<dataset>``
(Table 2 rows the paper does not print) are the only keys built from names.
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from methods.base.config import PAPER_EPOCHS, SCHEDULES, ConfigError, validate
from methods.base.inputs import NAMED_DRAWS, Number, check_draw, check_ratio, number  # noqa: F401 (NAMED_DRAWS: importers)
from methods.base.data import DATASETS
from methods.models import MODELS
from methods.base.tables import TABLES

Ratio = Number  # 0.5, 0.50, 5e-1 and YAML 1.1's string "5e-1" are one ratio (methods/base/inputs.py)
#: Start weights of a retraining (methods.stages.eb.run_retrain): fresh init, drawn weights, continue
#: from the draw epoch (EB Train), rewind to theta_0 (LT), continue with a fresh init (main_c.py).
INITS = ("fresh", "drawn", "continue", "rewind", "continuefresh")
#: A plug-in's model or method is known only once the plug-in is loaded (``methods.base.plugins``).
PLUGIN_HINT = " (a plug-in's? load it: --config plugins=FILE, or PRUNING_SUITE_PLUGINS=FILE for a command run by hand)"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Do not train a ticket that cuts every path from input to logits (``methods.pruning.ticket``):
    #: its result records it as refused. Default: train it, since the paper's number exists.
    refuse_disconnected: bool = False

    @field_validator("models", "datasets", "dataset", "schedule", "schedules", "ratio", "ratios", "draws", "draw", "lr",
                     "lrs", "later_lrs", check_fields=False)
    @classmethod
    def _known(cls, v, info):
        if v is None:  # where None is allowed the field's type says so
            return v
        checks = {"models": (MODELS, "model"), "datasets": (DATASETS, "dataset"), "dataset": (DATASETS, "dataset"),
                  "schedule": (SCHEDULES, "schedule"), "schedules": (SCHEDULES, "schedule")}
        values = v if isinstance(v, (list, dict)) else [v]
        if info.field_name in checks:
            known, what = checks[info.field_name]
            bad = [x for x in values if x not in known]
            if bad:
                hint = PLUGIN_HINT if what == "model" else ""
                raise ValueError(f"unknown {what} {bad[0]!r}; choose from {sorted(known)}{hint}")
        elif info.field_name in ("ratio", "ratios"):
            for x in values:
                check_ratio(x)
        elif info.field_name in ("draws", "draw"):
            for d in values:
                check_draw(d)
        elif any(x <= 0 for x in values):  # lr, lrs, later_lrs
            raise ValueError("learning rates must be positive")
        if info.field_name == "models" and isinstance(v, dict) and any(
                not isinstance(x, str) and x <= 0 for xs in v.values() for x in xs):  # Table 4's initial LRs
            raise ValueError("learning rates must be positive")
        return v

    @model_validator(mode="before")
    @classmethod
    def _named_keys(cls, data):
        """``ratios_<model>_<dataset>`` / ``absent_<model>_<dataset>``: checked here, kept aside."""
        if not isinstance(data, dict):
            return data
        out = {k: v for k, v in data.items() if not re.match(r"(ratios|absent)_", k)}
        extra = {k: v for k, v in data.items() if k not in out}
        if extra and "named" not in cls.model_fields:
            raise ValueError(f"unknown key(s) {sorted(extra)}")
        for k, v in extra.items():
            if not isinstance(v, list):
                raise ValueError(f"{k}={v!r}: expected a list")
            m = re.fullmatch(rf"(ratios|absent)_({'|'.join(MODELS)})_({'|'.join(DATASETS)})", k)
            if not m:
                raise ValueError(f"key {k!r}: expected ratios_<model>_<dataset> or absent_<model>_<dataset>")
            if m[1] == "ratios":
                v = extra[k] = [number(x, k) for x in v]
            for x in v if m[1] == "ratios" else ():
                check_ratio(x, f"{k}: pruning ratio")
        if extra:
            out["named"] = extra
        return out


class Table1(_Spec):
    models: list[str]
    datasets: list[str]
    schedules: list[str]
    draws: list[str]
    ratio: Ratio
    lr: Number
    runs: int = Field(gt=0)
    retrain_schedule: str
    init: Literal[INITS]


class Table4(_Spec):
    models: dict[str, list[Number]]
    datasets: list[str]
    schedule: str
    later_lrs: list[Number] | None
    retrain_lr: Literal["row"] | Number = Field(union_mode="left_to_right")
    draws: list[str]
    ratio: Ratio
    runs: int = Field(gt=0)
    init: Literal[INITS]


def _precision(v: str) -> str:
    from methods.base.config import load_precision

    load_precision(v)  # ConfigError (a ValueError) naming the known formats
    return v


class Row(_Spec):
    """A Table 2 row: its ticket (``prune``, ``draw``, ``init``, precisions) and how the page shows
    it: ``label`` (default: the paper's name of a paper row, else the key) and ``role`` in the
    "EB Train Improv." row: "baseline" (LT, SNIP, NS, ThiNet), "eb" (EB Train and its variants) or
    "extra" (a row of yours: shown and costed like the others, outside the Improv. comparison
    unless you make it a baseline). Default: the paper row's role, else "extra"."""

    prune: str
    draw: str | int
    init: Literal[INITS]
    search_precision: str = "fp32"
    precision: str = "fp32"
    label: str | None = None
    role: Literal["baseline", "eb", "extra"] | None = None

    _precisions = field_validator("search_precision", "precision")(classmethod(lambda cls, v: _precision(v)))

    @field_validator("prune")
    @classmethod
    def _method(cls, v):
        from methods.pruning.registry import PRUNING

        if v not in PRUNING:
            raise ValueError(f"unknown pruning method {v!r}; choose from {sorted(PRUNING)}{PLUGIN_HINT}")
        return v


class Table2(_Spec):
    models: list[str]
    datasets: list[str]
    ratios: list[Ratio]
    schedule: str
    lr: Number
    runs: int = Field(gt=0)
    rows: dict[str, Row]
    lowp_accuracy: Literal["best_acc", "swa_acc"]
    named: dict = {}


class Figure1(_Spec):
    models: list[str]
    datasets: list[str]
    schedule: str
    draws: list[str]
    ratios: list[Ratio]
    lr: Number
    runs: int = Field(gt=0)
    init: Literal[INITS]
    search_precision: str = "fp32"
    named: dict = {}

    _precisions = field_validator("search_precision")(classmethod(lambda cls, v: _precision(v)))


class Figure3(_Spec):
    models: list[str]
    dataset: str
    schedule: str
    lr: Number
    ratios: list[Ratio]


class Figure5(_Spec):
    models: list[str]
    datasets: list[str]
    schedule: str
    lr: Number
    ratios: list[Ratio]
    runs: int = Field(gt=0)
    every: int = Field(gt=0, le=PAPER_EPOCHS)
    retrain: Literal["full", "continue"]
    named: dict = {}


class Lottery(_Spec):
    dataset: str
    schedule: str
    lrs: list[Number]
    runs: int = Field(gt=0)
    prune: Literal["l1", "convmagnitude"]  # methods.stages.lottery.LOTTERY_METHODS
    models: dict[str, list[str]] | list[str]
    ratios: list[Ratio] | None = None
    arms: list[Literal["winning", "random"]]


def bn_prunes(block: dict) -> list[tuple[str, str, str]]:
    """(field, method, model) of every pruning a table asks for (``TableDef.prunes``): the EB
    tables and figures prune by BN |gamma| (``methods.runs.cells.RetrainRun.prune``; Figure 5 prices
    BN-pruned architectures); Figure 3 only compares BN masks and prunes nothing (no rule)."""
    return [("models", "bn", m) for m in block["models"]]


def row_prunes(block: dict) -> list[tuple[str, str, str]]:
    """Table 2: each row's method on every model."""
    return [(f"rows.{row}.prune", r["prune"], m) for row, r in block["rows"].items() for m in block["models"]]


def lottery_prunes(block: dict) -> list[tuple[str, str, str]]:
    """RT Tables 8 and 9: the table's ``prune`` on every model."""
    return [("prune", block["prune"], m) for m in block["models"]]


def check_tables(spec: dict, where: str) -> dict:
    """Validate a table specification and return it normalised: numbers as floats (``0.50``,
    ``5e-1`` and YAML 1.1's string ``"5e-1"`` all become 0.5, so one cell and one run folder),
    other keys as written. A table left out, or listing no models, has no cells and no page
    (``methods.runs.cells.built_tables``).

    Raises:
        ConfigError: an unknown table, a misspelt key, a bad value, or a pruning method asked
            of a model it has no rule for (``methods.pruning.registry.check_supported``): one line
            naming the file, the table, the field, the value and the allowed values.
    """
    from methods.pruning.registry import check_supported

    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping of tables, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(TABLES))
    if unknown:  # a table left out is simply not built (a trimmed tables= copy); a misspelt one would be lost
        raise ConfigError(f"{where}: unknown table(s) {unknown}; the tables are {sorted(TABLES)} "
                          "(a plug-in's tables need its module in the plugins config key)")
    out = {}
    for name, t in TABLES.items():
        if name not in spec:
            continue
        if not isinstance(spec[name], dict):
            raise ConfigError(f"{where} {name}: expected a mapping of keys, got {spec[name]!r}")
        table = validate(t.get("schema"), spec[name], f"{where} {name}")
        out[name] = {**spec[name], **table.model_dump(exclude={"named"}, exclude_unset=True), **getattr(table, "named", {})}
        for field, method, model in (t.get("prunes")(out[name]) if t.prunes else ()):
            try:
                check_supported(method, model)
            except ConfigError as e:
                raise ConfigError(f"{where} {name}: {field}: {e}") from None
    return out
