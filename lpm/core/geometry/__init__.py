"""Collapse geometry, defined once for the simulator and for deep runs (theory.md §8).

* :mod:`.metrics` — NC1–NC3, [Y22]'s statistics, group cosines and norms,
  the collapse indices; :func:`measure` and :func:`measure_solution`;
* :mod:`.streaming` — batch-by-batch accumulators for deep runs;
* :mod:`.classification` — top-k, balanced and many/medium/few-shot accuracy,
  ECE/MCE and the reliability diagram, the sorted confusion matrix;
* :mod:`.groups` — head/medium/tail and count-based class groups;
* :mod:`.distances` — Gram distances, the ETF reference, cosine matrices.
"""
from __future__ import annotations

from .distances import (cosine_matrix, etf_reference, geometry_distances, gram_distance, gram_distance_to_etf,
                        max_other_cosine, normalised_gram, unit_rows)
from .classification import (SHOT_THIRDS, SHOT_THRESHOLDS, balanced_accuracy, calibration_errors, group_accuracies,
                             normalised_confusion, reliability, shot_groups)
from .groups import class_groups
from .metrics import (CENTERS, NC1_RANK_RTOL, angle_collapse_index, between_class_basis, cdnv, centre_means,
                      collapse_index, gnc2, mean_pairwise_distance, measure, measure_solution, minority_geometry, nc1,
                      nc1_trace_quotient, per_class_geometry, pinv_rank_rtol, unc3)
from .streaming import CONFUSION_MAX_CLASSES, ClassificationStats, ClassStats, NearestMeanAgreement

__all__ = ["CENTERS", "CONFUSION_MAX_CLASSES", "ClassStats", "ClassificationStats", "NC1_RANK_RTOL",
           "NearestMeanAgreement", "SHOT_THIRDS", "SHOT_THRESHOLDS", "angle_collapse_index", "balanced_accuracy",
           "between_class_basis", "calibration_errors", "cdnv", "centre_means", "class_groups", "collapse_index",
           "cosine_matrix", "etf_reference", "geometry_distances", "gnc2", "gram_distance", "gram_distance_to_etf",
           "group_accuracies", "max_other_cosine", "mean_pairwise_distance", "measure", "measure_solution",
           "minority_geometry", "nc1", "nc1_trace_quotient", "normalised_confusion", "normalised_gram",
           "per_class_geometry", "pinv_rank_rtol", "reliability", "shot_groups", "unc3", "unit_rows"]
