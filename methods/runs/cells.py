"""Table cells as frozen dataclasses, expanded from ``benchmarks/tables.yaml``.

A ``SearchRun`` is one dense sparse-BN training (model, dataset, schedule, LR, seed) shared by
every cell and figure that draws from it; a ``RetrainRun`` is one drawn-and-retrained
subnetwork. Their ``path`` is where the workflow writes their ``result.json``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from methods.base.config import ROOT, Scale
from methods.runs.spec import check_tables
from methods.base.tables import TABLES

TABLES_YAML = ROOT / "benchmarks" / "tables.yaml"


def explicit_lrs(lr: float, later: list[float] | None) -> tuple[float, ...] | None:
    """The LRs ``(lr, *later)`` of a schedule, or None when they are the default x0.1 steps
    (so Table 4's LR 0.1 rows are Table 1's runs, not copies)."""
    if not later:
        return None
    lrs = (float(lr), *map(float, later))
    default = [lr * 0.1 ** k for k in range(len(lrs))]
    return None if all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(lrs, default)) else lrs


def _lr_name(lr: float, lrs: tuple[float, ...] | None) -> str:
    """"lr0.1", or with explicit LRs "lr0.5_0.01_0.001"."""
    return f"lr{lr:g}" + ("".join(f"_{x:g}" for x in lrs[1:]) if lrs else "")


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
    lrs: tuple[float, ...] | None = None  # explicit LRs (Table 4); None = lr, lr/10, lr/100

    @property
    def name(self) -> str:
        lp = "" if self.precision == "fp32" else f"-{self.precision}"  # FP32 searches keep their spine-era names
        return f"{self.model}-{self.dataset}-{self.schedule}-{_lr_name(self.lr, self.lrs)}{lp}-s{self.seed}"

    def path(self, results: str) -> str:
        return f"{results}/search/{self.name}"


@dataclass(frozen=True)
class RetrainRun:
    """A subnetwork drawn at ``draw`` (paper-scale epoch, "final", "best", "eb") at ``ratio`` by
    pruning method ``prune`` (``methods.pruning.registry.PRUNING``) and retrained with ``init`` under
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
    lrs: tuple[float, ...] | None = None  # explicit LRs, as SearchRun.lrs

    @property
    def name(self) -> str:
        method = "" if self.prune == "bn" else f"{self.prune}-"  # BN-pruned runs keep their spine-era names
        lp = "" if self.precision == "fp32" else f"-{self.precision}"
        return f"{method}p{self.ratio:g}-e{self.draw}-{self.init}-{self.schedule}-{_lr_name(self.lr, self.lrs)}{lp}"

    def path(self, results: str) -> str:
        return f"{self.search.path(results)}/retrain/{self.name}"


@dataclass(frozen=True)
class DrawCell:
    """A draw cell, of EB Table 1 (row: model, search schedule) or Table 4 (row: model, initial LR);
    column (dataset, draw); one run per seed."""

    model: str
    dataset: str
    schedule: str
    draw: str
    runs: tuple[RetrainRun, ...]
    lr: float = 0.1
    table: str = "table1"

    @property
    def id(self) -> str:
        """Row then column: "vgg16/0-100/cifar100/10" (Table 1), "vgg16/lr0.5/cifar100/10" (Table 4)."""
        row = self.schedule if self.table == "table1" else f"lr{self.lr:g}"
        return f"{self.model}/{row}/{self.dataset}/{self.draw}"


def load_tables(path=None) -> dict:
    """The table and figure specifications: ``benchmarks/tables.yaml``, or the file ``path``
    (the workflow's ``tables`` config key, e.g. a subset of the cells).

    Raises:
        FileNotFoundError: ``path`` does not exist; ConfigError: a misspelt key or bad value
            (``methods.runs.spec``).
    """
    path = Path(path) if path else TABLES_YAML
    if not path.is_file():
        raise FileNotFoundError(f"table specification {path} not found; point tables= at a copy of {TABLES_YAML.name}")
    return check_tables(yaml.safe_load(path.read_text()), str(path))


def table1_cells(scale: Scale, spec: dict | None = None) -> list[DrawCell]:
    """Every Table 1 cell; none when the specification leaves Table 1 out."""
    spec = spec or load_tables()
    if "table1" not in spec:
        return []
    s = spec["table1"]
    cells = []
    for model in s["models"]:
        for sched in s["schedules"]:
            for ds in s["datasets"]:
                for draw in s["draws"]:
                    runs = tuple(RetrainRun(SearchRun(model, ds, sched, s["lr"], seed), s["ratio"], draw, s["init"],
                                            s["retrain_schedule"], s["lr"]) for seed in scale.seeds_for(s["runs"]))
                    cells.append(DrawCell(model, ds, sched, draw, runs, s["lr"]))
    return cells


