"""Workflow stages: the EB search run and the retraining of a drawn subnetwork.

Each stage writes ``result.json`` (plus ``history.npz`` for a search) atomically into its
output folder, keeps a per-epoch checkpoint beside it while running, and resumes from that
checkpoint when rerun. Epoch arguments are given at the papers' scale and mapped by the scale.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .config import PAPER_EPOCHS, ConfigError, RunConfig, Scale, schedule, validate
from .data import balanced_subset, load_cifar, num_classes
from .eb import channel_mask, detect_eb, layer_masks, masks_from_gammas
from .flops import EB_UNIT_FLOPS, complexity, training_flops
from .io import load_torch, read_json, save_npz, save_torch, write_json
from .models import build_model
from .prune import prune_channels, pruned_cfg
from .provenance import provenance
from .train import device_of, fit

#: Ratios whose masks and EB draw epochs every search records (REFERENCE.md sections 4 and 10).
SEARCH_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
EB_RULES = ("paper", "official")
INITS = ("fresh", "drawn", "continue")


#: Images per epoch in the papers' CIFAR training (REFERENCE.md section 1): costs are also given at this size.
PAPER_TRAIN_IMAGES = 50_000


def _setup(scale: Scale, dataset: str, data_root: str, download: bool):
    if scale.threads:
        torch.set_num_threads(scale.threads)
    # FP32 as in the original runs: TF32 convolutions could reorder gammas near the threshold.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = device_of(scale.device)
    classes = num_classes(dataset)
    train, test = load_cifar(data_root, dataset, download)
    train = balanced_subset(train, scale.train_images, classes).to(dev)
    test = balanced_subset(test, scale.test_images, classes).to(dev)
    return dev, classes, train, test


def _run_config(scale: Scale, model: str, dataset: str, milestones: list[int], lrs: list[float], seed: int,
                data_root: str, download: bool, **extra) -> RunConfig:
    if model not in scale.models:
        raise ConfigError(f"model {model!r} has no entry in scale {scale.name!r}; known: {sorted(scale.models)}")
    return validate(RunConfig, dict(model=model, knobs=scale.models[model], dataset=dataset, seed=seed,
                                    epochs=scale.epochs, batch_size=scale.batch_size, test_batch_size=scale.test_batch_size,
                                    train_images=scale.train_images, test_images=scale.test_images, milestones=milestones,
                                    lrs=lrs, data_root=str(data_root), download=download, device=scale.device,
                                    threads=scale.threads, **extra), "run config")


def _summary(log: list[dict]) -> dict:
    best = max(log, key=lambda r: r["test_acc"])
    return {"best_acc": best["test_acc"], "best_epoch": best["epoch"], "final_acc": log[-1]["test_acc"]}


def run_search(out: Path, scale: Scale, model: str, dataset: str, sched: str, lr: float, seed: int,
               data_root: str, download: bool = False, snapshot_epochs=(), lrs=None) -> dict:
    """Dense training with L1 on BN gamma (the EB search / network-slimming sparse run).

    Records |gamma| after every epoch (row 0 = init), channel masks at ``SEARCH_RATIOS``, the
    EB draw epoch of each ratio under both detection rules, and weight snapshots at the
    initialisation, at ``snapshot_epochs`` (paper scale, or "final") and at every EB epoch.
    """
    out = Path(out)
    if (out / "result.json").is_file():
        return read_json(out / "result.json")
    cfg = _run_config(scale, model, dataset, *schedule(sched, lr, scale, lrs), seed, data_root, download)
    dev, classes, train, test = _setup(scale, dataset, data_root, download)
    torch.manual_seed(seed)
    net = build_model(model, classes, **cfg.knobs)
    if not (out / "snapshots" / "epoch0.pt").is_file():
        save_torch(out / "snapshots" / "epoch0.pt", net.state_dict())
    wanted = {scale.epoch(e) for e in snapshot_epochs}

    masks: dict[float, list[torch.Tensor]] = {p: [] for p in SEARCH_RATIOS}  # grows by one mask per epoch

    def on_epoch(epoch, m, gammas):
        for p in SEARCH_RATIOS:  # after a resume the first call catches up on the whole history
            masks[p] += [channel_mask(g, p) for g in gammas[len(masks[p]):]]
        found = {detect_eb(torch.stack(masks[p]), rule) for p in SEARCH_RATIOS for rule in EB_RULES}
        if epoch in wanted or epoch in found:
            save_torch(out / "snapshots" / f"epoch{epoch}.pt", m.state_dict())

    res = fit(net, cfg, train, test, out / "ckpt.pt", on_epoch, name=out.name)
    gammas = res["gammas"]
    history = {p: masks_from_gammas(gammas, p) for p in SEARCH_RATIOS}
    save_npz(out / "history.npz", gammas=gammas.numpy(), **{f"mask_p{p}": h.numpy() for p, h in history.items()})
    eb = {str(p): {rule: detect_eb(h, rule) for rule in EB_RULES} for p, h in history.items()}
    cx = complexity(res["model"])
    result = {"kind": "search", "config": cfg.model_dump(), "scale": scale.name, "log": res["log"], **_summary(res["log"]),
              "eb_epochs": eb, "complexity": cx, "train_images": len(train.y), "bn_channels": int(gammas.shape[1]),
              "train_flops": training_flops(cx["flops"], len(train.y), cfg.epochs), "provenance": provenance(dev)}
    _paper_cost(result)
    write_json(out / "result.json", result)
    (out / "ckpt.pt").unlink(missing_ok=True)
    return result


def _paper_cost(result: dict) -> None:
    """Add the cost in EB units (0.05 PFLOPs) as run, and rescaled to the papers' 50,000 images."""
    result["train_flops_eb_units"] = result["train_flops"] / EB_UNIT_FLOPS
    result["train_flops_50k_eb_units"] = result["train_flops_eb_units"] * PAPER_TRAIN_IMAGES / result["train_images"]


