"""The ``convex`` back end (theory.md §4.1, §5): agreement with ``nuclear``,
``analytic`` and ``gradient``; certificates; status handling."""
from __future__ import annotations

import itertools

import cvxpy as cp
import numpy as np
import pytest

from lpm.core.errors import LPMInputError, SolverFailed
from lpm.core.geometry import measure_solution
from lpm.core.problem import Problem
from lpm.core.solution import Status
from lpm.core.solvers import get_solver
from lpm.core.solvers.analytic import ce_etf_optimal_loss, class_average_norms

FANG = dict(K=10, profile="step", majority=5, E_W=1.0, E_H=5.0)  # theory.md §4.1


def fang(ratio: float, **kwargs) -> Problem:
    return Problem.from_profile(ratio=ratio, **{**FANG, **kwargs})


@pytest.fixture(scope="module")
def convex():
    return get_solver("convex")


# ---------------------------------------------------------------- learnable
@pytest.mark.parametrize("ratio", [1.0, 10.0, 100.0, 1e3, 1e4])
def test_gram_sdp_and_nuclear_agree_on_value_and_geometry(convex, ratio):
    """Same optimum (theory.md §4.2: 'the optimal values equal the SDP's'), and
    the same minority geometry on both sides of the collapse threshold."""
    problem = fang(ratio)
    sdp, nuc = convex.run(problem), get_solver("nuclear").run(problem)
    assert sdp.status is Status.OPTIMAL and nuc.status is Status.OPTIMAL
    np.testing.assert_allclose(sdp.objective, nuc.objective, rtol=1e-8)
    # each certificate bounds the other's point
    assert sdp.certificate.lower_bound <= nuc.objective and nuc.certificate.lower_bound <= sdp.objective
    a, b = measure_solution(sdp), measure_solution(nuc)
    for key in ("collapse_index", "feature_collapse_index", "classifier_norm_ratio", "feature_norm_ratio"):
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-5, err_msg=key)
    for key in ("classifier_minority_cos", "classifier_cross_cos"):
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-5, err_msg=key)


def test_minority_collapse_with_growing_ratio(convex):
    """[F21] §4.3: below the threshold the minority classifiers are distinct,
    beyond it they coincide (norm-aware index 0) while keeping a norm."""
    below, beyond = measure_solution(convex.run(fang(3.0))), measure_solution(convex.run(fang(1e3)))
    assert below["collapse_index"] > 0.5
    assert beyond["collapse_index"] < 1e-5
    np.testing.assert_allclose(beyond["classifier_minority_cos"], 1.0, atol=1e-8)
    assert beyond["classifier_norm_ratio"] > 0.05


def test_per_sample_budget_with_learnable_classifier(convex):
    """diag(X_HH) ≤ E_H: at R = 1 the ETF meets it, so the value is the
    class-average one; under imbalance it is tighter, so the value is higher."""
    balanced = convex.run(fang(1.0, budget="per-sample"))
    np.testing.assert_allclose(balanced.objective, ce_etf_optimal_loss(10, 1.0, 5.0), rtol=1e-9)
    tight, loose = convex.run(fang(100.0, budget="per-sample")), get_solver("nuclear").run(fang(100.0))
    assert tight.certificate.method == "gram-lagrangian" and tight.certificate.relative_gap <= 1e-5
    assert np.linalg.norm(tight.H, axis=1).max() ** 2 <= 5.0 * (1 + 1e-12)
    assert tight.certificate.lower_bound > loose.objective + 1e-3


def test_exponential_profile_without_symmetry_matches_nuclear(convex):
    problem = Problem.from_profile(K=10, ratio=100.0, profile="exp", E_W=1.0, E_H=5.0)
    np.testing.assert_allclose(convex.run(problem).objective, get_solver("nuclear").run(problem).objective, rtol=1e-8)


def test_learnable_mse_with_a_small_budget_matches_nuclear(convex):
    problem = fang(10.0, loss="mse", E_W=0.05, E_H=0.05)
    np.testing.assert_allclose(convex.run(problem).objective, get_solver("nuclear").run(problem).objective, rtol=1e-8)


