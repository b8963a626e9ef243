"""ResNet-32 for 32×32 inputs (He et al. 2016, §4.2), as used by [Y22] (theory.md §7).

Three stages of 5 basic blocks (6·5+2 = 32 layers) with widths
(16, 32, 64) — or (32, 64, 128) for CIFAR-100 — and option-A shortcuts:
when a block halves the resolution and doubles the width, the shortcut
subsamples x[:, :, ::2, ::2] and zero-pads the new channels, adding no
parameters. Global average pooling gives a feature of dimension widths[-1].

Shapes: (B, C, H, W) → forward_features → (B, widths[-1]).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _PadShortcut(nn.Module):
    """Option-A shortcut: stride-2 subsample, zero-pad channels to ``out``."""

    def __init__(self, extra: int):
        super().__init__()
        self.extra = extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::2, ::2]
        half = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra - half))


class BasicBlock(nn.Module):
    def __init__(self, inp: int, out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out)
        self.conv2 = nn.Conv2d(out, out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.shortcut = _PadShortcut(out - inp) if (stride != 1 or inp != out) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNetCifar(nn.Module):
    """ResNet-(6n+2) with option-A shortcuts; ``feature_dim`` = widths[-1]."""

    def __init__(self, depth: int = 32, widths=(16, 32, 64), in_channels: int = 3):
        super().__init__()
        assert (depth - 2) % 6 == 0, "depth must be 6n+2"
        blocks = (depth - 2) // 6
        self.conv = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(widths[0])
        layers, inp = [], widths[0]
        for stage, width in enumerate(widths):
            for b in range(blocks):
                stride = 2 if (stage > 0 and b == 0) else 1
                layers.append(BasicBlock(inp, width, stride))
                inp = width
        self.layers = nn.Sequential(*layers)
        self.feature_dim = widths[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)))
        x = self.layers(x)                        # (B, widths[-1], H/4, W/4)
        return x.mean(dim=(2, 3))                 # (B, widths[-1])

    forward = forward_features


def resnet32(in_channels: int = 3, wide: bool = False) -> ResNetCifar:
    """ResNet-32; ``wide`` doubles every stage (32/64/128, 128-d features)."""
    return ResNetCifar(32, (32, 64, 128) if wide else (16, 32, 64), in_channels)
