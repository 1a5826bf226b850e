"""Workflow stages: the EB search run and the retraining of a drawn subnetwork.

Each stage writes ``result.json`` (plus ``history.npz`` for a search) atomically into its
output folder, keeps a per-epoch checkpoint beside it while running, and resumes from that
checkpoint when rerun. Epoch arguments are given at the papers' scale and mapped by the scale.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from methods.runs import digest as dg
from methods.runs.cells import RetrainRun, SearchRun
from methods.runs.results import Result
from methods.stages.common import (PAPER_TRAIN_IMAGES, REFUSED, StageContext, accuracy_summary, done_result,
                                    measured_energy_j, prepare, run_config, save_result, save_untrained, scaled_precision)
from methods.base.config import PAPER_EPOCHS, ConfigError, Precision, Scale, schedule
from methods.base.data import Split
from methods.pruning.eb import EBDetector, channel_mask, detect_eb, masks_from_gammas
from methods.metrics.energy import MODEL_SOURCE, EnergyMeter, charged_bits, modelled_energy_j
from methods.metrics.flops import EB_UNIT_FLOPS, cell_training_flops, complexity, training_flops
from methods.base.io import load_torch, read_json, save_npz, save_torch
from methods.train.lowp import mac_bits
from methods.models import build_model
from methods.pruning.channels import prune_channels, pruned_cfg
from methods.base.provenance import provenance
from methods.runs.spec import INITS
from methods.pruning.ticket import ticket_report
from methods.pruning.ticket import warning as ticket_warning
from methods.pruning.registry import PruningMethod, Ticket, get_pruning
from methods.train.loop import fit
from methods.pruning.unstructured import apply_masks, effective_macs, rewind, sparsity_report

#: Ratios whose masks and EB draw epochs every search records (REFERENCE.md sections 4 and 10).
SEARCH_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
EB_RULES = ("paper", "official")
#: Inits that train on from the draw epoch under the search's schedule (EB Train and the official head code's variant).
CONTINUING = ("continue", "continuefresh")


def _bits(cfg: dict) -> int:
    """Bit width the modelled energy charges a run's MACs at (``methods.train.lowp.mac_bits``)."""
    lp = cfg.get("precision")
    return charged_bits(mac_bits(Precision(**lp) if lp else None))


def run_search(run: SearchRun, ctx: StageContext, out: Path | None = None, snapshot_epochs=()) -> Result:
    """Train ``run``: dense training with L1 on BN gamma (the EB search / network-slimming sparse
    run; EB ``main.py``), in ``run.precision`` (``benchmarks/precisions.yaml``: ``bfp8`` is EB's
    8-bit search, ``main_lp.py``, whose masks come from the quantised gammas), into ``out``
    (default: the workflow's folder, ``ctx.folder(run)``).

    Records |gamma| after every epoch (row 0 = init), channel masks at ``SEARCH_RATIOS``, the
    EB draw epoch of each ratio under both detection rules, and weight snapshots at the
    initialisation, at ``snapshot_epochs`` (paper scale, or "final") and at every EB epoch.
    Returns the typed result written to ``out/result.json`` (the current one, untouched, when
    the run is already done).

    Raises:
        ConfigError: a bad field of ``run`` at ``ctx.scale``; DatasetError: no data;
            methods.base.io.CorruptFile: a current result.json whose fields have the wrong types.
    """
    out, scale = ctx.folder(run, out), ctx.scale
    lrs = list(run.lrs) if run.lrs else None
    digest_inputs = dg.search_inputs(scale, run.model, run.dataset, run.schedule, run.lr, run.seed, lrs, run.precision)
    if (done := done_result(out, digest_inputs)) is not None:
        return done
    cfg = run_config(scale, run.model, run.dataset, *schedule(run.schedule, run.lr, scale, lrs), run.seed, ctx.data_root,
                     ctx.download, precision=scaled_precision(run.precision, scale))
    dev, classes, train, test = prepare(scale, run.dataset, ctx.data_root, ctx.download)
    torch.manual_seed(run.seed)
    net = build_model(run.model, classes, **cfg.knobs)
    if not (out / "snapshots" / "epoch0.pt").is_file():
        save_torch(out / "snapshots" / "epoch0.pt", net.state_dict())
    wanted = {scale.epoch(e) for e in snapshot_epochs}

    seen = [0]  # |gamma| rows already pushed into the detectors
    detectors = [EBDetector(rule) for _ in SEARCH_RATIOS for rule in EB_RULES]

    def on_epoch(epoch, m, gammas):
        for g in gammas[seen[0]:]:  # after a resume the first call catches up on the whole history
            for i, p in enumerate(SEARCH_RATIOS):
                mask = channel_mask(g, p)
                for d in detectors[i * len(EB_RULES):(i + 1) * len(EB_RULES)]:
                    d.push(mask)
        seen[0] = len(gammas)
        if epoch in wanted or epoch in {d.epoch for d in detectors}:
            save_torch(out / "snapshots" / f"epoch{epoch}.pt", m.state_dict())

    meter = EnergyMeter(dev)
    dg.begin(out, digest_inputs)  # whose checkpoint this folder holds (methods.runs.digest)
    res = fit(net, cfg, train, test, out / "ckpt.pt", on_epoch, name=out.name, meter=meter)
    gammas = res["gammas"]
    history = {p: masks_from_gammas(gammas, p) for p in SEARCH_RATIOS}
    save_npz(out / "history.npz", gammas=gammas.numpy(), **{f"mask_p{p}": h.numpy() for p, h in history.items()})
    eb = {str(p): {rule: detect_eb(h, rule) for rule in EB_RULES} for p, h in history.items()}
    cx = complexity(res["model"])
    result = {"kind": "search", "config": cfg.model_dump(), "scale": scale.name, "precision": run.precision,
              "log": res["log"], **accuracy_summary(res["log"]),
              "eb_epochs": eb, "complexity": cx, "train_images": len(train.y), "bn_channels": int(gammas.shape[1]),
              "train_flops": training_flops(cx["flops"], len(train.y), cfg.epochs),
              "train_flops_paper": training_flops(cx["flops_paper"], len(train.y), cfg.epochs), "provenance": provenance(dev)}
    result["energy"] = {"measured_j": measured_energy_j(res["log"]), **meter.describe(),
                        "modelled_j": modelled_energy_j(result["train_flops"], _bits(result["config"])),
                        "bits": _bits(result["config"]), "model": MODEL_SOURCE}
    _paper_cost(result)
    return save_result(out, result, digest_inputs)