def resolve_draw_epoch(draw: str, scale: Scale, search: dict, ratio: float) -> int:
    """Completed search epochs of a draw: a paper-scale number, "final", "best" (the search
    epoch with the best test accuracy: Figure 1's hollow star), or "eb" / "eb_official" (the
    EB ticket's epoch at ``ratio`` under the paper's or the official detection rule).

    Raises:
        ConfigError: unknown draw, or no EB ticket emerged at ``ratio``.
    """
    if draw == "best":
        return int(search["best_epoch"])
    if draw in ("eb", "eb_official"):
        rule = "paper" if draw == "eb" else "official"
        if str(ratio) not in search["eb_epochs"]:
            raise ConfigError(f"ratio {ratio} has no EB detector in this search; choose one of {sorted(search['eb_epochs'])}")
        t = search["eb_epochs"][str(ratio)][rule]
        if t is None:
            raise ConfigError(f"no EB ticket emerged at p={ratio} ({rule} rule) in {search['config']['epochs']} epochs; draw at an epoch instead")
        return int(t)
    try:
        e = scale.epoch(draw if draw == "final" else int(draw))
    except ValueError:
        e = -1
    if draw != "final" and not 0 <= e <= int(draw) <= PAPER_EPOCHS:
        raise ConfigError(f"draw epoch {draw!r}: use an epoch number in [0, 160], 'final', 'best', 'eb' or 'eb_official'")
    return e


