"""Class weights ω_k of the re-weighting remedies, behind one import site.

The deep side takes every class weight and every class-sampling
probability from here, so the definitions live in one place
(``lpm.core.weighting`` holds them beside the layer-peeled model; this module
is the deep side's only route to them). Schemes, with counts n_k, N = Σ n_k
and π_k = n_k / N:

* ``none``:            ω_k = 1
* ``inverse``:         ω_k ∝ 1 / n_k
* ``sqrt``:            ω_k ∝ 1 / sqrt(n_k)
* ``class-balanced``:  ω_k ∝ (1 − β) / (1 − β^{n_k})   (Cui et al. 2019, "effective number")

normalised so that Σ_k π_k ω_k = 1: a sample drawn from the training set
then has expected weight 1, and sampling class k with probability
q_k = π_k ω_k is the re-sampling that equals re-weighting with ω_k.
"""
from __future__ import annotations

import numpy as np

from lpm.core.errors import LPMInputError, check_choice

CLASS_WEIGHTS = ("none", "inverse", "sqrt", "class-balanced")


def class_weights(scheme: str, counts, beta: float | None = None) -> np.ndarray:
    """ω (K,) for ``scheme`` and per-class counts; ``beta`` in (0, 1) for class-balanced only."""
    check_choice("class_weights", scheme, CLASS_WEIGHTS)
    n = np.asarray(counts, dtype=np.float64)
    if n.ndim != 1 or len(n) < 2 or not np.all(np.isfinite(n)) or np.any(n <= 0):
        raise LPMInputError("counts", list(np.ravel(n)), "a list of at least 2 positive, finite class counts")
    if scheme != "class-balanced" and beta is not None:
        raise LPMInputError("beta", beta, "left unset unless class_weights is 'class-balanced'")
    if scheme == "class-balanced" and (beta is None or not 0 < beta < 1):
        raise LPMInputError("beta", beta, "a number > 0 and < 1 for class-balanced weights")
    if scheme == "none":
        raw = np.ones_like(n)
    elif scheme == "inverse":
        raw = 1.0 / n
    elif scheme == "sqrt":
        raw = 1.0 / np.sqrt(n)
    else:
        raw = (1.0 - beta) / -np.expm1(n * np.log(beta))  # expm1 keeps the digits for β near 1
    pi = n / n.sum()
    return raw / float(pi @ raw)
