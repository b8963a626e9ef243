"""Small backbones for the offline data sets.

* :class:`Conv1dNet` for MNIST-1D signals (B, 1, L): three stride-2 conv
  layers (32, 64, 64 channels, kernel 5) with BatchNorm and ReLU, global
  average pooling, then a linear map to ``feature_dim``.
* :class:`MLP` for vectors (B, L) or anything flattened to it: hidden layers
  with ReLU (BatchNorm optional; off by default so the network has no
  batch-coupled layers, which keeps multi-process runs exactly comparable).
"""
from __future__ import annotations

import math

import torch
from torch import nn


class Conv1dNet(nn.Module):
    def __init__(self, in_channels: int = 1, feature_dim: int = 64, channels=(32, 64, 64)):
        super().__init__()
        layers, inp = [], in_channels
        for c in channels:
            layers += [nn.Conv1d(inp, c, 5, stride=2, padding=2, bias=False), nn.BatchNorm1d(c), nn.ReLU()]
            inp = c
        self.body = nn.Sequential(*layers)
        self.proj = nn.Linear(inp, feature_dim)
        self.feature_dim = feature_dim

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(x)                         # (B, channels[-1], L/8)
        return torch.relu(self.proj(x.mean(dim=2)))  # (B, feature_dim)

    forward = forward_features


class MLP(nn.Module):
    def __init__(self, input_shape, feature_dim: int = 64, hidden=(256, 256), batchnorm: bool = False):
        super().__init__()
        inp = int(math.prod(input_shape))
        layers: list[nn.Module] = [nn.Flatten()]
        for width in (*hidden, feature_dim):
            layers.append(nn.Linear(inp, width))
            if batchnorm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.ReLU())
            inp = width
        self.body = nn.Sequential(*layers)
        self.feature_dim = feature_dim

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)                      # (B, feature_dim)

    forward = forward_features