def draw_ticket(search_dir: Path, ratio: float, epoch: int, weights: bool, classes: int) -> tuple[torch.nn.Module, list]:
    """Physically pruned subnetwork from the search's mask at ``epoch`` (completed epochs).

    ``weights=True`` copies the snapshot weights of that epoch (drawn weights); otherwise the
    pruned architecture is returned with whatever weights the caller re-initialises.

    Raises:
        FileNotFoundError: drawn weights requested but the search saved no snapshot there.
    """
    search = read_json(search_dir / "result.json")
    with np.load(search_dir / "history.npz") as h:
        gammas = torch.from_numpy(h["gammas"][epoch])
    cfg = search["config"]
    dense = build_model(cfg["model"], classes, **cfg["knobs"])
    if weights:
        snap = search_dir / "snapshots" / f"epoch{epoch}.pt"
        if not snap.is_file():
            raise FileNotFoundError(f"{snap} missing: rerun the search with this epoch in snapshot_epochs")
        dense.load_state_dict(load_torch(snap, "snapshot"))
    masks = layer_masks(dense, channel_mask(gammas, ratio), gammas)
    return prune_channels(dense, masks, classes), pruned_cfg(dense, masks)


def run_retrain(out: Path, scale: Scale, search_dir: Path, ratio: float, draw: str, init: str, sched: str,
                lr: float, seed: int, data_root: str, download: bool = False, lrs=None) -> dict:
    """Retrain a subnetwork drawn from a search run (REFERENCE.md section 6).

    ``init``:
      * ``"fresh"`` (Table 1/Figure 1 default; with ``draw="eb"`` it is EB Train (re-init)):
        re-initialise the drawn architecture with the EB init from ``seed``, train all epochs;
      * ``"drawn"``: keep the weights at the draw epoch, train all epochs;
      * ``"continue"`` (with ``draw="eb"`` it is EB Train): keep the ticket's weights and train
        on from the draw epoch to the last under the same schedule, with a fresh optimizer.
    Charged cost: the dense search epochs up to the draw plus the retraining at the pruned cost.

    Raises:
        ConfigError: bad ``init`` or ``draw``; FileNotFoundError: no snapshot for drawn weights.
    """
    out, search_dir = Path(out), Path(search_dir)
    if (out / "result.json").is_file():
        return read_json(out / "result.json")
    if init not in INITS:
        raise ConfigError(f"init={init!r}: choose one of {INITS}")
    search = read_json(search_dir / "result.json")
    scfg = search["config"]
    epoch = resolve_draw_epoch(draw, scale, search, ratio)
    dev, classes, train, test = _setup(scale, scfg["dataset"], data_root, download)
    net, arch = draw_ticket(search_dir, ratio, epoch, init != "fresh", classes)
    if init == "fresh":
        torch.manual_seed(seed)
        net.reset_parameters()
    start = epoch if init == "continue" else 0
    if init == "continue":  # EB Train trains on under the search's own schedule (REFERENCE.md section 6)
        if start >= scale.epochs:
            raise ConfigError(f"init=continue from the last epoch ({start}) leaves nothing to train; draw earlier")
        milestones, lrs = scfg["milestones"], scfg["lrs"]
    else:
        milestones, lrs = schedule(sched, lr, scale, lrs)
    cfg = _run_config(scale, scfg["model"], scfg["dataset"], milestones, lrs, seed, data_root, download, cfg=arch,
                      start_epoch=start)
    res = fit(net, cfg, train, test, out / "ckpt.pt", name=out.name)
    cx, dense_cx = complexity(res["model"]), search["complexity"]
    n = len(train.y)
    flops_search = training_flops(dense_cx["flops"], n, epoch)
    flops_retrain = training_flops(cx["flops"], n, cfg.epochs - start)
    result = {"kind": "retrain", "config": cfg.model_dump(), "scale": scale.name, "log": res["log"], **_summary(res["log"]),
              "search": str(search_dir), "search_best_acc": search["best_acc"], "ratio": ratio, "draw": draw,
              "draw_epoch": epoch, "init": init, "complexity": cx, "dense_complexity": dense_cx,
              "param_reduction": 1 - cx["params"] / dense_cx["params"], "flop_reduction": 1 - cx["flops"] / dense_cx["flops"],
              "train_images": n, "flops_search": flops_search, "flops_retrain": flops_retrain,
              "train_flops": flops_search + flops_retrain, "provenance": provenance(dev)}
    _paper_cost(result)
    write_json(out / "result.json", result)
    (out / "ckpt.pt").unlink(missing_ok=True)
    return result
