"""ResNet-50 (He et al. 2016) with an optionally widened last stage.

Bottleneck stages of (3, 4, 6, 3) blocks with inner widths
(64, 128, 256, last_width) and expansion 4. The standard network has
last_width = 512 (2048-d features); [Y22]'s ImageNet-LT model widens the last
stage to 1024, giving 4096-d features (theory.md §6.3).

Shapes: (B, 3, H, W) → forward_features → (B, 4·last_width).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inp: int, width: int, stride: int):
        super().__init__()
        out = width * self.expansion
        self.conv1 = nn.Conv2d(inp, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        nn.init.zeros_(self.bn3.weight)  # each residual branch starts as the identity
        self.shortcut = nn.Identity()
        if stride != 1 or inp != out:
            self.shortcut = nn.Sequential(nn.Conv2d(inp, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + self.shortcut(x))


class ResNet50(nn.Module):
    def __init__(self, last_width: int = 512, in_channels: int = 3, blocks=(3, 4, 6, 3)):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1))
        stages, inp = [], 64
        for i, (n, width) in enumerate(zip(blocks, (64, 128, 256, last_width))):
            for b in range(n):
                stages.append(Bottleneck(inp, width, 2 if (i > 0 and b == 0) else 1))
                inp = width * Bottleneck.expansion
        self.stages = nn.Sequential(*stages)
        self.feature_dim = inp
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))            # (B, 4·last_width, H/32, W/32)
        return x.mean(dim=(2, 3))                # (B, 4·last_width)

    forward = forward_features


def resnet50(in_channels: int = 3, wide: bool = True) -> ResNet50:
    """ResNet-50; ``wide`` gives [Y22]'s 4096-d last stage, else the usual 2048-d."""
    return ResNet50(1024 if wide else 512, in_channels)
