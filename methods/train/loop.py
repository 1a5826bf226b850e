"""The EB training recipe with per-epoch checkpoints and resume (REFERENCE.md section 2).

SGD (momentum 0.9, weight decay 1e-4 on every parameter), LR from explicit milestones, L1 on
BN scaling factors (gamma.grad += lambda * sign(gamma) after ``backward``, before ``step``;
EB ``main.py`` ``updateBN``), batched on-device augmentation, test accuracy every epoch.
With ``RunConfig.precision`` the same loop trains in low precision (``methods.train.lowp``; EB
``main_lp.py``/``main_c_lp.py``): quantised layers, ``LowPrecisionSGD`` and SWA.
"""
from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from methods.base.config import RunConfig
from methods.base.data import Split, augment, normalize
from methods.pruning.eb import bn_gammas, bn_layers
from methods.metrics.energy import EnergyMeter
from methods.base.io import load_checkpoint, save_checkpoint
from methods.base.preempt import Preempted, StopSignals
from methods.train.lowp import LowPrecisionSGD, bn_update, lower, swa_model, unlower


def device_of(name: str) -> torch.device:
    """"auto" = CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _swa_batches(train: Split, cfg: RunConfig, epoch: int):
    """One augmented pass over the training set for SWA's BN re-estimation (EB ``bn_update``
    iterates the augmented training loader), drawn apart from the epoch's training batches."""
    gen = epoch_generator(cfg.seed + 7_919, epoch, train.x.device)
    perm = torch.randperm(len(train.y), device=train.x.device, generator=gen)
    for i in range(0, len(perm), cfg.batch_size):
        yield augment(train.x[perm[i:i + cfg.batch_size]], gen)


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    """Generator for one epoch's shuffling and augmentation, derived from (seed, epoch) alone,
    so a resumed run draws exactly what an uninterrupted one would."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)


def _autocast(dev: torch.device, cfg: RunConfig | None):
    """bf16 autocast when the run opted in (``Scale.autocast``), else a no-op."""
    if cfg is not None and cfg.autocast == "bf16":
        return torch.autocast(dev.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def nhwc_safe(model: nn.Module, dev: torch.device) -> bool:
    """Whether ``model`` may train in channels-last (NHWC) on ``dev``. oneDNN in torch 2.14.1 corrupts
    the heap ("double free or corruption") in the backward of a strided 1x1 conv with fewer than 8 input
    channels in NHWC on a CPU (seen on an AMD EPYC with one thread: RT ResNet-50's conv shortcut at
    widths 1/8 and 1/4, the tiny and smoke scales); such a network trains in NCHW, the same maths."""
    return dev.type != "cpu" or not any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1)
                                        and m.in_channels < 8 for m in model.modules())


def _layout(x: torch.Tensor, cfg: RunConfig | None) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if cfg is not None and cfg.channels_last else x


@torch.inference_mode()
def evaluate(model: nn.Module, test: Split, batch_size: int, cfg: RunConfig | None = None) -> dict:
    """Test loss and top-1: per-sample accuracy (``test_acc``, %) and the EB code's mean of
    per-batch accuracies (``test_acc_batchmean``, %), which weights the last small batch equally.
    Sums stay on the device: one host sync per evaluation."""
    model.eval()
    dev = test.x.device
    loss, correct = torch.zeros((), device=dev, dtype=torch.float64), []
    for i in range(0, len(test.y), batch_size):
        x, y = _layout(normalize(test.x[i:i + batch_size]), cfg), test.y[i:i + batch_size]
        with _autocast(dev, cfg):
            out = model(x)
        loss += F.cross_entropy(out.float(), y, reduction="sum")
        correct.append((out.argmax(1) == y).sum())
    n, c = len(test.y), torch.stack(correct).cpu()
    sizes = torch.tensor([min(batch_size, n - i) for i in range(0, n, batch_size)])
    return {"test_loss": loss.item() / n, "test_acc": 100.0 * int(c.sum()) / n,
            "test_acc_batchmean": 100.0 * sum(int(k) / int(m) for k, m in zip(c, sizes)) / len(sizes)}


def train_epoch(model, opt, train: Split, cfg: RunConfig, epoch: int, bns: list[nn.BatchNorm2d],
                stop: StopSignals | None = None) -> dict:
    """One epoch of SGD; loss and accuracy are accumulated on the device (one sync per epoch).
    ``model`` may be the ``torch.compile`` wrapper of the network ``bns`` belong to.

    Raises:
        Preempted: ``stop.now`` (SIGTERM) before a step; the epoch is abandoned.
    """
    model.train()
    dev = train.x.device
    gen = epoch_generator(cfg.seed, epoch, dev)
    perm = torch.randperm(len(train.y), device=dev, generator=gen)
    loss_sum = torch.zeros((), device=dev)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    for i in range(0, len(perm), cfg.batch_size):
        if stop is not None and stop.now:
            raise Preempted(stop.signum, epoch)
        idx = perm[i:i + cfg.batch_size]
        x, y = _layout(augment(train.x[idx], gen), cfg), train.y[idx]
        with _autocast(dev, cfg):
            out = model(x)
            loss = F.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.sparsity:
            for bn in bns:
                bn.weight.grad.add_(torch.sign(bn.weight.detach()), alpha=cfg.sparsity)
        opt.step()
        loss_sum += loss.detach() * len(idx)
        correct += (out.detach().argmax(1) == y).sum()
    n = len(perm)
    return {"train_loss": loss_sum.item() / n, "train_acc": 100.0 * correct.item() / n}


def fit(model: nn.Module, cfg: RunConfig, train: Split, test: Split, ckpt_path: Path,
        on_epoch: Callable[[int, nn.Module, torch.Tensor], None] | None = None, name: str = "",
        meter: EnergyMeter | None = None) -> dict:
    """Train ``model`` from ``cfg.start_epoch`` to ``cfg.epochs``, resuming from ``ckpt_path``.

    Opt-in speed knobs of the run (``Scale``): ``autocast`` (bf16 forward and loss, not the
    papers' FP32), ``channels_last`` (NHWC weights and batches), ``compile`` (``torch.compile``
    of the training and test forward; FP32 only).

    ``train``/``test`` must already be on the training device. Every epoch appends a log row
    (lr, losses, accuracies in %, seconds, images/s, ``energy_j``: joules of the epoch's training
    steps from ``meter``, None without one), the BN |gamma| vector (for masks), and
    rewrites the checkpoint atomically (keeping the previous one). ``on_epoch(epoch, model, gammas)`` runs after each
    epoch (epoch = completed epochs; ``gammas`` the (epoch+1-start, N) history). In low
    precision, epochs from ``cfg.precision.swa_start`` also log ``swa_test_acc`` (%) of the
    FP32 weight average with re-estimated BN statistics.

    Returns ``{"log": [...], "gammas": (E+1-start, N) float32, "model": model (full precision
    again), "swa": the averaged model or None}``.

    Raises:
        Preempted: SIGUSR1 (after the epoch's checkpoint) or SIGTERM (before the next step),
            ``methods.base.preempt``; rerunning resumes from the checkpoint.
        RuntimeError: a checkpoint written by a different configuration (a corrupt one is set aside:
            ``methods.base.io.load_checkpoint`` falls back to the previous one or starts over).
    """
    dev = train.x.device
    if cfg.channels_last and not nhwc_safe(model, dev):
        cfg = cfg.model_copy(update={"channels_last": False})  # batches follow the weights' layout (_layout)
    model.to(dev, memory_format=torch.channels_last if cfg.channels_last else torch.contiguous_format)
    bns = bn_layers(model)
    step_model = torch.compile(model) if cfg.compile else model  # shares the parameters; checkpoints save ``model``
    lp = cfg.precision
    sgd = dict(lr=cfg.lrs[0], momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    noise = torch.Generator(device=dev) if lp else None  # the quantisers' rounding noise, reseeded every epoch
    opt = LowPrecisionSGD(model.parameters(), lp, noise, **sgd) if lp else torch.optim.SGD(model.parameters(), **sgd)
    swa = swa_model(model) if lp and lp.swa_start is not None else None  # FP32: made before the hooks
    log, gammas, epoch = [], [bn_gammas(model)], cfg.start_epoch
    if (ck := load_checkpoint(ckpt_path)) is not None:
        if ck.get("digest") != cfg.digest():
            raise RuntimeError(f"checkpoint {ckpt_path} belongs to another configuration; delete it to start over")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        if swa is not None:
            swa.load_state_dict(ck["swa"])
        log, gammas, epoch = ck["log"], list(ck["gammas"]), ck["epoch"]
        print(f"{name}: resuming after epoch {epoch}", file=sys.stderr)
    hooks = lower(model, lp, noise) if lp else []
    try:
        with StopSignals() as stop:  # SIGUSR1: stop after this epoch's checkpoint; SIGTERM: before the next step
            while epoch < cfg.epochs:
                lr = cfg.lr(epoch)
                for g in opt.param_groups:
                    g["lr"] = lr
                if lp:  # reproducible per epoch like the batches, so a resume draws the same noise
                    noise.manual_seed(cfg.seed * 1_000_003 + epoch + 104_729)
                t0 = time.perf_counter()
                if meter is not None:
                    meter.begin(f"epoch{epoch}")
                row = {"epoch": epoch + 1, "lr": lr, **train_epoch(step_model, opt, train, cfg, epoch, bns, stop)}
                row["energy_j"] = meter.end(f"epoch{epoch}") if meter is not None else None
                row["seconds"] = time.perf_counter() - t0
                row["images_per_s"] = len(train.y) / row["seconds"]
                row.update(evaluate(step_model, test, cfg.test_batch_size, cfg))
                if swa is not None and epoch >= lp.swa_start:  # EB main_c_lp.py: after each epoch >= swa_start
                    swa.update_parameters(model)
                    bn_update(swa.module, _swa_batches(train, cfg, epoch))
                    row["swa_test_acc"] = evaluate(swa.module, test, cfg.test_batch_size, cfg)["test_acc"]
                epoch += 1
                log.append(row)
                gammas.append(bn_gammas(model))
                if on_epoch is not None:
                    on_epoch(epoch, model, torch.stack(gammas))
                save_checkpoint(ckpt_path, {"digest": cfg.digest(), "epoch": epoch, "model": model.state_dict(),
                                            "opt": opt.state_dict(), "log": log, "gammas": torch.stack(gammas),
                                            **({"swa": swa.state_dict()} if swa is not None else {})})
                print(f"{name} epoch {epoch}/{cfg.epochs} lr {lr:.4g} loss {row['train_loss']:.3f} "
                      f"train {row['train_acc']:.1f}% test {row['test_acc']:.2f}% {row['images_per_s']:.0f} img/s", flush=True)
                if stop.signum is not None and epoch < cfg.epochs:
                    raise Preempted(stop.signum, epoch)
    finally:
        unlower(hooks)
    return {"log": log, "gammas": torch.stack(gammas), "model": model, "swa": swa}
