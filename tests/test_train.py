"""Schedules, the training step and resume after an interruption (tiny scale, CPU)."""
import contextlib
import json

import pytest
import torch

from methods.base.config import ConfigError, RunConfig, load_scale, schedule, validate
from methods.runs.cells import RetrainRun, SearchRun
from methods.stages.common import StageContext
from methods.stages.eb import run_retrain, run_search


def _cfg(sched, lr=0.1, scale="full", **kw):
    s = load_scale(scale)
    ms, lrs = schedule(sched, lr, s)
    return RunConfig(model="vgg16", dataset="cifar10", seed=1, epochs=s.epochs, batch_size=8, test_batch_size=8,
                     milestones=ms, lrs=lrs, data_root=".", **kw)


def test_lr_80_120_at_given_epochs():
    c = _cfg("80-120")
    assert [c.lr(e) for e in (0, 79, 80, 119, 120, 159)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_lr_0_100_decays_before_epoch_0():
    c = _cfg("0-100")
    assert [c.lr(e) for e in (0, 99, 100, 159)] == pytest.approx([0.01, 0.01, 0.001, 0.001])


def test_schedules_scale_with_the_scale():
    smoke = load_scale("smoke")
    assert smoke.epochs == 16
    assert schedule("80-120", 0.1, smoke)[0] == [8, 12]
    assert schedule("0-100", 0.1, smoke)[0] == [0, 10]
    assert [smoke.epoch(e) for e in ("10", "20", "40", "final")] == [1, 2, 4, 16]
    c = _cfg("80-120", scale="smoke")
    assert [c.lr(e) for e in (7, 8, 11, 12)] == pytest.approx([0.1, 0.01, 0.01, 0.001])


def test_explicit_lrs_and_bad_schedules():
    s = load_scale("full")
    assert schedule("80-120", 0.5, s, [0.5, 0.01, 0.001])[1] == [0.5, 0.01, 0.001]
    with pytest.raises(ConfigError, match="unknown schedule"):
        schedule("30-60", 0.1, s)
    with pytest.raises(ConfigError, match="one more learning rate"):
        validate(RunConfig, dict(model="vgg16", dataset="cifar10", seed=1, epochs=10, batch_size=8, test_batch_size=8,
                                 milestones=[5], lrs=[0.1], data_root="."), "run")
    with pytest.raises(ConfigError, match="within"):
        validate(RunConfig, dict(model="vgg16", dataset="cifar10", seed=1, epochs=10, batch_size=8, test_batch_size=8,
                                 milestones=[5, 20], lrs=[0.1, 0.01, 0.001], data_root="."), "run")


def test_unknown_scale_and_misspelt_key(tmp_path, monkeypatch):
    import methods.base.config as cfg

    with pytest.raises(ConfigError, match="unknown scale 'huge'"):
        load_scale("huge")
    (tmp_path / "bad.yaml").write_text("epochs: 4\nbatch_sise: 8\ntest_batch_size: 8\nbatch_size: 8\nseeds: [1]\n")
    monkeypatch.setattr(cfg, "SCALES_DIR", tmp_path)
    with pytest.raises(ConfigError, match=r"unknown key 'batch_sise' \(misspelt\?\); known: \[.*'batch_size'"):
        load_scale("bad")


@contextlib.contextmanager
def killed_at_checkpoint(n: int, monkeypatch):
    """The n-th checkpoint write raises KeyboardInterrupt (a kill before it lands); the block
    must end with that interrupt, after which checkpoints are written normally again."""
    import methods.train.loop as train

    real_save, calls = train.save_checkpoint, {"n": 0}

    def save(path, obj):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt("simulated kill")
        real_save(path, obj)

    monkeypatch.setattr(train, "save_checkpoint", save)
    with pytest.raises(KeyboardInterrupt):
        yield
    monkeypatch.setattr(train, "save_checkpoint", real_save)


#: The search of the ``tiny_search`` fixture (tests/conftest.py): its retrainings train with its seed.
_TINY_SEARCH = SearchRun("vgg16", "cifar10", "80-120", 0.1, 1)


def _comparable(result):
    # wall time and metered energy differ between any two runs; everything else must not
    return [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s", "energy_j")} for row in result.log]


@pytest.mark.slow
def test_search_records_masks_snapshots_and_eb(tiny_search):
    tiny = load_scale("tiny")
    s, res = tiny_search  # _TINY_SEARCH at tiny scale, snapshots incl. 20, final
    assert len(res.log) == tiny.epochs and res.bn_channels == 264
    h = __import__("numpy").load(s / "history.npz")
    assert h["gammas"].shape == (tiny.epochs + 1, 264) and h["mask_p0.5"].shape == (tiny.epochs + 1, 264)
    assert (s / "snapshots" / "epoch0.pt").is_file() and (s / "snapshots" / "epoch2.pt").is_file()
    for rule in ("paper", "official"):
        t = res.eb_epochs["0.5"][rule]
        assert t is None or (s / "snapshots" / f"epoch{t}.pt").is_file()
    assert not (s / "ckpt.pt").exists()
    assert res.best_acc == max(r["test_acc"] for r in res.log)


@pytest.mark.slow
def test_resume_after_interruption_matches_uninterrupted(tmp_path, data_root, monkeypatch):
    tiny = load_scale("tiny")
    args = (SearchRun("preresnet101", "cifar10", "80-120", 0.1, 3), StageContext(tiny, str(data_root)))
    full = run_search(*args, tmp_path / "a")

    with killed_at_checkpoint(6, monkeypatch):  # the 6th epoch dies before its checkpoint lands
        run_search(*args, tmp_path / "b")
    assert torch.load(tmp_path / "b" / "ckpt.pt", weights_only=True)["epoch"] == 5
    resumed = run_search(*args, tmp_path / "b")
    assert _comparable(resumed) == _comparable(full)
    import numpy as np

    assert np.array_equal(np.load(tmp_path / "a" / "history.npz")["gammas"], np.load(tmp_path / "b" / "history.npz")["gammas"])
    assert resumed.eb_epochs == full.eb_epochs


@pytest.mark.slow
def test_retrain_draws_and_charges_cost(tmp_path, data_root, tiny_search):
    tiny = load_scale("tiny")
    s, _ = tiny_search  # snapshots at draw 40 among others
    ctx = StageContext(tiny, str(data_root))
    fresh = run_retrain(RetrainRun(_TINY_SEARCH, 0.5, "40", "fresh", "80-120", 0.1), ctx, tmp_path / "r1", s)
    drawn = run_retrain(RetrainRun(_TINY_SEARCH, 0.5, "40", "drawn", "80-120", 0.1), ctx, tmp_path / "r2", s)
    assert fresh.draw_epoch == drawn.draw_epoch == 4
    assert fresh.config["cfg"] == drawn.config["cfg"]
    assert (fresh.log[0]["test_acc"] != drawn.log[0]["test_acc"]
            or fresh.log[0]["train_loss"] != drawn.log[0]["train_loss"])
    n, e = fresh.train_images, tiny.epochs
    assert fresh.train_flops == pytest.approx(
        3 * n * (4 * fresh.dense_complexity["flops"] + e * fresh.complexity["flops"]))
    assert 0 < fresh.flop_reduction < 1 and fresh.complexity["params"] < fresh.dense_complexity["params"]
    saved = json.loads((tmp_path / "r1" / "result.json").read_text())
    assert saved["best_acc"] == fresh.best_acc and saved["provenance"]["torch"] == torch.__version__


@pytest.mark.slow
def test_tiny_model_learns(tiny_search):
    _, res = tiny_search  # _TINY_SEARCH at tiny scale
    assert res.log[-1]["train_loss"] < res.log[0]["train_loss"]
    assert res.best_acc > 15.0  # 10 classes: chance is 10 %


@pytest.mark.slow
def test_eb_train_continues_from_the_ticket_and_reinit_starts_over(tmp_path, data_root, tiny_search):
    tiny = load_scale("tiny")
    s, search = tiny_search  # _TINY_SEARCH at tiny scale
    ratio = next(float(p) for p, r in search.eb_epochs.items() if r["paper"] is not None)
    t = search.eb_epochs[str(ratio)]["paper"]
    ctx = StageContext(tiny, str(data_root))
    eb = run_retrain(RetrainRun(_TINY_SEARCH, ratio, "eb", "continue", "80-120", 0.1), ctx, tmp_path / "eb", s)
    re = run_retrain(RetrainRun(_TINY_SEARCH, ratio, "eb", "fresh", "80-120", 0.1), ctx, tmp_path / "re", s)
    assert eb.draw_epoch == re.draw_epoch == t
    assert [r["epoch"] for r in eb.log] == list(range(t + 1, tiny.epochs + 1))
    assert eb.log[0]["lr"] == pytest.approx(([0.1] * 8 + [0.01] * 4 + [0.001] * 4)[t])  # same schedule, epoch t
    n, e = eb.train_images, tiny.epochs
    dense, pruned = eb.dense_complexity["flops"], eb.complexity["flops"]
    assert eb.train_flops == pytest.approx(3 * n * (t * dense + (e - t) * pruned))
    assert re.train_flops == pytest.approx(3 * n * (t * dense + e * pruned))


def test_draw_epochs_resolve_and_bad_draws_are_refused():
    from methods.stages.eb import resolve_draw_epoch

    smoke = load_scale("smoke")
    search = {"best_epoch": 13, "eb_epochs": {"0.5": {"paper": 6, "official": None}}, "config": {"epochs": 16}}
    assert [resolve_draw_epoch(d, smoke, search, 0.5) for d in ("20", "final", "best", "eb")] == [2, 16, 13, 6]
    for draw, ratio, msg in [("-10", 0.5, "draw epoch"), ("200", 0.5, "draw epoch"), ("late", 0.5, "draw epoch"),
                             ("eb_official", 0.5, "no EB ticket emerged"), ("eb", 0.25, "no EB detector")]:
        with pytest.raises(ConfigError, match=msg):
            resolve_draw_epoch(draw, smoke, search, ratio)


@pytest.mark.slow
def test_eb_train_resumes_mid_retraining(tmp_path, data_root, monkeypatch, tiny_search):
    """EB Train starts at the EB epoch (start_epoch > 0): a kill during it resumes exactly."""
    tiny = load_scale("tiny")
    s, search = tiny_search  # _TINY_SEARCH at tiny scale
    ratio = next(float(p) for p, r in search.eb_epochs.items() if r["paper"] is not None and r["paper"] < tiny.epochs - 2)
    run, ctx = RetrainRun(_TINY_SEARCH, ratio, "eb", "continue", "80-120", 0.1), StageContext(tiny, str(data_root))
    full = run_retrain(run, ctx, tmp_path / "a", s)
    with killed_at_checkpoint(2, monkeypatch):
        run_retrain(run, ctx, tmp_path / "b", s)
    assert _comparable(run_retrain(run, ctx, tmp_path / "b", s)) == _comparable(full)
