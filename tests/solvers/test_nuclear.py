"""The ``nuclear`` back end: theory.md §4.2, its symmetry reduction, certificate
and recovery."""
from __future__ import annotations

import numpy as np
import pytest

from lpm.core.errors import LPMInputError, SolverRefused
from lpm.core.geometry import measure_solution
from lpm.core.problem import Problem
from lpm.core.solution import Status
from lpm.core.solvers import get_solver, resolve
from lpm.core.solvers.grouped import Reduction, ball_threshold

FANG = dict(K=10, profile="step", majority=5, E_W=1.0, E_H=5.0)  # theory.md §4.1


def fang(ratio: float, **kwargs) -> Problem:
    return Problem.from_profile(ratio=ratio, **{**FANG, **kwargs})


def _random_point(red: Reduction, rng):
    m = len(red.size)
    return rng.standard_normal(m) * red.has_mult, rng.standard_normal((m, m))


@pytest.mark.parametrize("loss", ["ce", "dr", "mse"])
@pytest.mark.parametrize("counts", [(5, 5, 5, 2, 2, 1, 7, 7, 7, 7), (1, 2, 3), (4, 4, 4, 4)])
def test_reduced_value_and_gradient_equal_the_full_ones(loss, counts):
    """f and the invariant coordinates of ∂f/∂Z computed in the m-dimensional
    reduction equal those of the full K×K computation."""
    problem = Problem.from_counts(counts, loss=loss, E_H=2.0)
    red = Reduction([problem])
    alpha, R = _random_point(red, np.random.default_rng(1))
    Z = red.to_full(alpha, R)
    value, (alpha_G, R_G) = red.value_and_grad(alpha[None], R[None])
    full_value, G = problem.logit_objective(Z)
    np.testing.assert_allclose(value[0], full_value, rtol=1e-13, atol=1e-15)
    # the full gradient lies in the invariant subspace and has these coordinates
    np.testing.assert_allclose(red.to_full(alpha_G[0], R_G[0]), G, rtol=0, atol=1e-15)
    back = red.from_full(Z)
    np.testing.assert_allclose(back[0], alpha, atol=1e-14)
    np.testing.assert_allclose(back[1], R, atol=1e-14)


def _dense_projection(Z: np.ndarray, radius: float) -> np.ndarray:
    """Independent reference: full SVD and bisection for the threshold."""
    U, s, Vt = np.linalg.svd(Z)
    if s.sum() <= radius:
        return Z
    lo, hi = 0.0, s.max()
    for _ in range(200):
        tau = 0.5 * (lo + hi)
        lo, hi = (tau, hi) if np.maximum(s - tau, 0).sum() > radius else (lo, tau)
    return (U * np.maximum(s - 0.5 * (lo + hi), 0)) @ Vt


@pytest.mark.parametrize("scale", [0.1, 3.0])
def test_projection_equals_the_dense_nuclear_ball_projection(scale):
    problem = Problem.from_counts((3, 3, 3, 1, 1, 2, 2, 2, 2), E_W=0.5, E_H=0.5)
    red = Reduction([problem])
    alpha, R = _random_point(red, np.random.default_rng(2))
    alpha, R = scale * alpha, scale * R
    pa, pR = red.project(alpha[None], R[None])
    projected = red.to_full(pa[0], pR[0])
    radius = red.rho[0]
    np.testing.assert_allclose(projected, _dense_projection(red.to_full(alpha, R), radius), atol=1e-12)
    nuclear = np.linalg.svd(projected, compute_uv=False).sum()
    assert nuclear <= radius * (1 + 1e-12)
    if scale > 1:  # started outside: lands on the sphere
        np.testing.assert_allclose(nuclear, radius, rtol=1e-12)


def test_weighted_threshold_solves_its_equation():
    values = np.array([[3.0, 1.0, 0.5, 2.0], [0.1, 0.1, 0.1, 0.1]])
    weights = np.array([4.0, 0.0, 1.0, 2.0])
    tau = ball_threshold(values, weights, np.array([5.0, 5.0]))
    np.testing.assert_allclose((weights * np.maximum(values[0] - tau[0], 0)).sum(), 5.0, rtol=1e-14)
    assert tau[1] == 0.0  # already inside the ball


@pytest.mark.parametrize("ratio", [1.0, 3.0, 10.0, 100.0, 1e4, 1e8])
def test_certificate_budgets_and_objective(ratio):
    problem = fang(ratio)
    solution = get_solver("nuclear").run(problem)
    cert = solution.certificate
    assert solution.status is Status.OPTIMAL
    assert cert.gap >= 0.0 and cert.lower_bound <= solution.objective
    assert cert.relative_gap <= 1e-9
    K = problem.K
    assert (solution.W**2).sum() / K <= problem.E_W * (1 + 1e-12)
    assert (solution.H**2).sum() / K <= problem.E_H * (1 + 1e-12)
    # the product constraint binds for CE, so both budgets are used in full
    np.testing.assert_allclose((solution.W**2).sum() / K, problem.E_W, rtol=1e-9)
    np.testing.assert_allclose((solution.H**2).sum() / K, problem.E_H, rtol=1e-9)
    assert solution.objective == problem.objective(solution.W, solution.H)
    metrics = measure_solution(solution)
    assert np.all(np.isfinite(solution.W)) and np.all(np.isfinite(solution.H))
    assert all(v is None or not isinstance(v, float) or np.isfinite(v) for v in metrics.values())


