"""Table 2 rows through the retraining stage at tiny scale: masks held, costs charged, energy summed."""
from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest

from methods.base.io import read_json, write_json
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from methods.stages import eb as stages
from methods.base.config import load_scale
from methods.pruning.registry import get_pruning
from methods.runs.cells import RetrainRun, SearchRun
from methods.stages.common import StageContext, run_config, prepare
from methods.stages.eb import _start_weights, draw_ticket, run_retrain, run_search
from methods.train.loop import fit
from methods.pruning.unstructured import prunable


#: The search of the ``search`` fixture (and of test_measured_energy_sums_the_epochs_a_cell_uses): seed 1.
SEARCH = SearchRun("vgg16", "cifar10", "80-120", 0.1, 1)


@pytest.fixture
def search(tiny_search):
    """run_search(SEARCH, StageContext(load_scale("tiny"), data_root), out) with a snapshot at the final
    epoch (among others): tests/conftest.py's shared search folder, read-only."""
    return tiny_search[0]


def _ctx(data_root, scale=None) -> StageContext:
    return StageContext(scale or load_scale("tiny"), str(data_root))


def _retrain(tmp_path, search, data_root, prune, draw, init, ratio=0.5):
    return run_retrain(RetrainRun(SEARCH, ratio, draw, init, "80-120", 0.1, prune), _ctx(data_root),
                       tmp_path / f"{prune}-{draw}-{init}", search)


@pytest.mark.slow
def test_lt_mask_stays_exactly_zero_through_every_step_of_retraining(tmp_path, search, data_root):
    """LT: theta_0 under the final weights' magnitude mask, trained with momentum 0.9 and weight decay."""
    tiny = load_scale("tiny")
    dev, classes, train, test = prepare(tiny, "cifar10", str(data_root), False)
    ticket, dense = draw_ticket(search, get_pruning("magnitude"), 0.5, tiny.epochs, False, classes, train, 1)
    net = _start_weights(ticket, "rewind", search, dense, classes, 1)
    theta0 = torch.load(search / "snapshots" / "epoch0.pt", weights_only=True)
    layers = prunable(net)
    first = layers[0][0]
    assert torch.equal(first.weight_orig, theta0["features.0.weight"] * ticket.weight_masks[0])  # rewound survivors
    cfg = run_config(tiny, "vgg16", "cifar10", [8, 12], [0.1, 0.01, 0.001], 1, str(data_root), False)
    steps = []
    hook = register_optimizer_step_post_hook(
        lambda opt, a, k: steps.append(max(float(m.weight_orig.detach()[~mask].abs().max())
                                           for (m, _), mask in zip(layers, ticket.weight_masks))))
    try:
        fit(net, cfg, train, test, tmp_path / "ckpt.pt")
    finally:
        hook.remove()
    assert len(steps) == tiny.epochs * math.ceil(tiny.train_images / tiny.batch_size)  # 112 SGD steps
    assert max(steps) == 0.0  # pruned weights exactly zero after every step
    assert cfg.momentum == 0.9 and cfg.weight_decay == 1e-4
    kept = sum(int(m.sum()) for m in ticket.weight_masks)
    total = sum(m.numel() for m in ticket.weight_masks)
    assert total - kept == math.floor(Fraction("0.5") * total)
    assert sum(int(torch.count_nonzero(m.weight_orig)) for m, _ in layers) <= kept


