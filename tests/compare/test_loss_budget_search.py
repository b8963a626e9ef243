"""The search of the ``loss`` budget rule (lpm.compare.budgets, theory.md §4): its uncertified
first radius, its certified bracket and the bounds the bracket is built from.

Runs are long-tailed (an exponential profile with distinct counts, so the nuclear solver takes
its factored engine) with class means a noisy simplex ETF, like a trained network's.
"""
from __future__ import annotations

import numpy as np
import pytest

from test_compare_lib import write_run  # noqa: I001 (tests/compare is on sys.path)

import lpm.compare.budgets as budgets_module
from lpm.compare import load_run_geometry, solve_certified
from lpm import Problem
from lpm.compare.budgets import (_base_problem, _bucketed, _loss_matched_solution, _nuclear_norm, _radius_estimate,
                                 _ray_upper_bound, logits_product, problem_for_run)
from lpm.core.certificates import _spectral_norm
from lpm.core.etf import simplex_etf
from lpm.core.profiles import profile_counts
from lpm.core.solvers import get_solver

RULE_TOL = 0.01  # the documented tolerance of the rule: P within 1 % of the root


def _long_tail_run(folder, K: int, seed: int = 0):
    counts = profile_counts("exp", K, 50.0, None, 500)
    d = K + 4
    rng = np.random.default_rng(seed)
    M = simplex_etf(K, d, seed=0).T
    means, W = 3.0 * M + 0.05 * rng.standard_normal((K, d)), M + 0.05 * rng.standard_normal((K, d))
    return load_run_geometry(write_run(folder, means, W, [float(c) for c in counts], majority=K // 2))


@pytest.fixture(scope="module")
def long_tail(tmp_path_factory):
    """(run, base problem at E_H = 1, target f(Z_run), ρ_hi = ‖Z_run‖_*) for K = 100 (> 64 buckets:
    the first radius is only an estimate)."""
    run = _long_tail_run(tmp_path_factory.mktemp("runs") / "k100", 100)
    E_W = float(np.mean(np.sum(run.W**2, axis=1)))
    base = _base_problem(run, "class-average", E_W, 1.0)
    assert solve_certified(base.replace(E_H=4.0)).extra["engine"] == "factored"
    return run, base, base.objective(run.W, run.means), run.K * np.sqrt(logits_product(run))


def _counting(monkeypatch) -> list:
    solves = []
    real = budgets_module.solve_certified
    monkeypatch.setattr(budgets_module, "solve_certified", lambda p, m="auto": solves.append(p) or real(p, m))
    return solves


def _bisection(base, target: float, P_hi: float, rel: float = 0.002) -> float:
    """The straightforward search: bisection in log P on certified solves, to ``rel``."""
    E_W, lo, hi = base.E_W, P_hi / 256, P_hi
    while hi / lo > 1 + rel:
        mid = float(np.sqrt(lo * hi))
        lo, hi = (mid, hi) if solve_certified(base.replace(E_H=mid / E_W)).objective > target else (lo, mid)
    return float(np.sqrt(lo * hi))


def test_loss_rule_matches_a_bisection_within_its_tolerance_in_at_most_two_solves(long_tail, monkeypatch):
    run, base, target, rho_hi = long_tail
    solves = _counting(monkeypatch)
    p, b = problem_for_run(run, rule="loss")
    assert 1 <= len(solves) <= 2, len(solves)
    monkeypatch.undo()
    solution = b.solution
    assert solution.problem == p and solution.status.value == "optimal"
    assert solution.certificate.relative_gap <= 1e-9
    P = p.E_W * p.E_H
    # the documented semantics: the root P* of v(P) = target lies within 1 % of P
    below, above = solve_certified(p.replace(E_H=p.E_H / (1 + RULE_TOL))), solve_certified(
        p.replace(E_H=p.E_H * (1 + RULE_TOL)))
    assert below.certificate.lower_bound >= target >= above.objective
    reference = _bisection(base, target, (rho_hi / run.K) ** 2)
    assert abs(np.log(P / reference)) <= np.log((1 + RULE_TOL) * 1.002)


@pytest.mark.parametrize("share", [0.5, 0.02])
def test_a_poor_first_radius_only_costs_solves(long_tail, share):
    """The certified bracket decides the answer: starting far on either side lands on the same
    root, within the rule's tolerance, as the estimated start."""
    run, base, target, rho_hi = long_tail
    estimated = _loss_matched_solution(base, target, rho_hi, "auto", RULE_TOL).problem.nuclear_radius
    far = _loss_matched_solution(base, target, rho_hi, "auto", RULE_TOL, first=share * rho_hi)
    assert far.certificate.relative_gap <= 1e-9
    assert abs(np.log((far.problem.nuclear_radius / estimated) ** 2)) <= 2 * np.log(1 + RULE_TOL)


def test_the_estimate_is_exact_when_no_bucket_merges_classes(tmp_path, monkeypatch):
    """K = 40 distinct counts spread evenly in log-count fall in 40 of the 64 buckets: the
    bucketed problem is the problem, so the estimate is the root and one solve certifies it."""
    run = _long_tail_run(tmp_path / "k40", 40, seed=1)
    E_W = float(np.mean(np.sum(run.W**2, axis=1)))
    base = _base_problem(run, "class-average", E_W, 1.0)
    target, rho_hi = base.objective(run.W, run.means), run.K * np.sqrt(logits_product(run))
    estimate = _radius_estimate(base, target, rho_hi)
    solution = solve_certified(base.replace(E_H=(estimate / run.K) ** 2 / E_W))
    assert solution.extra["engine"] == "factored"
    assert abs(solution.objective - target) <= 1e-5 * target
    solves = _counting(monkeypatch)
    problem_for_run(run, rule="loss")
    assert len(solves) == 1


def test_bracket_bounds_the_root_with_an_upper_bound_on_the_spectral_norm(long_tail):
    """At a certified solve left of the root, the Frank–Wolfe lower end with ĝ ≥ ‖G‖₂ is below
    the one with ‖G‖₂, which is below the root; the ray's upper end with ‖Z‖_* from the factors
    is the one with Z's singular values, and above the root."""
    run, base, target, rho_hi = long_tail
    root = _loss_matched_solution(base, target, rho_hi, "auto", 1e-4).problem.nuclear_radius  # to 1e-4 in P
    for share in (0.5, 0.9):
        solution = solve_certified(base.replace(E_H=(share * root / run.K) ** 2 / base.E_W))
        Z = solution.H @ solution.W.T
        value, G = base.logit_objective(Z)
        exact, bound = float(np.linalg.svd(G, compute_uv=False)[0]), _spectral_norm(G)
        assert exact <= bound <= exact * (1 + 1e-10)
        c = value - float(np.sum(G * Z))
        assert c > target  # a positive numerator: the larger divisor gives the smaller end
        assert (c - target) / bound <= (c - target) / exact <= root * (1 + 1e-4)
        nuclear = _nuclear_norm(solution.H, solution.W)
        np.testing.assert_allclose(nuclear, np.linalg.svd(Z, compute_uv=False).sum(), rtol=1e-10)
        upper = _ray_upper_bound(base, Z, target, nuclear)
        assert upper == pytest.approx(_ray_upper_bound(base, Z, target), rel=1e-10)
        assert upper >= root * (1 - 1e-4)


def test_the_estimate_keeps_a_re_weighting_sampler():
    """A square-root sampler makes the sampling probabilities differ between classes: the bucketed
    problem averages them per bucket (totals kept). With every class in its own bucket the
    estimate is the root of the problem itself (values by the grouped engine, which takes any q)."""
    problem = Problem.from_profile(K=40, ratio=50.0, profile="exp", E_W=1.0, E_H=1.0, d=44)
    q = np.sqrt(np.asarray(problem.counts))
    problem = problem.replace(sampling=tuple(q / q.sum()))
    bucketed = _bucketed(problem, 64)
    assert bucketed.counts == problem.counts and np.allclose(bucketed.sampling, problem.sampling, rtol=1e-14)
    merged = _bucketed(problem, 8)
    assert len(set(merged.sampling)) == len(set(merged.counts)) <= 8
    assert sum(merged.sampling) == pytest.approx(1.0, rel=1e-12)
    grouped = get_solver("nuclear", engine="grouped")
    target = grouped.run(problem.replace(E_H=3.0)).objective
    estimate = _radius_estimate(problem, target, 4 * problem.K * np.sqrt(3.0))
    assert estimate == pytest.approx(problem.K * np.sqrt(3.0), rel=1e-4)


def test_lpm_metrics_without_the_zero_columns_of_the_embedding(long_tail):
    """compare_run measures the LPM optimum on the columns its factors use: the same metrics and
    distances as on the full K×d embedding, to rounding."""
    from lpm.compare.core import used_columns
    from lpm.core.geometry import centre_means, geometry_distances, measure

    run, base, _, _ = long_tail
    solution = solve_certified(base.replace(E_H=2.0))
    H, W = used_columns(solution.H, solution.W)
    assert H.shape[1] < solution.H.shape[1] and np.array_equal(H @ W.T, solution.H @ solution.W.T)
    counts = np.asarray(base.counts)
    full, thin = (measure(h, w, counts=counts, majority=run.K // 2) for h, w in ((solution.H, solution.W), (H, W)))
    assert full.keys() == thin.keys()
    for key, value in full.items():
        if isinstance(value, float) and np.isfinite(value):
            assert thin[key] == pytest.approx(value, rel=1e-8, abs=1e-12), key
        else:
            assert thin[key] == value or (value != value and thin[key] != thin[key]), key
    C_run = centre_means(run.means, run.counts, "class-means")
    a = geometry_distances(C_run, run.W, centre_means(solution.H, counts, "class-means"), solution.W)
    b = geometry_distances(C_run, run.W, centre_means(H, counts, "class-means"), W)
    assert all(b[k] == pytest.approx(a[k], rel=1e-10, abs=1e-13) for k in a)
