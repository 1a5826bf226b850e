"""Validated configuration: scales (``benchmarks/scales/*.yaml``) and run settings.

Every epoch number in a table specification is given at the papers' scale (160 epochs) and
mapped to a scale by ``Scale.epoch``, so the three scales share one code path.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Literal

import yaml

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ROOT = Path(__file__).resolve().parents[2]
SCALES_DIR = ROOT / "benchmarks" / "scales"
#: Environment variable naming another folder of scale files (tests: an edited copy of a scale).
SCALES_ENV = "SUITE_SCALES_DIR"
PRECISIONS_YAML = ROOT / "benchmarks" / "precisions.yaml"
#: Epochs of the papers' CIFAR recipes (EB ``main.py``; RT Tables 8/9).
PAPER_EPOCHS = 160
#: Named LR schedules: epochs (paper scale) at whose start the LR is multiplied by 0.1 (EB ``main.py``).
SCHEDULES = {"80-120": (80, 120), "0-100": (0, 100)}


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field, the value and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _spelt_number(x):
    """``x``, or the int/float a string spells ("11" -> 11, "1e-1" -> 0.1; "A_detached" stays)."""
    if not isinstance(x, str):
        return x
    for kind in (int, float):
        try:
            v = kind(x)
        except ValueError:
            continue
        return v if v == v and abs(v) != float("inf") else x  # "nan"/"inf" stay strings: no knob takes them
    return x


class Scale(_Strict):
    """One scale: ``full`` (papers), ``smoke`` (2-core CPU, minutes) or ``tiny`` (tests, seconds)."""

    name: str
    epochs: int = Field(gt=0, description="training epochs (160 at full scale)")
    batch_size: int = Field(gt=0)
    test_batch_size: int = Field(gt=0)
    train_images: int | None = Field(default=None, gt=0, description="class-balanced subset; null = all")
    test_images: int | None = Field(default=None, gt=0)
    seeds: list[int] = Field(min_length=1)
    threads: int = Field(default=0, ge=0, description="torch threads per job; 0 = torch default")
    device: str = "auto"
    autocast: Literal["bf16"] | None = Field(default=None, description="opt-in bf16 autocast of forward and loss "
                                             "(not the papers' FP32: reports mark its cells); null = FP32")
    channels_last: bool = Field(default=False, description="NHWC weights and batches: the same maths in another memory "
                                "layout, 1.3-1.9x faster CPU training at smoke widths, but the CPU's NHWC batch norm rounds "
                                "more (tests/test_speedups.py bounds it); false = PyTorch's NCHW")
    compile: bool = Field(default=False, description="torch.compile the model (GPU; minutes of compile per run)")
    runs_per_job: int = Field(default=1, gt=0, description="retrain/lottery runs of one upstream run per Snakemake job "
                              "(one process: torch and the data load once); 1 = a job per run, as SLURM wants")
    models: dict[str, dict[str, float | int | str]] = Field(default_factory=dict, description="width/depth knobs per model")

    @field_validator("models", mode="before")
    @classmethod
    def _numeric_knobs(cls, v):
        """YAML 1.1 reads ``width: 1e-1`` as the string "1e-1": a knob spelling a number is that
        number (int if integral as written, e.g. "11"), so it names and builds one model."""
        if not isinstance(v, dict):
            return v
        return {m: {k: _spelt_number(x) for k, x in knobs.items()} if isinstance(knobs, dict) else knobs
                for m, knobs in v.items()}

    def batch(self, paper_batch: int) -> int:
        """Training batch of a table whose paper uses ``paper_batch``: the smaller of the two, so
        the full scale (``batch_size`` 256, EB) trains RT's tables at their 64 and the smaller
        scales never exceed their own batch."""
        return min(paper_batch, self.batch_size)

    def seeds_for(self, runs: int) -> list[int]:
        """The first ``runs`` seeds of this scale: a table reports its paper's number of runs
        (EB: 3, RT: 5) where the scale lists that many, fewer at the small scales."""
        return list(self.seeds[:runs])

    def epoch(self, paper_epoch: int | str) -> int:
        """Map a paper-scale epoch (or "final") to this scale: floor(e * epochs / 160 + 0.5)."""
        if paper_epoch == "final":
            return self.epochs
        return int(int(paper_epoch) * self.epochs / PAPER_EPOCHS + 0.5)


def load_scale(name: str) -> Scale:
    """Load ``benchmarks/scales/<name>.yaml`` (or ``<name>.yaml`` in the folder ``$SUITE_SCALES_DIR`` names).

    Raises:
        ConfigError: unknown scale or an invalid/misspelt key.
    """
    folder = Path(os.environ.get(SCALES_ENV) or SCALES_DIR)  # read per call: subprocesses inherit it
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ConfigError(f"unknown scale {name!r}; choose one of {known}")
    return validate(Scale, {"name": name, **yaml.safe_load(path.read_text())}, str(path))


def validate(cls, data: dict, where: str):
    """``cls(**data)`` with pydantic's errors folded into one line naming field and value."""
    try:
        return cls(**data)
    except ValidationError as e:
        err = e.errors()[0]
        if not err["loc"]:  # a check across fields: its message names them
            raise ConfigError(f"{where}: {err['msg'].removeprefix('Value error, ')}") from None
        field = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":  # name the misspelt key and what it could have been
            known = f"; known: {sorted(cls.model_fields)}" if len(err["loc"]) == 1 else ""
            raise ConfigError(f"{where}: unknown key {field!r} (misspelt?){known}") from None
        if err["type"] == "missing":
            raise ConfigError(f"{where}: missing key {field!r}") from None
        raise ConfigError(f"{where}: {field}={err.get('input')!r}: {err['msg'].removeprefix('Value error, ')}") from None


