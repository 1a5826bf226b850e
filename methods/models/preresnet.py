"""EB PreResNet for CIFAR (EB official code ``models/preresnet.py``; REFERENCE.md section 3).

depth = 9n + 2 bottleneck blocks, n per stage, planes 16/32/64 (times ``width``), expansion 4.
Block: BN1 -> channel selection -> ReLU -> conv1 1x1 -> BN2 -> ReLU -> conv2 3x3 (stride)
-> BN3 -> ReLU -> conv3 1x1; shortcut identity or a strided 1x1 conv without BN; no ReLU
after the add. Head: BN -> channel selection -> ReLU -> global average pool -> Linear.
"""
from __future__ import annotations

import torch
from torch import nn

from methods.models.init import eb_init


class ChannelSelection(nn.Module):
    """Keeps the input channels listed in the buffer ``indexes`` (EB ``models/channel_selection.py``).

    Lets a pre-activation BN be pruned for the following conv while the residual stream keeps
    its width. Input ``(B, C, H, W)``, output ``(B, len(indexes), H, W)``. A buffer, not a
    parameter, so no optimizer or weight decay ever touches it.
    """

    def __init__(self, num_channels: int):
        super().__init__()
        self.register_buffer("indexes", torch.arange(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.indexes.numel() == x.shape[1]:
            return x
        return x.index_select(1, self.indexes)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, cfg: list[int], planes: int, stride: int = 1, downsample: bool = False):
        super().__init__()
        sel, c1, c2 = cfg
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.select = ChannelSelection(inplanes)
        self.conv1 = nn.Conv2d(sel, c1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(c2)
        self.conv3 = nn.Conv2d(c2, planes * 4, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.select(self.bn1(x)))
        out = self.relu(self.bn2(self.conv1(out)))
        out = self.relu(self.bn3(self.conv2(out)))
        out = self.conv3(out)
        residual = x if self.downsample is None else self.downsample(x)
        return out + residual


def default_cfg(depth: int = 101, width: float = 1.0) -> list[list[int]]:
    """Per-block ``[selected_in, conv1_out, conv2_out]`` plus a final ``[selected]`` (EB cfg format).

    Raises:
        ValueError: if ``depth`` is not 9n + 2.
    """
    if (depth - 2) % 9 or depth < 11:
        raise ValueError(f"PreResNet depth must be 9n+2 (e.g. 11, 20, 101, 164), got {depth}")
    n = (depth - 2) // 9
    planes = [max(1, int(round(p * width))) for p in (16, 32, 64)]
    cfg, inplanes = [], planes[0]
    for p in planes:
        cfg.append([inplanes, p, p])
        cfg += [[4 * p, p, p] for _ in range(n - 1)]
        inplanes = 4 * p
    cfg.append([inplanes])
    return cfg


class PreResNet(nn.Module):
    """Cfg-driven CIFAR pre-activation ResNet with bottlenecks; a pruned cfg builds the pruned net.

    Input ``(B, 3, 32, 32)``, output logits ``(B, num_classes)``.
    """

    registry_name = "preresnet101"  # as VGG.registry_name

    def __init__(self, depth: int = 101, num_classes: int = 10, width: float = 1.0, cfg=None):
        super().__init__()
        self.depth, self.width = depth, width
        self.cfg = [list(c) for c in (cfg if cfg is not None else default_cfg(depth, width))]
        n = (depth - 2) // 9
        planes = [max(1, int(round(p * width))) for p in (16, 32, 64)]
        self.conv1 = nn.Conv2d(3, planes[0], 3, padding=1, bias=False)
        blocks, inplanes, i = [], planes[0], 0
        for stage, p in enumerate(planes):
            for b in range(n):
                stride = 2 if (stage > 0 and b == 0) else 1
                blocks.append(Bottleneck(inplanes, self.cfg[i], p, stride, downsample=(b == 0)))
                inplanes, i = 4 * p, i + 1
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(inplanes)
        self.select = ChannelSelection(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.cfg[-1][0], num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """EB ``preresnet.py``: conv N(0, sqrt(2/(k*k*out))), BN gamma 0.5, beta 0; Linear left at torch's default."""
        eb_init(self, linear_normal=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.conv1(x))
        x = self.relu(self.select(self.bn(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def preresnet101(num_classes: int = 10, width: float = 1.0, depth: int = 101, cfg=None) -> PreResNet:
    """EB PreResNet-101; ``depth``/``width`` shrink it at the smaller scales only."""
    return PreResNet(depth, num_classes, width, cfg)
