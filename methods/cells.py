"""Table cells as frozen dataclasses, expanded from ``benchmarks/tables.yaml``.

A ``SearchRun`` is one dense sparse-BN training (model, dataset, schedule, LR, seed) shared by
every cell and figure that draws from it; a ``RetrainRun`` is one drawn-and-retrained
subnetwork. Their ``path`` is where the workflow writes their ``result.json``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from .config import ROOT, Scale

TABLES_YAML = ROOT / "benchmarks" / "tables.yaml"


@dataclass(frozen=True)
class SearchRun:
    """A dense sparse-BN training; ``precision`` names its number format
    (``benchmarks/precisions.yaml``; ``bfp8`` = EB's 8-bit search)."""

    model: str
    dataset: str
    schedule: str
    lr: float
    seed: int
    precision: str = "fp32"

    @property
    def name(self) -> str:
        lp = "" if self.precision == "fp32" else f"-{self.precision}"  # FP32 searches keep their spine-era names
        return f"{self.model}-{self.dataset}-{self.schedule}-lr{self.lr:g}{lp}-s{self.seed}"

    def path(self, results: str) -> str:
        return f"{results}/search/{self.name}"


@dataclass(frozen=True)
class RetrainRun:
    """A subnetwork drawn at ``draw`` (paper-scale epoch, "final", "best", "eb") at ``ratio`` by
    pruning method ``prune`` (``methods.pruning.PRUNING``) and retrained with ``init`` under
    ``schedule``/``lr`` in ``precision`` (EB Train LL: ``bfp8`` from a ``bfp8`` search).

    Table 1 retrains every cell under [80,120] at LR 0.1, whatever the search schedule: the
    paper's "final" columns of both rows agree (69.72 vs 69.74 for VGG16 on CIFAR-100), which
    a [0,100] retraining at LR 0.01 would not give; the row's schedule is the search's.
    """

    search: SearchRun
    ratio: float
    draw: str
    init: str = "fresh"
    schedule: str = "80-120"
    lr: float = 0.1
    prune: str = "bn"
    precision: str = "fp32"

    @property
    def name(self) -> str:
        method = "" if self.prune == "bn" else f"{self.prune}-"  # BN-pruned runs keep their spine-era names
        lp = "" if self.precision == "fp32" else f"-{self.precision}"
        return f"{method}p{self.ratio:g}-e{self.draw}-{self.init}-{self.schedule}-lr{self.lr:g}{lp}"

    def path(self, results: str) -> str:
        return f"{self.search.path(results)}/retrain/{self.name}"


@dataclass(frozen=True)
class Table1Cell:
    """One cell of EB Table 1: row (model, schedule), column (dataset, draw), one run per seed."""

    model: str
    dataset: str
    schedule: str
    draw: str
    runs: tuple[RetrainRun, ...]


def load_tables(path=None) -> dict:
    """The table and figure specifications: ``benchmarks/tables.yaml``, or the file ``path``
    (the workflow's ``tables`` config key, e.g. a subset of the cells).

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path) if path else TABLES_YAML
    if not path.is_file():
        raise FileNotFoundError(f"table specification {path} not found; point tables= at a copy of {TABLES_YAML.name}")
    return yaml.safe_load(path.read_text())


def table1_cells(scale: Scale, spec: dict | None = None) -> list[Table1Cell]:
    s = (spec or load_tables())["table1"]
    cells = []
    for model in s["models"]:
        for sched in s["schedules"]:
            for ds in s["datasets"]:
                for draw in s["draws"]:
                    runs = tuple(RetrainRun(SearchRun(model, ds, sched, s["lr"], seed), s["ratio"], draw, s["init"],
                                            s["retrain_schedule"], s["lr"]) for seed in scale.seeds_for(s["runs"]))
                    cells.append(Table1Cell(model, ds, sched, draw, runs))
    return cells


@dataclass(frozen=True)
class Table2Cell:
    """One cell of EB Table 2: (model, dataset) block, row ``method``, column ``ratio``; one run per seed.

    ``runs`` is empty for a row that is not reproduced yet (``pending`` in tables.yaml).
    """

    model: str
    dataset: str
    method: str
    ratio: float
    runs: tuple[RetrainRun, ...]


def table2_cells(scale: Scale, spec: dict | None = None) -> list[Table2Cell]:
    """Every Table 2 cell; the rows' (prune, draw, init, search and retraining precision) come
    from ``tables.yaml`` ``table2.rows``. Rows listed in ``absent_<model>_<dataset>`` are left
    out (the paper prints no LL row for VGG16 on CIFAR-100)."""
    s = (spec or load_tables())["table2"]
    cells = []
    for model in s["models"]:
        for ds in s["datasets"]:
            absent = set(s.get(f"absent_{model}_{ds}", []))
            for p in s.get(f"ratios_{model}_{ds}", s["ratios"]):
                for method, row in s["rows"].items():
                    if method in absent:
                        continue
                    runs = tuple(RetrainRun(SearchRun(model, ds, s["schedule"], s["lr"], seed, row.get("search_precision", "fp32")),
                                            p, str(row["draw"]), row["init"], s["schedule"], s["lr"], row["prune"],
                                            row.get("precision", "fp32")) for seed in scale.seeds_for(s["runs"]))
                    cells.append(Table2Cell(model, ds, method, p, runs))
                cells += [Table2Cell(model, ds, m, p, ()) for m in s.get("pending", []) if m not in absent]
    return cells


def figure_runs(scale: Scale, spec: dict | None = None, figure: str = "figure1") -> list[RetrainRun]:
    """The retrainings behind a draw-epoch figure (``figure1``; ``figure2``: the same from an
    8-bit search, ``search_precision``, retrained in ``precision``, FP32 by default)."""
    s = (spec or load_tables())[figure]
    out = []
    for model in s["models"]:
        for ds in s["datasets"]:
            ratios = s.get(f"ratios_{model}_{ds}", s["ratios"])
            for seed in scale.seeds_for(s["runs"]):
                search = SearchRun(model, ds, s["schedule"], s["lr"], seed, s.get("search_precision", "fp32"))
                out += [RetrainRun(search, p, d, s["init"], s["schedule"], s["lr"], precision=s.get("precision", "fp32"))
                        for p in ratios for d in s["draws"]]
    return out


@dataclass(frozen=True)
class DenseRun:
    """A dense training of RT's lottery protocol (``methods.lottery.run_dense``), shared by every
    cell that prunes it: (model, dataset, schedule, LR, seed)."""

    model: str
    dataset: str
    schedule: str
    lr: float
    seed: int

    @property
    def name(self) -> str:
        return f"{self.model}-{self.dataset}-{self.schedule}-lr{self.lr:g}-s{self.seed}"

    def path(self, results: str) -> str:
        return f"{results}/dense/{self.name}"


@dataclass(frozen=True)
class LotteryRun:
    """One arm ("winning" or "random") trained from ``dense`` pruned by ``prune`` at ``target``
    (an L1 variant "a"/"b", or a ratio written as in tables.yaml, e.g. "0.95")."""

    dense: DenseRun
    prune: str
    target: str
    arm: str

    @property
    def name(self) -> str:
        t = self.target if self.prune == "l1" else f"p{self.target}"
        return f"{self.prune}-{t}-{self.arm}"

    def path(self, results: str) -> str:
        return f"{self.dense.path(results)}/lottery/{self.name}"


@dataclass(frozen=True)
class LotteryCell:
    """One row of RT Table 8 (``target`` a variant) or Table 9 (``target`` a ratio) at one LR:
    the unpruned model's runs and each arm's, one per seed."""

    table: str
    lr: float
    model: str
    target: str
    dense: tuple[DenseRun, ...]
    arms: dict  # arm -> tuple[LotteryRun, ...]


def lottery_cells(scale: Scale, table: str, spec: dict | None = None) -> list[LotteryCell]:
    """Every row of RT ``table`` ("table8" or "table9") in the paper's order: LR, model, variant or ratio."""
    s = (spec or load_tables())[table]
    seeds = scale.seeds_for(s["runs"])
    cells = []
    for lr in s["lrs"]:
        models = s["models"].items() if isinstance(s["models"], dict) else ((m, s["ratios"]) for m in s["models"])
        for model, targets in models:
            dense = tuple(DenseRun(model, s["dataset"], s["schedule"], lr, seed) for seed in seeds)
            for t in targets:
                t = f"{t:g}" if isinstance(t, float) else str(t)
                arms = {arm: tuple(LotteryRun(d, s["prune"], t, arm) for d in dense) for arm in s["arms"]}
                cells.append(LotteryCell(table, lr, model, t, dense, arms))
    return cells


def lottery_runs(scale: Scale, spec: dict | None = None, tables=("table8", "table9")) -> list[LotteryRun]:
    spec = spec or load_tables()
    return [r for t in tables if t in spec for c in lottery_cells(scale, t, spec) for runs in c.arms.values() for r in runs]


def figure3_searches(scale: Scale, spec: dict | None = None) -> list[SearchRun]:
    s = (spec or load_tables())["figure3"]
    return [SearchRun(m, s["dataset"], s["schedule"], s["lr"], scale.seeds[0]) for m in s["models"]]


def snapshot_draws(spec: dict | None = None) -> list[str]:
    """Paper-scale epochs whose weights every search keeps: the draws of specifications that
    retrain from drawn weights or prune by the weights (BN pruning with a fresh init needs only
    the recorded |gamma|). The initial and the EB epochs are always kept."""
    spec = spec or load_tables()
    draws = {d for s in spec.values() if s.get("init") in ("drawn", "continue") for d in s.get("draws", [])}
    for s in spec.values():
        draws |= {str(r["draw"]) for r in s.get("rows", {}).values()
                  if r["init"] in ("drawn", "continue") or r["prune"] != "bn"}
    return sorted(d for d in draws if d not in ("best", "eb", "eb_official", "0"))


_SEARCH = re.compile(r"(?P<model>[a-z0-9]+)-(?P<dataset>cifar\d+)-(?P<schedule>\d+-\d+)-lr(?P<lr>[0-9.]+)"
                     r"(?:-(?P<precision>[a-z][a-z0-9]*))?-s(?P<seed>\d+)")
_RETRAIN = re.compile(r"(?:(?P<prune>[a-z]+)-)?p(?P<ratio>[0-9.]+)-e(?P<draw>[a-z0-9_]+)-(?P<init>[a-z]+)"
                      r"-(?P<schedule>\d+-\d+)-lr(?P<lr>[0-9.]+?)(?:-(?P<precision>[a-z][a-z0-9]*))?")


def _match(pattern: re.Pattern, name: str, what: str) -> dict:
    m = pattern.fullmatch(name)
    if m is None:
        raise ValueError(f"{name!r} is not a {what} run name (see methods/cells.py)")
    return m.groupdict()


def parse_search(name: str) -> SearchRun:
    """Inverse of ``SearchRun.name``.

    Raises:
        ValueError: not a search run name.
    """
    g = _match(_SEARCH, name, "search")
    return SearchRun(g["model"], g["dataset"], g["schedule"], float(g["lr"]), int(g["seed"]), g["precision"] or "fp32")


_DENSE = re.compile(r"(?P<model>[a-z0-9]+)-(?P<dataset>cifar\d+)-(?P<schedule>\d+-\d+)-lr(?P<lr>[0-9.]+)-s(?P<seed>\d+)")
_LOTTERY = re.compile(r"(?P<prune>[a-z0-9]+)-(?:p(?P<ratio>[0-9.]+)|(?P<variant>[a-z]))-(?P<arm>[a-z]+)")


def parse_dense(name: str) -> DenseRun:
    """Inverse of ``DenseRun.name``.

    Raises:
        ValueError: not a dense run name.
    """
    g = _match(_DENSE, name, "dense")
    return DenseRun(g["model"], g["dataset"], g["schedule"], float(g["lr"]), int(g["seed"]))


def parse_lottery(dense: str, run: str) -> LotteryRun:
    """Inverse of ``LotteryRun.path`` split into its dense run name and run name.

    Raises:
        ValueError: not a dense or lottery run name.
    """
    g = _match(_LOTTERY, run, "lottery")
    return LotteryRun(parse_dense(dense), g["prune"], g["ratio"] or g["variant"], g["arm"])


def parse_retrain(search: str, run: str) -> RetrainRun:
    """Inverse of ``RetrainRun.path`` split into its search name and run name.

    Raises:
        ValueError: not a search or retraining run name.
    """
    g = _match(_RETRAIN, run, "retraining")
    return RetrainRun(parse_search(search), float(g["ratio"]), g["draw"], g["init"], g["schedule"], float(g["lr"]),
                      g["prune"] or "bn", g["precision"] or "fp32")