def _paper_cost(result: dict) -> None:
    """Add the cost in EB units (0.05 PFLOPs) as run, and with the training epochs rescaled to the
    papers' 50,000 images (the mask selection's fixed sample is not rescaled), for each of
    ``train_flops[_nonzero]`` (conv + linear) and ``train_flops_paper[_nonzero]`` (official counter)."""
    for key in ("train_flops", "train_flops_nonzero", "train_flops_paper", "train_flops_paper_nonzero"):
        # the mask selection's samples do not grow with the training set
        fixed = result.get("flops_paper_prune" if "paper" in key else "flops_prune", 0.0)
        if key in result:
            result[f"{key}_eb_units"] = result[key] / EB_UNIT_FLOPS
            per_image = (result[key] - fixed) * PAPER_TRAIN_IMAGES / result["train_images"]
            result[f"{key}_50k_eb_units"] = (per_image + fixed) / EB_UNIT_FLOPS


class NoTicket(ConfigError):
    """No EB ticket emerged in the search at the requested ratio (draw epoch undefined)."""


def resolve_draw_epoch(draw: str, scale: Scale, search: dict, ratio: float) -> int:
    """Completed search epochs of a draw: a paper-scale number, "final", "best" (the search
    epoch with the best test accuracy: Figure 1's hollow star), or "eb" / "eb_official" (the
    EB ticket's epoch at ``ratio`` under the paper's or the official detection rule).

    Raises:
        ConfigError: unknown draw; NoTicket: no EB ticket emerged at ``ratio``.
    """
    if draw == "best":
        return int(search["best_epoch"])
    if draw in ("eb", "eb_official"):
        rule = "paper" if draw == "eb" else "official"
        if str(ratio) not in search["eb_epochs"]:
            raise ConfigError(f"ratio {ratio} has no EB detector in this search; choose one of {sorted(search['eb_epochs'])}")
        t = search["eb_epochs"][str(ratio)][rule]
        if t is None:
            raise NoTicket(f"no EB ticket emerged at p={ratio} ({rule} rule) in {search['config']['epochs']} epochs")
        return int(t)
    try:
        e = scale.epoch(draw if draw == "final" else int(draw))
    except ValueError:
        e = -1
    if draw != "final" and not 0 <= e <= int(draw) <= PAPER_EPOCHS:
        raise ConfigError(f"draw epoch {draw!r}: use an epoch number in [0, 160], 'final', 'best', 'eb' or 'eb_official'")
    return e