def test_deep_imbalance_stays_finite_and_minority_features_vanish():
    solution = get_solver("nuclear").run(fang(1e8))
    metrics = measure_solution(solution)
    assert metrics["feature_norm_ratio"] < 1e-6  # minority means → 0 beyond R*
    np.testing.assert_allclose(metrics["collapse_index"], 0.0, atol=1e-8)  # minority rows merged
    assert 0.05 < metrics["classifier_norm_ratio"] < 0.5  # but the classifiers keep a norm


def test_only_the_product_of_the_budgets_matters():
    """theory.md §4.2: the optimal value depends on E_W·E_H only."""
    a = get_solver("nuclear").run(fang(30.0, E_W=1.0, E_H=5.0))
    b = get_solver("nuclear").run(fang(30.0, E_W=2.5, E_H=2.0))
    np.testing.assert_allclose(a.objective, b.objective, rtol=1e-9)


def test_k100_is_certified_to_1e_8():
    problem = Problem.from_profile(K=100, ratio=10.0, profile="step", majority=50, E_W=1.0, E_H=5.0)
    solution = get_solver("nuclear").run(problem)
    assert solution.status is Status.OPTIMAL
    assert solution.certificate.relative_gap <= 1e-8
    assert solution.extra["symmetry_groups"] == 2


def test_without_symmetry_the_dense_iteration_still_certifies():
    problem = Problem.from_profile(K=10, ratio=100.0, profile="exp", E_W=1.0, E_H=5.0)
    solution = get_solver("nuclear").run(problem)
    assert solution.extra["symmetry_groups"] == 10
    assert solution.status is Status.OPTIMAL and solution.certificate.relative_gap <= 1e-9


def test_learnable_dr_is_degenerate_with_optimum_zero():
    """theory.md §5: DR without push terms reaches 0 with a learnable classifier."""
    solution = get_solver("nuclear").run(fang(100.0, loss="dr"))
    assert solution.status is Status.OPTIMAL
    assert 0.0 <= solution.objective <= 1e-12


@pytest.mark.parametrize("budget, value", [(1.0, 0.0), (0.05, None)])
def test_learnable_mse(budget, value):
    """MSE reaches 0 iff Z = I fits the ball, i.e. K ≤ ρ = K·sqrt(E_W E_H)."""
    solution = get_solver("nuclear").run(fang(10.0, loss="mse", E_W=budget, E_H=budget))
    assert solution.status is Status.OPTIMAL
    if value is not None:
        assert solution.objective <= 1e-12
    else:
        assert solution.objective > 0.1 and solution.certificate.relative_gap <= 1e-9


def test_solve_path_equals_one_by_one():
    problems = [fang(10 ** (0.5 * i)) for i in range(9)] + [fang(10.0, loss="mse"), fang(1.0, K=6, majority=3)]
    solver = get_solver("nuclear")
    path = solver.solve_path(problems)
    for problem, solution in zip(problems, path):
        alone = solver.run(problem)
        assert solution.problem is problem and solution.status is Status.OPTIMAL
        np.testing.assert_allclose(solution.objective, alone.objective, rtol=1e-12)


def test_iteration_limit_gives_stopped_status():
    solution = get_solver("nuclear", max_iter=3).run(fang(100.0))
    assert solution.status is Status.STOPPED
    assert solution.message.startswith("stopped after 3 iterations with relative gap")
    assert solution.certificate.lower_bound <= solution.objective  # still a valid bound


@pytest.mark.parametrize("changes, reason", [
    (dict(budget="per-sample"), "the nuclear-norm form holds for the class-average and weight-decay forms, "
                                "not 'per-sample' (the 'convex' solver handles it)"),
    (dict(classifier="fixed-etf"), "the nuclear-norm form needs a learnable classifier, not 'fixed-etf'"),
    (dict(d=9), "the nuclear-norm form needs d >= K = 10, got d = 9"),
])
def test_refusals_name_the_reason(changes, reason):
    with pytest.raises(SolverRefused) as info:
        get_solver("nuclear").run(fang(10.0, **changes))
    assert str(info.value) == f"The 'nuclear' solver cannot solve this problem: {reason}."


def test_settings_are_validated():
    with pytest.raises(LPMInputError) as info:
        get_solver("nuclear", tol=0)
    assert str(info.value) == "The 'tol' parameter of solver 'nuclear' must be a number > 0. Got 0 instead."


@pytest.mark.parametrize("changes, expected", [
    (dict(), "nuclear"),
    (dict(budget="per-sample"), "convex"),
    (dict(classifier="fixed-etf"), "analytic"),
    (dict(classifier="fixed-random"), "convex"),
    (dict(classifier="fixed-etf", loss="mse"), "convex"),
])
def test_auto_picks_the_fastest_certifying_solver(changes, expected):
    assert resolve(fang(10.0, **changes)).solver == expected
