"""Stale results (issue 16 item 5): a result whose config digest is not what the current
configuration gives its run is not done; the workflow retrains exactly those (methods/runs/digest.py)."""
import json
import os
import subprocess
import sys

import pytest
import yaml

from methods.runs.cells import DenseRun, LotteryRun, RetrainRun, SearchRun
from methods.base.config import ROOT, SCALES_DIR, Scale, load_scale
from methods.runs.digest import expected, inputs_of, record, stale_reason

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
VGG = SearchRun("vgg16", "cifar10", "80-120", 0.1, 1)
PRE = SearchRun("preresnet101", "cifar10", "80-120", 0.1, 1)


def _wider(scale: Scale, model: str, width: float) -> Scale:
    return scale.model_copy(update={"models": {**scale.models, model: {**scale.models[model], "width": width}}})


def test_a_width_change_moves_only_the_digests_of_that_models_runs():
    tiny = load_scale("tiny")
    wide = _wider(tiny, "vgg16", 0.125)
    dense = DenseRun("resnet56", "cifar10", "80-120", 0.1, 1)
    runs = [VGG, RetrainRun(VGG, 0.5, "10"), PRE, RetrainRun(PRE, 0.5, "10"), dense, LotteryRun(dense, "l1", "b", "winning")]
    moved = [r for r in runs if expected(r, tiny) != expected(r, wide)]
    assert moved == runs[:2]  # the VGG16 search and, through its upstream digest, its retraining
    assert len({expected(r, tiny) for r in runs}) == len(runs)
    # what the stage records, then the reason its result is stale
    old = record(inputs_of(VGG, tiny))
    assert stale_reason(old, inputs_of(VGG, tiny)) is None
    assert stale_reason(old, inputs_of(VGG, wide)).endswith("knobs.width 0.0625 -> 0.125")
    retrain = record(inputs_of(RetrainRun(VGG, 0.5, "10"), tiny))
    assert "upstream run changed" in stale_reason(retrain, inputs_of(RetrainRun(VGG, 0.5, "10"), wide))
    # fewer images or epochs: stale too; a scale's thread count or grouping: not
    for change in ({"train_images": 100}, {"epochs": 8}):
        assert stale_reason(old, inputs_of(VGG, tiny.model_copy(update=change))) is not None
    assert stale_reason(old, inputs_of(VGG, tiny.model_copy(update={"threads": 2, "runs_per_job": 1}))) is None


def test_a_result_made_before_digests_is_judged_by_its_recorded_config():
    tiny = load_scale("tiny")
    cfg = {"knobs": {"width": 0.0625}, "epochs": 16, "batch_size": 32, "test_batch_size": 200, "train_images": 200,
           "test_images": 200, "precision": None}
    assert stale_reason({"config": cfg}, inputs_of(VGG, tiny)) is None
    assert stale_reason({"config": cfg}, inputs_of(VGG, _wider(tiny, "vgg16", 0.125))) == \
        "recorded config differs: knobs {'width': 0.0625} -> {'width': 0.125}"
    assert stale_reason({"no_ticket": "none"}, inputs_of(RetrainRun(VGG, 0.5, "eb"), tiny)) is None  # its search decides


@pytest.mark.slow
def test_a_stage_retrains_a_stale_result_without_its_old_checkpoint_or_snapshots(tmp_path, data_root):
    from methods.base.io import load_torch, save_torch
    from methods.stages.common import StageContext
    from methods.stages.eb import run_search

    tiny = load_scale("tiny").model_copy(update={"epochs": 2})
    out = tmp_path / "s"
    run = SearchRun("vgg16", "cifar10", "80-120", 0.1, 1)
    first = run_search(run, StageContext(tiny, str(data_root)), out)
    assert first.config_digest == expected(VGG, tiny)
    assert run_search(run, StageContext(tiny, str(data_root)), out).log == first.log  # current: kept
    save_torch(out / "ckpt.pt", {"digest": "the old configuration's"})  # as a killed run of the old width leaves it
    wide = _wider(tiny, "vgg16", 0.125)
    again = run_search(run, StageContext(wide, str(data_root)), out)  # train.py would refuse that checkpoint: the stage drops it
    assert again.config_digest == expected(VGG, wide) and again.config["knobs"]["width"] == 0.125
    stem = load_torch(out / "snapshots" / "epoch0.pt", "snapshot")["features.0.weight"]
    assert stem.shape[0] == 8  # theta_0 saved again at the new width (64 x 0.125), not the old one's 4
    assert not (out / "ckpt.pt").exists()


