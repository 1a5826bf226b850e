"""Checks on the papers' reference tables in benchmarks/reference/.

EB = You et al., ICLR 2020 (Tables 1, 2, 4); RT = Liu et al., ICLR 2019 (Tables 8, 9).
Expected cells follow /work/shared/REFERENCE.md section 10. The spot values are copied from the paper.
"""
from itertools import product
from pathlib import Path

import pandas as pd
import pytest

REF = Path(__file__).resolve().parents[1] / "benchmarks" / "reference"

# Key columns are read as strings so that ids such as "0-100", "final" and "0.1" are compared as written.
KEYS = {
    "eb_table1.csv": ["model", "dataset", "schedule", "draw"],
    "eb_table4.csv": ["model", "dataset", "lr", "draw"],
    "eb_table2.csv": ["model", "dataset", "method", "ratio"],
    "eb_table2_improv.csv": ["model", "dataset", "ratio"],
    "rt_table8.csv": ["lr", "pruned_model"],
    "rt_table9.csv": ["lr", "model", "ratio"],
}
COLUMNS = {
    "eb_table1.csv": ["model", "dataset", "schedule", "draw", "acc"],
    "eb_table4.csv": ["model", "dataset", "lr", "draw", "acc"],
    "eb_table2.csv": ["model", "dataset", "method", "ratio", "acc", "energy_kj", "flops_units"],
    "eb_table2_improv.csv": ["model", "dataset", "ratio", "acc_improv", "energy_improv", "flops_improv"],
    "rt_table8.csv": ["lr", "model", "unpruned_mean", "unpruned_std", "pruned_model",
                      "winning_mean", "winning_std", "random_mean", "random_std"],
    "rt_table9.csv": ["lr", "model", "unpruned_mean", "unpruned_std", "ratio",
                      "winning_mean", "winning_std", "random_mean", "random_std"],
}

EB_MODELS = ["vgg16", "preresnet101"]
DATASETS = ["cifar10", "cifar100"]
DRAWS = ["10", "20", "40", "final"]
EB2_METHODS = ["lt_oneshot", "snip", "ns", "thinet", "eb_reinit", "eb_train", "eb_lf", "eb_ll"]
RT8_PRUNED = {"vgg16-a": "vgg16", "resnet56-a": "resnet56", "resnet56-b": "resnet56",
              "resnet110-a": "resnet110", "resnet110-b": "resnet110"}
RT_LRS = ["0.1", "0.01"]
RT9_RATIOS = ["0.2", "0.4", "0.6", "0.8", "0.95"]


def eb2_ratios(model, dataset):
    return ["0.1", "0.3", "0.5"] if (model, dataset) == ("vgg16", "cifar100") else ["0.3", "0.5", "0.7"]


def expected_keys(name):
    if name == "eb_table1.csv":
        return set(product(EB_MODELS, DATASETS, ["0-100", "80-120"], DRAWS))
    if name == "eb_table4.csv":
        lrs = {"vgg16": ["0.1", "0.5"], "preresnet101": ["0.1", "0.2"]}
        return {(m, d, lr, e) for m in EB_MODELS for d in DATASETS for lr in lrs[m] for e in DRAWS}
    if name == "eb_table2.csv":
        return {(m, d, meth, r) for m in EB_MODELS for d in DATASETS for meth in EB2_METHODS
                for r in eb2_ratios(m, d) if not (m, d, meth) == ("vgg16", "cifar100", "eb_ll")}
    if name == "eb_table2_improv.csv":
        return {(m, d, r) for m in EB_MODELS for d in DATASETS for r in eb2_ratios(m, d)}
    if name == "rt_table8.csv":
        return set(product(RT_LRS, RT8_PRUNED))
    if name == "rt_table9.csv":
        return set(product(RT_LRS, ["vgg16", "resnet50"], RT9_RATIOS))
    raise KeyError(name)


ROWS = {"eb_table1.csv": 32, "eb_table4.csv": 32, "eb_table2.csv": 93, "eb_table2_improv.csv": 12,
        "rt_table8.csv": 10, "rt_table9.csv": 20}


def load(name):
    return pd.read_csv(REF / name, dtype={k: str for k in KEYS[name] + ["model"]})


def value(df, name, key, col):
    mask = pd.Series(True, index=df.index)
    for k, v in zip(KEYS[name], key):
        mask &= df[k] == v
    hit = df.loc[mask, col]
    assert len(hit) == 1, (name, key)
    return float(hit.iloc[0])


@pytest.mark.parametrize("name", sorted(ROWS))
def test_header_columns_and_row_count(name):
    first = (REF / name).read_text().splitlines()[0]
    assert first == ",".join(COLUMNS[name])
    assert not any(line.startswith("#") for line in (REF / name).read_text().splitlines())
    df = load(name)
    assert list(df.columns) == COLUMNS[name]
    assert len(df) == ROWS[name]
    assert not df.isna().any().any()


@pytest.mark.parametrize("name", sorted(ROWS))
def test_every_expected_cell_exactly_once(name):
    df = load(name)
    keys = [tuple(r) for r in df[KEYS[name]].itertuples(index=False)]
    assert len(keys) == len(set(keys)), "duplicate keys"
    assert set(keys) == expected_keys(name)


