"""Cost of EB detection per epoch against an epoch of training.

After every epoch a search (``methods.stages.eb.run_search``'s ``on_epoch``) reads |gamma|
(``methods.pruning.eb.bn_gammas``), computes the channel mask at each of ``SEARCH_RATIOS``
(``channel_mask``) and pushes each into both detection rules (``EBDetector``: the mask
distances of the FIFO). This replays that work for every epoch of a run of ``epochs`` epochs
on the model's real BN layers and returns the mean seconds per epoch. |gamma| is redrawn
every epoch, so masks keep moving and no ticket emerges: the worst case, in which every
detector computes its distances every epoch (a detector stops once its ticket is found).
"""
from __future__ import annotations

import time

import torch

from methods.pruning.eb import EBDetector, bn_gammas, channel_mask
from methods.models import build_model
from methods.stages.eb import EB_RULES, SEARCH_RATIOS


def eb_seconds_per_epoch(model_name: str, knobs: dict, epochs: int, classes: int = 10, device: str = "cpu") -> dict:
    """Mean seconds per epoch of the search's EB bookkeeping over ``epochs`` epochs, and the BN channel count."""
    torch.manual_seed(0)
    net = build_model(model_name, classes, **knobs).to(device)
    gen = torch.Generator().manual_seed(0)
    detectors = {(p, rule): EBDetector(rule) for p in SEARCH_RATIOS for rule in EB_RULES}
    total = 0.0
    for _ in range(epochs):
        with torch.no_grad():  # stands in for an epoch of SGD moving the scaling factors (not timed)
            for m in net.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.weight.copy_(torch.rand(m.weight.shape, generator=gen))
        t0 = time.perf_counter()
        g = bn_gammas(net)
        for p in SEARCH_RATIOS:
            mask = channel_mask(g, p)
            for rule in EB_RULES:
                detectors[p, rule].push(mask)
        total += time.perf_counter() - t0
    return {"model": model_name, "knobs": knobs, "epochs": epochs, "bn_channels": int(g.numel()),
            "seconds_per_epoch": total / epochs, "emerged": sum(d.epoch is not None for d in detectors.values())}
