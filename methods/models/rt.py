"""The two model families of RT's lottery-ticket experiments (REFERENCE.md sections 8 and 9).

* L1-norm family (RT ``cifar/lottery-ticket/l1-norm-pruning/models/{vgg,resnet}.py``, Table 8):
  ``vgg16l1`` (VGG-16, classifier Linear(512,512) -> BatchNorm1d -> ReLU -> Linear), and
  ``resnet56`` / ``resnet110`` (6n+2 basic blocks, option-A shortcut).
* Weight-level family (RT ``cifar/lottery-ticket/weight-level/models/cifar/{vgg,resnet}.py``,
  Table 9): ``vgg16bn`` (conv biases, one Linear) and ``resnet50`` (6n+2 basic blocks, n = 8,
  1x1 conv + BN shortcuts; not the ImageNet bottleneck ResNet-50).

Every network takes ``(B, 3, 32, 32)`` float and returns logits ``(B, num_classes)``. A pruned
L1 architecture (``methods.pruning.l1``) is the same class built with a narrower ``cfg``.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from methods.models.init import he_normal_
from methods.models.vgg import VGG16_CFG, scaled_cfg, vgg_features

#: Initial BatchNorm1d weight of the L1 VGG classifier: "uniform" U(0, 1) is PyTorch <= 1.1's
#: default (the official code ran on 0.3.1; pytorch/pytorch PR 12325), "ones" today's default.
BN1D_INITS = ("uniform", "ones")
#: Shortcut of a basic block whose shape changes: "A" (AvgPool2d(2) plus zero channels, RT
#: ``l1-norm-pruning/models/resnet.py`` without its detach), "A_detached" (the official code:
#: the shortcut is cut from the graph, a PyTorch 0.3 artefact), "conv" (1x1 conv + BN, weight-level family).
SHORTCUTS = ("A", "A_detached", "conv")


class RTVGG(nn.Module):
    """Cfg-driven CIFAR VGG of either RT family.

    ``hidden``: width of the hidden Linear + BatchNorm1d of the L1 family (512), or None for the
    weight-level family's single Linear. ``conv_bias``: conv biases (weight-level family).
    """

    def __init__(self, cfg=VGG16_CFG, num_classes: int = 10, hidden: int | None = 512, conv_bias: bool = False,
                 bn1d_init: str = "uniform"):
        super().__init__()
        if bn1d_init not in BN1D_INITS:
            raise ValueError(f"bn1d_init={bn1d_init!r}: choose one of {BN1D_INITS}")
        self.cfg, self.hidden, self.conv_bias, self.bn1d_init = list(cfg), hidden, conv_bias, bn1d_init
        self.features, in_ch = vgg_features(self.cfg, conv_bias)
        self.pool = nn.AvgPool2d(2)
        if hidden is None:
            self.classifier = nn.Linear(in_ch, num_classes)
        else:
            self.classifier = nn.Sequential(nn.Linear(in_ch, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                            nn.Linear(hidden, num_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """L1 family (RT ``l1-norm-pruning/models/vgg.py``): conv N(0, sqrt(2/(9 out))), BN2d gamma
        0.5, beta 0, Linear N(0, 0.01), bias 0, BatchNorm1d per ``bn1d_init``. Weight-level family
        (``weight-level/models/cifar/vgg.py``): conv N(0, sqrt(2/(9 in))) (fan-in), bias 0; BN 1/0;
        Linear N(0, 0.01), bias 0."""
        l1 = self.hidden is not None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                k = m.kernel_size[0] * m.kernel_size[1]
                he_normal_(m.weight, k * (m.out_channels if l1 else m.in_channels))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                nn.init.constant_(m.weight, 0.5 if l1 else 1.0)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm1d):
                m.reset_running_stats()
                if self.bn1d_init == "uniform":
                    nn.init.uniform_(m.weight)
                else:
                    nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class BasicBlock(nn.Module):
    """conv3x3(in -> mid, stride) -> BN -> ReLU -> conv3x3(mid -> planes) -> BN, plus the
    shortcut, then ReLU. ``mid`` is the prunable width (L1 pruning keeps ``planes`` out of conv2)."""

    def __init__(self, inplanes: int, mid: int, planes: int, stride: int, shortcut: str):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, mid, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut, self.pad = shortcut, planes - inplanes
        self.downsample = None
        if shortcut == "conv" and (stride != 1 or inplanes != planes):
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))
        self.stride = stride

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            return self.downsample(x)
        if self.stride == 1 and self.pad == 0:
            return x
        r = F.avg_pool2d(x, 2) if self.stride != 1 else x
        if self.shortcut == "A_detached":
            r = r.detach()
        return F.pad(r, (0, 0, 0, 0, 0, self.pad))  # zero channels appended after the input's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self._residual(x))


def resnet_widths(width: float = 1.0) -> list[int]:
    """Stage widths 16/32/64 times ``width`` (smaller scales only), at least 1."""
    return [max(1, int(round(p * width))) for p in (16, 32, 64)]


class CifarResNet(nn.Module):
    """6n+2 CIFAR ResNet with basic blocks: stem conv3x3 -> BN -> ReLU, three stages of n blocks
    (widths 16/32/64, stride 2 entering stages 2 and 3), global average pool, Linear(64, classes).

    ``cfg``: conv1 width of every block (3n ints; default the stage widths); ``shortcut``: one of
    ``SHORTCUTS``.

    Raises:
        ValueError: depth not 6n+2, a cfg of the wrong length, or an unknown shortcut.
    """

    def __init__(self, depth: int = 56, num_classes: int = 10, width: float = 1.0, cfg=None, shortcut: str = "A"):
        super().__init__()
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 (e.g. 20, 56, 110), got {depth}")
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut={shortcut!r}: choose one of {SHORTCUTS}")
        n = (depth - 2) // 6
        planes = resnet_widths(width)
        self.depth, self.width, self.shortcut = depth, width, shortcut
        self.cfg = list(cfg) if cfg is not None else [p for p in planes for _ in range(n)]
        if len(self.cfg) != 3 * n:
            raise ValueError(f"cfg has {len(self.cfg)} block widths; depth {depth} needs {3 * n}")
        self.conv1 = nn.Conv2d(3, planes[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.relu = nn.ReLU(inplace=True)
        blocks, inplanes = [], planes[0]
        for stage, p in enumerate(planes):
            for b in range(n):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(BasicBlock(inplanes, self.cfg[stage * n + b], p, stride, shortcut))
                inplanes = p
        self.blocks = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """RT ``l1-norm-pruning/models/resnet.py`` and ``weight-level/models/cifar/resnet.py``:
        conv N(0, sqrt(2/(k*k*out))) (He fan-out), BN 1/0, the Linear at torch's default."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                he_normal_(m.weight, m.kernel_size[0] * m.kernel_size[1] * m.out_channels)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                m.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def vgg16l1(num_classes: int = 10, width: float = 1.0, cfg=None, bn1d_init: str = "uniform") -> RTVGG:
    """RT L1 family VGG-16 (Table 8; 14.99 M params, 313.5 M MACs); ``width`` scales the convs and the hidden Linear."""
    return RTVGG(cfg if cfg is not None else scaled_cfg(VGG16_CFG, width), num_classes,
                 hidden=max(1, int(round(512 * width))), bn1d_init=bn1d_init)


