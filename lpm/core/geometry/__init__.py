"""Collapse geometry, defined once for the simulator and for deep runs (theory.md §8).

* :mod:`.metrics` — NC1–NC3, [Y22]'s statistics, group cosines and norms,
  the collapse indices; :func:`measure` and :func:`measure_solution`;
* :mod:`.streaming` — batch-by-batch accumulators for deep runs;
* :mod:`.groups` — head/medium/tail and count-based class groups;
* :mod:`.distances` — Gram distances, the ETF reference, cosine matrices.
"""
from __future__ import annotations

from .distances import (cosine_matrix, etf_reference, geometry_distances, gram_distance, gram_distance_to_etf,
                        max_other_cosine, normalised_gram, unit_rows)
from .groups import class_groups
from .metrics import (CENTERS, NC1_RANK_RTOL, angle_collapse_index, between_class_basis, centre_means, collapse_index,
                      mean_pairwise_distance, measure, measure_solution, minority_geometry, nc1,
                      per_class_geometry)
from .streaming import ClassificationStats, ClassStats, NearestMeanAgreement

__all__ = ["CENTERS", "ClassStats", "ClassificationStats", "NC1_RANK_RTOL", "NearestMeanAgreement",
           "angle_collapse_index", "between_class_basis", "centre_means", "class_groups", "collapse_index",
           "cosine_matrix", "etf_reference", "geometry_distances", "gram_distance", "gram_distance_to_etf",
           "max_other_cosine", "mean_pairwise_distance", "measure", "measure_solution", "minority_geometry",
           "nc1", "normalised_gram", "per_class_geometry", "unit_rows"]