def _status(tmp_path, capsys) -> dict:
    from methods.__main__ import main

    capsys.readouterr()
    assert main(["status", "--scale", "tiny", "--results", str(tmp_path), "--tables", str(tmp_path / "tables.yaml"),
                 "--list", "table1"]) == 0
    out = capsys.readouterr().out
    return {line.split()[1]: line.split()[0] for line in out.splitlines()}


@pytest.mark.slow
def test_a_scale_edit_reruns_exactly_the_affected_runs(tiny_tree, tmp_path, data_root, monkeypatch, capsys):
    """Table 1 at an edited copy of the tiny scale: VGG16's and PreResNet's search and retraining.
    Widening VGG16 makes exactly VGG16's two results stale (status, reports, rerun's reason); the
    workflow retrains those two and leaves PreResNet's files untouched; then nothing is left to do.
    A result without a digest (made before them) whose recorded config fits is kept.
    The four runs come trained by the workflow in a copy of tests/conftest.py's ``tiny_tree``."""
    from methods.base.io import read_json, write_json
    from reports.common import load_run

    scales = tmp_path / "scales"
    scales.mkdir()
    tiny = yaml.safe_load((SCALES_DIR / "tiny.yaml").read_text())
    (scales / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    env = {**os.environ, "SUITE_SCALES_DIR": str(scales)}
    monkeypatch.setenv("SUITE_SCALES_DIR", str(scales))  # the in-process status reads it too
    results = tiny_tree.copy(tmp_path / "results").root  # the workflow's runs, trained (the first run finds them done)
    spec = {"table1": {"models": ["vgg16", "preresnet101"], "datasets": ["cifar10"], "schedules": ["80-120"], "draws": ["10"],
                       "ratio": 0.5, "lr": 0.1, "runs": 1, "retrain_schedule": "80-120", "init": "fresh"}}
    (results / "tables.yaml").write_text(yaml.safe_dump(spec))
    cmd = SNAKEMAKE + ["table1", "--cores", "1", "--config", "scale=tiny", f"results={results}", f"data_root={data_root}",
                       f"tables={results / 'tables.yaml'}"]
    first = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    root = results / "tiny"
    files = {r: root / r.path("").lstrip("/") / "result.json"
             for r in (VGG, RetrainRun(VGG, 0.5, "10"), PRE, RetrainRun(PRE, 0.5, "10"))}
    before = {r: f.stat().st_mtime_ns for r, f in files.items()}
    assert _status(results, capsys) == {"vgg16/80-120/cifar10/10": "done", "preresnet101/80-120/cifar10/10": "done"}

    tiny["models"]["vgg16"]["width"] = 0.125  # the edit: VGG16 twice as wide
    (scales / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    assert _status(results, capsys) == {"vgg16/80-120/cifar10/10": "stale", "preresnet101/80-120/cifar10/10": "done"}
    wide = Scale(name="tiny", **tiny)
    vgg_retrain = load_run(files[RetrainRun(VGG, 0.5, "10")].parent, wide)
    assert not vgg_retrain.done and vgg_retrain.status.startswith("stale: config digest")
    assert load_run(files[RetrainRun(PRE, 0.5, "10")].parent, wide).done
    rerun = subprocess.run([sys.executable, "-m", "methods", "rerun", "table1", "vgg16/80-120/cifar10/10", "--scale", "tiny",
                            "--results", str(results), "--data-root", str(data_root), "--tables", str(results / "tables.yaml"),
                            "-n"], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=300).stdout
    assert "knobs.width 0.0625 -> 0.125" in rerun and f"why: {files[VGG].parent}: stale" in rerun

    second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    after = {r: f.stat().st_mtime_ns for r, f in files.items()}
    assert [r.model if isinstance(r, SearchRun) else r.search.model for r in files if after[r] != before[r]] == ["vgg16", "vgg16"]
    for r in (VGG, RetrainRun(VGG, 0.5, "10")):
        res = read_json(files[r])
        assert res["config_digest"] == expected(r, wide) and res["config"]["knobs"]["width"] == 0.125
    assert _status(results, capsys) == {"vgg16/80-120/cifar10/10": "done", "preresnet101/80-120/cifar10/10": "done"}

    # A PreResNet result as the suite wrote it before digests: no digest key, no marker; mtime kept.
    old = files[RetrainRun(PRE, 0.5, "10")]
    res, mtime = read_json(old), old.stat().st_mtime_ns
    for k in ("config_digest", "digest_inputs"):
        res.pop(k)
    write_json(old, res)
    os.utime(old, ns=(mtime, mtime))
    for m in old.parent.glob("config-*.digest"):
        m.unlink()
    again = subprocess.run(cmd + ["-n"], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr
    assert json.loads(next(old.parent.glob("config-*.digest")).read_text())["knobs"] == {"depth": 11, "width": 0.25}
