import numpy as np
import pytest
import torch

from lpm.core.etf import simplex_etf
from lpm.core.geometry import (
    ClassificationStats,
    ClassStats,
    NearestMeanAgreement,
    class_groups,
    collapse_index,
    measure,
    nc1,
)


def _samples(K=4, d=6, n=50, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    means = 3 * simplex_etf(K, d, seed).T
    y = np.repeat(np.arange(K), n)
    return means[y] + noise * rng.standard_normal((K * n, d)), y, means


def test_class_stats_streams_to_the_batch_answer():
    X, y, _ = _samples()
    X = X + 1e4  # a large offset: raw second moments would cancel badly
    stats = ClassStats(4, 6)
    perm = np.random.default_rng(1).permutation(len(y))
    for chunk in np.array_split(perm, 7):
        stats.update(torch.tensor(X[chunk]), torch.tensor(y[chunk]))
    mu = np.stack([X[y == k].mean(0) for k in range(4)])
    D = X - mu[y]
    np.testing.assert_allclose(stats.means, mu, rtol=1e-12)
    np.testing.assert_allclose(stats.within_cov, D.T @ D / len(y), atol=1e-9)
    np.testing.assert_allclose(stats.global_mean, X.mean(0), rtol=1e-12)


def test_nc1_matches_definition_and_is_never_negative():
    X, y, _ = _samples(noise=0.5)
    stats = ClassStats(4, 6)
    stats.update(X, y)
    C = stats.means - stats.means.mean(0)
    sigma_b = C.T @ C / 4
    expected = np.trace(stats.within_cov @ np.linalg.pinv(sigma_b)) / 4
    np.testing.assert_allclose(nc1(stats.within_cov, C), expected, rtol=1e-8)
    # A within-covariance with a tiny negative eigenvalue from round-off stays >= 0.
    assert nc1(-1e-18 * np.eye(6), C) == 0.0


def test_etf_geometry_metrics_are_zero_or_exact():
    M = simplex_etf(5, 7, 0).T
    m = measure(2 * M, M, majority=2, within_cov=np.zeros((7, 7)))
    for key in ("nc1", "nc2", "nc2_classifier", "nc3", "nc2_equinorm_features", "nc2_equiangle_features"):
        assert m[key] == pytest.approx(0.0, abs=1e-12), key
    for key in ("classifier_minority_cos", "feature_minority_cos", "feature_cross_cos", "y22_cos_means_mean"):
        assert m[key] == pytest.approx(-0.25, abs=1e-12), key
    assert m["collapse_index"] == pytest.approx(1.0, abs=1e-12)
    assert m["y22_self_cos_mean"] == pytest.approx(1.0, abs=1e-12)


def test_collapse_index_is_norm_aware():
    W = simplex_etf(6, 6, 0).T.copy()
    W[3:] = 1e-14 * W[3:]  # minority rows shrink to ~0
    m = measure(W, W, majority=3)
    assert m["collapse_index"] == pytest.approx(0.0, abs=1e-12)
    assert m["classifier_minority_cos"] is None      # cosines of ~0 vectors are not reported
    assert m["classifier_norm_ratio"] == pytest.approx(0.0, abs=1e-12)
    assert collapse_index(np.zeros((4, 3)), [2, 3]) is None


def test_classification_stats_and_ece():
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [2.0, 0.0]])
    labels = np.array([0, 1, 1, 1])
    cs = ClassificationStats(2, groups=(np.array([0, 1]), ("head", "tail")))
    cs.update(logits[:2], labels[:2])
    cs.update(torch.tensor(logits[2:]), torch.tensor(labels[2:]))
    r = cs.result()
    assert r["accuracy"] == 0.5 and r["per_class_accuracy"] == [1.0, 1 / 3]
    assert r["head_accuracy"] == 1.0 and r["tail_accuracy"] == pytest.approx(1 / 3)
    conf = np.exp(2) / (1 + np.exp(2))  # every sample has this confidence: one bin
    assert r["ece"] == pytest.approx(abs(conf - 0.5), abs=1e-12)


def test_nearest_mean_agreement():
    means = np.array([[1.0, 0.0], [-1.0, 0.0]])
    nc4 = NearestMeanAgreement(means)
    nc4.update(np.array([[0.9, 0.0], [-0.8, 0.1]]), np.array([[1.0, 0.0], [1.0, 0.0]]))
    assert nc4.result() == 0.5


def test_class_groups_follow_the_paper():
    ids, names = class_groups(10)
    assert names == ("head", "medium", "tail") and list(ids) == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    ids, _ = class_groups(100)
    assert (ids == 0).sum() == 36 and (ids == 1).sum() == 35 and (ids == 2).sum() == 29
    ids, names = class_groups(counts=[500, 100, 20, 19], scheme="count")
    assert names == ("many", "medium", "few")
    assert list(ids) == [0, 1, 1, 2]
