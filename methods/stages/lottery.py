"""RT's lottery-ticket stages (Liu et al. 2019, Tables 8 and 9; REFERENCE.md sections 8 and 9).

``run_dense`` trains the dense network once per (model, dataset, LR, seed), keeping its
initialisation theta_0 and its trained weights; ``run_lottery`` prunes the trained network and
trains the pruned one from either arm:

* ``winning`` (winning ticket): the kept weights take their values in theta_0 (RT
  ``main_lottery.py``, ``lottery_ticket.py``); every other parameter and buffer is theta_0's too;
* ``random`` (random init), drawn from seed ``dense seed + RANDOM_SEED_OFFSET`` and pruned with the
  same mask. Structured (``l1``, RT ``main_scratch_mask.py``): theta_0 with every conv weight
  redrawn He fan-out at the dense layer's scale (n = 9 * out of the dense layer), then the kept
  filters; BN and Linear keep theta_0's values, as the official seed-1 rebuild gives. Unstructured
  (``convmagnitude``, RT ``cifar_scratch_no_longer.py``): a whole new network, its conv weights
  N(0, sqrt(2/n)) with n = 9 * out * layer density, times the mask.

Both arms, and the dense run, use the same recipe at the same LR: SGD momentum 0.9, weight
decay 1e-4, no L1 on BN, 160 epochs (scaled), LR x0.1 at 80 and 120, batch 64 (RT ``main.py``,
``cifar.py``), the batches and augmentation drawn from the dense run's seed, so the arms differ only in
their start. The filter-pruned network is physically narrower (equivalent to RT's zeroed
filters, whose channels stay dead: ``methods.pruning.l1``); a weight mask is held through every step
(``methods.pruning.unstructured``).
"""
from __future__ import annotations

from pathlib import Path

import torch

from methods.runs import digest as dg
from methods.base.config import ConfigError, schedule
from methods.metrics.energy import MODEL_SOURCE, EnergyMeter, modelled_energy_j
from methods.metrics.flops import complexity, training_flops
from methods.base.inputs import check_ratio
from methods.base.io import load_torch, read_json, save_torch
from methods.runs.cells import DenseRun, LotteryRun
from methods.runs.results import Result
from methods.pruning.l1 import prune_filters
from methods.models import build_model
from methods.models.init import he_normal_
from methods.base.provenance import provenance
from methods.pruning.registry import get_pruning
from methods.stages.common import (REFUSED, StageContext, accuracy_summary, done_result, measured_energy_j, prepare,
                                    run_config, save_result, save_untrained)
from methods.pruning.ticket import ticket_report
from methods.pruning.ticket import warning as ticket_warning
from methods.train.loop import fit
from methods.pruning.unstructured import apply_masks, effective_macs, rescaled_he_, rewind, sparsity_report

ARMS = ("winning", "random")
#: The pruning methods (``methods.pruning.registry.PRUNING``) of RT Table 8 and Table 9.
LOTTERY_METHODS = ("l1", "convmagnitude")
#: RT trains every lottery run with batch 64 (``main.py``/``cifar.py --train-batch``); see ``Scale.batch``.
RT_BATCH = 64
#: The random-init arm draws its start from this seed offset, apart from the dense run's seed
#: (RT ``cifar_scratch_no_longer.py`` takes a new random seed).
RANDOM_SEED_OFFSET = 1000


def _energy(meter, log, flops) -> dict:
    return {"measured_j": measured_energy_j(log), **meter.describe(), "modelled_j": modelled_energy_j(flops, 32), "bits": 32,
            "model": MODEL_SOURCE}


