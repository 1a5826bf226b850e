"""Grouped jobs (``python -m methods batch``, the scales' ``runs_per_job``): several runs in one
process give bitwise the results of one process per run, a failed run does not stop the others,
and the grouped workflow builds exactly the per-run workflow's result files."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from methods.__main__ import main
from methods.base.io import save_torch
from methods.workflow.rerun import job_counts

ROOT = Path(__file__).resolve().parent.parent


def _retrain(search, out, ratio, draw, data_root):
    return (f"retrain --scale tiny --data-root {data_root} --search {search} --ratio {ratio} --draw {draw} --init fresh"
            f" --out {out}")


@pytest.mark.slow
def test_a_batch_gives_bitwise_the_runs_of_separate_processes(tmp_path, data_root, tiny_search):
    search, _ = tiny_search  # the search of `main(["search", "--scale", "tiny", "--model", "vgg16", "--dataset", "cifar10"])`
    alone = subprocess.run([sys.executable, "-m", "methods", *_retrain(search, tmp_path / "alone", 0.5, 10, data_root).split()],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert alone.returncode == 0, alone.stderr[-2000:]
    # the run of interest second: the first leaves the process (data cache, RNG, threads) as it finds it
    batch = subprocess.run([sys.executable, "-m", "methods", "batch",
                            _retrain(search, tmp_path / "first", 0.3, "final", data_root),
                            _retrain(search, tmp_path / "second", 0.5, 10, data_root)], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert batch.returncode == 0, batch.stderr[-2000:]
    assert batch.stdout.split() == ["done", str(tmp_path / "first"), "done", str(tmp_path / "second")]
    a, b = (json.loads((tmp_path / d / "result.json").read_text()) for d in ("alone", "second"))
    keys = ("train_loss", "train_acc", "test_loss", "test_acc")
    assert [[r[k] for k in keys] for r in a["log"]] == [[r[k] for k in keys] for r in b["log"]]
    assert a["complexity"] == b["complexity"] and a["best_acc"] == b["best_acc"]
    assert "epoch 16/16" in (tmp_path / "second" / "log.txt").read_text()  # each run's output in its own log


@pytest.mark.slow
def test_a_failed_run_does_not_stop_the_batch(tmp_path, data_root, capsys, tiny_search):
    search, _ = tiny_search
    capsys.readouterr()
    rc = main(["batch", _retrain(tmp_path / "nowhere", tmp_path / "bad", 0.5, "final", data_root),
               _retrain(search, tmp_path / "good", 0.5, "final", data_root)])
    out = capsys.readouterr()
    assert rc == 1 and f"FAILED {tmp_path / 'bad'}" in out.out and f"done {tmp_path / 'good'}" in out.out
    assert "1 of 2 runs failed" in out.err
    assert (tmp_path / "good" / "result.json").is_file() and not (tmp_path / "bad" / "result.json").exists()
    assert "error:" in (tmp_path / "bad" / "log.txt").read_text()


def test_batch_runs_only_training_stages(capsys, tmp_path):
    assert main(["batch", "rerun table1 x --out y"]) == 2
    assert "batch runs stage command lines" in capsys.readouterr().err
    # every line parses before any runs: a bad last line stops the batch before the first trains
    assert main(["batch", f"search --scale tiny --model vgg16 --dataset cifar10 --out {tmp_path / 's'}", "retrain --out"]) == 2
    assert "batch line 'retrain --out': " in capsys.readouterr().err and not (tmp_path / "s").exists()


def _outputs(out: str, rule: str) -> set[str]:
    return {f.removesuffix(" (update)") for m in re.finditer(rf"^rule {rule}\w*:\n(?:    .*\n)*?    output: (.*)$", out, re.M)
            for f in m[1].split(", ")}


@pytest.mark.slow
def test_grouped_jobs_build_the_same_files_as_a_job_per_run(tmp_path):
    """Smoke scale (runs_per_job 16): 301 training jobs become 75; the group jobs' outputs are
    exactly the per-run jobs' result files, none in two groups, at most 16 per group."""
    base = [sys.executable, "-m", "snakemake", "all_tables", "-n", "--config", "scale=smoke", f"results={tmp_path}"]
    per_run = subprocess.run(base + ["runs_per_job=1"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=300).stdout
    grouped = subprocess.run(base, cwd=ROOT, capture_output=True, text=True, check=True, timeout=300).stdout
    single, groups = job_counts(per_run), job_counts(grouped)
    for rule in ("retrain", "lottery"):
        assert _outputs(grouped, f"{rule}_group") == _outputs(per_run, rule) and len(_outputs(per_run, rule)) == single[rule]
        n = [len(m[1].split(", "))
             for m in re.finditer(rf"^rule {rule}_group\d+:\n(?:    .*\n)*?    output: (.*)$", grouped, re.M)]
        assert sum(n) == single[rule] and max(n) <= 16 and len(n) == sum(v for k, v in groups.items() if k.startswith(rule))
    assert groups["search"] == single["search"] and groups["dense"] == single["dense"]


@pytest.mark.slow
def test_a_group_job_keeps_its_finished_runs(tiny_tree, tmp_path):
    """A failed run in a group job does not cost the others theirs (update() outputs, keep-incomplete),
    and rerunning the group trains only the run without a result. The group's runs and their upstream
    run come built by the workflow in a copy of tests/conftest.py's ``tiny_tree``."""
    tree = tiny_tree.copy(tmp_path / "results")
    base = [sys.executable, "-m", "snakemake", "--cores", "2"]
    cfg = ["--config", "scale=tiny", f"results={tree.root}", f"data_root={tree.data_root}", f"tables={tree.tables}"]
    dry = subprocess.run(base + ["all_tables", "-n", "--forceall"] + cfg, cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=300).stdout  # every job, done or not: the groups
    pair = next(m[2].replace(" (update)", "").split(", ")
                for m in re.finditer(r"^rule (retrain|lottery)_group\d+:\n(?:    .*\n)*?    output: (.*)$", dry, re.M)
                if len(m[2].split(", ")) == 2)
    a, b = map(Path, pair)

    def run():
        return subprocess.run(base + pair + cfg, cwd=ROOT, capture_output=True, text=True, timeout=600)

    assert run().returncode == 0 and a.is_file() and b.is_file()
    a.unlink(), b.unlink()
    save_torch(b.parent / "ckpt.pt", {"digest": "another configuration"})  # b fails on resuming, after a trains
    failed = run()
    assert failed.returncode != 0 and a.is_file() and not b.exists()
    assert "belongs to another configuration" in (b.parent / "log.txt").read_text()
    log, kept = a.parent / "log.txt", a.read_text()
    before = log.read_text()
    (b.parent / "ckpt.pt").unlink()
    assert run().returncode == 0 and b.is_file() and a.read_text() == kept
    after = log.read_text()  # a's log: appended to, no epoch trained this time (Snakemake touches a's result)
    assert after.startswith(before) and " epoch " in before and " epoch " not in after[len(before):]


def test_a_result_older_than_its_upstream_run_is_stale(tmp_path):
    import os

    from methods.base.io import finished, write_json
    up, out = tmp_path / "search", tmp_path / "search" / "retrain" / "r"
    write_json(up / "result.json", {"up": 1})
    write_json(out / "result.json", {"acc": 0.5})
    (out / "ckpt.pt").write_bytes(b"x")
    assert finished(out, up) == {"acc": 0.5} and (out / "ckpt.pt").is_file()
    t = (out / "result.json").stat().st_mtime
    os.utime(up / "result.json", (t + 10, t + 10))  # the search redone after this run trained from it
    assert finished(out, up) is None and not (out / "ckpt.pt").exists() and (out / "result.json").is_file()
    assert finished(out, tmp_path / "no-upstream") == {"acc": 0.5}
