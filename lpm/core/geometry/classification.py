"""Classification metrics as long-tail papers report them (theory.md §8.7, docs/evaluation.md).

Everything here works on tallies that add over batches and processes
(:class:`lpm.core.geometry.streaming.ClassificationStats` keeps them):

* :func:`shot_groups` — many/medium/few-shot classes by training count: the
  thresholds of [Liu et al. 2019] (more than 100, 20–100, fewer than 20)
  where every group holds a class, count thirds otherwise; the split's name
  goes with every table;
* :func:`group_accuracies`, :func:`balanced_accuracy` — accuracy pooled over
  the test samples of a group, and the mean of the per-class accuracies;
* :func:`calibration_errors`, :func:`reliability` — ECE and MCE over
  equal-width confidence bins [Guo et al. 2017], and the diagram's bars;
* :func:`normalised_confusion` — the row-normalised confusion matrix with
  classes sorted by training count.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .streaming import as_float_array

#: many-shot: more than this many training samples; few-shot: fewer than FEW_BELOW [Liu et al. 2019]
MANY_ABOVE, FEW_BELOW = 100, 20
SHOT_NAMES = ("many", "medium", "few")
SHOT_THRESHOLDS = (f"thresholds (many > {MANY_ABOVE}, medium {FEW_BELOW}-{MANY_ABOVE}, few < {FEW_BELOW} "
                   "training samples)")
SHOT_THIRDS = "count thirds (classes ranked by training count, split into three near-equal groups)"


def shot_groups(train_counts) -> tuple[np.ndarray, tuple[str, ...], str]:
    """(ids (K,), ("many", "medium", "few"), split): the many/medium/few-shot group of each class.

    With the usual thresholds when each of the three groups holds at least one class (ImageNet-LT,
    CIFAR-100-LT at R = 100); otherwise (a 10-class set, whose counts never fall below 20, say) by
    count thirds: classes sorted by decreasing training count (ties by class index) and cut into
    groups of ⌈K/3⌉, ⌈(K−⌈K/3⌉)/2⌉ and the rest. ``split`` names the rule used
    (:data:`SHOT_THRESHOLDS` or :data:`SHOT_THIRDS`)."""
    c = as_float_array(train_counts).ravel()
    ids = np.where(c > MANY_ABOVE, 0, np.where(c >= FEW_BELOW, 1, 2))
    if len(np.unique(ids)) == 3:
        return ids, SHOT_NAMES, SHOT_THRESHOLDS
    K = len(c)
    order = np.lexsort((np.arange(K), -c))       # decreasing count, then class index
    first = -(-K // 3)
    second = first + -(-(K - first) // 2)
    ids = np.empty(K, dtype=int)
    ids[order[:first]], ids[order[first:second]], ids[order[second:]] = 0, 1, 2
    return ids, SHOT_NAMES, SHOT_THIRDS


def group_accuracies(correct, total, ids, names, suffix: str = "_accuracy") -> dict[str, float | None]:
    """``<name><suffix>``: correct / total pooled over the classes of each group (the accuracy on
    that group's test samples; ``None`` when it has none)."""
    correct, total, ids = as_float_array(correct), as_float_array(total), np.asarray(ids)
    out: dict[str, float | None] = {}
    for g, name in enumerate(names):
        n = total[ids == g].sum()
        out[f"{name}{suffix}"] = float(correct[ids == g].sum() / n) if n else None
    return out


def balanced_accuracy(correct, total) -> float | None:
    """Mean over the classes with samples of their accuracy (the mean per-class recall)."""
    correct, total = as_float_array(correct), as_float_array(total)
    seen = total > 0
    return float(np.mean(correct[seen] / total[seen])) if seen.any() else None


def calibration_errors(bin_count, bin_conf, bin_correct) -> tuple[float, float | None]:
    """(ECE, MCE) of equal-width confidence bins [Guo et al. 2017]:

        ECE = Σ_b (n_b/n) |acc_b − conf_b|,   MCE = max_{b: n_b > 0} |acc_b − conf_b|,

    from per-bin sample counts n_b, summed confidences and summed hits. ECE is 0 and MCE ``None``
    without samples."""
    n_b, conf, hit = (as_float_array(a) for a in (bin_count, bin_conf, bin_correct))
    n = n_b.sum()
    gaps = np.abs(conf - hit)                      # n_b |conf_b − acc_b|
    ece = float(gaps.sum() / n) if n else 0.0
    seen = n_b > 0
    mce = float(np.max(gaps[seen] / n_b[seen])) if seen.any() else None
    return ece, mce


def reliability(bin_count, bin_conf, bin_correct) -> dict[str, Any]:
    """The reliability diagram's data: bin edges (B+1,), and per bin the count, mean confidence
    and accuracy (NaN for an empty bin)."""
    n_b, conf, hit = (as_float_array(a) for a in (bin_count, bin_conf, bin_correct))
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"edges": np.linspace(0.0, 1.0, len(n_b) + 1), "count": n_b,
                "confidence": np.where(n_b > 0, conf / np.maximum(n_b, 1), np.nan),
                "accuracy": np.where(n_b > 0, hit / np.maximum(n_b, 1), np.nan)}


def normalised_confusion(confusion, train_counts) -> tuple[np.ndarray, np.ndarray]:
    """(C, order): the confusion matrix (rows true class, columns predicted) with each row divided
    by its total (a row without samples stays 0), rows and columns in ``order``: classes by
    decreasing training count, ties by class index. The diagonal of C is the per-class accuracy."""
    M = as_float_array(confusion)
    c = as_float_array(train_counts).ravel()
    order = np.lexsort((np.arange(len(c)), -c))
    rows = M.sum(axis=1, keepdims=True)
    C = np.where(rows > 0, M / np.maximum(rows, 1e-300), 0.0)
    return C[np.ix_(order, order)], order
