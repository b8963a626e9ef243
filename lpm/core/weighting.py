"""Class weights ω_k for any loss, and the class-sampling probabilities they match
(theory.md §14).

Schemes (Cui et al. 2019 for ``class-balanced``):

=================  ==============================
``none``           ω_k = 1
``inverse``        ω_k ∝ 1/n_k
``sqrt``           ω_k ∝ 1/sqrt(n_k)
``class-balanced`` ω_k ∝ (1 − β)/(1 − β^{n_k})
=================  ==============================

Normalisation: Σ_k π_k ω_k = 1 with π_k = n_k/N. Then q_k = π_k ω_k is a
probability vector, and sampling class k with probability q_k (a sample of the
class drawn uniformly) gives every loss term the expected weight q_k = π_k ω_k:
re-sampling with q and re-weighting with ω = q/π are one objective in the
layer-peeled model, whatever the budget form (the features stay per sample, so
the penalties of the weight-decay form do not change). The objective's class
weights are :func:`objective_weights` = π ⊙ ω, which sum to 1.

A run that re-samples with probabilities q *and* weights its loss by ω has
the expected weights q_k ω_k, normalised to sum 1: :func:`objective_weights`
takes that q as ``sampling`` (``None``: instance sampling, q = π). This is
how a deep run's sampler enters its layer-peeled reference (theory.md §14).
"""
from __future__ import annotations

import numpy as np

from .errors import LPMInputError, check_choice, check_number

CLASS_WEIGHTS: tuple[str, ...] = ("none", "inverse", "sqrt", "class-balanced")
#: β of the class-balanced scheme when none is given (Cui et al. 2019's CIFAR choice)
DEFAULT_BETA = 0.9999


def check_beta(scheme: str, beta: float | None) -> float | None:
    """β for ``class-balanced`` (default :data:`DEFAULT_BETA`, 0 < β < 1); ``None`` for
    the other schemes, which refuse a β."""
    check_choice("class_weights", scheme, CLASS_WEIGHTS)
    if scheme != "class-balanced":
        if beta is not None:
            raise LPMInputError("beta", beta, "left unset unless class_weights='class-balanced'")
        return None
    if beta is None:
        return DEFAULT_BETA
    beta = check_number("beta", beta, low=0.0, high=1.0, low_open=True)
    if beta >= 1.0:
        raise LPMInputError("beta", beta, "a number > 0 and < 1")
    return beta


def _priors(counts: np.ndarray) -> np.ndarray:
    c = counts / counts.max()
    return c / c.sum()


def _counts(counts) -> np.ndarray:
    n = np.asarray(counts, dtype=np.float64).ravel()
    if n.size < 1 or not np.all(np.isfinite(n)) or not np.all(n > 0):
        raise LPMInputError("counts", list(n), "positive finite class counts")
    return n


def class_weights(scheme: str, counts, beta: float | None = None) -> np.ndarray:
    """ω (K,) of ``scheme`` for class ``counts``, normalised so that Σ_k π_k ω_k = 1."""
    beta = check_beta(scheme, beta)
    n = _counts(counts)
    if scheme == "none":
        raw = np.ones_like(n)
    elif scheme == "inverse":
        raw = n.min() / n
    elif scheme == "sqrt":
        raw = np.sqrt(n.min() / n)
    else:  # (1 − β)/(1 − β^n) = 1 / (effective number); −expm1(n log β) keeps digits for β near 1
        raw = (1.0 - beta) / -np.expm1(n * np.log(beta))
    return raw / float(_priors(n) @ raw)


def sampling_weights(scheme: str, counts, beta: float | None = None) -> np.ndarray:
    """q (K,), the class-sampling probabilities that match ``scheme``: q_k = π_k ω_k (Σ q = 1)."""
    n = _counts(counts)
    q = _priors(n) * class_weights(scheme, n, beta)
    return q / q.sum()


def check_sampling(sampling, counts) -> tuple[float, ...] | None:
    """Class-sampling probabilities q of a re-sampled run, normalised to sum 1 (``None`` stays
    ``None``: instance sampling). They must be positive, one per class, and equal for classes
    of equal count (a function of the counts, like every weight here: the symmetry reduction
    of the solvers groups classes by count)."""
    if sampling is None:
        return None
    n = _counts(counts)
    q = np.asarray(sampling, dtype=np.float64).ravel()
    if q.shape != n.shape or not np.all(np.isfinite(q)) or not np.all(q > 0):
        raise LPMInputError("sampling", [float(x) for x in q], f"positive finite class-sampling probabilities, one per class "
                                                 f"(K = {n.size})")
    q = q / q.sum()
    for value in np.unique(n):
        same = q[n == value]
        if np.ptp(same) > 1e-12 * same.max():
            raise LPMInputError("sampling", [float(x) for x in q], "probabilities equal for classes of equal count "
                                                                   "(a function of the counts)")
    return tuple(float(x) for x in q)


def objective_weights(scheme: str, counts, beta: float | None = None, sampling=None) -> np.ndarray:
    """The layer-peeled objective's class weights π_k ω_k (sum 1); π itself for ``none``.
    With class-sampling probabilities ``sampling`` = q (a re-sampled run), q_k ω_k normalised."""
    q = check_sampling(sampling, counts)
    if q is not None:
        p = np.asarray(q) * class_weights(scheme, counts, beta)
        return p / p.sum()
    if scheme == "none":
        check_beta(scheme, beta)
        return _priors(_counts(counts))
    return sampling_weights(scheme, counts, beta)
