"""Classifier heads (theory.md §5–§6).

A head maps backbone features f (B, d) to the features h it classifies,
``embed(f)``, and then to logits z = W h, ``logits(h)``; ``classifier()``
returns W as a (K, d) tensor. Heads always run in float32 (outside autocast)
so the DR loss, which regresses a logit onto 1, keeps full precision.

* ``learnable``: z = W h (+ b), W an ``nn.Linear`` weight that is trained;
  with ``cosine_scale`` s it is the normalised (cosine) classifier of Cao
  et al. 2019, z_k = s·cos(f, v_k): h = f/‖f‖ and W = s·V/‖rows of V‖.
  (The released [Y22] CIFAR baseline froze this layer by mistake; here it
  trains, and a frozen random classifier is the separate ``fixed-random``.)
* ``fixed-etf``: h = ℓ2-normalise(BatchNorm1d(f)) and z = h M, with
  M = :func:`lpm.core.etf.simplex_etf` (d×K, seeded) — the same frame the
  layer-peeled model uses — so E_W = E_H = 1 (theory.md §6.3).
* ``fixed-random``: the same head with M = Wᵀ for seeded Gaussian rows of
  unit norm (:func:`lpm.core.etf.random_unit_rows`, as :class:`lpm.Problem` uses).

The head kinds are the classifier modes of the layer-peeled model
(:data:`lpm.core.problem.CLASSIFIERS`).

M is a registered buffer: it is saved and restored with the model, is
broadcast by DistributedDataParallel, and is never touched by the optimiser.
``normalize=False`` drops the ℓ2 step (the ImageNet-LT variant).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lpm.core.etf import random_unit_rows, simplex_etf


class LearnableHead(nn.Module):
    """z = W h (+ b); with ``cosine_scale`` s the cosine classifier z_k = s·cos(f, v_k) of a trained V:
    h = f/‖f‖ and W = s·(rows of V normalised), so z = W h still holds."""

    kind = "learnable"

    def __init__(self, dim: int, num_classes: int, bias: bool = False, cosine_scale: float | None = None):
        super().__init__()
        self.linear = nn.Linear(dim, num_classes, bias=bias)
        self.cosine_scale = cosine_scale

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        features = features.float()
        return features if self.cosine_scale is None else F.normalize(features, dim=1)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        if self.cosine_scale is None:
            return self.linear(h)                    # (B, K)
        return F.linear(h, self.classifier(), self.linear.bias)

    def classifier(self) -> torch.Tensor:
        if self.cosine_scale is None:
            return self.linear.weight                # (K, d)
        return self.cosine_scale * F.normalize(self.linear.weight, dim=1)


class FixedHead(nn.Module):
    """BatchNorm1d → (ℓ2-normalise) → logits = h M with a fixed buffer M (d×K)."""

    def __init__(self, M: np.ndarray, kind: str, normalize: bool = True, batchnorm: bool = True):
        super().__init__()
        self.kind, self.normalize = kind, normalize
        dim = M.shape[0]
        self.bn = nn.BatchNorm1d(dim) if batchnorm else nn.Identity()
        self.register_buffer("M", torch.as_tensor(M, dtype=torch.float32).clone())

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        h = self.bn(features.float())
        return F.normalize(h, dim=1) if self.normalize else h

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.M                            # (B, d) @ (d, K) → (B, K)

    def classifier(self) -> torch.Tensor:
        return self.M.T                              # (K, d)


def build_head(kind: str, dim: int, num_classes: int, seed: int = 0, normalize: bool = True,
               batchnorm: bool = True, bias: bool = False, cosine_scale: float | None = None) -> nn.Module:
    """Build a head; fixed classifiers are drawn by the same code as :mod:`lpm`."""
    if kind == "learnable":
        return LearnableHead(dim, num_classes, bias, cosine_scale)
    if kind == "fixed-etf":
        return FixedHead(simplex_etf(num_classes, dim, seed), kind, normalize, batchnorm)
    if kind == "fixed-random":
        return FixedHead(random_unit_rows(num_classes, dim, seed).T, kind, normalize, batchnorm)
    raise ValueError(f"unknown head {kind!r}")