def vgg16bn(num_classes: int = 10, width: float = 1.0, cfg=None) -> RTVGG:
    """RT weight-level VGG-16 (``--arch vgg16_bn``, Table 9; 14.73 M params)."""
    return RTVGG(cfg if cfg is not None else scaled_cfg(VGG16_CFG, width), num_classes, hidden=None, conv_bias=True)


def resnet56(num_classes: int = 10, width: float = 1.0, cfg=None, shortcut: str = "A") -> CifarResNet:
    """RT L1 family ResNet-56 (Table 8; 0.853 M params, 125.5 M MACs)."""
    return CifarResNet(56, num_classes, width, cfg, shortcut)


def resnet110(num_classes: int = 10, width: float = 1.0, cfg=None, shortcut: str = "A") -> CifarResNet:
    """RT L1 family ResNet-110 (Table 8; 1.728 M params, 252.9 M MACs)."""
    return CifarResNet(110, num_classes, width, cfg, shortcut)


def resnet50(num_classes: int = 10, width: float = 1.0, cfg=None) -> CifarResNet:
    """RT weight-level "ResNet-50" (``--arch resnet --depth 50``, Table 9): 6n+2 basic blocks,
    n = 8, 1x1 conv + BN shortcuts; about 0.76 M params."""
    return CifarResNet(50, num_classes, width, cfg, shortcut="conv")