def draw_ticket(search_dir: Path, method: PruningMethod, ratio: float, epoch: int, weights: bool, classes: int,
                train: Split, seed: int) -> tuple[Ticket, torch.nn.Module]:
    """Draw a ticket with ``method`` from the search's network after ``epoch`` completed epochs.

    The dense network holds the snapshot weights of that epoch when ``weights`` is True or the
    method needs them (the BN method needs only the recorded |gamma|). ``train``: the training
    split on the training device (SNIP's batch, ThiNet's samples); ``seed`` picks those images.
    Returns the ticket and that dense network, on ``train``'s device.

    Raises:
        FileNotFoundError: weights needed but the search saved no snapshot at ``epoch``;
        RuntimeError: a snapshot that does not fit the search's model (corrupt or foreign);
        TypeError: a model family the method has no rule for.
    """
    search = read_json(search_dir / "result.json")
    with np.load(search_dir / "history.npz") as h:
        gammas = torch.from_numpy(h["gammas"][epoch])
    cfg = search["config"]
    dense = build_model(cfg["model"], classes, **cfg["knobs"])
    if weights or method.needs_weights:
        dense.load_state_dict(_snapshot(search_dir, epoch))
    dense = dense.to(train.x.device)  # rank and score on the training device, not the host
    return method.draw(dense, gammas, ratio, train, seed, classes), dense


def _snapshot(search_dir: Path, epoch: int) -> dict:
    snap = search_dir / "snapshots" / f"epoch{epoch}.pt"
    if not snap.is_file():
        fix = ("the search's folder lost its theta_0 (every search writes it first); rerun the search" if epoch == 0 else
               "rerun the search with the draw in --snapshot-epochs (paper-scale epochs, e.g. --snapshot-epochs 10 "
               "for --draw 10; the workflow adds every table's draws)")
        raise FileNotFoundError(f"{snap} missing: {fix}")
    return load_torch(snap, "snapshot")


def _start_weights(ticket: Ticket, init: str, search_dir: Path, dense: torch.nn.Module, classes: int,
                   seed: int, kinds=("conv", "linear")) -> torch.nn.Module:
    """The network retraining starts from: the ticket's own weights ("drawn", "continue"), a fresh
    EB init from ``seed`` ("fresh", "continuefresh"), or the search's initial weights theta_0 ("rewind")."""
    if init in ("drawn", "continue"):
        return ticket.model
    if ticket.channel_masks is not None:
        if init in ("fresh", "continuefresh"):
            torch.manual_seed(seed)
            ticket.model.reset_parameters()
            return ticket.model
        dense.load_state_dict(_snapshot(search_dir, 0))
        return prune_channels(dense, ticket.channel_masks, classes, ticket.zeroed)
    if init == "fresh":  # official SNIP trains a separate fresh init under the mask
        torch.manual_seed(seed)
        dense.reset_parameters()
        return apply_masks(dense, ticket.weight_masks, kinds)
    return rewind(ticket.model, _snapshot(search_dir, 0), ticket.weight_masks, kinds)


