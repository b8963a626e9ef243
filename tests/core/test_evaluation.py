"""Evaluation metrics and the NC libraries' collapse measures, each against a case computed by hand
(docs/evaluation.md, theory.md §8)."""
import math

import numpy as np
import pytest

from lpm.core.errors import LPMInputError
from lpm.core.etf import simplex_etf
from lpm.core.geometry import (SHOT_THIRDS, SHOT_THRESHOLDS, ClassificationStats, ClassStats, NearestMeanAgreement,
                               balanced_accuracy, calibration_errors, cdnv, centre_means, gnc2, group_accuracies,
                               measure, nc1, nc1_trace_quotient, normalised_confusion, pinv_rank_rtol, reliability,
                               shot_groups, unc3)


# ---------------------------------------------------------------------- classification
def test_top_k_balanced_accuracy_confusion_and_calibration_by_hand():
    """Five samples, three classes, top-2. Confidences: c1 = softmax(3, 2, 1)₀, c2 = softmax(0, 0, 5)₂,
    c3 = softmax(1, 1, 0)₀ (a tie: argmax takes class 0), in bins 9, 14 and 6 of 15."""
    logits = np.array([[3.0, 2, 1], [3, 2, 1], [3, 2, 1], [0, 0, 5], [1, 1, 0]])
    labels = np.array([0, 1, 2, 2, 1])
    cs = ClassificationStats(3, top_k=2, confusion=True)
    cs.update(logits[:2], labels[:2])
    cs.update(logits[2:], labels[2:])
    r = cs.result()
    assert r["accuracy"] == pytest.approx(2 / 5)          # samples 1 and 4; the tie of sample 5 goes to class 0
    assert r["top2_accuracy"] == pytest.approx(4 / 5)     # all but sample 3 (two classes score above class 2)
    assert r["per_class_accuracy"] == [1.0, 0.0, 0.5]
    assert r["balanced_accuracy"] == pytest.approx((1 + 0 + 0.5) / 3)
    np.testing.assert_array_equal(cs.confusion, [[1, 0, 0], [2, 0, 0], [1, 0, 1]])
    c1 = 1 / (1 + math.exp(-1) + math.exp(-2))
    c2 = 1 / (1 + 2 * math.exp(-5))
    c3 = math.e / (2 * math.e + 1)
    assert [int(c * 15) for c in (c1, c2, c3)] == [9, 14, 6]
    # ECE = Σ_b |Σ conf − Σ hits| / n: bin 9 holds c1 three times with one hit
    assert r["ece"] == pytest.approx((abs(3 * c1 - 1) + (1 - c2) + c3) / 5, abs=1e-15)
    assert r["mce"] == pytest.approx(max(abs(c1 - 1 / 3), 1 - c2, c3), abs=1e-15)
    assert r["mce"] == pytest.approx(c3, abs=1e-15)       # bin 6: confidence c3, accuracy 0
    rel = reliability(cs.bin_count, cs.bin_conf, cs.bin_correct)
    assert rel["count"][[6, 9, 14]].tolist() == [1, 3, 1] and rel["count"].sum() == 5
    assert rel["accuracy"][9] == pytest.approx(1 / 3) and rel["confidence"][9] == pytest.approx(c1)
    assert np.isnan(rel["accuracy"][0]) and rel["edges"][[0, 1, -1]] == pytest.approx([0, 1 / 15, 1])


def test_top5_is_the_default_and_capped_at_k():
    assert ClassificationStats(100).top_k == 5 and ClassificationStats(3).top_k == 3
    cs = ClassificationStats(7)
    cs.update(np.array([[6.0, 5, 4, 3, 2, 1, 0], [6.0, 5, 4, 3, 2, 1, 0]]), np.array([4, 5]))
    assert cs.result()["top5_accuracy"] == 0.5 and cs.result()["accuracy"] == 0.0


def test_calibration_without_samples_and_balanced_accuracy_skips_empty_classes():
    assert calibration_errors(np.zeros(15), np.zeros(15), np.zeros(15)) == (0.0, None)
    assert balanced_accuracy([3, 0, 0], [4, 0, 2]) == pytest.approx((0.75 + 0.0) / 2)
    assert balanced_accuracy([0, 0], [0, 0]) is None


def test_shot_groups_use_the_thresholds_when_every_group_has_a_class():
    ids, names, split = shot_groups([500, 150, 100, 60, 20, 19, 5])
    assert names == ("many", "medium", "few") and split == SHOT_THRESHOLDS
    assert ids.tolist() == [0, 0, 1, 1, 1, 2, 2]         # > 100 | 20–100 | < 20
    assert "many > 100" in split and "few < 20" in split


