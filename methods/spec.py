"""Schema of the table specification (``benchmarks/tables.yaml`` or the workflow's ``tables=``
file), checked before anything runs: every key, model, dataset, schedule, draw, ratio, method
and precision is validated, and a bad one is named in one line with the allowed values.

The keys mirror ``tables.yaml``; their meaning is documented there and in ``methods/cells.py``.
``ratios_<model>_<dataset>`` (another ratio list for one setting) and ``absent_<model>_<dataset>``
(Table 2 rows the paper does not print) are the only keys built from names.
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .config import PAPER_EPOCHS, SCHEDULES, ConfigError, validate
from .data import DATASETS
from .models import MODELS

Ratio = float
NAMED_DRAWS = ("final", "best", "eb", "eb_official")
#: Start weights of a retraining (methods.stages.run_retrain): fresh init, drawn weights, continue
#: from the draw epoch (EB Train), rewind to theta_0 (LT), continue with a fresh init (main_c.py).
INITS = ("fresh", "drawn", "continue", "rewind", "continuefresh")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

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
                raise ValueError(f"unknown {what} {bad[0]!r}; choose from {sorted(known)}")
        elif info.field_name in ("ratio", "ratios"):
            if any(not 0 < x < 1 for x in values):
                raise ValueError("pruning ratios must lie in (0, 1)")
        elif info.field_name in ("draws", "draw"):
            for d in map(str, values):
                if d not in NAMED_DRAWS and not (re.fullmatch(r"\d+", str(d)) and int(d) <= PAPER_EPOCHS):
                    raise ValueError(f"draw {d!r}: a paper-scale epoch 0..{PAPER_EPOCHS} or one of {list(NAMED_DRAWS)}")
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
            m = re.fullmatch(rf"(ratios|absent)_({'|'.join(MODELS)})_({'|'.join(DATASETS)})", k)
            if not m:
                raise ValueError(f"key {k!r}: expected ratios_<model>_<dataset> or absent_<model>_<dataset>")
            if m[1] == "ratios" and any(not 0 < x < 1 for x in v):
                raise ValueError(f"{k}={v}: pruning ratios must lie in (0, 1)")
        if extra:
            out["named"] = extra
        return out


class Table1(_Spec):
    models: list[str]
    datasets: list[str]
    schedules: list[str]
    draws: list[str]
    ratio: Ratio
    lr: float
    runs: int = Field(gt=0)
    retrain_schedule: str
    init: Literal[INITS]


class Table4(_Spec):
    models: dict[str, list[float]]
    datasets: list[str]
    schedule: str
    later_lrs: list[float] | None
    retrain_lr: Literal["row"] | float = Field(union_mode="left_to_right")
    draws: list[str]
    ratio: Ratio
    runs: int = Field(gt=0)
    init: Literal[INITS]


def _precision(v: str) -> str:
    from .config import load_precision

    load_precision(v)  # ConfigError (a ValueError) naming the known formats
    return v


class Row(_Spec):
    prune: str
    draw: str | int
    init: Literal[INITS]
    search_precision: str = "fp32"
    precision: str = "fp32"

    _precisions = field_validator("search_precision", "precision")(classmethod(lambda cls, v: _precision(v)))

    @field_validator("prune")
    @classmethod
    def _method(cls, v):
        from .pruning import PRUNING

        if v not in PRUNING:
            raise ValueError(f"unknown pruning method {v!r}; choose from {sorted(PRUNING)}")
        return v


class Table2(_Spec):
    models: list[str]
    datasets: list[str]
    ratios: list[Ratio]
    schedule: str
    lr: float
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
    lr: float
    runs: int = Field(gt=0)
    init: Literal[INITS]
    search_precision: str = "fp32"
    named: dict = {}

    _precisions = field_validator("search_precision")(classmethod(lambda cls, v: _precision(v)))


class Figure3(_Spec):
    models: list[str]
    dataset: str
    schedule: str
    lr: float
    ratios: list[Ratio]


class Figure5(_Spec):
    models: list[str]
    datasets: list[str]
    schedule: str
    lr: float
    ratios: list[Ratio]
    runs: int = Field(gt=0)
    every: int = Field(gt=0, le=PAPER_EPOCHS)
    retrain: Literal["full", "continue"]
    named: dict = {}


class Lottery(_Spec):
    dataset: str
    schedule: str
    lrs: list[float]
    runs: int = Field(gt=0)
    prune: Literal["l1", "convmagnitude"]  # methods.lottery.LOTTERY_METHODS
    models: dict[str, list[str]] | list[str]
    ratios: list[Ratio] | None = None
    arms: list[Literal["winning", "random"]]


SCHEMA = {"table1": Table1, "table4": Table4, "table2": Table2, "figure1": Figure1, "figure2": Figure1,
          "figure3": Figure3, "figure5": Figure5, "table8": Lottery, "table9": Lottery}


def check_tables(spec: dict, where: str) -> dict:
    """Validate a table specification; returns it unchanged.

    Raises:
        ConfigError: an unknown table, a misspelt key or a bad value: one line naming the
            file, the table, the field, the value and the allowed values.
    """
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping of tables, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(SCHEMA))
    if unknown:  # a table left out is simply not built (a trimmed tables= copy); a misspelt one would be lost
        raise ConfigError(f"{where}: unknown table(s) {unknown}; the tables are {sorted(SCHEMA)}")
    for name, cls in SCHEMA.items():
        if name not in spec:
            continue
        if not isinstance(spec[name], dict):
            raise ConfigError(f"{where} {name}: expected a mapping of keys, got {spec[name]!r}")
        validate(cls, spec[name], f"{where} {name}")
    return spec