@pytest.mark.slow
def test_table2_rows_charge_their_stages(tmp_path, search, data_root):
    s = json.loads((search / "result.json").read_text())
    dense_run = s["train_flops"]  # one dense training at this scale
    lt = _retrain(tmp_path, search, data_root, "magnitude", "final", "rewind")
    snip = _retrain(tmp_path, search, data_root, "snip", "0", "drawn")
    ns = _retrain(tmp_path, search, data_root, "bn", "final", "drawn")
    thinet = _retrain(tmp_path, search, data_root, "thinet", "final", "drawn")
    assert lt.granularity == snip.granularity == "weight" and ns.granularity == thinet.granularity == "channel"
    assert lt.train_flops == pytest.approx(2 * dense_run)  # dense training + dense-charged retraining
    assert lt.train_flops_nonzero < lt.train_flops and lt.weight_density == pytest.approx(0.5, abs=0.01)
    assert lt.flop_reduction == 0 and 0 < lt.flop_reduction_nonzero < 1
    assert snip.draw_epoch == 0 and snip.flops_search == 0
    assert snip.train_flops == pytest.approx(dense_run + snip.flops_prune) and snip.flops_prune > 0
    assert ns.train_flops == pytest.approx(dense_run + ns.flops_retrain) and ns.flops_retrain < dense_run
    assert thinet.flops_prune > 0 and 0 < thinet.param_reduction < 1
    for r in (lt, snip, ns, thinet):
        assert r.train_flops == pytest.approx(r.flops_search + r.flops_prune + r.flops_retrain)
        # at 50,000 images the training epochs scale, the mask selection's fixed sample does not
        scaled = (r.flops_search + r.flops_retrain) * 50_000 / r.train_images + r.flops_prune
        assert r.train_flops_50k_eb_units == pytest.approx(scaled / 5e13)
    for r in (lt, snip, ns, thinet):
        assert r.energy["modelled_j"] == pytest.approx(r.train_flops / 2 * 4.6e-12)
        assert r.train_flops_eb_units == pytest.approx(r.train_flops / 5e13)


@pytest.mark.slow
def test_measured_energy_sums_the_epochs_a_cell_uses(tmp_path, data_root, monkeypatch):
    class OneJoulePerWindow:  # stands in for the Zeus monitor of a machine that has one
        def __init__(self, device):
            self.available = True

        def begin(self, name):
            pass

        def end(self, name):
            return 1.0

        def describe(self):
            return {"meter": "fake", "reason": None}

    monkeypatch.setattr(stages, "EnergyMeter", OneJoulePerWindow)
    tiny = load_scale("tiny")
    s = run_search(SEARCH, _ctx(data_root, tiny), tmp_path / "s")
    assert s.energy["measured_j"] == tiny.epochs
    ratio = next(float(p) for p, r in s.eb_epochs.items() if r["paper"] is not None and r["paper"] < tiny.epochs)
    t = s.eb_epochs[str(ratio)]["paper"]
    eb = run_retrain(RetrainRun(SEARCH, ratio, "eb", "continue", "80-120", 0.1), _ctx(data_root, tiny), tmp_path / "eb",
                     tmp_path / "s")
    # t search epochs + the mask selection + (E - t) retraining epochs
    assert (eb.energy["search_j"], eb.energy["prune_j"], eb.energy["retrain_j"]) == (t, 1.0, tiny.epochs - t)
    assert eb.energy["measured_j"] == tiny.epochs + 1


@pytest.mark.slow
def test_no_eb_ticket_is_recorded_not_crashed(tmp_path, search, data_root):
    import shutil

    s = tmp_path / "s"
    shutil.copytree(search, s)
    res = read_json(s / "result.json")
    res["eb_epochs"]["0.5"]["paper"] = None
    write_json(s / "result.json", res)  # rewritten with its new checksum
    eb_train = RetrainRun(SEARCH, 0.5, "eb", "continue", "80-120", 0.1)
    out = run_retrain(eb_train, _ctx(data_root), tmp_path / "r", s)
    assert out.best_acc is None and "no EB ticket emerged at p=0.5" in out.no_ticket
    assert json.loads((tmp_path / "r" / "result.json").read_text())["no_ticket"] == out.no_ticket
    # a ticket at the very last epoch leaves EB Train nothing to train: recorded the same way
    res["eb_epochs"]["0.5"]["paper"] = load_scale("tiny").epochs
    write_json(s / "result.json", res)
    last = run_retrain(eb_train, _ctx(data_root), tmp_path / "r2", s)
    assert last.best_acc is None and "only at the last epoch (16)" in last.no_ticket


@pytest.mark.slow
@pytest.mark.parametrize("prune, draw, init", [("magnitude", "final", "rewind"), ("thinet", "final", "drawn")])
def test_killed_retraining_of_a_ticket_resumes_exactly(tmp_path, search, data_root, monkeypatch, prune, draw, init):
    """The ticket is drawn again on resume (deterministic), then the masked or ThiNet-pruned network
    continues from its checkpoint: the log equals an uninterrupted run's."""
    from test_train import _comparable, killed_at_checkpoint

    run, ctx = RetrainRun(SEARCH, 0.5, draw, init, "80-120", 0.1, prune), _ctx(data_root)
    full = run_retrain(run, ctx, tmp_path / "a", search)
    with killed_at_checkpoint(5, monkeypatch):
        run_retrain(run, ctx, tmp_path / "b", search)
    assert torch.load(tmp_path / "b" / "ckpt.pt", weights_only=True)["epoch"] == 4
    resumed = run_retrain(run, ctx, tmp_path / "b", search)
    assert _comparable(resumed) == _comparable(full)
    assert resumed.complexity == full.complexity and resumed.weight_density == full.weight_density