def run_retrain(run: RetrainRun, ctx: StageContext, out: Path | None = None, search_dir: Path | None = None,
                refuse_disconnected: bool = False) -> Result:
    """Train ``run``: draw a ticket from its search run with pruning method ``run.prune`` at
    pruning ratio ``run.ratio`` and retrain it in ``run.precision`` (EB paper sections 3-4, EB
    ``main_c.py``; REFERENCE.md sections 6 and 7). From an 8-bit (``bfp8``) search, an FP32
    retraining is EB Train (LF) and a ``bfp8`` one EB Train (LL) (EB ``main_c_lp.py``). The run
    trains with its search's seed into ``out``, reading the search from ``search_dir``
    (defaults: the workflow's folders, ``ctx.folder``). Returns the typed result it wrote.

    ``run.init``:
      * ``"fresh"`` (Table 1/Figure 1 default; with ``draw="eb"`` it is EB Train (re-init)):
        re-initialise the drawn network with the EB init from the search's seed, train all epochs;
      * ``"drawn"``: keep the weights at the draw epoch, train all epochs (NS and ThiNet
        fine-tuning from ``draw="final"``; SNIP from ``draw="0"``);
      * ``"continue"`` (with ``draw="eb"`` it is EB Train): keep the ticket's weights and train
        on from the draw epoch to the last under the search's schedule, with a fresh optimizer;
      * ``"rewind"``: the surviving weights take their initial values theta_0 (LT one-shot with
        ``prune="magnitude"``, ``draw="final"``);
      * ``"continuefresh"``: as "continue" but from a fresh EB init of the pruned architecture,
        the official head ``main_c.py`` (it builds the pruned model without loading the ticket's
        weights; REFERENCE.md section 6), channel-pruning methods only.
    Weight masks are held through every optimizer step. Charged cost: the dense search epochs
    up to the draw, the mask selection, and the retraining at the trained network's FLOPs
    (a weight-level sparse network is charged at dense FLOPs; its nonzero FLOPs are recorded
    beside). The FLOPs do not depend on the precision (EB Table 2 charges LF/LL the FLOPs of
    FP32 EB Train); SWA's BN re-estimation passes are not charged. Energy: measured over the
    same epochs where a meter exists, and modelled per stage at its bit width (search epochs
    at the search's, mask selection at FP32, retraining at the retraining's).

    If no EB ticket emerged for ``draw="eb"``/``"eb_official"`` (or, for EB Train, only at the
    last epoch), the result records ``no_ticket`` with the reason and no accuracy. The drawn
    ticket's per-layer kept / total and its collapsed / disconnected flags are recorded as
    ``ticket`` (``methods.pruning.ticket``); with ``refuse_disconnected`` a disconnected ticket is not
    trained and the result records ``no_ticket`` ("refused: ...") beside it.

    Raises:
        ConfigError: bad ``run.init``, ``run.draw`` or ``run.prune``; FileNotFoundError: the search has
            no result.json, or no snapshot for drawn weights; DatasetError: no data;
            methods.base.io.CorruptFile: a current result.json whose fields have the wrong types.
    """
    out, search_dir, scale = ctx.folder(run, out), ctx.folder(run.search, search_dir), ctx.scale
    ratio, draw, init, prune, precision, seed = run.ratio, run.draw, run.init, run.prune, run.precision, run.search.seed
    lrs = list(run.lrs) if run.lrs else None
    digest_inputs = dg.stage_retrain_inputs(scale, search_dir, ratio, draw, init, run.schedule, run.lr, seed, lrs, prune,
                                            precision, refuse_disconnected)
    if (done := done_result(out, digest_inputs, search_dir)) is not None:
        return done
    if init not in INITS:
        raise ConfigError(f"init={init!r}: choose one of {INITS}")
    method = get_pruning(prune)
    if method.granularity == "filter":
        raise ConfigError(f"--prune {prune} picks an RT architecture variant; run it with python -m methods lottery")
    if init == "continuefresh" and method.granularity != "channel":
        raise ConfigError(f"init=continuefresh re-initialises a pruned architecture; --prune {prune} prunes weights: "
                          "use fresh or rewind")
    lp = scaled_precision(precision, scale)  # bad names fail before any work
    if not (search_dir / "result.json").is_file():
        raise FileNotFoundError(f"search run {search_dir} has no result.json: run its search stage first (or fix --search)")
    search = read_json(search_dir / "result.json")
    scfg = search["config"]
    base = {"kind": "retrain", "scale": scale.name, "search": str(search_dir), "ratio": ratio, "draw": draw,
            "init": init, "prune": prune, "precision": precision, "search_precision": search.get("precision", "fp32")}
    try:
        epoch = resolve_draw_epoch(draw, scale, search, ratio)
        if init in CONTINUING and draw in ("eb", "eb_official") and epoch >= scale.epochs:
            raise NoTicket(f"the EB ticket at p={ratio} emerged only at the last epoch ({epoch}): "
                           "EB Train has nothing left to train")
    except NoTicket as e:
        result = {**base, "no_ticket": str(e), "best_acc": None, "final_acc": None, "provenance": provenance(torch.device("cpu"))}
        return save_untrained(out, result, digest_inputs)
    dev, classes, train, test = prepare(scale, scfg["dataset"], ctx.data_root, ctx.download)
    meter = EnergyMeter(dev)
    meter.begin("prune")
    ticket, dense = draw_ticket(search_dir, method, ratio, epoch, init in ("drawn", "continue"), classes, train, seed)
    prune_energy = meter.end("prune")
    report = ticket_report(dense, ticket, method.kinds)
    if (line := ticket_warning(report)) is not None:
        print(line, flush=True)
    if refuse_disconnected and report["disconnected"]:
        result = {**base, "no_ticket": REFUSED, "ticket": report, "best_acc": None, "final_acc": None,
                  "draw_epoch": epoch, "provenance": provenance(dev)}
        return save_untrained(out, result, digest_inputs)
    net = _start_weights(ticket, init, search_dir, dense, classes, seed, method.kinds)
    start = epoch if init in CONTINUING else 0
    if init in CONTINUING:  # EB Train trains on under the search's own schedule (REFERENCE.md section 6)
        if start >= scale.epochs:
            raise ConfigError(f"init=continue from the last epoch ({start}) leaves nothing to train; draw earlier")
        milestones, lrs = scfg["milestones"], scfg["lrs"]
    else:
        milestones, lrs = schedule(run.schedule, run.lr, scale, lrs)
    arch = pruned_cfg(dense, ticket.channel_masks) if ticket.channel_masks is not None else None
    cfg = run_config(scale, scfg["model"], scfg["dataset"], milestones, lrs, seed, ctx.data_root, ctx.download, cfg=arch,
                      start_epoch=start, precision=lp)
    dg.begin(out, digest_inputs)  # whose checkpoint this folder holds (methods.runs.digest)
    res = fit(net, cfg, train, test, out / "ckpt.pt", name=out.name, meter=meter)
    cx = effective_macs(res["model"])
    cx["params"] = sum(p.numel() for p in res["model"].parameters())  # as complexity() counts them
    sparsity = sparsity_report(res["model"])  # exact zeros of conv + linear weights
    dense_cx = search["complexity"]
    if "flops_paper" not in dense_cx:  # a search finished before the official-counter convention
        dense_cx = {**dense_cx, "flops_paper": complexity(dense)["flops_paper"]}
    n = len(train.y)
    cost = cell_training_flops(dense_cx["flops"], cx["flops"], epoch, cfg.epochs - start, n, ticket.prune_flops)
    nonzero = cell_training_flops(dense_cx["flops"], cx["flops_nonzero"], epoch, cfg.epochs - start, n, ticket.prune_flops)
    # mask selection costs multiples of the dense forward (methods/pruning/registry.py), so it converts by their ratio
    prune_paper = ticket.prune_flops * dense_cx["flops_paper"] / dense_cx["flops"]
    paper = cell_training_flops(dense_cx["flops_paper"], cx["flops_paper"], epoch, cfg.epochs - start, n, prune_paper)
    paper_nz = cell_training_flops(dense_cx["flops_paper"], cx["flops_paper_nonzero"], epoch, cfg.epochs - start, n,
                                   prune_paper)
    search_energy = measured_energy_j(search["log"][:epoch])
    retrain_energy = measured_energy_j(res["log"])
    sbits, rbits = _bits(scfg), _bits(cfg.model_dump())
    modelled = {"modelled_search_j": modelled_energy_j(cost["search"], sbits),
                "modelled_prune_j": modelled_energy_j(cost["prune"], 32),
                "modelled_retrain_j": modelled_energy_j(cost["retrain"], rbits), "bits_search": sbits, "bits_retrain": rbits}
    modelled["modelled_j"] = modelled["modelled_search_j"] + modelled["modelled_prune_j"] + modelled["modelled_retrain_j"]
    measured = None if None in (search_energy, retrain_energy, prune_energy) else search_energy + retrain_energy + prune_energy
    result = {**base, "config": cfg.model_dump(), "log": res["log"], **accuracy_summary(res["log"]),
              "search_best_acc": search["best_acc"], "draw_epoch": epoch, "granularity": method.granularity,
              "ticket": report,
              "complexity": {k: cx[k] for k in ("macs", "flops", "params", "macs_nonzero", "flops_nonzero",
                                                "flops_paper", "flops_paper_nonzero")},
              "dense_complexity": dense_cx, "weight_density": sparsity["density"],
              "param_reduction": 1 - cx["params"] / dense_cx["params"],
              "param_reduction_nonzero": 1 - (cx["params"] - sparsity["total"] + sparsity["nonzero"]) / dense_cx["params"],
              "flop_reduction": 1 - cx["flops"] / dense_cx["flops"],
              "flop_reduction_nonzero": 1 - cx["flops_nonzero"] / dense_cx["flops"],
              "train_images": n, "flops_search": cost["search"], "flops_prune": cost["prune"],
              "flops_retrain": cost["retrain"], "train_flops": cost["total"], "train_flops_nonzero": nonzero["total"],
              "flop_reduction_paper": 1 - cx["flops_paper"] / dense_cx["flops_paper"],
              "flops_paper_search": paper["search"], "flops_paper_prune": paper["prune"],
              "flops_paper_retrain": paper["retrain"], "train_flops_paper": paper["total"],
              "train_flops_paper_nonzero": paper_nz["total"],
              "energy": {"measured_j": measured, "search_j": search_energy, "prune_j": prune_energy,
                         "retrain_j": retrain_energy, **meter.describe(), **modelled, "model": MODEL_SOURCE},
              "provenance": provenance(dev)}
    _paper_cost(result)
    return save_result(out, result, digest_inputs)
