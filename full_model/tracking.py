"""Per-epoch collapse geometry and accuracy through :mod:`lpm.core.geometry` (theory.md §8).

One tracking step makes streaming passes in eval mode (no augmentation):

1. training split → :class:`ClassStats` of the features h (class means μ_k,
   within-class covariance Σ_W, per-class variances for CDNV) and
   :class:`ClassificationStats` (train accuracy: top-1, top-5, balanced, per
   class, per group and many/medium/few-shot; ECE and MCE);
2. training split again, with the means of pass 1 → :class:`NearestMeanAgreement`
   (NC4 and its agreement rates, skipped when ``nc4_on_train`` is off);
3. test split → the same accuracies and calibration on the test set, its
   confusion matrix and reliability bins (kept in the snapshot), and NC4 of
   test samples against the training means (``test_nc4``).

The many/medium/few-shot split comes from the training counts
(:func:`lpm.core.geometry.shot_groups`); ``shot_split`` in each row names it.

Under several processes each pass covers one shard and the tallies are
merged exactly (:mod:`full_model.distributed`). Then
:func:`lpm.core.geometry.measure` turns (μ, W, counts, Σ_W) into NC1–NC3, the
[Y22] statistics, group cosines and norms, and the collapse index. No pass
keeps more than one batch of features.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lpm.core.geometry import (ClassificationStats, ClassStats, NearestMeanAgreement, class_groups, measure,
                               shot_groups)

from .distributed import (DistContext, all_sum, reduce_agreement, reduce_class_stats, reduce_class_variances,
                          reduce_classification)
from .errors import NonFiniteOutputs


@dataclass
class GeometrySnapshot:
    """What the last tracking step saw (saved to final_geometry.npz)."""

    class_means: np.ndarray       # (K, d)
    classifier: np.ndarray        # (K, d)
    class_counts: np.ndarray      # (K,) samples per class in the pass
    within_cov: np.ndarray        # (d, d)
    train_per_class_accuracy: list
    test_per_class_accuracy: list
    class_variances: np.ndarray | None = None   # (K,) tr Cov_k of the training features
    test_confusion: np.ndarray | None = None    # (K, K) rows true, columns predicted (None above 1000 classes)
    test_bins: dict | None = None               # confidence-bin tallies: count, confidence, correct (15,)
    shot_split: str | None = None


def groups_for(num_classes: int, counts, scheme: str):
    """Head/medium/tail ids by class index, or many/medium/few by count (theory.md §7)."""
    if scheme == "count":
        return class_groups(counts=np.asarray(counts), scheme="count")
    return class_groups(num_classes)


def minority_start(num_classes: int, groups, scheme: str, profile: str, majority: int | None) -> int | None:
    """K_A for :func:`measure`: the step profile's majority, or the first tail class
    (head and medium form the majority); ``None`` when groups are not index ranges."""
    if scheme == "count":
        return None
    if profile == "step":
        return majority if majority is not None else num_classes // 2
    return int(np.sum(groups[0] < 2))


@torch.no_grad()
def track(net, train_loader, test_loader, *, num_classes: int, groups, majority, ctx: DistContext,
          autocast, nc4_on_train: bool = True, center: str = "class-means", class_counts=None):
    """Run the passes above; return (flat JSON-safe metrics, GeometrySnapshot).

    Raises :class:`full_model.errors.NonFiniteOutputs` (on every process) when the network's
    features or logits on a split are not finite, since no metric of them would mean anything."""
    was_training = net.training
    net.eval()
    try:
        dim = net.get_classifier().shape[1]
        stats = ClassStats(num_classes, dim, class_counts=class_counts)  # counts known: balanced NC1 too
        shots = None if class_counts is None else shot_groups(class_counts)
        train_acc = ClassificationStats(num_classes, groups, shots=shots)
        for h, z, y in _finite_batches(net, train_loader, autocast, ctx, "training"):
            stats.update(h, y)
            train_acc.update(z, y)
        counts, means, within, balanced = reduce_class_stats(ctx, stats)
        variances = reduce_class_variances(ctx, stats, means)
        reduce_classification(ctx, train_acc)
        agree_train, agree_test = NearestMeanAgreement(means), NearestMeanAgreement(means)
        if nc4_on_train:
            for h, z, y in _finite_batches(net, train_loader, autocast, ctx, "training"):
                agree_train.update(h, z, y)
            reduce_agreement(ctx, agree_train)
        test_acc = ClassificationStats(num_classes, groups, shots=shots, confusion=True)
        for h, z, y in _finite_batches(net, test_loader, autocast, ctx, "test"):
            test_acc.update(z, y)
            agree_test.update(h, z, y)
        reduce_classification(ctx, test_acc)
        reduce_agreement(ctx, agree_test)
    finally:
        net.train(was_training)
    W = net.get_classifier().detach().double().cpu().numpy()
    if not np.isfinite(W).all():
        raise NonFiniteOutputs("the classifier W holds values that are not finite")
    metrics = {**_prefixed("train", train_acc.result()), **_prefixed("test", test_acc.result())}
    metrics["shot_split"] = None if shots is None else shots[2]
    metrics["nc4"] = agree_train.result() if nc4_on_train else None
    metrics["nc4_agreement"] = agree_train.agreement() if nc4_on_train else None
    metrics["nc4_class_agreement"] = agree_train.class_mean_agreement() if nc4_on_train else None
    metrics["test_nc4"] = agree_test.result()
    metrics["test_nc4_agreement"] = agree_test.agreement()
    metrics["test_nc4_class_agreement"] = agree_test.class_mean_agreement()
    metrics.update(measure(means, W, counts=counts, within_cov=within, balanced_within_cov=balanced,
                           class_variances=variances, majority=majority, groups=groups, center=center))
    bins = {"count": test_acc.bin_count, "confidence": test_acc.bin_conf, "correct": test_acc.bin_correct}
    snap = GeometrySnapshot(means, W, counts, within, metrics["train_per_class_accuracy"],
                            metrics["test_per_class_accuracy"], variances, test_acc.confusion, bins,
                            metrics["shot_split"])
    return metrics, snap


def _finite_batches(net, loader, autocast, ctx: DistContext, split: str):
    """(h, z, y) of every batch of ``loader``; batches whose features or logits are not finite are
    counted and skipped, and after the pass every process raises NonFiniteOutputs if any had one."""
    bad = 0
    for x, y in loader:
        h, z = _forward(net, x, autocast)
        if not (torch.isfinite(h).all() and torch.isfinite(z).all()):
            bad += 1
            continue
        yield h, z, y
    if all_sum(ctx, np.array([bad]))[0] > 0:
        raise NonFiniteOutputs(f"the network's features or logits on the {split} split are not finite")


def _forward(net, x, autocast):
    with autocast():
        h, z = net(x, with_features=True)
    return h.float(), z.float()


def _prefixed(split: str, result: dict) -> dict:
    return {f"{split}_{key}": value for key, value in result.items()}
