"""The second-order certificate of the nuclear programs (theory.md §11.3).

A lower bound is valid only if no feasible point beats it: every bound computed
here, at near-optimal and at deliberately poor points, must stay below the
optimum of a tight solve. And the refined dual point must buy what it claims:
a gap of second order where the Frank–Wolfe gap is of first order.
"""
from __future__ import annotations

import numpy as np
import pytest

from lpm.core import losses
from lpm.core.certificates import nuclear_certificate, penalised_nuclear_certificate
from lpm.core.problem import Problem
from lpm.core.solvers import get_solver
from lpm.core.solvers.factored import solve_factored
from lpm.core.solvers.recovery import balanced_factors_of

REMEDIES = ("ce", "la", "cdt", "ldam", "vs")


def _problem(loss: str, K: int = 60, **kw) -> Problem:
    return Problem.from_profile(K=K, ratio=100, profile="exp", E_W=1.0, E_H=5.0, loss=loss, **kw)


@pytest.mark.parametrize("loss", ["ce", "cdt", "vs"])
def test_solve_hessian_inverts_the_logit_hessian_on_its_range(loss):
    """∇²L(Z)[D] = E', with E' the projection of E on the Hessian's range (⟂ its null vector)."""
    problem = _problem(loss, K=7)
    rng = np.random.default_rng(3)
    Z, E = rng.standard_normal((7, 7)) * 2, rng.standard_normal((7, 7))
    y = np.arange(7)
    fn = problem.loss_fn
    D = fn.solve_hessian(Z, y, E)
    null = 1.0 / np.broadcast_to(getattr(fn, "scale", 1.0), (7,))  # a⁻¹ (1 for CE)
    projected = E - (E @ null)[:, None] * null / (null @ null)
    np.testing.assert_allclose(fn.hvp(Z, y, D), projected, atol=1e-10)
    np.testing.assert_allclose(fn.hvp(Z, y, null * np.ones((7, 1))), 0.0, atol=1e-12)  # really the null vector


def test_losses_without_a_solve_say_so():
    assert losses.get_loss("dr").solve_hessian(np.zeros((3, 3)), np.arange(3), np.ones((3, 3))) is None


@pytest.fixture(scope="module")
def optima():
    """Tight optima (relative gap ≤ 1e-11) of the ball problem for each remedy loss."""
    out = {}
    for loss in REMEDIES:
        problem = _problem(loss)
        solution = get_solver("nuclear", tol=1e-11).run(problem)
        assert solution.certificate.relative_gap <= 1e-11
        out[loss] = (problem, solution.objective, solution.certificate.lower_bound)
    return out


@pytest.mark.parametrize("loss", REMEDIES)
def test_refined_gap_is_second_order_and_its_bound_valid(loss, optima):
    """At a point stopped early the refined bound is valid (≤ the optimum) and its gap of
    second order: at most 100·(Frank–Wolfe gap)² (measured ≈ 30×), and ten times smaller."""
    problem, optimum, _ = optima[loss]
    result = solve_factored(problem, 3e-5)
    W, H, _ = balanced_factors_of(problem, *result.factors)
    plain = nuclear_certificate(problem, H @ W.T)
    refined = nuclear_certificate(problem, H @ W.T, factors=(H, W))
    assert plain.method == "nuclear-frank-wolfe" and refined.method == "nuclear-refined-dual"
    assert refined.lower_bound <= optimum + 1e-12
    assert plain.lower_bound <= optimum + 1e-12
    assert 1e-9 < plain.relative_gap  # the point really is early
    assert refined.relative_gap <= 100 * plain.relative_gap**2, (plain.relative_gap, refined.relative_gap)
    assert refined.relative_gap <= 0.1 * plain.relative_gap


@pytest.mark.parametrize("scale", [0.3, 0.9])
def test_refined_bound_stays_valid_far_from_the_optimum(scale, optima):
    """At poor feasible points (a random low-rank Z inside the ball, the optimum shrunk) the
    returned bound is still below the optimum: the refinement may not help there, but it must
    never claim more than the truth."""
    problem, optimum, _ = optima["la"]
    rng = np.random.default_rng(7)
    K = problem.K
    H, W = rng.standard_normal((K, 12)), rng.standard_normal((K, 12))
    norm = np.linalg.svd(H @ W.T, compute_uv=False).sum()
    factor = np.sqrt(scale * problem.nuclear_radius / norm)
    for Hs, Ws in ((H * factor, W * factor),):
        certificate = nuclear_certificate(problem, Hs @ Ws.T, factors=(Hs, Ws))
        assert certificate.lower_bound <= optimum + 1e-12
    solution = get_solver("nuclear").run(problem)
    Hs, Ws = solution.H * np.sqrt(scale), solution.W * np.sqrt(scale)
    certificate = nuclear_certificate(problem, Hs @ Ws.T, factors=(Hs, Ws))
    assert certificate.lower_bound <= optimum + 1e-12
    assert certificate.gap > 1e-3  # a shrunk optimum is far from optimal, and the bound says so


def test_weight_decay_bound_is_valid_with_refinement():
    problem = Problem.from_profile(K=40, ratio=100, profile="exp", budget="weight-decay", lambda_W=1e-5,
                                   lambda_H=1e-5, loss="ldam")
    tight = get_solver("nuclear", tol=1e-11).run(problem)
    rough = get_solver("nuclear", tol=1e-3).run(problem)
    for solution in (tight, rough):
        certificate = penalised_nuclear_certificate(problem, solution.W, solution.H)
        assert certificate.lower_bound <= tight.objective + 1e-12
        assert certificate.gap >= -1e-15


def test_factored_engine_stops_on_the_refined_certificate():
    """The engine tries the certificate before the first-order threshold: at K = 300 it ends
    certified by the refined dual with a gradient far above what Frank–Wolfe would need."""
    problem = _problem("ce", K=300)
    solution = get_solver("nuclear").run(problem)
    assert solution.certificate.relative_gap <= 1e-9
    assert solution.certificate.method == "nuclear-refined-dual"
    assert solution.extra["engine"] == "factored"
