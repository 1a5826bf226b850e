"""The Snakemake workflow: the full-scale DAG (dry run) and the whole tiny workflow for real."""
import json
import re
import subprocess
import sys
from pathlib import Path


import pytest

from methods.base.config import ROOT
from methods.workflow.rerun import job_counts  # the 'Job stats' table of a dry run as {rule: count}

SNAKEMAKE = [sys.executable, "-m", "snakemake"]

pytestmark = pytest.mark.slow  # every test here runs Snakemake




@pytest.fixture(scope="module")
def full_dry(tmp_path_factory) -> str:
    """The full-scale workflow through the SLURM profile, a dry run printing its commands (-n -p)."""
    results = tmp_path_factory.mktemp("full")
    return subprocess.run(SNAKEMAKE + ["--profile", "slurm", "all_tables", "-n", "-p", "--config", f"results={results}"],
                          cwd=ROOT, capture_output=True, text=True, check=True, timeout=300).stdout


def test_slurm_profile_lists_the_full_scale_jobs(full_dry):
    out = full_dry
    jobs = job_counts(out)
    # FP32: 2 models x 2 datasets x 2 schedules x 3 seeds searches; 8-bit: 4 settings x 3 seeds, shared by
    # Table 2's LF/LL rows and Figure 2. Table 1 (32 cells x 3 seeds) and Figure 1 (4 settings x 3 ratios x
    # 5 draws x 3 seeds) share the 48 p=0.5 [80,120] runs; Table 2 adds 4 settings x 3 ratios x 6 FP32 rows
    # plus 12 LF and 9 LL cells (no LL for VGG16 on CIFAR-100), x 3 seeds; Figure 2 2 x 3 ratios x 5 draws x 3 seeds.
    # Table 4 adds one LR per model (2 models x 2 datasets x 3 seeds searches, 16 cells x 3 seeds); its LR 0.1 rows are Table 1's.
    assert jobs["search"] == 24 + 12 + 12 and jobs["data"] == 1
    assert jobs["retrain"] == 32 * 3 + 4 * 3 * 5 * 3 - 4 * 4 * 3 + 4 * 3 * 6 * 3 + (12 + 9) * 3 + 2 * 3 * 5 * 3 + 16 * 3
    assert jobs["dense"] == 50 and jobs["lottery"] == 300  # RT Tables 8 and 9 (test_rt_tables_list_five_seeds)
    assert "--scale full" in out  # --config results=... keeps the profile's full-scale config
    # GPU rules: one GPU from the profile, a time limit per job from slurm/runtime.yaml (1.5 x the minutes of a
    # 160-epoch run of the model); report and aggregation rules are local and request nothing
    limits = {}
    for m in re.finditer(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", out, re.M):
        limits.setdefault(m[1], set()).add(m[2])
    for rule in ("search", "retrain", "dense", "lottery"):
        assert all(all(r in res for r in ("gpu=1", "cpus_per_task=4", "mem_mb=16000")) for res in limits[rule])

    def runtimes(rule):
        return {int(re.search(r"runtime=(\d+)", res)[1]) for res in limits[rule]}

    assert runtimes("search") == {180, 360}  # VGG16 120 min, PreResNet-101 240 min, x 1.5
    assert runtimes("dense") == {180, 225, 360, 450}  # VGG 120, ResNet-56 150, ResNet-50 240, ResNet-110 300
    # EB Train continues from t_EB, known only after its search: charged a whole run, like every retraining
    assert runtimes("retrain") == {180, 360} and runtimes("lottery") == {180, 225, 360, 450}
    assert all("gpu" not in res for rule, v in limits.items() if rule.startswith("report") for res in v)


def test_report_commands_parse(full_dry):
    """Every report command the full-scale workflow would run is accepted by the reports CLI."""
    from reports.__main__ import parser

    out = full_dry
    cmds = [line.split(" -m reports ", 1)[1].split() for line in out.splitlines() if " -m reports " in line]
    assert len(cmds) == 12  # 9 tables and figures, the fidelity page, the claims page, the index
    for argv in cmds:
        parser().parse_args(argv)  # SystemExit on an unknown argument


def test_one_search_serves_every_cell_that_needs_it(tmp_path):
    out = subprocess.run(SNAKEMAKE + ["table1", "figure1", "-n", "--config", "scale=smoke", "runs_per_job=1",
                                      f"results={tmp_path}"],
                         cwd=ROOT, capture_output=True, text=True, check=True, timeout=300).stdout
    jobs = job_counts(out)
    assert jobs["search"] == 8 and jobs["retrain"] == 32 + 60 - 16


def test_table4_shares_its_lr_01_rows_with_table1_and_figure5_trains_nothing(tmp_path):
    """Table 4 alone needs 24 searches and 96 retrainings; the whole workflow (first test) adds only
    its 12 new-LR searches and 48 retrainings to Table 1's. Figure 5 reads Table 4's LR 0.1 searches
    and adds no job but its page."""
    out = subprocess.run(SNAKEMAKE + ["--profile", "slurm", "table4", "figure5", "-n", "-p", "--config", f"results={tmp_path}"],
                         cwd=ROOT, capture_output=True, text=True, check=True, timeout=300).stdout
    jobs = job_counts(out)
    assert (jobs["search"], jobs["retrain"], jobs["report_figure5"]) == (24, 96, 1)
    assert "--lr 0.5 --lrs 0.5,0.01,0.001" in out and "preresnet101-cifar10-80-120-lr0.2_0.01_0.001-s3/retrain/" in out


def test_table2_shares_the_dense_runs(tmp_path):
    """Table 2 at full scale: 93 cells x 3 seeds from 12 FP32 and 12 8-bit dense (search) runs, not one per cell."""
    out = subprocess.run(SNAKEMAKE + ["--profile", "slurm", "table2", "-n", "--config", f"results={tmp_path}"],
                         cwd=ROOT, capture_output=True, text=True, check=True, timeout=300).stdout
    jobs = job_counts(out)
    assert jobs["search"] == 2 * 2 * 3 * 2 and jobs["retrain"] == (2 * 2 * 3 * 6 + 12 + 9) * 3
    for prune in ("magnitude", "snip", "thinet"):
        assert f"--prune {prune}" in out
    assert "--precision bfp8" in out and "-bfp8-s1/retrain/p0.3-eeb-continue-80-120-lr0.1-bfp8" in out  # an LL run


def test_rt_tables_list_five_seeds(tmp_path):
    """RT Tables 8 and 9 at full scale: 5 seeds; one dense run per (model, LR, seed) shared by every
    row that prunes it: Table 8 3 models x 2 LRs x 5 seeds dense, 5 pruned models x 2 arms x 2 LRs x 5
    seeds; Table 9 2 x 2 x 5 dense, 2 models x 5 ratios x 2 arms x 2 LRs x 5 seeds."""
    out = subprocess.run(SNAKEMAKE + ["--profile", "slurm", "table8", "table9", "-n", "-p", "--config", f"results={tmp_path}"],
                         cwd=ROOT, capture_output=True, text=True, check=True, timeout=300).stdout
    jobs = job_counts(out)
    assert jobs["dense"] == 3 * 2 * 5 + 2 * 2 * 5 and jobs["lottery"] == 5 * 2 * 2 * 5 + 2 * 5 * 2 * 2 * 5
    assert "search" not in jobs and "retrain" not in jobs
    assert {int(s) for s in re.findall(r"--seed (\d+)", out)} == {1, 2, 3, 4, 5}
    assert "dense/resnet110-cifar10-80-120-lr0.01-s5/lottery/l1-b-random" in out
    assert "dense/resnet50-cifar10-80-120-lr0.1-s3/lottery/convmagnitude-p0.95-winning" in out


def test_a_misspelt_config_key_stops_the_workflow(tmp_path):
    run = subprocess.run(SNAKEMAKE + ["all_tables", "-n", "--config", "data_rot=x", f"results={tmp_path}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "unknown config key(s) ['data_rot']" in run.stdout + run.stderr


def test_tiny_all_tables_runs_end_to_end(tiny_tree, tmp_path):
    """Every rule and page for real on CIFAR-10 (all rows, draws, models and both precisions at p = 0.5;
    CIFAR-100's cells and the other ratios are the same code), through a ``tables=`` subset of the
    specification so CI stays short; the full cell lists are asserted by the dry runs above.
    The run is tests/conftest.py's ``tiny_tree`` (``tiny_spec()``), shared with the tests that read such a tree."""
    import yaml

    run = tiny_tree.run
    assert run.returncode == 0, run.stderr[-3000:]
    spec = yaml.safe_load(tiny_tree.tables.read_text())
    cmd = tiny_tree.cmd("all_tables")
    results = tiny_tree.root
    report = Path(results) / "tiny" / "report"
    for page in ("index.html", "table1.html", "table2.html", "table4.html", "figure1.html", "figure2.html", "figure3.html",
                 "figure5.html", "figure1.png", "figure2.png", "figure3.png", "figure5.png", "table8.html", "table9.html",
                 "fidelity.html"):
        assert (report / page).stat().st_size > 0
    import pandas as pd

    t1 = pd.read_csv(Path(results) / "tiny" / "tables" / "table1.csv")
    assert len(t1) == 16 and t1["ours_mean"].notna().all() and t1["paper"].notna().all()
    t2 = pd.read_csv(Path(results) / "tiny" / "tables" / "table2.csv")
    # 2 models x 1 ratio x 8 rows (the LL row exists for both models on CIFAR-10)
    assert len(t2) == 16 and (t2["n_expected"] == 1).all() and t2["paper"].notna().all()
    eb = t2.method.str.startswith("eb_")
    assert (t2.loc[~eb, "status"] == "done").all()
    # an EB cell is done, or its search (16 epochs on 200 images) found no ticket at that ratio
    assert (t2.loc[eb, "status"].eq("done") | t2.loc[eb, "status"].str.startswith("no EB ticket")).all()
    lowp = t2[t2.method.isin(["eb_lf", "eb_ll"]) & t2.status.eq("done")]
    assert set(lowp.method) == {"eb_lf", "eb_ll"}
    # "x dense" divides by the FP32 dense run, though LF and LL draw from the 8-bit one
    from methods.runs.cells import SearchRun, table2_cells
    from methods.base.config import load_scale

    ll = lowp[lowp.method == "eb_ll"].iloc[0]
    cell = next(c for c in table2_cells(load_scale("tiny"), spec)
                if (c.model, c.method, c.ratio) == (ll.model, "eb_ll", ll.ratio))
    run = json.loads(Path(cell.runs[0].path(f"{results}/tiny"), "result.json").read_text())
    dense = json.loads(Path(SearchRun(ll.model, "cifar10", "80-120", 0.1, 1).path(f"{results}/tiny"), "result.json").read_text())
    assert ll.energy_rel == pytest.approx(run["energy"]["modelled_j"] / dense["energy"]["modelled_j"])
    assert run["energy"]["bits_search"] == run["energy"]["bits_retrain"] == 8
    for t, n in (("table8", 2), ("table9", 2)):
        rt = pd.read_csv(Path(results) / "tiny" / "tables" / f"{t}.csv")
        assert len(rt) == n and rt[["unpruned_mean", "winning_mean", "random_mean", "paper_winning_mean"]].notna().all().all()
    assert "Not judged in our runs" in (report / "table9.html").read_text()  # one seed at tiny scale: no spread
    f2 = pd.read_csv(Path(results) / "tiny" / "tables" / "figure2.csv")
    assert len(f2) == 5 and (f2.n_runs == 1).all() and f2.train_flops_units_mean.gt(0).all()
    assert f2.dense_acc_mean.notna().all() and f2.dense_fp32_acc_mean.notna().all()
    again = subprocess.run(cmd + ["-n"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr
    _rerun_one_cell(tiny_tree, tiny_tree.copy(tmp_path / "results"))  # on a copy: the shared tree stays as built


def test_every_recorded_field_is_a_typed_field_of_result(tiny_tree):
    """The pages read results through ``methods.runs.results.Result``: every key any stage wrote in the
    tiny tree (searches, retrainings of every row, dense and lottery runs, refused and no-ticket runs) is one
    of its declared, typed fields, so a page never reads an untyped extra."""
    from methods.runs.results import RECORDED, Result

    files = sorted((tiny_tree.root / "tiny").rglob("result.json"))
    kinds = {}
    for f in files:
        res = json.loads(f.read_text())
        kinds.setdefault(res["kind"], set()).update(res)
        assert Result.model_validate(res).model_extra == {}, f
    assert set(kinds) == set(RECORDED)  # every stage's result is in the tree
    assert not set().union(*kinds.values()) - set(Result.model_fields)


def _rerun_one_cell(tree, copy):
    """The command printed on a cell page reruns just that cell's own stage and refreshes its page
    (``tree``'s page, run on ``copy`` with the copy's folders)."""
    tiny = copy.root / "tiny"
    html = (tiny / "report" / "cells" / "table1" / "vgg16_80-120_cifar10_20.html").read_text()
    cmd = re.search(r"^(?:<pre>)?(python -m methods rerun table1 vgg16/80-120/cifar10/20 [^\n#]*?)\s*$", html, re.M)[1].split()
    assert cmd[cmd.index("--results") + 1] == str(tree.root) and cmd[cmd.index("--tables") + 1] == str(tree.tables)
    cmd[cmd.index("--results") + 1], cmd[cmd.index("--tables") + 1] = str(copy.root), str(copy.tables)
    argv = [sys.executable, *cmd[1:]]
    dry = subprocess.run(argv + ["-n"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=300).stdout
    assert 'jobs: {"retrain": 1}' in dry  # the cell's own stage only: its search and everything else are done
    slurm = subprocess.run(argv + ["-n", "--slurm", "--cluster", "debug"], cwd=ROOT, capture_output=True, text=True,
                           check=True, timeout=300).stdout
    assert "submitted" in slurm and '"retrain": 1' in slurm  # the same function through submitit
    mine = tiny / "search" / "vgg16-cifar10-80-120-lr0.1-s1" / "retrain" / "p0.5-e20-fresh-80-120-lr0.1" / "result.json"
    other = tiny / "search" / "vgg16-cifar10-80-120-lr0.1-s1" / "retrain" / "p0.5-e10-fresh-80-120-lr0.1" / "result.json"
    before = (mine.stat().st_mtime_ns, other.stat().st_mtime_ns)
    page = tiny / "report" / "table1.html"
    page_before = page.stat().st_mtime_ns
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert mine.stat().st_mtime_ns > before[0] and other.stat().st_mtime_ns == before[1]
    assert page.stat().st_mtime_ns > page_before
    acc = json.loads(mine.read_text())["best_acc"]
    assert f"{mine.parent}: best_acc {acc:.2f}" in out.stdout
    assert f"{acc:.2f}" in (tiny / "report" / "cells" / "table1" / "vgg16_80-120_cifar10_20.html").read_text()


def test_a_second_invocation_cannot_write_over_a_running_one(tmp_path, data_root):
    """Snakemake's lock: while one invocation trains a search, another asking for the same file is
    refused and changes nothing; the first finishes with an intact result."""
    import os
    import signal
    import time

    from methods.runs.cells import SearchRun
    from methods.base.io import read_json

    target = f"{SearchRun('vgg16', 'cifar10', '80-120', 0.1, 1).path(f'{tmp_path}/tiny')}/result.json"
    cmd = SNAKEMAKE + [target, "--cores", "1", "--config", "scale=tiny", f"results={tmp_path}", f"data_root={data_root}"]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    log = Path(target).parent / "log.txt"
    t0 = time.time()
    while not log.exists() and time.time() - t0 < 120:  # the search job is running
        time.sleep(0.1)
    assert log.exists()
    os.killpg(first.pid, signal.SIGSTOP)  # held mid-job, however fast the machine, while the second one tries
    try:
        second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    out = first.communicate(timeout=300)[0]
    assert first.returncode == 0, out[-2000:]
    assert second.returncode != 0 and "cannot be locked" in second.stdout + second.stderr
    assert read_json(target)["kind"] == "search"  # checksum verified


def _dry(tmp_path, targets, *config, spec_edit=None, numbers_as_strings=False, check=True):
    """A dry run (-n -p) at smoke scale, a job per run, optionally through an edited ``tables=`` copy."""
    import yaml

    from methods.runs.cells import TABLES_YAML

    extra = []
    if spec_edit is not None:
        spec = yaml.safe_load(TABLES_YAML.read_text())
        spec_edit(spec)
        text = yaml.safe_dump(spec)
        if numbers_as_strings:  # YAML 1.1 reads 5e-1 and 1e-1 (no dot) as strings
            text = text.replace("ratio: 0.5\n", "ratio: 5e-1\n").replace("lr: 0.1\n", "lr: 1e-1\n")
            assert yaml.safe_load(text)["table4"]["ratio"] == "5e-1"
        (tmp_path / "tables.yaml").write_text(text)
        extra = [f"tables={tmp_path / 'tables.yaml'}"]
    return subprocess.run(SNAKEMAKE + [*targets, "-n", "-p", "--config", "scale=smoke", "runs_per_job=1",
                                       f"results={tmp_path}", *config, *extra],
                          cwd=ROOT, capture_output=True, text=True, check=check, timeout=300)


def test_download_flags_mean_what_they_say(tmp_path):
    """``--config download=false`` arrives as a string: every spelling is read (in process, as the
    Snakefile's ``workflow_config``), and the data job's command follows it (two real dry runs)."""
    from methods.base.config import ConfigError
    from methods.base.inputs import workflow_config

    base = {"scale": "smoke", "data_root": "d", "results": "r"}
    for value, flag in (("false", False), ("no", False), ("0", False), ("true", True), ("yes", True), ("1", True)):
        assert workflow_config({**base, "download": value}).download is flag, value
    with pytest.raises(ConfigError, match="download='maybe': expected true or false"):
        workflow_config({**base, "download": "maybe"})
    data = f"{tmp_path}/smoke/data.json"
    for value, flag in (("no", False), ("true", True)):
        out = _dry(tmp_path, [data], f"download={value}").stdout
        assert " -m methods data " in out and ("--download" in out) is flag, value
    bad = _dry(tmp_path, [data], "download=maybe", check=False)
    assert bad.returncode != 0 and "download='maybe': expected true or false" in bad.stdout + bad.stderr


def test_a_table_left_out_or_without_models_builds_the_rest(tmp_path):
    """Table 1 left out, Table 8 and Figure 2 with empty model lists: all_tables plans the other
    pages and an index over them; numbers YAML reads as strings (5e-1, 1e-1) name the same folders."""
    def edit(spec):
        spec.pop("table1")
        spec["table8"]["models"] = {}
        spec["figure2"]["models"] = []

    out = _dry(tmp_path, ["all_tables"], spec_edit=edit, numbers_as_strings=True).stdout
    jobs = job_counts(out)
    assert jobs["report_index"] == 1 and jobs["report_table2"] == jobs["report_table4"] == jobs["report_table9"] == 1
    assert not {"report_table1", "report_table8", "report_figure2"} & set(jobs)
    assert ("table1.html" not in out and "table8.html" not in out and "lottery/l1-" not in out
            and "-bfp8-s1/retrain/p0.3-e10" not in out)
    # Table 4 at 5e-1 / 1e-1: the same folders as 0.5 / 0.1 (Table 1's LR 0.1 rows it shares)
    assert "vgg16-cifar10-80-120-lr0.1-s1/retrain/p0.5-e10-fresh-80-120-lr0.1/" in out and "5e-1" not in out
    # one seed at smoke scale: Table 4's two LRs per model and dataset (the LR 0.1 ones serve Tables 2 and the
    # figures too), and Table 2's four 8-bit searches (Figure 2's are the same, and it is empty here)
    assert jobs["search"] == 2 * 2 * 2 + 4


def test_a_pruning_method_a_model_has_no_rule_for_stops_the_plan(tmp_path):
    run = _dry(tmp_path, ["all_tables"], spec_edit=lambda s: s["table2"].update(models=["vgg16", "resnet56"]), check=False)
    msg = run.stdout + run.stderr
    assert run.returncode != 0 and re.search(
        r"table2: rows\.\w+\.prune: pruning method 'bn' has no rule for model 'resnet56'", msg)
    assert " -m methods " not in msg  # refused while the Snakefile reads the specification: nothing planned
