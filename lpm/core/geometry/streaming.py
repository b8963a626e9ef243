"""Streaming accumulators for deep runs (theory.md §8): one batch at a time,
so no run ever holds all its features.

* :class:`ClassStats` — class means and within-class covariance, in float64;
* :class:`ClassificationStats` — accuracy, per class and per group, and ECE;
* :class:`NearestMeanAgreement` — NC4.

Inputs may be NumPy arrays or torch tensors.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def as_float_array(x) -> np.ndarray:
    """Accept numpy arrays or torch tensors; return float64 numpy."""
    if hasattr(x, "detach"):
        x = x.detach().to("cpu").double().numpy()
    return np.asarray(x, dtype=np.float64)


def as_labels(y) -> np.ndarray:
    if hasattr(y, "detach"):
        y = y.detach().to("cpu").numpy()
    return np.asarray(y).astype(np.int64).ravel()


def finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


class ClassStats:
    """Streaming class means and within-class covariances, in float64.

    Uses per-class shifts c_k (the first sample seen of class k) so that

        N Σ_W = Σ_i (h_i − c_{y_i})(h_i − c_{y_i})ᵀ − Σ_k n_k (μ_k − c_k)(μ_k − c_k)ᵀ

    avoids the cancellation of raw second moments. Σ_W is sample-weighted, so
    under imbalance the majority classes dominate it (theory.md §8.1). Given
    the class counts of the pass in advance (``class_counts``), each sample is
    also weighted by 1/(K n_y), which gives the class-balanced Σ_W^bal =
    (1/K) Σ_k Cov(class k) in the same single pass. Memory: K×d + 2·d×d.
    """

    def __init__(self, num_classes: int, dim: int, class_counts=None):
        self.K, self.d = int(num_classes), int(dim)
        self.counts = np.zeros(self.K)
        self._shift = np.zeros((self.K, self.d))
        self._has_shift = np.zeros(self.K, dtype=bool)
        self._sum = np.zeros((self.K, self.d))       # Σ (h − c_y)
        self._scatter = np.zeros((self.d, self.d))   # Σ (h − c_y)(h − c_y)ᵀ
        self.expected = None if class_counts is None else as_float_array(class_counts).ravel()
        self._balanced = None if class_counts is None else np.zeros((self.d, self.d))  # Σ (h − c_y)(h − c_y)ᵀ / n_y

    def update(self, features, labels) -> None:
        H, y = as_float_array(features), as_labels(labels)
        for k in np.unique(y):
            if not self._has_shift[k]:
                self._shift[k] = H[np.argmax(y == k)]
                self._has_shift[k] = True
        D = H - self._shift[y]
        np.add.at(self._sum, y, D)
        self.counts += np.bincount(y, minlength=self.K)
        self._scatter += D.T @ D
        if self._balanced is not None:
            self._balanced += (D / np.maximum(self.expected[y], 1.0)[:, None]).T @ D

    @property
    def num_samples(self) -> int:
        return int(self.counts.sum())

    @property
    def means(self) -> np.ndarray:
        n = np.maximum(self.counts, 1)[:, None]
        return self._shift + self._sum / n

    @property
    def global_mean(self) -> np.ndarray:
        return (self.counts @ self.means) / max(self.num_samples, 1)

    @property
    def within_cov(self) -> np.ndarray:
        """Sample-weighted Σ_W = (1/N) Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ."""
        n = np.maximum(self.counts, 1)[:, None]
        mean_shift = self._sum / n
        S = self._scatter - (self.counts[:, None] * mean_shift).T @ mean_shift
        return 0.5 * (S + S.T) / max(self.num_samples, 1)

    def balanced_scatter(self) -> np.ndarray | None:
        """Σ_k (1/N_k) Σ_{i∈k} (h_i − μ_k)(h_i − μ_k)ᵀ about this pass's own means, N_k the class
        counts given at construction (``None`` without them); summed over shards it gives K·Σ_W^bal."""
        if self._balanced is None:
            return None
        n = np.maximum(self.counts, 1)[:, None]
        mean_shift = self._sum / n
        weight = self.counts / np.maximum(self.expected, 1.0)       # n_k / N_k
        S = self._balanced - (weight[:, None] * mean_shift).T @ mean_shift
        return 0.5 * (S + S.T)

    @property
    def balanced_within_cov(self) -> np.ndarray | None:
        """Class-balanced Σ_W^bal = (1/K) Σ_k (1/n_k) Σ_{i∈k} (h_i − μ_k)(h_i − μ_k)ᵀ, or ``None``
        when the class counts were not given or the pass saw other counts."""
        if self._balanced is None or not np.array_equal(self.counts, self.expected):
            return None
        return self.balanced_scatter() / self.K


class ClassificationStats:
    """Streaming accuracy, per-class and group accuracy, and ECE (15 bins)."""

    def __init__(self, num_classes: int, groups: tuple[np.ndarray, tuple[str, ...]] | None = None, bins: int = 15):
        self.K, self.bins = int(num_classes), bins
        self.groups = groups
        self.correct = np.zeros(self.K)
        self.total = np.zeros(self.K)
        self.bin_count = np.zeros(bins)
        self.bin_conf = np.zeros(bins)
        self.bin_correct = np.zeros(bins)

    def update(self, logits, labels) -> None:
        Z, y = as_float_array(logits), as_labels(labels)
        Z = Z - Z.max(axis=1, keepdims=True)
        P = np.exp(Z)
        P /= P.sum(axis=1, keepdims=True)
        conf, pred = P.max(axis=1), P.argmax(axis=1)
        hit = (pred == y).astype(np.float64)
        np.add.at(self.correct, y, hit)
        np.add.at(self.total, y, 1.0)
        b = np.minimum((conf * self.bins).astype(int), self.bins - 1)
        np.add.at(self.bin_count, b, 1.0)
        np.add.at(self.bin_conf, b, conf)
        np.add.at(self.bin_correct, b, hit)

    def result(self) -> dict[str, Any]:
        n = self.total.sum()
        per_class = np.where(self.total > 0, self.correct / np.maximum(self.total, 1), np.nan)
        ece = float(np.abs(self.bin_conf - self.bin_correct).sum() / max(n, 1))
        out: dict[str, Any] = {
            "accuracy": float(self.correct.sum() / max(n, 1)),
            "per_class_accuracy": [finite_or_none(a) for a in per_class],
            "ece": ece,
        }
        if self.groups is not None:
            ids, names = self.groups
            for g, name in enumerate(names):
                mask = ids == g
                tot = self.total[mask].sum()
                out[f"{name}_accuracy"] = float(self.correct[mask].sum() / tot) if tot else None
        return out


class NearestMeanAgreement:
    """NC4: fraction of samples where argmax logits ≠ the nearest class mean."""

    def __init__(self, means):
        self.means = as_float_array(means)
        self.disagree = 0
        self.total = 0

    def update(self, features, logits) -> None:
        H, Z = as_float_array(features), as_float_array(logits)
        d2 = (H**2).sum(1)[:, None] - 2 * H @ self.means.T + (self.means**2).sum(1)[None, :]
        self.disagree += int((d2.argmin(axis=1) != Z.argmax(axis=1)).sum())
        self.total += H.shape[0]

    def result(self) -> float | None:
        return self.disagree / self.total if self.total else None