def run_dense(run: DenseRun, ctx: StageContext, out: Path | None = None) -> Result:
    """Train ``run``, the dense network of an RT table (no BN sparsity, batch 64; RT ``main.py``),
    into ``out`` (default: the workflow's folder, ``ctx.folder(run)``), and keep theta_0
    (``snapshots/epoch0.pt``) and the trained weights (``snapshots/final.pt``) beside ``result.json``.

    Returns the typed result: ``best_acc`` / ``final_acc`` (%), the per-epoch ``log``, ``complexity``
    (forward MACs/FLOPs of one 3x32x32 image, params; ``flops_paper`` in the official counter's
    convention, ``methods.metrics.flops``), ``train_flops`` / ``train_flops_paper`` and ``energy`` (joules).

    Raises:
        ConfigError: a model without an entry in the scale; DatasetError: no data;
            methods.base.io.CorruptFile: a current result.json whose fields have the wrong types.
    """
    out, scale = ctx.folder(run, out), ctx.scale
    digest_inputs = dg.dense_inputs(scale, run.model, run.dataset, run.schedule, run.lr, run.seed)
    done = done_result(out, digest_inputs)  # first: a stale run's snapshots go too
    if done is not None and all((out / f).is_file() for f in ("snapshots/epoch0.pt", "snapshots/final.pt")):
        return done  # a lost snapshot retrains the run (same seed, same theta_0)
    cfg = run_config(scale, run.model, run.dataset, *schedule(run.schedule, run.lr, scale), run.seed, ctx.data_root,
                     ctx.download, batch_size=scale.batch(RT_BATCH), sparsity=0.0)
    dev, classes, train, test = prepare(scale, run.dataset, ctx.data_root, ctx.download)
    torch.manual_seed(run.seed)
    net = build_model(run.model, classes, **cfg.knobs)
    if not (out / "snapshots" / "epoch0.pt").is_file():
        save_torch(out / "snapshots" / "epoch0.pt", net.state_dict())
    meter = EnergyMeter(dev)
    dg.begin(out, digest_inputs)  # whose checkpoint this folder holds (methods.runs.digest)
    res = fit(net, cfg, train, test, out / "ckpt.pt", name=out.name, meter=meter)
    save_torch(out / "snapshots" / "final.pt", res["model"].state_dict())
    cx = complexity(res["model"])
    result = {"kind": "dense", "config": cfg.model_dump(), "scale": scale.name, "log": res["log"], **accuracy_summary(res["log"]),
              "complexity": cx, "train_images": len(train.y),
              "train_flops": training_flops(cx["flops"], len(train.y), cfg.epochs),
              "train_flops_paper": training_flops(cx["flops_paper"], len(train.y), cfg.epochs), "provenance": provenance(dev)}
    result["energy"] = _energy(meter, res["log"], result["train_flops"])
    return save_result(out, result, digest_inputs)


def _target(prune: str, target: str):
    """The pruning method's "ratio": an L1 variant ("a", "b") or a fraction in (0, 1)."""
    if get_pruning(prune).granularity == "filter":
        return target
    try:
        ratio = float(target)
    except ValueError:
        raise ConfigError(f"--target {target!r}: {prune} takes a pruning ratio in (0, 1), e.g. 0.8") from None
    check_ratio(ratio)
    return ratio


def start_network(arm: str, prune: str, ticket, theta0: dict, cfg_model: str, knobs: dict, classes: int,
                  seed: int) -> torch.nn.Module:
    """The pruned network an arm trains from (module docstring); masks applied, on the CPU.

    Raises:
        ConfigError: unknown arm.
    """
    if arm not in ARMS:
        raise ConfigError(f"arm={arm!r}: choose one of {ARMS}")
    method = get_pruning(prune)
    dense = build_model(cfg_model, classes, **knobs)
    if method.granularity == "filter":
        dense.load_state_dict(theta0)
        if arm == "random":  # main_scratch_mask.py: theta_0's BN and Linear, every conv redrawn at the dense scale
            torch.manual_seed(seed + RANDOM_SEED_OFFSET)
            for m in dense.modules():
                if isinstance(m, torch.nn.Conv2d):
                    he_normal_(m.weight, m.kernel_size[0] * m.kernel_size[1] * m.out_channels)
        return prune_filters(dense, ticket.filter_masks)
    if arm == "winning":
        dense.load_state_dict(theta0)
    else:  # cifar_scratch_no_longer.py: a whole new network from a new seed
        torch.manual_seed(seed + RANDOM_SEED_OFFSET)
        dense = build_model(cfg_model, classes, **knobs)
    if arm == "winning":
        return rewind(dense, theta0, ticket.weight_masks, method.kinds)
    rescaled_he_(dense, ticket.weight_masks, method.kinds)
    return apply_masks(dense, ticket.weight_masks, method.kinds)