def table4_cells(scale: Scale, spec: dict | None = None) -> list[DrawCell]:
    """EB Table 4: Table 1's [80,120] cells at each model's initial LRs (``tables.yaml``
    ``table4.models``). Search and retraining both start at the row's LR and step to
    ``later_lrs`` (the paper's 0.01, 0.001; null: the code's x0.1 steps, 0.5 -> 0.05 -> 0.005;
    REFERENCE.md section 2). ``retrain_lr``: "row" (default) retrains at the row's LR too; a
    number retrains every row at that LR (EB's retraining scripts pass ``--lr 0.1``). The LR 0.1
    cells are Table 1's runs (the same paths). A specification without ``table4`` has no cells."""
    spec = spec or load_tables()
    if "table4" not in spec:
        return []
    s = spec["table4"]
    cells = []
    for model, lrs in s["models"].items():
        for lr in lrs:
            ex = explicit_lrs(lr, s.get("later_lrs"))
            rlr = lr if s.get("retrain_lr", "row") == "row" else float(s["retrain_lr"])
            rex = explicit_lrs(rlr, s.get("later_lrs"))
            for ds in s["datasets"]:
                for draw in s["draws"]:
                    runs = tuple(RetrainRun(SearchRun(model, ds, s["schedule"], lr, seed, lrs=ex), s["ratio"], draw, s["init"],
                                            s["schedule"], rlr, lrs=rex) for seed in scale.seeds_for(s["runs"]))
                    cells.append(DrawCell(model, ds, s["schedule"], draw, runs, lr, "table4"))
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

    @property
    def id(self) -> str:
        """Block, row, column: "vgg16/cifar10/eb_train/0.3"."""
        return f"{self.model}/{self.dataset}/{self.method}/{self.ratio:g}"


def table2_cells(scale: Scale, spec: dict | None = None) -> list[Table2Cell]:
    """Every Table 2 cell; the rows' (prune, draw, init, search and retraining precision) come
    from ``tables.yaml`` ``table2.rows``. Rows listed in ``absent_<model>_<dataset>`` are left
    out (the paper prints no LL row for VGG16 on CIFAR-100). None when the specification leaves Table 2 out."""
    spec = spec or load_tables()
    if "table2" not in spec:
        return []
    s = spec["table2"]
    cells = []
    for model in s["models"]:
        for ds in s["datasets"]:
            absent = set(s.get(f"absent_{model}_{ds}", []))
            for p in s.get(f"ratios_{model}_{ds}", s["ratios"]):
                for method, row in s["rows"].items():
                    if method in absent:
                        continue
                    runs = tuple(RetrainRun(SearchRun(model, ds, s["schedule"], s["lr"], seed,
                                                      row.get("search_precision", "fp32")),
                                            p, str(row["draw"]), row["init"], s["schedule"], s["lr"], row["prune"],
                                            row.get("precision", "fp32")) for seed in scale.seeds_for(s["runs"]))
                    cells.append(Table2Cell(model, ds, method, p, runs))
                cells += [Table2Cell(model, ds, m, p, ()) for m in s.get("pending", []) if m not in absent]
    return cells


def figure_runs(scale: Scale, spec: dict | None = None, figure: str = "figure1") -> list[RetrainRun]:
    """The retrainings behind a draw-epoch figure (``figure1``; ``figure2``: the same from an
    8-bit search, ``search_precision``, retrained in ``precision``, FP32 by default); none when the
    specification leaves the figure out."""
    spec = spec or load_tables()
    if figure not in spec:
        return []
    s = spec[figure]
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
    """A dense training of RT's lottery protocol (``methods.stages.lottery.run_dense``), shared by every
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

    @property
    def id(self) -> str:
        """LR, model, variant or ratio: "lr0.1/resnet56/a", "lr0.01/vgg16bn/0.95"; an arm's cell adds "/winning"."""
        return f"lr{self.lr:g}/{self.model}/{self.target}"


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


def figure3_searches(scale: Scale, spec: dict | None = None, figure: str = "figure3") -> list[SearchRun]:
    """The searches a figure reads without retraining: Figure 3's mask-distance matrices (one
    seed per model on ``dataset``), Figure 5's FLOPs (``runs`` seeds per model and dataset); none
    when the specification has no such figure."""
    spec = spec or load_tables()
    if figure not in spec:
        return []
    s = spec[figure]
    datasets = s.get("datasets", [s.get("dataset")])
    seeds = scale.seeds_for(s["runs"]) if "runs" in s else scale.seeds[:1]
    return [SearchRun(m, ds, s["schedule"], s["lr"], seed) for m in s["models"] for ds in datasets for seed in seeds]


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


