"""Long-tailed subsets of a balanced split (theory.md §3 and §7).

The class counts come from :mod:`lpm.core.profiles` — the same functions the
layer-peeled model uses — rounded down to integers:

* ``exp``:  n_k = ⌊n_max · R^{−k/(K−1)}⌋ in label order (Cao et al. 2019;
  [Y22] writes τ = 1/R). CIFAR-10 at R = 100 gives
  5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50.
* ``step``: the first K_A classes keep n_max, the rest ⌊n_max / R⌋ [F21].

The kept images of class k are a seeded uniform draw of n_k of its
indices, so a run with the same ``subset_seed`` always sees the same images.
With ``draw="ldam-drw"`` they are drawn as Cao et al. 2019's released code
draws them: one legacy ``numpy.random.RandomState(seed)`` shuffles the indices
of class 0, 1, …, K−1 in turn and class k keeps the first n_k. On the CIFAR
python pickles read in file order with seed 0 (that code's default), this
gives the very images of the CIFAR-10-LT and CIFAR-100-LT subsets the field
compares against; its counts are ``int(n_max · (1/R)^{k/(K−1)})``, the
``exp`` counts above (equal for the published R = 10, 50, 100, 200 on
CIFAR-10 and CIFAR-100).
"""
from __future__ import annotations

import numpy as np

from lpm.core.errors import LPMInputError, check_choice
from lpm.core.profiles import PROFILES, check_ratio, exp_counts, step_counts


def long_tail_counts(num_classes: int, ratio: float, profile: str = "exp", n_max: int = 5000,
                     majority: int | None = None) -> tuple[int, ...]:
    """Integer per-class counts for a profile; ``ratio`` R = n_max/n_min >= 1."""
    check_choice("profile", profile, PROFILES)
    check_ratio(ratio)
    if profile == "exp":
        counts = exp_counts(num_classes, ratio, n_max)
    else:
        counts = step_counts(num_classes, ratio, majority, n_majority=n_max)
    ints = tuple(int(np.floor(c + 1e-9)) for c in counts)
    if min(ints) < 1:
        raise LPMInputError("n_max", n_max,
                            f"large enough that every class keeps a sample (n_max >= ratio = {ratio:g})")
    return ints


def select_long_tailed(labels: np.ndarray, counts, seed: int, cap: bool = False,
                       split: str = "train", draw: str = "uniform") -> np.ndarray:
    """Sorted indices keeping ``counts[k]`` samples of each class k.

    labels: (N,) ints in [0, K). With ``cap`` a class that has fewer samples
    than asked keeps all of them (SVHN, theory.md §7); otherwise that is an
    error naming the class. ``draw``: ``uniform`` or ``ldam-drw`` (module docstring).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    legacy = np.random.RandomState(seed) if draw == "ldam-drw" else None
    kept = []
    for k, n_k in enumerate(counts):
        pool = np.flatnonzero(labels == k)
        if len(pool) < n_k and not cap:
            raise LPMInputError(
                "n_max", int(max(counts)),
                f"at most what the {split} split holds: class {k} has {len(pool)} samples but the profile "
                f"asks for {n_k}")
        take = min(int(n_k), len(pool))
        if legacy is not None:
            legacy.shuffle(pool)
            kept.append(np.sort(pool[:take]))
        else:
            kept.append(np.sort(rng.choice(pool, size=take, replace=False)))
    return np.sort(np.concatenate(kept))


def subset_split(x: np.ndarray, y: np.ndarray, counts, seed: int, cap: bool = False, split: str = "train",
                 draw: str = "uniform"):
    """(x[idx], y[idx]) for :func:`select_long_tailed`."""
    idx = select_long_tailed(y, counts, seed, cap=cap, split=split, draw=draw)
    return x[idx], y[idx].astype(np.int64)
