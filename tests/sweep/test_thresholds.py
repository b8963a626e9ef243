"""Collapse thresholds: the LPM's R* two ways, and theory.md §9's formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lpm import Problem, solve
from lpm.core.geometry import collapse_index
from lpm.core.profiles import step_counts
from lpm.core.thresholds import collapse_threshold, kkt_collapse_margin, lpm_problem, regularised_threshold
from lpm.sweep.tasks import regularised_cell, threshold_cell


def weight_decay(counts, lam_W, lam_H, loss, majority=None):
    """The certified optimum of the weight-decay model (theory.md §9)."""
    problem = Problem.from_counts(counts, classifier="learnable", loss=loss, majority=majority,
                                  budget="weight-decay", lambda_W=lam_W, lambda_H=lam_H)
    return solve(problem, "nuclear")


def test_kkt_margin_sign_marks_collapse():
    """log(λ/p_B) < 0 at the balanced ETF, ≥ 0 once the minority rows merge."""
    balanced = solve(lpm_problem(10, 5, 1.0, 5.0), "nuclear")
    merged = solve(lpm_problem(10, 5, 1000.0, 5.0), "nuclear")
    assert kkt_collapse_margin(balanced) < -0.5
    assert kkt_collapse_margin(merged) > 0.5
    assert collapse_index(merged.W, np.arange(5, 10)) < 1e-6


@pytest.mark.parametrize("majority, ewh", [(3, 1.0)])  # (5, 5.0) runs in the phase-diagram smoke test
def test_index_bisection_and_kkt_root_agree(majority, ewh):
    found = collapse_threshold(10, majority, ewh, bracket=(1.0, 1e4), log10_tol=0.01)
    r_index, r_kkt = found["ratio_star_index"], found["ratio_star_kkt"]
    assert r_index is not None and r_kkt is not None
    # two independent definitions of R*: within the bisection tolerance plus 1 %
    assert abs(math.log10(r_index / r_kkt)) < 0.01 + math.log10(1.01)
    below = solve(lpm_problem(10, majority, r_kkt / 1.2, ewh), "nuclear")
    above = solve(lpm_problem(10, majority, r_kkt * 1.2, ewh), "nuclear")
    assert collapse_index(below.W, np.arange(majority, 10)) > 1e-2
    assert collapse_index(above.W, np.arange(majority, 10)) < 1e-6


@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("lam, split", [(1e-4, 9.0), (1e-5, 1.0)])
def test_regularised_formula_n_B_le_N2_lambda(loss, lam, split):
    """Minority collapse (CE) / vanishing (MSE) iff n_B ≤ N² λ_W λ_H (theory.md §9),
    with λ_W ≠ λ_H: only the product matters."""
    K, KA = 10, 5
    r_star = regularised_threshold(K, KA, lam)
    lam_W = math.sqrt(lam * split)
    for factor, collapsed in ((0.8, False), (0.95, False), (1.05, True), (1.5, True)):
        counts = step_counts(K, r_star * factor, KA)
        N = sum(counts)
        assert (1.0 <= N * N * lam) == collapsed  # the formula itself, n_B = 1
        sol = weight_decay(counts, lam_W, lam / lam_W, loss, KA)
        assert sol.status.value == "optimal" and sol.certificate.relative_gap <= 1e-9
        index = collapse_index(sol.W, np.arange(KA, K))
        if collapsed:
            assert index < 1e-4, (factor, index)
        else:
            assert index > 0.05, (factor, index)
        minority_norm = np.linalg.norm(sol.W[KA:], axis=1).mean()
        if loss == "mse" and collapsed:
            assert minority_norm < 1e-4  # MSE: the minority classifiers vanish


def test_mse_majority_vanishes_at_n_A_le_N2_lambda():
    """MSE: every class k vanishes iff n_k ≤ N² λ — for the majority n_A = R too;
    with K=10, K_A=5, λ=1e-4 that happens from R ≈ 398.0."""
    rows = {R: regularised_cell({"loss": "mse", "K": 10, "majority": 5, "lam": 1e-4, "ratio": R,
                                 "lam_split": 1.0, "solver": "nuclear"})["row"] for R in (380.0, 420.0)}
    assert not rows[380.0]["predicted_majority_vanish"] and rows[420.0]["predicted_majority_vanish"]
    assert rows[380.0]["majority_norm"] > 0.1
    assert rows[420.0]["majority_norm"] < 1e-4 and rows[420.0]["all_vanished"]
    assert rows[420.0]["collapse_index"] is None


def test_regularised_solver_reaches_balanced_etf():
    """Balanced CE: the regularised UFM optimum is a simplex ETF (cosines −1/(K−1))."""
    sol = weight_decay([1.0] * 6, 1e-3, 1e-3, "ce")
    W = sol.W / np.linalg.norm(sol.W, axis=1, keepdims=True)
    off = (W @ W.T)[~np.eye(6, dtype=bool)]
    np.testing.assert_allclose(off, -1 / 5, atol=1e-6)


def test_threshold_cell_validates_its_spec():
    from lpm.core.errors import LPMInputError

    spec = {"K": 10, "majority": 9, "ewh": 5.0, "solver": "nuclear", "settings": {}, "bracket": [1.0, 10.0],
            "index_threshold": 1e-3, "log10_tol": 0.1}
    with pytest.raises(LPMInputError, match=r"The 'majority' parameter must be an int >= 1 and <= 8. Got 9"):
        threshold_cell(spec)


def test_lpm_problem_uses_the_product_only():
    p = lpm_problem(10, 5, 100.0, 7.0)
    assert isinstance(p, Problem) and (p.E_W, p.E_H, p.budget, p.loss) == (1.0, 7.0, "class-average", "ce")


def test_progress_bar_label_never_repeats_sweep():
    from lpm.sweep.engine import bar_label
    assert bar_label("sweep") == "sweep" and bar_label("minority-collapse") == "sweep minority-collapse"


def test_collapse_threshold_returns_plain_numbers():
    """The one-liner of docs/findings.md prints plain numbers (no np.float64(...))."""
    found = collapse_threshold(10, 5, 5.0, bracket=(1.0, 1e3), log10_tol=0.05)
    assert all(v is None or type(v) in (float, int, str) for v in found.values()), found
    assert repr(found["ratio_star_index"])[0].isdigit()
