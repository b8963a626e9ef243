"""Streaming accumulators for deep runs (theory.md §8): one batch at a time,
so no run ever holds all its features.

* :class:`ClassStats` — class means, within-class covariance and per-class
  variances tr Cov_k, in float64;
* :class:`ClassificationStats` — top-1/top-5 accuracy, per class and per group,
  the confusion matrix, and the confidence bins of ECE, MCE and the
  reliability diagram (:mod:`.classification` turns them into metrics);
* :class:`NearestMeanAgreement` — NC4, overall and per class.

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
        self._sq = np.zeros(self.K)                  # Σ_{i∈k} ‖h_i − c_k‖²
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
        np.add.at(self._sq, y, np.einsum("ij,ij->i", D, D))
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

    @property
    def class_variances(self) -> np.ndarray:
        """σ_k² = tr Cov_k = (1/n_k) Σ_{i∈k} ‖h_i − μ_k‖² (ddof = 0; 0 for a class with no sample),
        the per-class variances of CDNV (theory.md §8.1)."""
        n = np.maximum(self.counts, 1)
        mean_shift = self._sum / n[:, None]
        return np.maximum(self._sq / n - np.einsum("kd,kd->k", mean_shift, mean_shift), 0.0)

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


#: largest number of classes for which the K×K confusion matrix is kept (8 MB in float64)
CONFUSION_MAX_CLASSES = 1000


class ClassificationStats:
    """Streaming top-1 and top-k accuracy (per class and per group), the confusion matrix and
    the confidence bins of ECE/MCE (15 equal-width bins of the top-1 softmax probability).

    ``groups``: (ids (K,), names) for group accuracies (``<name>_accuracy``); ``shots``: the same
    for the many/medium/few split of :func:`lpm.core.geometry.groups.shot_groups`
    (``<name>_shot_accuracy``). ``confusion``: keep the K×K matrix (rows true class, columns
    predicted), which is skipped above :data:`CONFUSION_MAX_CLASSES` classes.
    Ties in the top-1 prediction go to the lowest class index (``argmax``).
    """

    def __init__(self, num_classes: int, groups: tuple[np.ndarray, tuple[str, ...]] | None = None, bins: int = 15,
                 *, top_k: int = 5, shots=None, confusion: bool = False):
        self.K, self.bins = int(num_classes), bins
        self.groups, self.shots = groups, shots
        self.top_k = min(int(top_k), self.K)
        self.correct = np.zeros(self.K)
        self.correct_top_k = np.zeros(self.K)
        self.total = np.zeros(self.K)
        self.bin_count = np.zeros(bins)
        self.bin_conf = np.zeros(bins)
        self.bin_correct = np.zeros(bins)
        keep = confusion and self.K <= CONFUSION_MAX_CLASSES
        self.confusion = np.zeros((self.K, self.K)) if keep else None

    def update(self, logits, labels) -> None:
        Z, y = as_float_array(logits), as_labels(labels)
        Z = Z - Z.max(axis=1, keepdims=True)
        P = np.exp(Z)
        P /= P.sum(axis=1, keepdims=True)
        conf, pred = P.max(axis=1), Z.argmax(axis=1)
        hit = (pred == y).astype(np.float64)
        np.add.at(self.correct, y, hit)
        np.add.at(self.total, y, 1.0)
        # in the top k: fewer than k classes score strictly higher than the true one
        higher = (Z > Z[np.arange(len(y)), y][:, None]).sum(axis=1)
        np.add.at(self.correct_top_k, y, (higher < self.top_k).astype(np.float64))
        b = np.minimum((conf * self.bins).astype(int), self.bins - 1)
        np.add.at(self.bin_count, b, 1.0)
        np.add.at(self.bin_conf, b, conf)
        np.add.at(self.bin_correct, b, hit)
        if self.confusion is not None:
            np.add.at(self.confusion, (y, pred), 1.0)

    #: the tallies that add over batches and processes
    TALLIES = ("correct", "correct_top_k", "total", "bin_count", "bin_conf", "bin_correct", "confusion")

    def result(self) -> dict[str, Any]:
        from .classification import balanced_accuracy, calibration_errors, group_accuracies

        n = self.total.sum()
        per_class = np.where(self.total > 0, self.correct / np.maximum(self.total, 1), np.nan)
        ece, mce = calibration_errors(self.bin_count, self.bin_conf, self.bin_correct)
        out: dict[str, Any] = {
            "accuracy": float(self.correct.sum() / max(n, 1)),
            f"top{self.top_k}_accuracy": float(self.correct_top_k.sum() / max(n, 1)),
            "balanced_accuracy": balanced_accuracy(self.correct, self.total),
            "per_class_accuracy": [finite_or_none(a) for a in per_class],
            "ece": ece,
            "mce": mce,
        }
        if self.groups is not None:
            out.update(group_accuracies(self.correct, self.total, *self.groups))
        if self.shots is not None:
            out.update(group_accuracies(self.correct, self.total, *self.shots[:2], suffix="_shot_accuracy"))
        return out


class NearestMeanAgreement:
    """NC4 [Papyan et al. 2020]: the fraction of samples whose argmax logit differs from the class of
    the nearest class mean (Euclidean), overall; and, per true class, the agreements, for the
    class-averaged agreement rate. Ties, in either decision, go to the lowest class index
    (``argmin``/``argmax``): on exactly merged means the nearest mean is the merged class of
    lowest index (theory.md §8.4)."""

    def __init__(self, means):
        self.means = as_float_array(means)
        K = self.means.shape[0]
        self.disagree = 0
        self.total = 0
        self.agree_per_class = np.zeros(K)
        self.total_per_class = np.zeros(K)

    def update(self, features, logits, labels=None) -> None:
        H, Z = as_float_array(features), as_float_array(logits)
        d2 = (H**2).sum(1)[:, None] - 2 * H @ self.means.T + (self.means**2).sum(1)[None, :]
        agree = d2.argmin(axis=1) == Z.argmax(axis=1)
        self.disagree += int((~agree).sum())
        self.total += H.shape[0]
        if labels is not None:
            y = as_labels(labels)
            np.add.at(self.agree_per_class, y, agree.astype(np.float64))
            np.add.at(self.total_per_class, y, 1.0)

    def result(self) -> float | None:
        """NC4 as lpm has always reported it: the disagreement rate (0 at collapse)."""
        return self.disagree / self.total if self.total else None

    def agreement(self) -> float | None:
        """The agreement rate 1 − NC4 (1 at collapse), over samples: the ``neural-collapse``
        library's ``clf_ncc_agreement`` (weighted)."""
        return 1.0 - self.disagree / self.total if self.total else None

    def class_mean_agreement(self) -> float | None:
        """The mean over classes (with samples, labels given to :meth:`update`) of their agreement rate."""
        seen = self.total_per_class > 0
        if not seen.any():
            return None
        return float(np.mean(self.agree_per_class[seen] / self.total_per_class[seen]))