def run_lottery(run: LotteryRun, ctx: StageContext, out: Path | None = None, dense_dir: Path | None = None,
                refuse_disconnected: bool = False) -> Result:
    """Train ``run``: prune the trained dense network of its dense run with ``run.prune`` (``l1``
    at variant ``run.target``, or ``convmagnitude`` at ratio ``run.target``) and train the pruned
    network from ``run.arm`` ("winning" or "random") with the dense run's recipe, LR and seed
    (RT ``main_lottery.py``, ``main_scratch_mask.py``), into ``out``, reading the dense run from
    ``dense_dir`` (defaults: the workflow's folders, ``ctx.folder``).

    The typed result it returns records ``best_acc`` / ``final_acc`` (%), ``dense_best_acc``, the trained network's
    ``complexity`` (params, dense and nonzero MACs/FLOPs of one 3x32x32 image, official-counter
    ``flops_paper`` dense and nonzero), the conv ``weight_density`` (exact zeros), ``train_flops``
    and ``train_flops_paper`` (this training only) and ``energy``.

    Raises:
        ConfigError: unknown method, arm or target; FileNotFoundError: the dense run's result.json
            or snapshots are missing; RuntimeError: a corrupt snapshot; DatasetError: no data;
            methods.base.io.CorruptFile: a current result.json whose fields have the wrong types.
    """
    out, dense_dir, scale = ctx.folder(run, out), ctx.folder(run.dense, dense_dir), ctx.scale
    prune, target, arm, seed = run.prune, run.target, run.arm, run.dense.seed
    digest_inputs = dg.stage_lottery_inputs(scale, dense_dir, prune, target, arm, seed, refuse_disconnected)
    if (done := done_result(out, digest_inputs, dense_dir)) is not None:
        return done
    method = get_pruning(prune)
    if prune not in LOTTERY_METHODS:
        raise ConfigError(f"--prune {prune} is an EB Table 2 method; the lottery stage takes l1 or convmagnitude")
    tgt = _target(prune, target)
    if arm not in ARMS:
        raise ConfigError(f"arm={arm!r}: choose one of {ARMS}")
    if not (dense_dir / "result.json").is_file():
        raise FileNotFoundError(f"dense run {dense_dir} has no result.json: run its dense stage first (or fix --dense)")
    dense = read_json(dense_dir / "result.json")
    dcfg = dense["config"]
    snaps = {k: dense_dir / "snapshots" / f"{k}.pt" for k in ("epoch0", "final")}
    for f in snaps.values():
        if not f.is_file():
            raise FileNotFoundError(f"{f} missing: rerun the dense run {dense_dir}")
    dev, classes, train, test = prepare(scale, dcfg["dataset"], ctx.data_root, ctx.download)
    trained = build_model(dcfg["model"], classes, **dcfg["knobs"])
    trained.load_state_dict(load_torch(snaps["final"], "snapshot"))
    try:
        ticket = method.draw(trained, None, tgt, train, seed, classes)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None
    report = ticket_report(trained, ticket, method.kinds)
    if (line := ticket_warning(report)) is not None:
        print(line, flush=True)
    if refuse_disconnected and report["disconnected"]:  # as methods.stages.eb.run_retrain
        result = {"kind": "lottery", "scale": scale.name, "dense": str(dense_dir), "prune": prune, "target": target,
                  "arm": arm, "no_ticket": REFUSED, "ticket": report, "best_acc": None, "final_acc": None,
                  "provenance": provenance(dev)}
        return save_untrained(out, result, digest_inputs)
    net = start_network(arm, prune, ticket, load_torch(snaps["epoch0"], "snapshot"), dcfg["model"], dcfg["knobs"],
                        classes, seed)
    arch = net.cfg if method.granularity == "filter" else None
    cfg = run_config(scale, dcfg["model"], dcfg["dataset"], dcfg["milestones"], dcfg["lrs"], seed, ctx.data_root, ctx.download,
                      batch_size=dcfg["batch_size"], sparsity=0.0, cfg=arch)  # the dense run's recipe
    meter = EnergyMeter(dev)
    dg.begin(out, digest_inputs)  # whose checkpoint this folder holds (methods.runs.digest)
    res = fit(net, cfg, train, test, out / "ckpt.pt", name=out.name, meter=meter)
    cx = effective_macs(res["model"])
    cx["params"] = sum(p.numel() for p in res["model"].parameters())
    conv = sparsity_report(res["model"], ("conv",))
    dense_cx = dense["complexity"]
    if "flops_paper" not in dense_cx:  # a dense run finished before the official-counter convention
        dense_cx = {**dense_cx, "flops_paper": complexity(trained)["flops_paper"]}
    result = {"kind": "lottery", "scale": scale.name, "dense": str(dense_dir), "prune": prune, "target": target,
              "arm": arm, "config": cfg.model_dump(), "log": res["log"], **accuracy_summary(res["log"]),
              "dense_best_acc": dense["best_acc"], "granularity": method.granularity, "ticket": report,
              "complexity": {k: cx[k] for k in ("macs", "flops", "params", "macs_nonzero", "flops_nonzero",
                                                "flops_paper", "flops_paper_nonzero")},
              "dense_complexity": dense_cx, "weight_density": conv["density"], "conv_weights": conv["total"],
              "conv_nonzero": conv["nonzero"], "param_reduction": 1 - cx["params"] / dense_cx["params"],
              "flop_reduction": 1 - cx["flops"] / dense_cx["flops"],
              "flop_reduction_nonzero": 1 - cx["flops_nonzero"] / dense_cx["flops"], "train_images": len(train.y),
              "flop_reduction_paper": 1 - cx["flops_paper"] / dense_cx["flops_paper"],
              "train_flops": training_flops(cx["flops"], len(train.y), cfg.epochs),
              "train_flops_paper": training_flops(cx["flops_paper"], len(train.y), cfg.epochs),
              "train_flops_paper_nonzero": training_flops(cx["flops_paper_nonzero"], len(train.y), cfg.epochs),
              "provenance": provenance(dev)}
    result["energy"] = _energy(meter, res["log"], result["train_flops"])
    return save_result(out, result, digest_inputs)