def test_value_ranges():
    for name in ["eb_table1.csv", "eb_table4.csv", "eb_table2.csv"]:
        assert load(name)["acc"].between(60, 100).all(), name
    for name in ["rt_table8.csv", "rt_table9.csv"]:
        df = load(name)
        for c in ["unpruned_mean", "winning_mean", "random_mean"]:
            assert df[c].between(60, 100).all(), (name, c)
        for c in ["unpruned_std", "winning_std", "random_std"]:
            assert df[c].between(0, 1).all(), (name, c)
    t2 = load("eb_table2.csv")
    assert (t2["energy_kj"] > 0).all() and (t2["flops_units"] > 0).all()
    assert t2["flops_units"].max() <= 605  # LT one-shot = two dense VGG16 trainings is the largest
    imp = load("eb_table2_improv.csv")
    assert imp["acc_improv"].between(-5, 5).all()
    assert (imp["energy_improv"] > 1).all() and (imp["flops_improv"] > 1).all()
    # Unpruned numbers repeat on every row of one (lr, model) block.
    for name in ["rt_table8.csv", "rt_table9.csv"]:
        df = load(name)
        assert (df.groupby(["lr", "model"])[["unpruned_mean", "unpruned_std"]].nunique() == 1).all().all()
    t8 = load("rt_table8.csv")
    assert all(t8["model"] == t8["pruned_model"].map(RT8_PRUNED))


SPOT = [
    # eb_table1
    ("eb_table1.csv", ("vgg16", "cifar100", "80-120", "10"), "acc", 71.11),
    ("eb_table1.csv", ("vgg16", "cifar100", "0-100", "10"), "acc", 66.70),
    ("eb_table1.csv", ("preresnet101", "cifar10", "0-100", "final"), "acc", 93.05),
    ("eb_table1.csv", ("preresnet101", "cifar100", "80-120", "20"), "acc", 72.67),
    # eb_table4
    ("eb_table4.csv", ("vgg16", "cifar100", "0.5", "40"), "acc", 71.94),
    ("eb_table4.csv", ("preresnet101", "cifar10", "0.2", "40"), "acc", 93.87),
    ("eb_table4.csv", ("vgg16", "cifar10", "0.5", "final"), "acc", 93.29),
    ("eb_table4.csv", ("preresnet101", "cifar100", "0.2", "10"), "acc", 72.58),
    # eb_table2
    ("eb_table2.csv", ("preresnet101", "cifar10", "lt_oneshot", "0.3"), "energy_kj", 6322),
    ("eb_table2.csv", ("preresnet101", "cifar10", "eb_reinit", "0.7"), "flops_units", 75.4),
    ("eb_table2.csv", ("vgg16", "cifar10", "eb_ll", "0.3"), "energy_kj", 56.1),
    ("eb_table2.csv", ("vgg16", "cifar10", "snip", "0.5"), "flops_units", 302),
    ("eb_table2.csv", ("preresnet101", "cifar100", "eb_reinit", "0.5"), "acc", 73.36),
    ("eb_table2.csv", ("vgg16", "cifar100", "lt_oneshot", "0.1"), "acc", 72.62),
    ("eb_table2.csv", ("vgg16", "cifar100", "ns", "0.1"), "flops_units", 586),
    ("eb_table2.csv", ("vgg16", "cifar100", "eb_lf", "0.5"), "energy_kj", 208.7),
    # eb_table2_improv
    ("eb_table2_improv.csv", ("preresnet101", "cifar10", "0.7"), "acc_improv", -0.29),
    ("eb_table2_improv.csv", ("vgg16", "cifar10", "0.7"), "energy_improv", 10.2),
    ("eb_table2_improv.csv", ("preresnet101", "cifar100", "0.7"), "flops_improv", 2.5),
    ("eb_table2_improv.csv", ("vgg16", "cifar100", "0.1"), "acc_improv", -0.81),
    # rt_table8
    ("rt_table8.csv", ("0.1", "vgg16-a"), "winning_mean", 93.62),
    ("rt_table8.csv", ("0.1", "resnet110-b"), "random_std", 0.29),
    ("rt_table8.csv", ("0.01", "resnet56-a"), "winning_mean", 90.00),
    ("rt_table8.csv", ("0.01", "resnet110-a"), "unpruned_mean", 89.43),
    # rt_table9
    ("rt_table9.csv", ("0.1", "vgg16", "0.95"), "winning_mean", 93.18),
    ("rt_table9.csv", ("0.1", "resnet50", "0.95"), "random_std", 0.09),
    ("rt_table9.csv", ("0.01", "resnet50", "0.8"), "random_mean", 89.71),
    ("rt_table9.csv", ("0.01", "vgg16", "0.2"), "unpruned_std", 0.12),
]


@pytest.mark.parametrize("name,key,col,expected", SPOT)
def test_spot_values_from_paper(name, key, col, expected):
    assert value(load(name), name, key, col) == pytest.approx(expected, abs=1e-9)


def test_spot_values_cover_every_file():
    assert {s[0] for s in SPOT} == set(ROWS)
    for name in ROWS:
        assert sum(s[0] == name for s in SPOT) >= 3


def test_table4_lr01_rows_equal_table1_80_120_rows():
    t1 = load("eb_table1.csv")
    t4 = load("eb_table4.csv")
    a = t1[t1["schedule"] == "80-120"].set_index(["model", "dataset", "draw"])["acc"].sort_index()
    b = t4[t4["lr"] == "0.1"].set_index(["model", "dataset", "draw"])["acc"].sort_index()
    pd.testing.assert_series_equal(a, b)


def test_table2_dense_cost_baselines_constant_across_ratios():
    # LT (one-shot) and SNIP are trained at dense cost, so the paper prints one cost for all ratios.
    t2 = load("eb_table2.csv")
    sub = t2[t2["method"].isin(["lt_oneshot", "snip"])]
    assert (sub.groupby(["model", "dataset", "method"])[["energy_kj", "flops_units"]].nunique() == 1).all().all()
