"""The order of training samples in an epoch: instance and class-aware samplers.

Every sampler draws one epoch of N = (training set size) sample indices
from the run's seeded data generator, the same on every process (each then
takes its rows of each global batch, :mod:`full_model.loader`), so a
sampler changes nothing about multi-process training or exact resume: the
generator's state at an epoch boundary is in the checkpoint.

=================  ==========================================================
sampler            class probability q_k of each draw (π_k = n_k / N)
=================  ==========================================================
``instance``       π_k: a random permutation of the training set
``class-balanced`` 1 / K                                  (Kang et al. 2020)
``sqrt``           sqrt(n_k) / Σ_j sqrt(n_j)               (Mahajan et al. 2018)
``progressive``    (1 − t/T) π_k + (t/T) / K in epoch t = 0…T−1 of T
                   (Kang et al. 2020's progressively-balanced sampling)
=================  ==========================================================

The class-aware samplers first draw the class of each of the N slots
independently from q, then fill the m_k slots of class k by cycling through
random permutations of its n_k samples (all of them before any repeats, as
in Kang et al.'s class-aware sampler), keeping the slots' random order. The
probabilities are π_k ω_k for the class weights ω of
:mod:`lpm.core.weighting` (instance ↔ none, class-balanced ↔ inverse,
sqrt ↔ sqrt), so re-sampling with q equals re-weighting with ω in
expectation.
"""
from __future__ import annotations

import numpy as np

from lpm.core.errors import check_choice

from lpm.core.weighting import class_weights

SAMPLERS = ("instance", "class-balanced", "sqrt", "progressive")
#: the class-weight scheme whose re-weighting each fixed sampler equals
SAMPLER_WEIGHTS = {"instance": "none", "class-balanced": "inverse", "sqrt": "sqrt"}


def class_probabilities(sampler: str, counts, epoch: int = 0, epochs: int = 1) -> np.ndarray:
    """q (K,) of ``sampler`` in 0-based ``epoch`` of a run of ``epochs`` (``progressive`` only uses them)."""
    check_choice("sampler", sampler, SAMPLERS)
    n = np.asarray(counts, dtype=np.float64)
    pi = n / n.sum()
    if sampler == "progressive":
        t = min(max(epoch, 0), epochs) / epochs
        return (1.0 - t) * pi + t * (pi * class_weights("inverse", n))
    return pi * class_weights(SAMPLER_WEIGHTS[sampler], n)


def epoch_order(rng: np.random.Generator, labels: np.ndarray, num_classes: int, sampler: str = "instance",
                epoch: int = 0, epochs: int = 1) -> np.ndarray:
    """Sample indices (N,) of one epoch; ``instance`` is ``rng.permutation(N)``."""
    labels = np.asarray(labels)
    N = len(labels)
    if sampler == "instance":
        return rng.permutation(N)
    counts = np.bincount(labels, minlength=num_classes)
    present = counts > 0
    q = np.zeros(num_classes)
    q[present] = class_probabilities(sampler, counts[present], epoch, epochs)
    slots = rng.choice(num_classes, size=N, p=q / q.sum())          # the class of each draw
    order = np.empty(N, dtype=np.int64)
    members = [np.flatnonzero(labels == k) for k in range(num_classes)]
    for k in np.flatnonzero(present):
        where = np.flatnonzero(slots == k)
        if len(where) == 0:
            continue
        passes = -(-len(where) // counts[k])
        cycle = np.concatenate([members[k][rng.permutation(counts[k])] for _ in range(passes)])
        order[where] = cycle[:len(where)]
    return order
