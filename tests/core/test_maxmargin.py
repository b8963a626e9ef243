"""The max-margin (vanishing-regularisation) limit of the learnable model (theory.md §15).

The closed form (analytic back end, :mod:`lpm.core.maxmargin`) must agree with the certified
cvxpy solve of the same program at random, non-step counts and temperatures; it must reproduce
the SELI Gram matrices of Thrampoulidis et al. 2022 and the closed forms of Behnia et al. 2023
for class-dependent temperatures; and the limit must be what the weight-decay optimum tends to.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from lpm import LPMInputError, Problem, Status
from lpm.core import maxmargin as mm
from lpm.core.geometry import measure_solution
from lpm.core.geometry.distances import gram_distance
from lpm.core.solvers import resolve, solve
from lpm.core.solvers.convex import max_margin_program


def _random_setting(seed: int, K: int):
    rng = np.random.default_rng(seed)
    return (np.exp(rng.uniform(0.0, 6.0, K)), np.exp(rng.uniform(-1.0, 1.0, K)), np.exp(rng.uniform(-1.0, 1.0, K)))


@pytest.mark.parametrize("seed", [0, 1])
def test_analytic_and_convex_agree_at_random_counts(seed):
    counts, _, _ = _random_setting(seed, 7)
    problem = Problem.from_counts(list(counts), budget="max-margin")
    assert resolve(problem).solver == "analytic"
    a, c = solve(problem, "analytic"), solve(problem, "convex")
    for s in (a, c):
        assert s.status is Status.OPTIMAL and s.certificate.relative_gap <= 1e-9
        assert s.certificate.lower_bound <= s.objective + 1e-12
    assert abs(a.objective - c.objective) <= 1e-6 * a.objective
    assert np.abs(a.H @ a.W.T - c.H @ c.W.T).max() <= 1e-6      # the logits
    assert np.abs(a.W @ a.W.T - c.W @ c.W.T).max() <= 1e-6      # classifier Gram
    assert np.abs(a.H @ a.H.T - c.H @ c.H.T).max() <= 1e-6      # class-mean Gram
    # every margin of the limit is exactly 1 and the logits are the simplex-encoded labels
    Z = a.H @ a.W.T
    K = problem.K
    assert np.allclose(Z, np.eye(K) - 1.0 / K, atol=1e-12)


def test_seli_grams_closed_form():
    counts, _, _ = _random_setting(5, 6)
    s = solve(Problem.from_counts(list(counts), budget="max-margin"))
    p = counts / counts.sum()
    P = np.eye(6) - 1.0 / 6
    w, V = np.linalg.eigh(P @ np.diag(p) @ P)
    w[0] = 0.0                                                        # P D P has the null vector 1
    classifier = (V * np.sqrt(w)) @ V.T                               # (P D P)^{1/2}
    assert np.abs(s.W @ s.W.T - classifier).max() <= 1e-12
    G_W, G_H = mm.seli_grams(counts)
    assert np.abs(s.H @ s.H.T - G_H).max() <= 1e-10
    assert abs(s.objective - np.trace(classifier)) <= 1e-12            # value tr (P D P)^{1/2}


@pytest.mark.parametrize("which", ["class", "sample", "both"])
def test_cost_sensitive_closed_form_matches_convex(which):
    counts, a, t = _random_setting(11, 6)
    a = a if which in ("class", "both") else None
    t = t if which in ("sample", "both") else None
    T = mm.temperature_matrix(6, a, t)
    Z0 = mm.closed_form_logits(counts, a, t)
    m = mm.margins(T, Z0)
    assert np.allclose(m[~np.eye(6, dtype=bool)], 1.0, atol=1e-12)
    cert0, scale0 = mm.certificate(counts, T, Z0)
    assert scale0 == pytest.approx(1.0, abs=1e-12) and cert0.gap <= 1e-12 * cert0.lower_bound
    program, Z, margins = max_margin_program(counts, T)
    program.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    cert1, scale1 = mm.certificate(counts, T, Z.value, margins.dual_value)
    assert cert1.relative_gap <= 1e-8
    assert np.abs(Z.value * scale1 - Z0).max() <= 1e-6
    assert abs(cert1.lower_bound - cert0.lower_bound) <= 1e-8


def test_per_sample_temperatures_are_effective_counts():
    """A per-sample temperature t_k acts as the count n_k t_k² on the classifier (theory.md §15.2)."""
    counts, _, t = _random_setting(3, 5)
    G_W, _ = mm.seli_grams(counts, sample_temperatures=t)
    G_eff, _ = mm.seli_grams(counts * t**2)
    scale = np.trace(G_W) / np.trace(G_eff)
    assert np.abs(G_W - scale * G_eff).max() <= 1e-12


def _behnia_cdt(R, d_maj, d_min, K):
    """Behnia, Kini, Vakilian, Thrampoulidis 2023, closed forms for CDT (logit j scaled by
    δ_j) with K/2 majority classes of n = R and K/2 minority classes of n = 1, written here
    with σ = sqrt(δ_min⁻² + δ_maj⁻²): squared norms up to one common factor, and cosines."""
    sig, c, rR = math.sqrt(d_min**-2 + d_maj**-2), math.sqrt(R + 1), math.sqrt(R)
    a_maj, a_min = 2 * c * (sig * d_min) ** -3, 2 * c * (sig * d_maj) ** -3
    w_maj, w_min = (rR * (K - 2) + a_maj) / (K * d_maj), ((K - 2) + a_min) / (K * d_min)
    tau = sig * c
    b_maj, b_min = 2 / (d_min * tau), 2 / (d_maj * tau)
    h_maj, h_min = ((K - 2) / rR + b_maj) / (K * d_maj), ((K - 2) + b_min) / (K * d_min)
    return {
        "w_maj": (a_maj - 2 * rR) / ((K - 2) * rR + a_maj), "w_min": (a_min - 2) / ((K - 2) + a_min),
        "w_cross": -2 * c * (d_min * d_maj) ** -2 / (K * sig**3 * math.sqrt(w_maj * w_min)), "w_ratio": w_maj / w_min,
        "h_maj": (b_maj - 2 / rR) / ((K - 2) / rR + b_maj), "h_min": (b_min - 2) / ((K - 2) + b_min),
        "h_cross": -(2 / (d_min * d_maj * tau)) / (K * math.sqrt(h_maj * h_min)), "h_ratio": h_maj / h_min,
        "wh_maj": (K * d_min**-2 + (K - 2) * d_maj**-2) / (K * d_maj * sig**2 * math.sqrt(w_maj * h_maj)),
        "wh_min": (K * d_maj**-2 + (K - 2) * d_min**-2) / (K * d_min * sig**2 * math.sqrt(w_min * h_min)),
    }


def _measured(W, H, K):
    G, F, C = W @ W.T, H @ H.T, H @ W.T
    cos = lambda A, i, j: A[i, j] / math.sqrt(A[i, i] * A[j, j])  # noqa: E731
    return {"w_maj": cos(G, 0, 1), "w_min": cos(G, K - 1, K - 2), "w_cross": cos(G, 0, K - 1),
            "w_ratio": G[0, 0] / G[-1, -1], "h_maj": cos(F, 0, 1), "h_min": cos(F, K - 1, K - 2),
            "h_cross": cos(F, 0, K - 1), "h_ratio": F[0, 0] / F[-1, -1],
            "wh_maj": C[0, 0] / math.sqrt(G[0, 0] * F[0, 0]), "wh_min": C[-1, -1] / math.sqrt(G[-1, -1] * F[-1, -1])}


@pytest.mark.parametrize("R,gamma,K", [(10.0, 0.5, 10), (100.0, 1.0, 6), (7.0, -0.7, 4), (1000.0, 0.3, 8)])
def test_cdt_matches_behnia_closed_forms(R, gamma, K):
    half = K // 2
    delta = np.array([R] * half + [1.0] * half) ** gamma
    delta = K * delta / delta.sum()                      # their normalisation: mean δ = 1
    counts = [R] * half + [1.0] * half
    Z = mm.closed_form_logits(counts, class_temperatures=1.0 / delta)
    W, H = mm.balanced_factors(counts, Z)
    expected, got = _behnia_cdt(R, delta[0], delta[-1], K), _measured(W, H, K)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6, rel=1e-6), key
    # and the closed form is the certified optimum of the program
    program, Zc, margins = max_margin_program(np.asarray(counts), mm.temperature_matrix(K, 1.0 / delta))
    program.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    _, scale = mm.certificate(counts, mm.temperature_matrix(K, 1.0 / delta), Zc.value, margins.dual_value)
    assert np.abs(Zc.value * scale - Z).max() <= 1e-6


def test_seli_minority_cosine_closed_form_and_no_exact_merge():
    """SELI at K_A = K/2 (Behnia et al.'s CE case): cos(w_min, w_min') = (q − 2)/(q + K − 2),
    q = sqrt((R+1)/2): below 1 at every finite R. The class-average optimum merges (cos = 1)."""
    K = 10
    for R in (10.0, 100.0, 1e4, 1e6):
        s = solve(Problem.from_profile(K=K, ratio=R, budget="max-margin"))
        q = math.sqrt((R + 1) / 2)
        cos = measure_solution(s)["classifier_minority_cos"]
        assert cos == pytest.approx((q - 2) / (q + K - 2), abs=1e-9)
        assert 1 - cos >= K / (q + K - 2) * (1 - 1e-9) > 0
    merged = measure_solution(solve(Problem.from_profile(K=K, ratio=100.0, E_W=1.0, E_H=5.0)))
    assert merged["classifier_minority_cos"] == pytest.approx(1.0, abs=1e-6)
    assert merged["angle_collapse_index"] <= 1e-6


def test_weight_decay_approaches_the_limit():
    """Certified weight-decay optima (λ_W = λ_H = λ) approach the max-margin geometry like
    1/log(1/λ): the classifier Gram distance times log(1/λ) stays at 1.41 (K = 10, R = 100)."""
    limit = solve(Problem.from_profile(K=10, ratio=100.0, budget="max-margin"))
    distances = []
    for lam in (1e-3, 1e-4, 1e-5):
        s = solve(Problem.from_profile(K=10, ratio=100.0, budget="weight-decay", lambda_W=lam, lambda_H=lam))
        assert s.status is Status.OPTIMAL
        distances.append(gram_distance(s.W, limit.W))
        assert distances[-1] * math.log(1 / lam) == pytest.approx(1.41, abs=0.02)
    assert distances[0] > distances[1] > distances[2]


def test_remedy_temperatures():
    counts = [100.0, 30.0, 5.0, 1.0]
    a = mm.remedy_temperatures("cdt", counts, gamma=0.5)
    assert np.allclose(a, np.sqrt(100.0 / np.asarray(counts)))
    assert np.array_equal(mm.remedy_temperatures("vs", counts, gamma=0.5), a)
    for loss in ("ce", "la", "ldam"):
        assert mm.remedy_temperatures(loss, counts) is None
    with pytest.raises(LPMInputError, match="gamma"):
        mm.remedy_temperatures("cdt", counts)
    with pytest.raises(LPMInputError, match="'loss'.*'mse'"):
        mm.remedy_temperatures("mse", counts)


def test_max_margin_problem_validation():
    with pytest.raises(LPMInputError, match="'classifier'.*'learnable' with budget='max-margin'.*Got 'fixed-etf'"):
        Problem.from_counts([3.0, 1.0, 1.0], classifier="fixed-etf", budget="max-margin")
    with pytest.raises(LPMInputError, match="'loss'.*'mse'"):
        Problem.from_counts([3.0, 1.0, 1.0], loss="mse", budget="max-margin")
    with pytest.raises(LPMInputError, match="'lambda_W'"):
        Problem.from_counts([3.0, 1.0, 1.0], budget="max-margin", lambda_W=1e-3)
    with pytest.raises(LPMInputError, match="'d'"):
        Problem.from_counts([3.0, 1.0, 1.0, 1.0], budget="max-margin", d=2)
    s = solve(Problem.from_counts([3.0, 1.0, 1.0, 1.0], budget="max-margin", d=3))  # rank K-1 fits d = K-1
    assert s.W.shape == (4, 3) and s.certificate.relative_gap <= 1e-12


def _weight_decay_classifier_gram(counts, mu, T=None, offsets=None, weights=None):
    """W Wᵀ of the weight-decay optimum (theory.md §9.1, μ = sqrt(λ_W λ_H)) of CE with logits
    T_k ⊙ z_k + offsets_k for class k and class weights ω_k, solved with cvxpy (CLARABEL)."""
    import cvxpy as cp

    n = np.asarray(counts, dtype=float)
    K, p = len(n), n / n.sum()
    T = np.ones((K, K)) if T is None else T
    offsets = np.zeros((K, K)) if offsets is None else offsets
    weights = np.ones(K) if weights is None else weights
    Y = cp.Variable((K, K))
    loss = 0
    for k in range(K):
        z = cp.multiply(T[k], Y[k] / np.sqrt(n[k])) + offsets[k]
        loss = loss + p[k] * weights[k] * (cp.log_sum_exp(z) - z[k])
    cp.Problem(cp.Minimize(loss + mu * cp.normNuc(Y))).solve(solver="CLARABEL", tol_gap_abs=1e-10,
                                                                tol_gap_rel=1e-10, tol_feas=1e-10)
    _, S, Vt = np.linalg.svd(Y.value)
    return (Vt.T * S) @ Vt


def test_additive_adjustments_and_weights_vanish_temperatures_survive():
    """theory.md §15.3: along the weight-decay path (μ = 1e-4, 1e-5, 1e-6) logit adjustment
    (τ = 1), LDAM (largest margin 1) and inverse-frequency class weights approach plain CE's limit
    (SELI), while CDT (γ = 0.5) approaches its own class-temperature limit, 0.54 away from SELI."""
    counts = np.array([20.0, 8.0, 3.0, 1.0])
    K, pi = 4, counts / counts.sum()
    a = mm.remedy_temperatures("cdt", counts, gamma=0.5)
    seli, cdt_limit = mm.seli_grams(counts)[0], mm.seli_grams(counts, class_temperatures=a)[0]
    dist = lambda A, B: float(np.linalg.norm(A / np.linalg.norm(A) - B / np.linalg.norm(B)))  # noqa: E731
    assert dist(cdt_limit, seli) == pytest.approx(0.536, abs=1e-3)
    delta = counts**-0.25 / (counts**-0.25).max()
    settings = {"la": dict(offsets=np.tile(np.log(pi), (K, 1))), "ldam": dict(offsets=-np.diag(delta)),
                "weights": dict(weights=1.0 / counts)}
    path = {name: [] for name in ("ce", *settings, "cdt", "cdt-to-seli")}
    for mu in (1e-4, 1e-5, 1e-6):
        path["ce"].append(dist(_weight_decay_classifier_gram(counts, mu), seli))
        for name, extra in settings.items():
            path[name].append(dist(_weight_decay_classifier_gram(counts, mu, **extra), seli))
        G = _weight_decay_classifier_gram(counts, mu, T=mm.temperature_matrix(K, a))
        path["cdt"].append(dist(G, cdt_limit))
        path["cdt-to-seli"].append(dist(G, seli))
    for name in ("ce", "la", "ldam", "weights", "cdt"):
        assert path[name][0] > path[name][1] > path[name][2], name   # approaching its limit
    assert max(path["ce"][2], path["ldam"][2], path["weights"][2]) < 0.06 and path["la"][2] < 0.15
    assert path["cdt"][2] < 0.17 and min(path["cdt-to-seli"]) > 0.4       # CDT's limit is not SELI
    # CE's approach is 1/log(1/μ): the product stays at 0.71
    for mu, d in zip((1e-4, 1e-5, 1e-6), path["ce"]):
        assert d * math.log(1 / mu) == pytest.approx(0.71, abs=0.02)


def test_class_average_budget_tends_to_the_etf():
    """theory.md §15.4: the class-average budget weighs every class mean equally, so its large-budget
    limit is the max-margin program with D = I, the simplex ETF, at any R (here R = 100)."""
    from lpm.core.geometry.distances import gram_distance_to_etf

    distances = []
    for ewh in (5.0, 50.0, 5000.0):
        s = solve(Problem.from_profile(K=10, ratio=100.0, E_W=1.0, E_H=ewh))
        assert s.status is Status.OPTIMAL
        distances.append(gram_distance_to_etf(s.W))
    assert distances[0] > 0.75 and 0.25 < distances[1] < 0.32 and distances[2] < 1e-6
    assert np.allclose(mm.closed_form_logits(np.ones(10)), np.eye(10) - 0.1)  # D = I: Z* = P, the ETF's logits


@pytest.mark.parametrize("loss, extra", [("la", {"tau": 1.0}), ("ldam", {}), ("cdt", {"gamma": 0.5}),
                                          ("vs", {"gamma": 0.3, "tau": 1.0})])
def test_every_remedy_loss_has_its_certified_limit(loss, extra):
    """The registered remedy losses pose the max-margin budget through their bound
    hyperparameters: la and ldam give SELI (CE's limit), cdt and vs the class-temperature
    limit a_j = (n_max/n_j)^γ; analytic and convex agree, both certified."""
    counts = [20.0, 8.0, 3.0, 1.0]
    problem = Problem.from_counts(counts, loss=loss, budget="max-margin", **extra)
    a, c = solve(problem, "analytic"), solve(problem, "convex")
    for s in (a, c):
        assert s.status is Status.OPTIMAL and s.certificate.relative_gap <= 1e-9
    np.testing.assert_allclose(a.W @ a.W.T, c.W @ c.W.T, atol=1e-6)
    temperatures = None if loss in ("la", "ldam") else (max(counts) / np.asarray(counts)) ** extra["gamma"]
    expected = mm.seli_grams(counts, class_temperatures=temperatures)[0]
    G = a.W @ a.W.T
    np.testing.assert_allclose(G / np.linalg.norm(G), expected / np.linalg.norm(expected), atol=1e-9)


def test_class_weights_and_sampling_do_not_enter_the_limit():
    """Weights and re-sampling shift every margin by a constant and leave the feature penalty
    Σ_k n_k‖h_k‖² alone (theory.md §15.3): the limit is plain CE's SELI (for cdt its own), by the
    closed form and by the convex program; at the same counts inverse weights in the class-average
    form give the balanced optimum instead (minority cosine −1/(K−1))."""
    counts = [20.0, 20.0, 8.0, 3.0, 1.0]
    for loss, extra in (("ce", {}), ("cdt", {"gamma": 0.5})):
        plain = Problem.from_counts(counts, budget="max-margin", loss=loss, **extra)
        reference = solve(plain, "analytic")
        for weighted in (plain.replace(class_weights="inverse"),
                         plain.replace(class_weights="class-balanced", beta=0.99),
                         plain.replace(sampling=(1.0,) * 5, class_weights="sqrt")):
            np.testing.assert_array_equal(weighted.weights, plain.weights)
            for method in ("analytic", "convex"):
                s = solve(weighted, method)
                assert s.certificate.relative_gap <= 1e-8
                assert gram_distance(s.W, reference.W) <= 1e-6 and gram_distance(s.H, reference.H) <= 1e-6
    balanced = measure_solution(solve(Problem.from_counts(counts, class_weights="inverse", majority=2)))
    assert balanced["classifier_minority_cos"] == pytest.approx(-0.25, abs=1e-6)
