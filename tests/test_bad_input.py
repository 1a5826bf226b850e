"""Bad input, table-driven: every case ends in exactly one line naming the field, the bad value
and the allowed values (or the fix), exit status 2, and no run directory is created."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

import methods.base.config as config
from methods.__main__ import main
from methods.runs.cells import TABLES_YAML
from methods.base.io import save_torch, write_json

SEARCH = ["search", "--scale", "tiny", "--model", "vgg16", "--dataset", "cifar10"]
RETRAIN = ["retrain", "--scale", "tiny", "--search", "{search}", "--ratio", "0.5", "--draw", "10"]
LOTTERY = ["lottery", "--scale", "tiny", "--dense", "{search}", "--prune", "l1", "--target", "a", "--arm", "winning"]


def _with(args, flag, value):
    args = list(args)
    if flag in args:
        args[args.index(flag) + 1] = value
        return args
    return args + [flag, value]


def _scale(**edit):
    """A copy of tiny.yaml with ``edit`` applied (None removes a key)."""
    d = yaml.safe_load((config.SCALES_DIR / "tiny.yaml").read_text())
    for k, v in edit.items():
        d.pop(k) if v is None else d.__setitem__(k, v)
    return d


CASES = [  # (id, arguments, scale file edits or None, needle of the one line)
    ("unknown model", _with(SEARCH, "--model", "resnet9"), None, "--model: invalid choice: 'resnet9' (choose from"),
    ("unknown dataset", _with(SEARCH, "--dataset", "svhn"), None,
     "--dataset: invalid choice: 'svhn' (choose from 'cifar10', 'cifar100')"),
    ("unknown schedule", _with(SEARCH, "--schedule", "30-60"), None,
     "--schedule: invalid choice: '30-60' (choose from '0-100', '80-120')"),
    ("unknown scale", _with(SEARCH, "--scale", "huge"), None, "unknown scale 'huge'; choose one of"),
    ("ratio above 1", _with(RETRAIN, "--ratio", "1.5"), None, "--ratio: pruning ratio must lie in (0, 1), got 1.5"),
    ("ratio 0", _with(RETRAIN, "--ratio", "0"), None, "pruning ratio must lie in (0, 1), got 0"),
    ("ratio 1", _with(RETRAIN, "--ratio", "1"), None, "pruning ratio must lie in (0, 1), got 1"),
    ("negative ratio", _with(RETRAIN, "--ratio", "-0.3"), None, "pruning ratio must lie in (0, 1), got -0.3"),
    ("ratio not a number", _with(RETRAIN, "--ratio", "half"), None, "pruning ratio must be a number in (0, 1), got 'half'"),
    ("unknown pruning method", _with(RETRAIN, "--prune", "snipp"), None, "--prune: invalid choice: 'snipp' (choose from"),
    ("unknown init", _with(RETRAIN, "--init", "zeros"), None, "--init: invalid choice: 'zeros' (choose from 'fresh', 'drawn'"),
    ("draw past the last epoch", _with(RETRAIN, "--draw", "170"), None,
     "draw '170': a paper-scale epoch 0..160 or one of ['final'"),
    ("unknown precision", _with(SEARCH, "--precision", "int8"), None, "unknown precision 'int8'; choose one of ['bfp8', 'fp32']"),
    ("learning rates not numbers", _with(SEARCH, "--lrs", "0.1,abc"), None, "learning rates are comma-separated numbers"),
    ("negative learning rate", _with(SEARCH, "--lrs", "0.1,-0.01,0.001"), None,
     "lrs=[0.1, -0.01, 0.001]: learning rates must be positive"),
    ("learning rates for too few milestones", _with(SEARCH, "--lrs", "0.1,0.01"), None,
     "need one more learning rate than milestones"),
    ("unknown lottery arm", _with(LOTTERY, "--arm", "winner"), None,
     "--arm: invalid choice: 'winner' (choose from 'winning', 'random')"),
    ("unknown lottery method", _with(LOTTERY, "--prune", "l2"), None,
     "--prune: invalid choice: 'l2' (choose from 'l1', 'convmagnitude')"),
    ("retraining without its search", _with(RETRAIN, "--search", "{nowhere}"), None,
     "has no result.json: run its search stage first"),
    ("missing dataset", _with(SEARCH, "--data-root", "{empty}"), None, "cifar10 not found or unreadable under data root"),
    ("mislabelled dataset", _with(SEARCH, "--data-root", "{mislabelled}"), None, "is mislabelled: labels 0..99, expected 0..9"),
    ("misspelt scale key", SEARCH, {"batch_sise": 32}, "unknown key 'batch_sise' (misspelt?); known: ["),
    ("zero batch size", SEARCH, {"batch_size": 0}, "batch_size=0: Input should be greater than 0"),
    ("negative batch size", SEARCH, {"test_batch_size": -8}, "test_batch_size=-8: Input should be greater than 0"),
    ("zero epochs", SEARCH, {"epochs": 0}, "epochs=0: Input should be greater than 0"),
    ("missing scale key", SEARCH, {"seeds": None}, "tiny.yaml: missing key 'seeds'"),
    ("unknown autocast", SEARCH, {"autocast": "fp16"}, "autocast='fp16': Input should be 'bf16'"),
    ("misspelt model knob", SEARCH, {"models": {"vgg16": {"widht": 0.0625}}}, "model vgg16: unknown knob(s) ['widht']; known: ["),
    ("compile with 8-bit training", _with(SEARCH, "--precision", "bfp8"), {"compile": True},
     "compile: true works with FP32 runs only"),
    ("zero runs per job", SEARCH, {"runs_per_job": 0}, "runs_per_job=0: Input should be greater than 0"),
    ("l1 of an EB model", _with(LOTTERY, "--dense", "{eb}"), None,
     "pruning method 'l1' has no rule for model 'vgg16' (it prunes vgg16l1, resnet56, resnet110)"),
    ("bn of an RT model", _with(RETRAIN, "--search", "{rt}"), None, "pruning method 'bn' has no rule for model 'resnet56'"),
    ("thinet of an RT model", _with(_with(RETRAIN, "--search", "{rt}"), "--prune", "thinet"), None,
     "pruning method 'thinet' has no rule for model 'resnet56'"),
    ("a seed other than its search's", _with(_with(RETRAIN, "--search", "{seeded}"), "--seed", "2"), None,
     "was trained with seed 1, which the runs drawn from it use; drop --seed or point --search at a run of seed 2"),
    ("a dense run as the search", _with(RETRAIN, "--search", "{densevgg}"), None,
     "holds a dense run, not a search run: point --search at a search run"),
]


@pytest.fixture(scope="module")
def mislabelled(tmp_path_factory, data_root):
    """CIFAR-100's images and labels under CIFAR-10's name (made once: reading CIFAR-100 takes a second)."""
    bad = tmp_path_factory.mktemp("mislabelled")
    with np.load(data_root / "cifar100.npz") as d:
        np.savez(bad / "cifar10.npz", **{k: d[k][:500] for k in d.files})
    return bad


@pytest.fixture
def roots(tmp_path, mislabelled):
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = mislabelled
    search = tmp_path / "search"
    search.mkdir()
    for name, model in (("eb", "vgg16"), ("rt", "resnet56")):  # finished upstream runs of each family
        write_json(tmp_path / name / "result.json", {"kind": "dense", "config": {"model": model, "dataset": "cifar10"}})
    inputs = {"stage": "search", "model": "vgg16", "dataset": "cifar10", "schedule": "80-120", "lr": 0.1, "lrs": None,
              "seed": 1, "precision": "fp32"}  # as methods.runs.digest.search_inputs records them
    write_json(tmp_path / "seeded" / "result.json", {"kind": "search", "config": {"model": "vgg16"}, "digest_inputs": inputs})
    write_json(tmp_path / "densevgg" / "result.json", {"kind": "dense", "config": {"model": "vgg16"}})
    return {"empty": empty, "mislabelled": bad, "nowhere": tmp_path / "nowhere", "search": search,
            "eb": tmp_path / "eb", "rt": tmp_path / "rt", "seeded": tmp_path / "seeded", "densevgg": tmp_path / "densevgg"}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_trains_nothing(case, roots, tmp_path, data_root, monkeypatch, capsys):
    _, args, scale_edit, needle = case
    args = [a.format(**roots) for a in args]
    if "--data-root" not in args:
        args += ["--data-root", str(data_root)]
    if scale_edit is not None:
        scales = tmp_path / "scales"
        scales.mkdir()
        (scales / "tiny.yaml").write_text(yaml.safe_dump(_scale(**scale_edit)))
        monkeypatch.setattr(config, "SCALES_DIR", scales)
    out = tmp_path / "run"
    try:
        rc = main([*args, "--out", str(out)])
    except SystemExit as e:  # argparse
        rc = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0], err
    assert not out.exists()


def test_a_checkpoint_of_another_architecture_is_refused_in_one_line(tmp_path, data_root, capsys):
    out = tmp_path / "run"
    save_torch(out / "ckpt.pt", {"digest": "0123456789ab", "epoch": 3})  # e.g. preresnet101's, in vgg16's folder
    assert main([*SEARCH, "--data-root", str(data_root), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "belongs to another configuration; delete it to start over" in err[0]
    assert not (out / "result.json").exists()


@pytest.mark.parametrize("edit,needle", [
    (lambda s: s["table1"].update(modles=["vgg16"]), "table1: unknown key 'modles' (misspelt?); known: ["),
    (lambda s: s["table1"].update(models=["resnet9"]), "table1: models=['resnet9']: unknown model 'resnet9'; choose from"),
    (lambda s: s["table1"].update(models=["vgg5"]), "(a plug-in's? load it: --config plugins=FILE, or PRUNING_SUITE_PLUGINS"),
    (lambda s: s["table2"].update(ratios=[0.3, 1.5]), "table2: ratios=[0.3, 1.5]: pruning ratio must lie in (0, 1), got 1.5"),
    (lambda s: s["table2"]["rows"]["snip"].update(prune="snipp"), "rows.snip.prune='snipp': unknown pruning method 'snipp'"),
    (lambda s: s["table2"]["rows"]["snip"].update(prune="random"), "unknown pruning method 'random'; choose from ['bn', "),
    (lambda s: s["figure1"].update(draws=["10", "170"]), "draw '170': a paper-scale epoch 0..160"),
    (lambda s: s["table4"].update(schedule="30-60"), "table4: schedule='30-60': unknown schedule '30-60'; choose from"),
    (lambda s: s["table9"].update(arms=["winner"]), "table9: arms.0='winner': Input should be 'winning' or 'random'"),
    (lambda s: s["figure2"].update(search_precision="int8"), "unknown precision 'int8'"),
    (lambda s: s.update(figure33=s.pop("figure3")), "unknown table(s) ['figure33']; the tables are ['figure1'"),
    (lambda s: s["table1"].update(models=["vgg16", "resnet56"]),
     "table1: models: pruning method 'bn' has no rule for model 'resnet56' (it prunes vgg16, preresnet101)"),
    (lambda s: s["table2"]["rows"]["thinet"].update(prune="l1"), "table2: rows.thinet.prune: pruning method 'l1' has no rule"),
    (lambda s: s["table8"].update(models={"vgg16": ["a"]}), "table8: prune: pruning method 'l1' has no rule for model 'vgg16'"),
    (lambda s: s["table9"].update(prune="l1"), "table9: prune: pruning method 'l1' has no rule for model 'vgg16bn'"),
    (lambda s: s["table2"].update(ratios=[0.3, "half"]),
     "table2: ratios.1='half': expected a number such as 0.5 or 1e-2, got 'half'"),
    (lambda s: s["table1"].update(lr="fast"), "table1: lr='fast': expected a number such as 0.5 or 1e-2, got 'fast'"),
    (lambda s: s["figure1"].update(ratios_vgg16_cifar100=[0.1, "x"]), "ratios_vgg16_cifar100='x': expected a number"),
])
def test_a_bad_table_specification_is_one_line(edit, needle, tmp_path, capsys):
    spec = yaml.safe_load(TABLES_YAML.read_text())
    edit(spec)
    (tmp_path / "tables.yaml").write_text(yaml.safe_dump(spec))
    assert main(["status", "--scale", "tiny", "--results", str(tmp_path), "--tables", str(tmp_path / "tables.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def _spec_file(tmp_path, edit):
    spec = yaml.safe_load(TABLES_YAML.read_text())
    edit(spec)
    (tmp_path / "tables.yaml").write_text(yaml.safe_dump(spec))
    return str(tmp_path / "tables.yaml")


@pytest.mark.parametrize("page,edit,needle", [
    ("table1", lambda s: s.pop("table1"), "table1 is not in the table specification"),
    ("table8", lambda s: s["table8"].update(models={}), "table8 is not in the table specification"),
    ("table2", lambda s: s["table2"].update(ratios=["x"]), "ratios.0='x'"),
    ("index", lambda s: None, "unknown scale 'huge'"),
])
def test_the_reports_command_line_refuses_in_one_line(page, edit, needle, tmp_path, capsys):
    from reports.__main__ import main as reports_main

    scale = "huge" if page == "index" else "tiny"
    rc = reports_main([page, "--scale", scale, "--results", str(tmp_path / "r"), "--tables", _spec_file(tmp_path, edit)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "r").exists()


def test_the_reports_command_line_names_a_missing_specification(tmp_path, capsys):
    from reports.__main__ import main as reports_main

    assert reports_main(["index", "--scale", "tiny", "--results", str(tmp_path), "--tables", str(tmp_path / "no.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no.yaml not found; point tables= at a copy of tables.yaml" in err[0]


@pytest.mark.parametrize("module,argv,needle", [
    ("benchmarks.lowp_speed", ["--scale", "huge"], "unknown scale 'huge'"),
    ("benchmarks.lowp_speed", ["--data-root", "{empty}"], "not found or unreadable under data root"),
    ("benchmarks.perf", ["--parts", "speed"], "unknown part(s) ['speed']"),
    ("benchmarks.perf", ["--parts", "throughput", "--data-root", "{empty}"], "not found or unreadable under data root"),
])
def test_benchmark_entry_points_refuse_in_one_line(module, argv, needle, tmp_path, capsys):
    import importlib

    (tmp_path / "empty").mkdir()
    main_ = importlib.import_module(module if module != "benchmarks.perf" else "benchmarks.perf.__main__").main
    try:
        rc = main_([a.format(empty=tmp_path / "empty") for a in argv])
    except SystemExit as e:  # argparse
        rc = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0], err