# ---------------------------------------------------------------- fixed ETF
@pytest.mark.parametrize("loss, budget", list(itertools.product(["ce", "dr"], ["per-sample", "class-average"])))
@pytest.mark.parametrize("ratio", [1.0, 10.0, 1e3])
def test_fixed_etf_matches_the_closed_forms(convex, loss, budget, ratio):
    problem = Problem.from_profile(K=10, ratio=ratio, profile="exp", classifier="fixed-etf", loss=loss,
                                   budget=budget, E_W=1.0, E_H=5.0)
    ours, exact = convex.run(problem), get_solver("analytic").run(problem)
    np.testing.assert_allclose(ours.objective, exact.objective, rtol=1e-8, atol=1e-8)
    # The objective pins class k's mean only to about sqrt(gap / p_k), so
    # compare the features weighted by sqrt(p_k / max p); an interior-point
    # point run to tolerance 1e-9 is good to ~sqrt(1e-9) ≈ 3e-5.
    weight = np.sqrt(problem.weights / problem.weights.max())[:, None]
    np.testing.assert_allclose(weight * ours.H, weight * exact.H, rtol=0, atol=1e-4)


def test_class_average_budget_reallocates_norms_but_keeps_directions(convex):
    """theory.md §5: the directions stay m_k, the norms move toward larger
    classes (monotone in the count); the per-sample budget keeps them equal."""
    problem = Problem.from_profile(K=10, ratio=100.0, profile="exp", classifier="fixed-etf",
                                   budget="class-average", E_W=1.0, E_H=5.0)
    M = problem.fixed_classifier / np.sqrt(problem.E_W)  # rows m_k
    H = convex.run(problem).H
    norms = np.linalg.norm(H, axis=1)
    np.testing.assert_allclose(np.sum(H * M, axis=1) / norms, 1.0, rtol=0, atol=1e-10)
    assert np.all(np.diff(norms) < -0.1)  # counts strictly decrease with k
    assert norms[:5].mean() > 2 * norms[5:].mean()
    np.testing.assert_allclose(norms, class_average_norms(problem), atol=1e-5)
    per_sample = convex.run(problem.replace(budget="per-sample")).H
    np.testing.assert_allclose(np.linalg.norm(per_sample, axis=1), np.sqrt(5.0), rtol=1e-6)


# ---------------------------------------------------------------- certificates
@pytest.mark.parametrize("classifier, loss, budget", list(itertools.product(
    ["learnable", "fixed-etf", "fixed-random"], ["ce", "dr", "mse"], ["per-sample", "class-average"])))
def test_certificate_budgets_and_reevaluated_objective(convex, classifier, loss, budget):
    problem = fang(100.0, classifier=classifier, loss=loss, budget=budget)
    solution = convex.run(problem)
    cert = solution.certificate
    assert solution.status is Status.OPTIMAL
    assert cert.gap >= 0.0 and cert.lower_bound <= solution.objective
    assert cert.relative_gap <= 1e-5
    assert solution.objective == problem.objective(solution.W, solution.H)
    K = problem.K
    if problem.fixed:
        np.testing.assert_array_equal(solution.W, problem.fixed_classifier)
    else:
        assert (solution.W**2).sum() / K <= problem.E_W * (1 + 1e-12)
    if budget == "per-sample":
        assert (solution.H**2).sum(axis=1).max() <= problem.E_H * (1 + 1e-12)
    else:
        assert (solution.H**2).sum() / K <= problem.E_H * (1 + 1e-12)


# ---------------------------------------------------------------- status handling
def test_an_early_stop_is_flagged_and_its_bound_stays_valid(convex):
    problem = fang(100.0)
    rough = get_solver("convex", cvx_solver="scs", solver_options={"max_iters": 5}).run(problem)
    assert rough.status is Status.OPTIMAL_INACCURATE
    assert "warning: SCS reported optimal_inaccurate" in rough.message
    assert "warning: the certified gap exceeds gap_tol 1e-05" in rough.message
    best = convex.run(problem).objective
    assert rough.certificate.lower_bound <= best <= rough.objective


def test_no_optimum_raises(monkeypatch):
    def infeasible(self, *args, **kwargs):
        self._status = cp.INFEASIBLE
        return np.inf

    monkeypatch.setattr(cp.Problem, "solve", infeasible)
    with pytest.raises(SolverFailed) as info:
        get_solver("convex").run(fang(10.0))
    assert str(info.value) == ("The 'convex' solver failed with status 'infeasible': cvxpy back end CLARABEL "
                               "returned no optimum, so no solution is reported.")


def test_a_back_end_that_cannot_handle_the_cones_raises():
    with pytest.raises(SolverFailed) as info:
        get_solver("convex", cvx_solver="OSQP").run(fang(10.0))
    assert str(info.value).startswith("The 'convex' solver failed with status 'solver_error': "
                                      "cvxpy back end OSQP raised:")