class Precision(_Strict):
    """A low-precision training format (``benchmarks/precisions.yaml``; ``methods.train.lowp``).

    Word lengths in bits (sign included) of block floating point per tensor kind; null keeps that
    kind FP32. EB ``scripts/low-precision/*.sh``: 8 for all five, stochastic rounding, SWA from
    epoch 140 (paper scale; ``RunConfig.precision`` holds it mapped to the run's scale).
    """

    weight: int | None = Field(ge=2, le=24, description="parameters after every step (one exponent per row)")
    activation: int | None = Field(ge=2, le=24, description="conv/linear outputs in forward (one per sample)")
    error: int | None = Field(ge=2, le=24, description="gradients w.r.t. those outputs in backward (one per sample)")
    grad: int | None = Field(ge=2, le=24, description="parameter gradients before the step")
    momentum: int | None = Field(ge=2, le=24, description="SGD momentum buffers after the step")
    rounding: Literal["stochastic", "nearest"] = "stochastic"
    swa_start: int | None = Field(ge=0, description="epoch from which an FP32 copy averages the weights; null = no SWA")


def load_precision(name: str) -> Precision | None:
    """The named format of ``benchmarks/precisions.yaml``; None for ``fp32``.

    Raises:
        ConfigError: unknown name, or an invalid/misspelt key in its entry.
    """
    table = yaml.safe_load(PRECISIONS_YAML.read_text())
    bad = [n for n in table if not re.fullmatch(r"[a-z][a-z0-9]*", n) or re.fullmatch(r"s\d+", n)]
    if bad:  # the name becomes part of run folder names (methods/runs/cells.py), before the seed's "s<n>"
        raise ConfigError(f"{PRECISIONS_YAML.name}: precision names {bad} must be lowercase letters and digits, "
                          f"not s<digits>, e.g. bfp8")
    if name not in table:
        raise ConfigError(f"unknown precision {name!r}; choose one of {sorted(table)} (benchmarks/precisions.yaml)")
    if table[name] is None:
        return None
    unknown = sorted(set(table[name]) - set(Precision.model_fields))
    if unknown:  # name the misspelt key, not the field it leaves missing
        raise ConfigError(f"{PRECISIONS_YAML.name} {name}: unknown key(s) {unknown}; known: {sorted(Precision.model_fields)}")
    return validate(Precision, table[name], f"{PRECISIONS_YAML.name} {name}")


class RunConfig(_Strict):
    """Everything that determines one training run; its hash names nothing but guards resumes."""

    model: str
    knobs: dict[str, float | int | str] = Field(default_factory=dict)
    cfg: list | None = None
    dataset: str
    seed: int
    epochs: int = Field(gt=0)
    start_epoch: int = Field(default=0, ge=0)
    batch_size: int = Field(gt=0)
    test_batch_size: int = Field(gt=0)
    train_images: int | None = None
    test_images: int | None = None
    milestones: list[int]
    lrs: list[float]
    momentum: float = 0.9
    weight_decay: float = 1e-4
    sparsity: float = Field(default=1e-4, ge=0, description="lambda of L1 on BN gamma (EB main.py --s)")
    data_root: str
    download: bool = False
    device: str = "auto"
    threads: int = 0
    precision: Precision | None = Field(default=None, description="low-precision format (swa_start at this scale); None = FP32")
    autocast: Literal["bf16"] | None = None  # Scale.autocast
    channels_last: bool = False
    compile: bool = False

    @model_validator(mode="after")
    def _compile_fp32(self):
        if self.compile and self.precision is not None:
            raise ValueError("compile: true works with FP32 runs only (the quantisers are hooks); set compile: false")
        return self

    @field_validator("lrs")
    @classmethod
    def _positive(cls, v):
        if any(x <= 0 for x in v):
            raise ValueError("learning rates must be positive")
        return v

    @model_validator(mode="after")
    def _schedule(self):
        if len(self.lrs) != len(self.milestones) + 1:
            raise ValueError(f"lrs={self.lrs}: need one more learning rate than milestones {self.milestones}")
        if any(not 0 <= m <= self.epochs for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"milestones={self.milestones}: must be sorted and within [0, {self.epochs}]")
        return self

    def lr(self, epoch: int) -> float:
        """LR of 0-based ``epoch``: ``lrs[k]`` with k = number of milestones <= epoch (EB ``main.py``)."""
        return self.lrs[sum(m <= epoch for m in self.milestones)]

    def digest(self) -> str:
        """Hash of the fields that change the maths (not where data lives, what runs it, or the
        memory layout and compilation of the same maths)."""
        d = self.model_dump(exclude={"data_root", "download", "device", "threads", "channels_last", "compile"})
        for k, default in (("precision", None), ("autocast", None)):
            if d[k] == default:  # runs keep the digests they had before these fields existed
                del d[k]
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def schedule(name: str, lr: float, scale: Scale, lrs: list[float] | None = None) -> tuple[list[int], list[float]]:
    """Milestones (at ``scale``) and explicit LRs of a named schedule.

    Default LRs are lr, lr/10, lr/100 (EB ``main.py``: x0.1 at each milestone); e.g. "0-100"
    with lr 0.1 gives 0.01 for epochs 0-99 and 0.001 for 100-159. ``lrs`` overrides them
    (Table 4's paper values 0.5 -> 0.01 -> 0.001).

    Raises:
        ConfigError: unknown schedule name.
    """
    if name not in SCHEDULES:
        raise ConfigError(f"unknown schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    ms = [scale.epoch(m) for m in SCHEDULES[name]]
    return ms, list(lrs) if lrs else [lr * 0.1 ** k for k in range(len(ms) + 1)]