_SEARCH = re.compile(r"(?P<model>[a-z0-9]+)-(?P<dataset>cifar\d+)-(?P<schedule>\d+-\d+)-lr(?P<lr>[0-9.]+)(?P<later>(?:_[0-9.]+)*)"
                     r"(?:-(?P<precision>[a-z][a-z0-9]*))?-s(?P<seed>\d+)")
_RETRAIN = re.compile(r"(?:(?P<prune>[a-z]+)-)?p(?P<ratio>[0-9.]+)-e(?P<draw>[a-z0-9_]+)-(?P<init>[a-z]+)"
                      r"-(?P<schedule>\d+-\d+)-lr(?P<lr>[0-9.]+?)(?P<later>(?:_[0-9.]+)*)(?:-(?P<precision>[a-z][a-z0-9]*))?")


def _match(pattern: re.Pattern, name: str, what: str) -> dict:
    m = pattern.fullmatch(name)
    if m is None:
        raise ValueError(f"{name!r} is not a {what} run name (see methods/runs/cells.py)")
    return m.groupdict()


def parse_search(name: str) -> SearchRun:
    """Inverse of ``SearchRun.name``.

    Raises:
        ValueError: not a search run name.
    """
    g = _match(_SEARCH, name, "search")
    return SearchRun(g["model"], g["dataset"], g["schedule"], float(g["lr"]), int(g["seed"]), g["precision"] or "fp32",
                     _parse_lrs(g["lr"], g["later"]))


def _parse_lrs(lr: str, later: str) -> tuple[float, ...] | None:
    return explicit_lrs(float(lr), [float(x) for x in later.split("_")[1:]]) if later else None


_DENSE = re.compile(r"(?P<model>[a-z0-9]+)-(?P<dataset>cifar\d+)-(?P<schedule>\d+-\d+)-lr(?P<lr>[0-9.]+)-s(?P<seed>\d+)")
_LOTTERY = re.compile(r"(?P<prune>[a-z0-9]+)-(?:p(?P<ratio>[0-9.]+)|(?P<variant>[a-z]))-(?P<arm>[a-z]+)")


def name_pattern(kind: str) -> str:
    """The run-name grammar of ``kind`` ("search", "run" (a retraining), "dense", "ticket" (a lottery
    arm)) without its group names: the Snakefile's wildcard constraints, so a folder the workflow
    matches is one ``parse_*`` reads.

    Raises:
        KeyError: unknown kind.
    """
    pattern = {"search": _SEARCH, "run": _RETRAIN, "dense": _DENSE, "ticket": _LOTTERY}[kind].pattern
    return re.sub(r"\(\?P<\w+>", "(?:", pattern)


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
                      g["prune"] or "bn", g["precision"] or "fp32", _parse_lrs(g["lr"], g["later"]))


@dataclass(frozen=True)
class Cell:
    """One cell of any table or figure, for cell pages, ``status`` and ``rerun``: its own runs
    (retrainings or lottery arms; a figure read from searches alone lists those), one per seed,
    and the shared runs they start from (``upstream``: searches or dense runs)."""

    table: str
    id: str
    runs: tuple
    upstream: tuple = ()

    @property
    def slug(self) -> str:
        """File-name form of ``id``: "vgg16_80-120_cifar100_10"."""
        return self.id.replace("/", "_")


def built_tables(spec: dict) -> list[str]:
    """The registered pages with cells (``methods.base.tables.TABLES``) that ``spec`` builds: a table
    left out, or listing no models, has no cells, no page and no entry in the index (a trimmed
    ``tables=`` copy)."""
    return [t for t in TABLES if t in spec and spec[t].get("models")]


def seed_of(run) -> int:
    """The seed of any run dataclass (a retraining's or lottery arm's is its search's or dense run's)."""
    for attr in ("search", "dense"):
        if hasattr(run, attr):
            return getattr(run, attr).seed
    return run.seed


def _unique(runs) -> tuple:
    return tuple(dict.fromkeys(runs))


def eb_table_cells(scale: Scale, spec: dict, table: str) -> list[Cell]:
    """Cells of EB Tables 1, 2 and 4 (``TableDef.cells``): a cell's retrainings and their searches;
    a Table 2 row not built yet has none and no cell."""
    fn = {"table1": table1_cells, "table4": table4_cells, "table2": table2_cells}[table]
    return [Cell(table, c.id, c.runs, _unique(r.search for r in c.runs)) for c in fn(scale, spec) if c.runs]


