"""EB VGG16 for CIFAR (EB official code ``models/vgg.py``; REFERENCE.md section 3).

Each conv is 3x3, padding 1, no bias, followed by BatchNorm2d and ReLU; four 2x2
max-pools (none after the last block), AvgPool2d(2) and one Linear(last, classes).
"""
from __future__ import annotations

import torch
from torch import nn

from methods.models.init import eb_init

#: Dense VGG16 cfg of EB ``models/vgg.py`` ("M" = 2x2 max-pool).
VGG16_CFG: tuple = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


def scaled_cfg(cfg, width: float) -> list:
    """Multiply every conv width of ``cfg`` by ``width`` (at least 1 channel).

    Used only by the smaller scales; ``width=1`` gives the paper's network.
    """
    return [c if c == "M" else max(1, int(round(c * width))) for c in cfg]


def vgg_features(cfg, bias: bool = False) -> tuple[nn.Sequential, int]:
    """Conv3x3 (padding 1) -> BatchNorm2d -> ReLU per width of ``cfg``, MaxPool2d(2) per "M";
    returns the stack and its output channels (EB and RT ``models/vgg.py`` alike)."""
    layers: list[nn.Module] = []
    in_ch = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, v, 3, padding=1, bias=bias), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            in_ch = v
    return nn.Sequential(*layers), in_ch


class VGG(nn.Module):
    """Cfg-driven CIFAR VGG; a pruned cfg builds the pruned network.

    Input ``(B, 3, 32, 32)`` float, output logits ``(B, num_classes)``.
    """

    registry_name = "vgg16"  # build_model sets each instance's; a plug-in VGG of another cfg has its own

    def __init__(self, cfg=VGG16_CFG, num_classes: int = 10):
        super().__init__()
        self.cfg = list(cfg)
        self.features, in_ch = vgg_features(self.cfg)
        self.pool = nn.AvgPool2d(2)
        self.classifier = nn.Linear(in_ch, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """EB ``vgg._initialize_weights``: conv N(0, sqrt(2/(k*k*out))), BN gamma 0.5, beta 0, Linear N(0, 0.01)."""
        eb_init(self, linear_normal=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def vgg16(num_classes: int = 10, width: float = 1.0, cfg=None) -> VGG:
    """EB VGG16; ``width`` scales channels (smaller scales only), ``cfg`` overrides for pruned nets."""
    return VGG(cfg if cfg is not None else scaled_cfg(VGG16_CFG, width), num_classes)
