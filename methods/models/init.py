"""Initialisation: He's normal (the one place it is written) and the EB models' scheme (EB
``models/vgg.py`` and ``models/preresnet.py``)."""
from __future__ import annotations

import math

import torch
from torch import nn


def he_normal_(w: torch.Tensor, fan: float) -> None:
    """``w ~ N(0, sqrt(2 / fan))`` in place, from torch's global RNG (He et al. 2015; ``fan`` =
    k*k*out (fan-out, EB and RT's L1 family), k*k*in (fan-in), or a sparsity-rescaled count)."""
    with torch.no_grad():
        w.normal_(0.0, math.sqrt(2.0 / fan))


def eb_init(model: nn.Module, linear_normal: bool) -> None:
    """Conv N(0, sqrt(2/(k*k*out_channels))) (He, fan-out); BN gamma 0.5, beta 0, fresh running
    statistics; Linear N(0, 0.01) with zero bias if ``linear_normal`` (VGG), else torch's default
    (PreResNet leaves it untouched)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            he_normal_(m.weight, m.kernel_size[0] * m.kernel_size[1] * m.out_channels)
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            nn.init.constant_(m.weight, 0.5)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear_normal:
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)
            else:
                m.reset_parameters()