def lottery_table_cells(scale: Scale, spec: dict, table: str) -> list[Cell]:
    """Cells of RT Tables 8 and 9: one per row and arm ("lr0.1/resnet56/a/winning"), from its dense runs."""
    return [Cell(table, f"{c.id}/{arm}", runs, c.dense) for c in lottery_cells(scale, table, spec)
            for arm, runs in c.arms.items()]


def figure_cells(scale: Scale, spec: dict, table: str) -> list[Cell]:
    """Points of EB Figures 1 and 2: "vgg16/cifar10/p0.5/10", the retrainings of every seed."""
    points: dict = {}
    for r in figure_runs(scale, spec, table):
        points.setdefault(f"{r.search.model}/{r.search.dataset}/p{r.ratio:g}/{r.draw}", []).append(r)
    return [Cell(table, k, tuple(v), _unique(r.search for r in v)) for k, v in points.items()]


def search_cells(scale: Scale, spec: dict, table: str) -> list[Cell]:
    """Panels of EB Figures 3 and 5, read from searches alone: "vgg16/cifar100", one search per seed."""
    panels: dict = {}
    for s in figure3_searches(scale, spec, table):
        panels.setdefault(f"{s.model}/{s.dataset}", []).append(s)
    return [Cell(table, k, tuple(v)) for k, v in panels.items()]


def fp32_searches(scale: Scale, spec: dict, table: str, results: str) -> list[str]:
    """Files Table 2 and Figure 2 read beyond their cells: the FP32 search of each 8-bit one,
    their "x dense" reference (``TableDef.extra_inputs``)."""
    return sorted({f"{replace(r.search, precision='fp32').path(results)}/result.json"
                   for c in cells_of(scale, table, spec) for r in c.runs})


def search_histories(scale: Scale, spec: dict, table: str, results: str) -> list[str]:
    """Figure 5 prices every draw from its searches' |gamma| history."""
    return sorted({f"{s.path(results)}/history.npz" for c in cells_of(scale, table, spec) for s in c.runs})


def cells_of(scale: Scale, table: str, spec: dict | None = None) -> list[Cell]:
    """The cells of ``table`` (a key of ``methods.base.tables.TABLES``) in the paper's order; none
    when the specification leaves it out.

    Raises:
        ValueError: unknown table.
    """
    spec = spec or load_tables()
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")
    if table not in spec:
        return []
    return TABLES[table].get("cells")(scale, spec, table)


def table_runs(scale: Scale, spec: dict, stage: str) -> list:
    """The own runs of every built table whose cells the stage ``stage`` trains (retrain, lottery)."""
    return list(dict.fromkeys(r for t in built_tables(spec) if TABLES[t].stage == stage
                              for c in cells_of(scale, t, spec) for r in c.runs))


def page_inputs(scale: Scale, spec: dict, table: str, results: str) -> list[str]:
    """Every file the page of ``table`` reads: its cells' and their upstream runs' ``result.json``
    plus its ``TableDef.extra_inputs``."""
    cells = cells_of(scale, table, spec)
    files = {f"{r.path(results)}/result.json" for c in cells for r in (*c.runs, *c.upstream)}
    extra = TABLES[table].get("extra_inputs")
    return sorted(files | set(extra(scale, spec, table, results) if extra else ()))


def find_cell(scale: Scale, table: str, cell_id: str, spec: dict | None = None) -> Cell:
    """The cell of ``table`` named ``cell_id`` (its page's title; ``python -m methods status --list``).

    Raises:
        ValueError: unknown table or cell, naming a few valid ids.
    """
    cells = cells_of(scale, table, spec)
    for c in cells:
        if c.id == cell_id.strip("/"):
            return c
    sample = ", ".join(c.id for c in cells[:3])
    raise ValueError(f"{table} has no cell {cell_id!r}; ids look like {sample} (python -m methods status --list {table})")


def refused_runs(scale: Scale, spec: dict | None = None) -> set:
    """The retraining and lottery runs of the tables whose specification sets
    ``refuse_disconnected: true``: their stage records a disconnected ticket as refused instead
    of training it (``methods.pruning.ticket``). A run shared with a table that trains it is refused too."""
    spec = spec or load_tables()
    return {r for t in built_tables(spec) if spec[t].get("refuse_disconnected") and TABLES[t].stage != "search"
            for c in cells_of(scale, t, spec) for r in c.runs}