def test_shot_groups_fall_back_to_count_thirds():
    cifar10 = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]   # CIFAR-10-LT at R = 100: no class below 20
    ids, _, split = shot_groups(cifar10)
    assert split == SHOT_THIRDS and ids.tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]   # ⌈10/3⌉ = 4, then 3 and 3
    ids, _, _ = shot_groups([10, 30, 30, 5, 20])         # by count, ties by index: classes 1, 2 | 4, 0 | 3
    assert ids.tolist() == [1, 0, 0, 2, 1]


def test_group_accuracies_pool_the_samples_of_a_group():
    out = group_accuracies([9, 1, 0], [10, 10, 0], np.array([0, 0, 1]), ("many", "few"), suffix="_shot_accuracy")
    assert out == {"many_shot_accuracy": pytest.approx(0.5), "few_shot_accuracy": None}
    cs = ClassificationStats(3, shots=shot_groups([500, 50, 5]))
    cs.update(np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 0, 1.0]]), np.array([0, 1, 2]))
    r = cs.result()
    assert (r["many_shot_accuracy"], r["medium_shot_accuracy"], r["few_shot_accuracy"]) == (1.0, 0.0, 1.0)


def test_normalised_confusion_sorts_classes_by_training_count():
    C, order = normalised_confusion([[2, 0, 0], [1, 3, 0], [0, 0, 0]], train_counts=[5, 50, 10])
    assert order.tolist() == [1, 2, 0]
    np.testing.assert_allclose(C, [[0.75, 0.0, 0.25], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


# ---------------------------------------------------------------------- NC4
def test_nc4_agreement_rates_and_ties_by_hand():
    """Classes 1 and 2 share one mean: the nearest mean is then class 1 (the lowest index)."""
    agree = NearestMeanAgreement(np.array([[1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]]))
    H = np.array([[-0.9, 0.0], [-0.9, 0.0], [0.9, 0.0], [1.1, 0.0]])
    Z = np.array([[0, 1.0, 0], [0, 0, 1.0], [1.0, 0, 0], [1.0, 0, 0]])   # argmax logits 1, 2, 0, 0
    agree.update(H, Z, np.array([1, 2, 0, 0]))
    assert agree.result() == 0.25                          # only sample 2: nearest mean 1 (tie), logit 2
    assert agree.agreement() == 0.75
    assert agree.class_mean_agreement() == pytest.approx((1 + 1 + 0) / 3)   # classes 0, 1, 2


# ---------------------------------------------------------------------- NC1 and its variants
def test_nc1_pinv_beside_the_cut_one_on_nearly_merged_means_by_hand():
    """K = 3 in d = 2: μ = (1, 0), (−1, ε), (−1, −ε), Σ_W = I. Centred by the class means,
    Σ_B = diag(8/9, 2ε²/3): the full pseudo-inverse gives NC1 = (9/8 + 3/(2ε²))/3, the cut-off
    (eigenvalue ratio 3ε²/4 < 1e-6) keeps one direction, NC1 = (9/8)/3."""
    eps = 1e-4
    means = np.array([[1.0, 0.0], [-1.0, eps], [-1.0, -eps]])
    m = measure(means, means, within_cov=np.eye(2))
    assert m["nc1_rank"] == 1 and m["nc1_pinv_rank"] == 2
    assert m["nc1"] == pytest.approx(9 / 8 / 3, rel=1e-12)
    assert m["nc1_pinv"] == pytest.approx((9 / 8 + 3 / (2 * eps**2)) / 3, rel=1e-8)
    assert m["nc1_trace_quotient"] == pytest.approx(2 / (8 / 9 + 2 * eps**2 / 3), rel=1e-12)
    wide = measure(means * [1, 1e2], means, within_cov=np.eye(2))      # ε = 1e-2: both keep both directions
    assert wide["nc1_rank"] == wide["nc1_pinv_rank"] == 2 and wide["nc1"] == pytest.approx(wide["nc1_pinv"])


def test_nc1_pinv_equals_numpy_pinv():
    rng = np.random.default_rng(3)
    K, d = 6, 9
    means = rng.standard_normal((K, d))
    A = rng.standard_normal((d, d))
    within = A @ A.T / d
    C = centre_means(means)
    expected = np.trace(within @ np.linalg.pinv(C.T @ C / K)) / K
    m = measure(means, rng.standard_normal((K, d)), within_cov=within)
    assert m["nc1_pinv"] == pytest.approx(expected, rel=1e-9) and m["nc1_pinv_rank"] == K - 1
    assert nc1(within, C, rank_rtol=pinv_rank_rtol(K, d)) == pytest.approx(expected, rel=1e-9)
    assert nc1_trace_quotient(within, C) == pytest.approx(np.trace(within) / np.trace(C.T @ C / K), rel=1e-12)


def test_cdnv_by_hand():
    """Means (0,0), (2,0), (0,4), variances 1, 2, 3: pairs (1+2)/(2·4), (1+3)/(2·16), (2+3)/(2·20)."""
    means = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
    assert cdnv(means, [1.0, 2.0, 3.0]) == pytest.approx((3 / 8 + 4 / 32 + 5 / 40) / 3, rel=1e-14)
    assert cdnv(means + 7.0, [1.0, 2.0, 3.0]) == pytest.approx((3 / 8 + 4 / 32 + 5 / 40) / 3, rel=1e-12)
    m = measure(means, means, class_variances=[1.0, 2.0, 3.0])
    assert m["cdnv"] == pytest.approx(cdnv(means, [1.0, 2.0, 3.0]))
    assert measure(means, means)["cdnv"] is None                      # without variances
    assert cdnv(np.array([[1.0, 0.0], [1.0, 0.0]]), [1.0, 1.0]) == math.inf


def test_class_stats_streams_per_class_variances_with_ddof_0():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 300)
    H = rng.standard_normal((300, 5)) * (1 + y[:, None]) + 50.0 * y[:, None]
    stats = ClassStats(4, 5)
    for part in np.array_split(np.arange(300), 7):
        stats.update(H[part], y[part])
    direct = [np.sum(np.var(H[y == k], axis=0)) for k in range(4)]    # np.var: ddof = 0
    np.testing.assert_allclose(stats.class_variances, direct, rtol=1e-12)


# ---------------------------------------------------------------------- GNC2 and UNC3
def test_gnc2_is_zero_for_a_simplex_etf_and_matches_a_hand_case():
    K = 5
    etf = simplex_etf(K, K, 0).T
    g = gnc2(etf)
    assert g["gnc2"] == pytest.approx(0.0, abs=1e-24)
    assert g["gnc2_log_kernel_mean"] == pytest.approx(-0.5 * math.log(2 * K / (K - 1)), rel=1e-12)
    # directions at 0°, 90°, 180°: distances √2, 2, √2 → kernel −½ln2, −ln2, −½ln2
    g = gnc2(np.array([[3.0, 0.0], [0.0, 0.5], [-2.0, 0.0]]))
    assert g["gnc2_log_kernel_mean"] == pytest.approx(-2 / 3 * math.log(2), rel=1e-12)
    assert g["gnc2"] == pytest.approx(math.log(2) ** 2 / 18, rel=1e-12)
    assert gnc2(np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]]))["gnc2"] == math.inf   # one direction twice


