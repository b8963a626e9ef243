import numpy as np
import pytest
import torch

from lpm.core.etf import simplex_etf
from lpm.core.geometry import (ClassificationStats, ClassStats, NearestMeanAgreement, class_groups, collapse_index,
                               measure, nc1)


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


def test_class_balanced_nc1_differs_from_the_sample_weighted_one_by_hand():
    """Two classes on the y axis: 8 samples at (0, 1 ± 0.1), 2 samples at (0, −1 ± 1).
    M̃ = [[0, 1], [0, −1]] has one singular value √2 along y, so NC1 = (Σ_W)_yy / 2:
    sample-weighted (8·0.01 + 2·1)/10 / 2 = 0.104, class-balanced (0.01 + 1)/2 / 2 = 0.2525."""
    X = np.array([[0, 1.1], [0, 0.9]] * 4 + [[0, 0.0], [0, -2.0]])
    y = np.array([0] * 8 + [1] * 2)
    stats = ClassStats(2, 2, class_counts=[8, 2])
    stats.update(X[:5], y[:5])
    stats.update(X[5:], y[5:])
    np.testing.assert_allclose(stats.within_cov, [[0, 0], [0, 0.208]], atol=1e-15)
    np.testing.assert_allclose(stats.balanced_within_cov, [[0, 0], [0, 0.505]], atol=1e-15)
    m = measure(stats.means, np.eye(2), within_cov=stats.within_cov, balanced_within_cov=stats.balanced_within_cov)
    np.testing.assert_allclose([m["nc1"], m["nc1_balanced"]], [0.104, 0.2525], rtol=1e-12)
    assert m["nc1_rank"] == 1
    assert ClassStats(2, 2).balanced_within_cov is None                     # counts not given
    partial = ClassStats(2, 2, class_counts=[8, 2])
    partial.update(X[:5], y[:5])
    assert partial.balanced_within_cov is None                                # the pass saw other counts


def test_nc1_rank_cut_off_ignores_nearly_merged_means():
    """Two of three class means 1e-5 apart: Σ_B's second eigenvalue is ~1e-10 of the first, below
    the relative cut-off, so NC1 stays finite and equals the value on the one separating direction."""
    means = np.array([[1.0, 0.0], [-0.5, 1e-5], [-0.5, -1e-5]])
    within = np.diag([0.01, 0.01])
    C = means - means.mean(axis=0)
    value = nc1(within, C)
    s = np.linalg.svd(C, compute_uv=False)[0]
    np.testing.assert_allclose(value, 0.01 / s**2, rtol=1e-9)               # (1/K)·K·σ²/s² on one direction
    assert nc1(within, C, rank_rtol=1e-14) > 1e6                               # without the cut-off it explodes


def test_angle_only_index_ignores_shrinking():
    """A fixed ETF under the class-average budget at R = 100 keeps every direction exactly m_k
    while the minority norms shrink: the norm-aware index reads ≈ 0.08, the angle-only one 1."""
    from lpm import Problem, solve
    from lpm.core.geometry import angle_collapse_index

    p = Problem.from_profile(K=10, ratio=100, classifier="fixed-etf", budget="class-average")
    H = solve(p).H
    minority = np.arange(5, 10)
    assert collapse_index(H, minority) == pytest.approx(0.0803, abs=1e-3)
    assert angle_collapse_index(H, minority) == pytest.approx(1.0, abs=1e-12)
    merged = H.copy()
    merged[minority] = 0.3 * H[5]                                              # merged directions
    assert angle_collapse_index(merged, minority) == pytest.approx(0.0, abs=1e-12)
    vanished = H.copy()
    vanished[minority] = 0.0                                                   # no direction left
    assert angle_collapse_index(vanished, minority) is None


def test_geometry_of_a_k1000_solution_fits_in_o_k2_memory():
    """measure_solution at K = 1000 (d = 1000): peak traced memory below 25 K² floats (200 MB).
    A pairwise-difference array of the 500 minority rows alone would take 2 GB."""
    import tracemalloc

    from lpm import Problem
    from lpm.core.geometry import measure_solution
    from lpm.core.solution import Solution, Status

    K = 1000
    rng = np.random.default_rng(0)
    W, H = rng.standard_normal((K, K)), rng.standard_normal((K, K))
    H[600:] = H[600]                                                           # merged minority rows
    sol = Solution(problem=Problem.from_profile(K=K, ratio=1e4), W=W, H=H, objective=0.0, solver="test",
                   status=Status.OPTIMAL)
    tracemalloc.start()
    try:
        m = measure_solution(sol, center="none")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 25 * K * K * 8, f"peak {peak / 2**20:.0f} MiB"
    assert m["feature_angle_collapse_index"] > 0 and np.isfinite(m["collapse_index"])


def test_mean_pairwise_distance_counts_identical_rows_with_their_multiplicity():
    """Merged rows (bitwise equal, as solvers return them) give exact zeros, and the mean over
    all pairs equals the brute-force mean, for large offsets too (no cancellation)."""
    from lpm.core.geometry.metrics import mean_pairwise_distance

    rng = np.random.default_rng(3)
    base = rng.standard_normal((4, 6))
    V = np.vstack([base[[0, 0, 0, 1, 2, 2, 3]], base[1] + 1e-9]) + 1e6   # far from the origin
    brute = np.mean([np.linalg.norm(V[a] - V[b]) for a in range(len(V)) for b in range(a + 1, len(V))])
    assert mean_pairwise_distance(V) == pytest.approx(brute, rel=1e-9)
    assert mean_pairwise_distance(np.repeat(base[:1], 5, axis=0)) == 0.0
    assert mean_pairwise_distance(np.zeros((500, 1000))) == 0.0
