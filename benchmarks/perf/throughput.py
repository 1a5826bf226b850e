"""Training throughput of our step against a reference-style loop and the compute-only limit.

Three loops train the same network (same init, batch size, SGD, FP32, L1 on BN gamma) on the
same images, alternating round by round so drift of the machine hits all three:

* ``ours``: ``methods.train.loop.train_epoch``, the suite's step: uint8 images held on the training
  device, batched augmentation (``methods.base.data.augment``), loss and accuracy summed on the device.
* ``reference``: built like the official repositories' ``main.py`` (EB, network slimming):
  torchvision PIL transforms (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor,
  Normalize) through a ``DataLoader`` (shuffle; ``num_workers=1, pin_memory=True`` on CUDA as
  their ``kwargs``, none on the CPU), a copy to the device per batch and the accuracy
  ``pred.eq(target).cpu().sum()`` per step (a host sync).
* ``compute``: the same step on one normalised batch already on the device: no data pipeline.

Reported: images/s of each (median over rounds) and ours / reference, ours / compute.
"""
from __future__ import annotations

import copy
import statistics
import time

import torch
import torch.nn.functional as F

from methods.base.data import MEAN, STD, Split, balanced_subset, load_cifar, normalize, num_classes
from methods.pruning.eb import bn_layers
from methods.models import build_model


def _sgd(model):  # EB main.py: SGD, momentum 0.9, weight decay 1e-4
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)


def _sparsity_step(bns, s=1e-4):  # EB main.py updateBN
    for bn in bns:
        bn.weight.grad.add_(torch.sign(bn.weight.detach()), alpha=s)


class _PILCifar(torch.utils.data.Dataset):
    """torchvision's CIFAR dataset as the official code reads it: HWC uint8 -> PIL -> transform."""

    def __init__(self, split: Split, transform):
        self.data = split.x.permute(0, 2, 3, 1).contiguous().numpy()
        self.targets = split.y.tolist()
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


def reference_loader(split: Split, batch_size: int, cuda: bool, seed: int = 0, workers: int | None = None):
    """The official repositories' training loader over ``split`` (CPU uint8); ``workers``
    overrides their ``num_workers`` (1 on CUDA, 0 on the CPU)."""
    from torchvision import transforms

    tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    kw = {"num_workers": 1, "pin_memory": True} if cuda else {}
    if workers is not None:
        kw["num_workers"] = workers
    return torch.utils.data.DataLoader(_PILCifar(split, tf), batch_size=batch_size, shuffle=True,
                                       generator=torch.Generator().manual_seed(seed), **kw)


def reference_epoch(model, opt, loader, dev, bns, autocast=None) -> int:
    """One pass of the official ``train()`` loop; returns the images seen."""
    model.train()
    seen, correct = 0, 0
    for data, target in loader:
        data, target = data.to(dev, non_blocking=True), target.to(dev, non_blocking=True)
        opt.zero_grad()
        with autocast or torch.autocast(dev.type, enabled=False):
            output = model(data)
            loss = F.cross_entropy(output, target)
        loss.backward()
        _sparsity_step(bns)
        opt.step()
        pred = output.data.max(1, keepdim=True)[1]
        correct += pred.eq(target.data.view_as(pred)).cpu().sum()
        seen += len(target)
    return seen


def compute_steps(model, opt, x, y, steps: int, bns, autocast=None) -> int:
    """``steps`` SGD steps on one batch already on the device; returns the images seen."""
    model.train()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        with autocast or torch.autocast(x.device.type, enabled=False):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        _sparsity_step(bns)
        opt.step()
    return steps * len(y)


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def measure(model_name: str, knobs: dict, batch_size: int, images: int, rounds: int, data_root: str,
            dataset: str = "cifar10", device: str = "cpu", threads: int = 0, autocast: str | None = None,
            channels_last: bool = False, compile: bool = False, workers: int | None = None) -> dict:
    """Images/s of the three loops on ``images`` training images (None: all; median of ``rounds``
    after a warm-up round).

    Returns ``{"ours", "reference", "compute"}`` in images/s, ``ours_vs_reference`` and
    ``ours_vs_compute`` (ratios), and the settings. ``autocast="bf16"`` runs all three in bf16
    autocast; ``channels_last``/``compile`` are our step's knobs (``Scale``), applied to ours and to
    the compute-only limit (the limit of the same step), never to the reference-style loop.
    """
    from methods.base.config import RunConfig
    from methods.train.loop import train_epoch

    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    classes = num_classes(dataset)
    train, _ = load_cifar(data_root, dataset)
    train = balanced_subset(train, images, classes)
    torch.manual_seed(0)
    init = build_model(model_name, classes, **knobs)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    nets = {k: copy.deepcopy(init).to(dev, memory_format=layout if k != "reference" else torch.contiguous_format)
            for k in ("ours", "reference", "compute")}
    opts = {k: _sgd(m) for k, m in nets.items()}
    bns = {k: bn_layers(m) for k, m in nets.items()}
    step = {k: torch.compile(m) if compile and k != "reference" else m for k, m in nets.items()}
    cfg = RunConfig(model=model_name, dataset=dataset, seed=1, epochs=1, batch_size=batch_size,
                    test_batch_size=batch_size, milestones=[], lrs=[0.1], data_root=data_root, autocast=autocast,
                    channels_last=channels_last)
    on_dev = train.to(dev)
    loader = reference_loader(train, batch_size, dev.type == "cuda", workers=workers)
    x = normalize(on_dev.x[:batch_size]).contiguous(memory_format=layout)
    y = on_dev.y[:batch_size]
    steps = max(1, len(train.y) // batch_size)

    def amp():
        return torch.autocast(dev.type, dtype=torch.bfloat16) if autocast == "bf16" else None

    loops = {
        "ours": lambda e: (train_epoch(step["ours"], opts["ours"], on_dev, cfg, e, bns["ours"]), len(on_dev.y))[1],
        "reference": lambda e: reference_epoch(nets["reference"], opts["reference"], loader, dev, bns["reference"], amp()),
        "compute": lambda e: compute_steps(step["compute"], opts["compute"], x, y, steps, bns["compute"], amp()),
    }
    rates = {k: [] for k in loops}
    for r in range(rounds + 1):  # round 0 warms up
        for k, loop in loops.items():
            _sync(dev)
            t0 = time.perf_counter()
            n = loop(r)
            _sync(dev)
            if r:
                rates[k].append(n / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {"model": model_name, "knobs": knobs, "batch_size": batch_size, "images": len(train.y), "rounds": rounds,
            "device": str(dev), "threads": torch.get_num_threads(), "autocast": autocast,
            "channels_last": channels_last, "compile": compile, **med,
            "ours_vs_reference": med["ours"] / med["reference"], "ours_vs_compute": med["ours"] / med["compute"],
            "reference_vs_compute": med["reference"] / med["compute"],
            "rounds_images_per_s": {k: [round(v, 1) for v in vs] for k, vs in rates.items()}}