def test_unc3_by_hand():
    C = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]])
    W = np.array([[3.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    u = unc3(C, W)
    assert u["unc3_dot_var"] == pytest.approx(np.var([3.0, 2.0, 2.0], ddof=1), rel=1e-14)   # ddof = 1, as the library
    assert u["unc3_cos_cv"] == pytest.approx(0.0, abs=1e-15)       # every class aligned with its row
    tilted = unc3(C, np.array([[1.0, 1.0], [0.0, 1.0], [-1.0, -1.0]]))
    cos = np.array([1 / math.sqrt(2), 1.0, 1.0])
    assert tilted["unc3_cos_cv"] == pytest.approx(cos.std() / cos.mean(), rel=1e-12)


# ---------------------------------------------------------------------- conventions
def test_a_global_centre_needs_the_counts():
    means = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    with pytest.raises(LPMInputError) as err:
        measure(means, means, center="global")
    assert str(err.value) == ("The 'counts' parameter must be the class counts (K,) when center='global' (the "
                              "count-weighted mean of all samples); use center='class-means' for the unweighted mean "
                              "of the class means. Got None instead.")
    np.testing.assert_allclose(centre_means(means, [2, 1, 1], "global"), means - [0.5, 0.25])
    assert measure(means, means, counts=[2, 1, 1], center="global")["center"] == "global"


def test_standard_deviations_use_ddof_0():
    W = np.array([[1.0, 0.0], [0.0, 3.0]])       # row norms 1 and 3: std 1 (ddof 0), mean 2
    assert measure(W, W, center="none")["nc2_equinorm_classifier"] == pytest.approx(0.5)
