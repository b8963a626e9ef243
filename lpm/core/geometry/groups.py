"""Class groups for group-wise metrics (theory.md §7, §8.6)."""
from __future__ import annotations

import numpy as np


def class_groups(num_classes: int | None = None, counts=None, scheme: str = "index"):
    """Head/medium/tail group ids (K,) and names (theory.md §7).

    ``index``: [0,3)/[3,7)/[7,10) for 10 classes, [0,36)/[36,71)/[71,100) for
    100, and the same proportions otherwise. ``count``: many (>100),
    medium (20–100), few (<20) samples.
    """
    if scheme == "count":
        c = np.asarray(counts, dtype=np.float64)
        ids = np.where(c > 100, 0, np.where(c >= 20, 1, 2))
        return ids, ("many", "medium", "few")
    K = int(num_classes if num_classes is not None else len(counts))
    if K == 10:
        edges = (3, 7)
    elif K == 100:
        edges = (36, 71)
    else:
        edges = (round(0.36 * K), round(0.71 * K))
    idx = np.arange(K)
    return np.where(idx < edges[0], 0, np.where(idx < edges[1], 1, 2)), ("head", "medium", "tail")