def test_unknown_cvx_solver_lists_the_installed_ones():
    with pytest.raises(LPMInputError) as info:
        get_solver("convex", cvx_solver="NOPE")
    assert str(info.value) == ("The 'cvx_solver' parameter of solver 'convex' must be one of the installed cvxpy "
                               f"solvers {', '.join(cp.installed_solvers())}. Got 'NOPE' instead.")


def test_another_back_end_can_be_chosen():
    solution = get_solver("convex", cvx_solver="scs",
                          solver_options={"eps_abs": 1e-10, "eps_rel": 1e-10, "max_iters": 100_000}).run(fang(10.0))
    assert solution.extra["cvx_solver"] == "SCS" and solution.status is Status.OPTIMAL
    np.testing.assert_allclose(solution.objective, get_solver("nuclear").run(fang(10.0)).objective, rtol=1e-8)


# ---------------------------------------------------------------- gradient
@pytest.mark.parametrize("ratio", [3.0, 100.0])  # below and beyond the collapse threshold R* ≈ 12.2
def test_gradient_reaches_the_certified_optimum_within_its_gap(convex, ratio):
    problem = fang(ratio)
    reference, found = convex.run(problem), get_solver("gradient").run(problem)
    assert found.certificate.gap is not None and found.certificate.relative_gap <= 1e-6
    assert abs(found.objective - reference.objective) <= found.certificate.gap + reference.certificate.gap + 1e-12
    a, b = measure_solution(found), measure_solution(reference)
    np.testing.assert_allclose(a["collapse_index"], b["collapse_index"], atol=1e-4)
    np.testing.assert_allclose(a["classifier_norm_ratio"], b["classifier_norm_ratio"], atol=1e-4)


def test_a_loose_first_solve_is_retried_with_more_regularisation(monkeypatch):
    """When the first cvxpy solve ends with a certified gap above gap_tol, the solver tries once more
    with CLARABEL's static regularisation raised, keeps the better certificate and says so."""
    from dataclasses import replace

    from lpm.core.solvers.convex import RETRY_OPTIONS, ConvexSolver

    options_seen, real_run, real_solve = [], ConvexSolver._run_learnable, ConvexSolver._solve

    def recording_solve(self, program, defaults=None, retry=False):
        options_seen.append(dict(RETRY_OPTIONS["CLARABEL"]) if retry else {})
        return real_solve(self, program, defaults, retry)

    def loose_first(self, problem, retry=False):
        result = real_run(self, problem, retry)
        if len(options_seen) == 1:  # the first try: pretend it stopped early
            result = (*result[:5], replace(result[5], gap=1e-3))
        return result

    monkeypatch.setattr(ConvexSolver, "_solve", recording_solve)
    monkeypatch.setattr(ConvexSolver, "_run_learnable", loose_first)
    sol = get_solver("convex").run(fang(10.0))
    assert options_seen == [{}, RETRY_OPTIONS["CLARABEL"]]
    assert sol.status is Status.OPTIMAL and sol.certificate.relative_gap <= 1e-8
    assert "second try with static_regularization_constant=1e-07" in sol.message
    assert "the first stopped at a certified relative gap 1.00e-03" in sol.message
    # with options of the user's own there is no second try
    options_seen.clear()
    get_solver("convex", solver_options={"max_iter": 200}).run(fang(10.0))
    assert options_seen == [{}]


@pytest.mark.parametrize("options", [None, {"tol_gap_abs": 1e-4, "tol_gap_rel": 1e-4, "tol_feas": 1e-4}])
def test_fixed_weight_decay_is_polished_to_the_closed_form(options):
    """An interior-point H is about sqrt(gap) from the minimiser (1.7e-5 in the ETF
    cosines with clarabel 0.11); the Newton polish on the separable, strongly convex
    model brings it to the closed form (theory.md §9.1) at any back-end accuracy,
    here even from a solve stopped at 1e-4."""
    problem = Problem.from_counts([50.0, 20.0, 7.0, 3.0, 1.0, 1.0], classifier="fixed-etf", loss="ce",
                                  budget="weight-decay", lambda_H=1e-3)
    solution = get_solver("convex", solver_options=options).run(problem)
    exact = get_solver("analytic").run(problem)
    assert "Newton steps" in solution.message
    np.testing.assert_allclose(solution.H, exact.H, rtol=0, atol=1e-9)
    assert solution.certificate.relative_gap <= 1e-12
