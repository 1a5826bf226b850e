"""RT Tables 8 and 9 pages from written result files: mean (std) over seeds, the better arm,
the conclusion line, the paper's numbers beside ours."""
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from methods.runs.cells import lottery_cells, load_tables, parse_lottery
from methods.base.config import load_scale
from reports.pages import lottery
def _write(path: str, result: dict) -> None:
    Path(path).mkdir(parents=True, exist_ok=True)
    (Path(path) / "result.json").write_text(json.dumps(result))


def _fake(acc: float, scale="tiny") -> dict:
    return {"scale": scale, "best_acc": acc, "final_acc": acc - 1, "dense_best_acc": 90.0, "weight_density": 0.5,
            "complexity": {"params": 1000, "flops": 2e6}, "flop_reduction": 0.3, "provenance": {}}


def test_relation_better_and_verdict_rules():
    assert lottery.relation(92.0, 0.1, 91.0, 0.2) == "winning"
    assert lottery.relation(92.0, 0.5, 91.8, 0.1) == "tie"
    assert lottery.relation(91.0, 0.1, 92.0, 0.3) == "random"
    assert lottery.relation(92.0, math.nan, 91.0, math.nan) == "unknown"
    assert lottery.better(93.21, 93.21) == "both" and lottery.better(93.6, 93.62) == "random"
    rows = [{"relation": r} for r in ("tie", "tie", "random")]
    assert lottery.verdict(rows, "tie")["holds"] is True
    assert lottery.verdict(rows + [{"relation": "winning"}], "tie")["holds"] is False
    assert lottery.verdict([{"relation": "winning"}] * 3 + [{"relation": "tie"}], "winning")["holds"] is True
    assert lottery.verdict(rows + [{"relation": "unknown"}], "tie")["holds"] is None
    assert lottery.mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))


def test_the_papers_own_numbers_support_its_captions():
    """The rule applied to the transcribed tables reproduces the paper's conclusions."""
    for table, lr, claim in (("table8", 0.1, "tie"), ("table8", 0.01, "tie"),
                             ("table9", 0.1, "tie"), ("table9", 0.01, "winning")):
        rows = [{"relation": lottery.relation(r["winning_mean"], r["winning_std"], r["random_mean"], r["random_std"])}
                for (paper_lr, _, _), r in lottery.load_paper(table).items() if paper_lr == lr]
        assert len(rows) in (5, 10) and lottery.verdict(rows, claim)["holds"] is True, (table, lr)


def test_table8_page_two_seeds(tmp_path):
    scale = load_scale("tiny").model_copy(update={"seeds": [1, 2]})
    spec = load_tables()
    spec["table8"].update(models={"resnet56": ["a", "b"]}, lrs=[0.1])
    res = str(tmp_path)
    cells = lottery_cells(scale, "table8", spec)
    assert [c.target for c in cells] == ["a", "b"] and cells[0].dense == cells[1].dense  # one dense run per seed
    accs = {("a", "winning"): (60.0, 62.0), ("a", "random"): (61.0, 61.0), ("b", "winning"): (70.0, 70.2),
            ("b", "random"): (50.0, 50.4)}
    for c in cells:
        for d, acc in zip(c.dense, (80.0, 82.0)):
            _write(d.path(res), {**_fake(acc), "complexity": {"params": 2000, "flops": 4e6}})
        for arm, runs in c.arms.items():
            for run, acc in zip(runs, accs[(c.target, arm)]):
                assert parse_lottery(run.dense.name, run.name) == run
                _write(run.path(res), _fake(acc))
    summary = lottery.build(scale, res, "table8", None, spec)
    assert summary["cells_done"] == 2 and summary["runs_done"] == 8
    df = pd.read_csv(tmp_path / "tables" / "table8.csv")
    a, b = df.iloc[0], df.iloc[1]
    assert a.unpruned_mean == 81.0 and a.unpruned_std == pytest.approx(math.sqrt(2))
    assert a.winning_mean == 61.0 and a.random_std == 0.0 and a.better == "both" and a.relation == "tie"
    assert b.relation == "winning" and b.better == "winning"
    assert a.paper_winning_mean == 92.72 and a.paper_random_mean == 92.75 and a.paper_better == "random"
    assert b.diff_random == pytest.approx(50.2 - 92.90)
    page = (tmp_path / "report" / "table8.html").read_text()
    assert "ResNet-56-B" in page and "does not hold" in page  # row b has the winning ticket ahead beyond the spread
    assert "paper <b>92.75</b>" in page  # the paper's better arm in bold


def test_table9_page_pending_and_scale_mismatch(tmp_path):
    scale = load_scale("tiny")
    spec = load_tables()
    spec["table9"].update(models=["vgg16bn"], ratios=[0.95], lrs=[0.01])
    (cell,) = lottery_cells(scale, "table9", spec)
    assert cell.target == "0.95" and cell.arms["winning"][0].name == "convmagnitude-p0.95-winning"
    _write(cell.arms["winning"][0].path(str(tmp_path)), _fake(50.0, scale="smoke"))  # another scale's result
    lottery.build(scale, str(tmp_path), "table9", None, spec)
    df = pd.read_csv(tmp_path / "tables" / "table9.csv")
    assert df.n_winning[0] == 0 and math.isnan(df.winning_mean[0]) and df.paper_winning_mean[0] == 92.58
    assert "pending" in (tmp_path / "report" / "table9.html").read_text()
