"""Input hygiene shared by the table specification, the scale files and the workflow's config.

PyYAML reads YAML 1.1, where ``1e-2`` (no dot) is a *string*, and Snakemake's ``--config
key=value`` keeps ``false``/``no`` as strings; read as they come, ``1e-2`` crashes a folder
name (``f"{'1e-2':g}"``) and ``download=false`` is true. Here a number written any way
(``0.5``, ``0.50``, ``5e-1``, ``"5e-1"``) becomes the same float, so the same cell and run
folder, and a boolean means what it says; anything else is refused in one line (ConfigError,
via ``methods.base.config.validate``).
"""
from __future__ import annotations

import argparse
import functools
import math
import re
import sys
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

from methods.base.config import PAPER_EPOCHS, ConfigError, validate


def _number(v):
    """A float from a number or a numeric string; bools, non-numbers and inf/nan are refused."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise ValueError(f"expected a number such as 0.5 or 1e-2, got {v!r}")
    try:
        x = float(v)
    except ValueError:
        raise ValueError(f"expected a number such as 0.5 or 1e-2, got {v!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"expected a finite number, got {v!r}")
    return x


#: A float field that also takes YAML 1.1's string ``"1e-2"``: ``0.50``, ``"5e-1"`` -> 0.5.
Number = Annotated[float, BeforeValidator(_number)]


#: Draws named rather than numbered (``methods.stages.eb.resolve_draw_epoch``): the last epoch, the epoch of the
#: best test accuracy (Figure 1's star), the EB epoch by the paper's and the official rule.
NAMED_DRAWS = ("final", "best", "eb", "eb_official")


def check_draw(draw) -> str:
    """``draw`` as a string, checked to be a paper-scale epoch 0..160 or one of ``NAMED_DRAWS``
    (the one draw grammar: the specification and the command line).

    Raises:
        ConfigError: anything else (a ValueError).
    """
    d = str(draw)
    if d not in NAMED_DRAWS and not (re.fullmatch(r"\d+", d) and int(d) <= PAPER_EPOCHS):
        raise ConfigError(f"draw {d!r}: a paper-scale epoch 0..{PAPER_EPOCHS} or one of {list(NAMED_DRAWS)}")
    return d


def check_ratio(ratio: float, what: str = "pruning ratio") -> float:
    """``ratio`` itself, a fraction of weights, channels or filters removed, checked to lie in (0, 1)
    (the one check of every pruning ratio: the specification, the command line, the criteria).

    Raises:
        ConfigError: ``ratio`` outside (0, 1) (a ValueError).
    """
    if not 0.0 < ratio < 1.0:
        raise ConfigError(f"{what} must lie in (0, 1), got {ratio:g}")
    return ratio


def number(v, name: str) -> float:
    """``v`` as a float (``Number``'s rule) for a value read outside a schema.

    Raises:
        ConfigError: ``name=v`` is not a finite number.
    """
    try:
        return _number(v)
    except ValueError as e:
        raise ConfigError(f"{name}={v!r}: {e}") from None


_BOOL = TypeAdapter(bool)  # pydantic's reading: true/false, yes/no, on/off, 1/0 (any case), bools


def _flag(v):
    try:
        return _BOOL.validate_python(v)
    except ValidationError:
        raise ValueError("expected true or false (also yes/no, on/off, 1/0)") from None


def _names(v):
    """A list, or one comma-separated string (``--config plugins=a.py,b.py``)."""
    if v is None:
        return ()
    return tuple(x.strip() for x in v.split(",") if x.strip()) if isinstance(v, str) else v


#: A bool field that reads ``"false"``/``"no"``/``0`` as False and refuses ``"maybe"``.
Flag = Annotated[bool, BeforeValidator(_flag)]


def parse_bool(v, name: str) -> bool:
    """``v`` as a bool (``Flag``'s rule), e.g. a Snakemake ``--config download=false``.

    Raises:
        ConfigError: ``name=v`` is not one of true/false, yes/no, on/off, 1/0.
    """
    try:
        return _flag(v)
    except ValueError as e:
        raise ConfigError(f"{name}={v!r}: {e}") from None


class WorkflowConfig(BaseModel):
    """The Snakefile's ``config`` (``config.yaml``, a profile's config file, ``--config``).

    Snakemake turns ``--config x=2024`` into an int, so path keys take numbers as strings.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    scale: str = Field(description="benchmarks/scales/<scale>.yaml")
    data_root: str
    download: Flag = False
    results: str
    tables: str | None = Field(default=None, description="a copy of benchmarks/tables.yaml; null = that file")
    runs_per_job: int | None = Field(default=None, gt=0, description="overrides the scale's runs_per_job")
    plugins: Annotated[tuple[str, ...], BeforeValidator(_names)] = Field(
        default=(), description="your modules registering methods, models or tables (methods.base.plugins)")


def workflow_config(config: dict) -> WorkflowConfig:
    """Validate the workflow's ``config`` before any rule is defined.

    Raises:
        ConfigError: an unknown key (misspelt: it would be ignored silently) or a bad value,
            in one line naming the key, the value and the allowed values.
    """
    known = sorted(WorkflowConfig.model_fields)
    if set(config) - set(known):
        raise ConfigError(f"unknown config key(s) {sorted(set(config) - set(known))}; known: {known} (see config.yaml)")
    return validate(WorkflowConfig, dict(config), "config")


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose bad-argument error is one line on stderr, exit 2 (no usage
    block); ``--help`` still prints the usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def one_line_errors(main):
    """Wrap a command line's ``main(argv) -> int`` so an expected error (ConfigError and other
    ValueErrors, FileNotFoundError for a missing input, ``methods.base.io.CorruptFile``,
    ``methods.base.data.DatasetError``) ends as one line ``error: ...`` on stderr and exit status 2;
    anything else (a bug) keeps its traceback."""

    @functools.wraps(main)
    def run(argv=None) -> int:
        try:
            return main(argv)
        except (ValueError, FileNotFoundError, RuntimeError) as e:
            from methods.base.data import DatasetError
            from methods.base.io import CorruptFile

            if not isinstance(e, (ValueError, FileNotFoundError, CorruptFile, DatasetError)):
                raise
            print(f"error: {' '.join(str(e).split())}", file=sys.stderr)  # one line, whatever the message
            return 2

    return run
