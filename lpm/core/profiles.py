"""Class-count profiles (theory.md §3).

* ``step``  [F21]: K_A majority classes of n_A samples, K−K_A minority classes
  of n_A/R samples.
* ``exp``   [Y22, after Cao et al. 2019]: n_k = ⌊n_max · R^{−k/(K−1)}⌋.
* explicit: any list of positive counts.

Only the proportions n_k/N enter the layer-peeled model, so fractional
counts are meaningful there; the deep side and the weight-decay model
(theory.md §9) use the counts themselves.

Any finite positive counts and any finite ratio are accepted: proportions
are formed after dividing by the largest count, so even R = 1e308 (where the
minority proportion underflows to 0) is solved, as its R → ∞ limit.
"""
from __future__ import annotations

import math
from typing import Sequence

from .errors import LPMInputError, check_choice, check_fits_in_memory, check_number

PROFILES = ("step", "exp")


def check_ratio(ratio, name: str = "ratio") -> float:
    """An imbalance ratio R = n_max/n_min: a finite number >= 1."""
    return check_number(name, ratio, low=1)


def _check_K(num_classes) -> int:
    """K >= 2, and small enough that the K×K arrays of any solve fit in memory (checked before the
    counts themselves are built, which for an absurd K would exhaust memory first)."""
    K = check_number("K", num_classes, low=2, integer=True)
    check_fits_in_memory("K", K, 10 * 8 * float(K) ** 2, f"K={K} (at least 10 float64 arrays of K × K)")
    return K


def step_counts(num_classes: int, ratio: float, majority: int | None = None,
                n_majority: float | None = None) -> tuple[float, ...]:
    """Counts (n_A,…,n_A, n_B,…,n_B) with n_A/n_B = ratio.

    Without ``n_majority`` the minority count is 1 and n_A = ratio exactly, so
    the proportions are exact for non-integer ratios.
    """
    K = _check_K(num_classes)
    R = check_ratio(ratio)
    KA = K // 2 if majority is None else check_number("majority", majority, low=1, high=K - 1, integer=True)
    if n_majority is None:
        nA, nB = R, 1.0
    else:
        nA = check_number("n_majority", n_majority, low=0, low_open=True)
        nB = nA / R
    return tuple([float(nA)] * KA + [float(nB)] * (K - KA))


def exp_counts(num_classes: int, ratio: float, n_max: float = 5000) -> tuple[float, ...]:
    """Long-tailed counts n_k = ⌊n_max · ratio^{−k/(K−1)}⌋, k = 0…K−1."""
    K = _check_K(num_classes)
    R = check_ratio(ratio)
    n_max = check_number("n_max", n_max, low=1)
    counts = [math.floor(n_max * R ** (-k / (K - 1)) + 1e-9) for k in range(K)]
    if counts[-1] < 1:
        raise LPMInputError("n_max", n_max, f"large enough that every class keeps a sample (n_max >= ratio = {R:g})")
    return tuple(float(c) for c in counts)


def profile_counts(profile: str, num_classes: int, ratio: float, majority: int | None = None,
                   n_max: float | None = None) -> tuple[float, ...]:
    check_choice("profile", profile, PROFILES)
    if profile == "step":
        return step_counts(num_classes, ratio, majority, n_max)
    return exp_counts(num_classes, ratio, 5000 if n_max is None else n_max)


def check_counts(counts: Sequence[float], num_classes: int | None = None) -> tuple[float, ...]:
    try:
        values = tuple(float(c) for c in counts)
    except (TypeError, ValueError):
        raise LPMInputError("counts", counts, "a list of positive numbers") from None
    if len(values) < 2 or any(not math.isfinite(c) or c <= 0 for c in values):
        raise LPMInputError("counts", list(counts), "a list of at least 2 positive, finite numbers")
    if num_classes is not None and len(values) != num_classes:
        raise LPMInputError("counts", list(counts), f"a list of K={num_classes} numbers (one per class)")
    return values