@pytest.mark.slow
def test_continuefresh_is_the_official_head_main_c(tmp_path, search, data_root):
    """The head ``main_c.py``: the pruned architecture from a fresh init (not the ticket's weights),
    trained on from the draw epoch under the search's schedule."""
    from methods.base.config import ConfigError

    tiny = load_scale("tiny")
    _, classes, train, _ = prepare(tiny, "cifar10", str(data_root), False)
    bn = get_pruning("bn")
    ticket, dense = draw_ticket(search, bn, 0.5, 8, True, classes, train, 1)
    trained = {k: v.clone() for k, v in ticket.model.state_dict().items()}
    fresh_ticket, fresh_dense = draw_ticket(search, bn, 0.5, 8, True, classes, train, 1)
    a = _start_weights(ticket, "continuefresh", search, dense, classes, seed=1)
    b = _start_weights(fresh_ticket, "fresh", search, fresh_dense, classes, seed=1)
    conv = next(k for k in trained if k.endswith("weight") and trained[k].dim() == 4)
    assert torch.equal(a.state_dict()[conv], b.state_dict()[conv]) and not torch.equal(a.state_dict()[conv], trained[conv])
    out = run_retrain(RetrainRun(SEARCH, 0.5, "80", "continuefresh", "80-120", 0.1), _ctx(data_root, tiny), tmp_path / "r",
                      search)
    assert [r["epoch"] for r in out.log] == list(range(9, tiny.epochs + 1))  # paper epoch 80 = epoch 8 of 16: epochs 9..16
    assert out.config["start_epoch"] == 8
    with pytest.raises(ConfigError, match="continuefresh re-initialises a pruned architecture"):
        run_retrain(RetrainRun(SEARCH, 0.5, "8", "continuefresh", "80-120", 0.1, "magnitude"), _ctx(data_root, tiny),
                    tmp_path / "w", search)


@pytest.mark.slow
def test_a_disconnected_ticket_is_flagged_trained_and_refused_on_request(tmp_path, search, data_root, capsys):
    """SNIP at 99.9 % of a width-1/16 VGG16's weights empties layers: the retraining records the
    per-layer report and the flags, warns in its log, and trains; refuse_disconnected skips training."""
    res = _retrain(tmp_path, search, data_root, "snip", "0", "fresh", ratio=0.999)
    t = res.ticket
    assert t["unit"] == "weights" and t["disconnected"] and t["collapsed"]
    assert t["kept"] == sum(x["kept"] for x in t["layers"]) and t["total"] == sum(x["total"] for x in t["layers"])
    assert t["total"] - t["kept"] == math.floor(Fraction("0.999") * t["total"])
    assert res.best_acc is not None and len(res.log) == load_scale("tiny").epochs
    assert "warning: ticket disconnected" in capsys.readouterr().out
    refused = run_retrain(RetrainRun(SEARCH, 0.999, "0", "fresh", "80-120", 0.1, "snip"), _ctx(data_root),
                          tmp_path / "refused", search, refuse_disconnected=True)
    assert refused.no_ticket == stages.REFUSED and refused.best_acc is None and refused.ticket["disconnected"]
    assert read_json(tmp_path / "refused" / "result.json")["no_ticket"] == stages.REFUSED
    assert not (tmp_path / "refused" / "ckpt.pt").exists()


def test_refuse_disconnected_reaches_the_stage_command():
    from methods.runs.cells import load_tables, refused_runs, table2_cells
    from methods.workflow.jobs import retrain_args

    spec = load_tables()
    tiny = load_scale("tiny")
    assert refused_runs(tiny, spec) == set()
    spec = {**spec, "table2": {**spec["table2"], "refuse_disconnected": True}}
    refused = refused_runs(tiny, spec)
    runs = {r for c in table2_cells(tiny, spec) for r in c.runs}
    assert refused == runs and len(runs) > 0
    r = sorted(runs, key=lambda r: r.name)[0]
    assert retrain_args(r, tiny, "res", "--data-root d", r in refused).endswith(" --refuse-disconnected")
