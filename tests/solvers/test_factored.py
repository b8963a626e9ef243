"""The factored engine of the ``nuclear`` solver (Burer–Monteiro trust-region
Newton, :mod:`lpm.core.solvers.factored`): the dispatch rule, agreement with
the grouped engine and with cvxpy, the grouped fallback and its settings."""
from __future__ import annotations

import numpy as np
import pytest

from lpm.core.errors import LPMInputError
from lpm.core.problem import Problem
from lpm.core.solution import Status
from lpm.core.solvers import get_solver
from lpm.core.solvers.factored import grouped_is_cheaper


def exp_problem(K: int, ratio: float = 100.0, **kwargs) -> Problem:
    return Problem.from_profile(K=K, ratio=ratio, profile="exp", **{"E_W": 1.0, "E_H": 5.0, **kwargs})


def decayed(K: int, ratio: float = 100.0) -> Problem:
    return Problem.from_profile(K=K, ratio=ratio, profile="exp", n_max=500, budget="weight-decay",
                                lambda_W=5e-4, lambda_H=5e-4)


@pytest.mark.parametrize("groups, K, grouped", [
    (2, 10, True), (16, 20, True), (17, 20, False), (20, 100, True), (21, 100, False),
    (100, 100, False), (200, 1000, True), (201, 1000, False),
])
def test_dispatch_rule(groups, K, grouped):
    """grouped iff the number of distinct counts m <= max(16, K/5)."""
    assert grouped_is_cheaper(groups, K) is grouped


@pytest.mark.parametrize("problem, engine", [
    (exp_problem(10), "grouped"),                                             # m = 10
    (Problem.from_profile(K=100, ratio=10.0, profile="step", majority=50), "grouped"),   # m = 2
    (exp_problem(30), "factored"),                                            # m = 30 > 16
    (decayed(100), "factored"),
])
def test_auto_engine_by_the_number_of_distinct_counts(problem, engine):
    solution = get_solver("nuclear").run(problem)
    assert solution.extra["engine"] == engine
    assert solution.status is Status.OPTIMAL and solution.certificate.relative_gap <= 1e-9


@pytest.mark.parametrize("make", [
    lambda: exp_problem(30),
    lambda: exp_problem(100),
    lambda: exp_problem(60, ratio=1000.0, E_W=2.0, E_H=0.5),
    lambda: decayed(100),
])
def test_factored_equals_grouped_and_both_are_certified(make):
    """Two independent engines, each certified at its recovered (W, H): the
    objectives agree to 1e-8 (relative) and each lies within the other's bound."""
    problem = make()
    factored = get_solver("nuclear", engine="factored").run(problem)
    grouped = get_solver("nuclear", engine="grouped").run(problem)
    assert (factored.extra["engine"], grouped.extra["engine"]) == ("factored", "grouped")
    for s in (factored, grouped):
        assert s.status is Status.OPTIMAL and s.certificate.relative_gap <= 1e-9
    np.testing.assert_allclose(factored.objective, grouped.objective, rtol=1e-8)
    assert factored.certificate.lower_bound <= grouped.objective + 1e-12
    assert grouped.certificate.lower_bound <= factored.objective + 1e-12


@pytest.mark.parametrize("make", [lambda: exp_problem(20), lambda: exp_problem(24, ratio=10.0, E_H=2.0),
                                  lambda: exp_problem(30, ratio=1000.0)])
def test_factored_equals_cvxpy(make):
    """The factored engine against the Gram SDP of cvxpy, to 1e-8 relative."""
    problem = make()
    factored = get_solver("nuclear", engine="factored").run(problem)
    convex = get_solver("convex").run(problem)
    assert factored.status is Status.OPTIMAL
    np.testing.assert_allclose(factored.objective, convex.objective, rtol=1e-8)
    assert factored.objective <= convex.objective + 1e-9     # ours is certified; cvxpy's is an upper value


def test_factored_recovers_minority_collapse():
    """Fang et al.: at R = 1000 the smallest classes' classifiers nearly coincide
    and their features vanish (theory.md §4)."""
    problem = exp_problem(40, ratio=1000.0)
    solution = get_solver("nuclear", engine="factored").run(problem)
    W, H = solution.W, solution.H
    tail = np.argsort(problem.counts)[:3]
    w = W[tail] / np.linalg.norm(W[tail], axis=1, keepdims=True)
    assert np.min(w @ w.T) > 0.99
    assert np.max(np.linalg.norm(H[tail], axis=1)) < 1e-3 * np.max(np.linalg.norm(H, axis=1))


def test_an_uncertified_factored_stop_is_finished_by_the_grouped_engine():
    problem = exp_problem(30)
    solution = get_solver("nuclear", engine="factored", max_newton=1).run(problem)
    assert solution.status is Status.OPTIMAL and solution.certificate.relative_gap <= 1e-9
    assert "so the grouped engine on 30 groups finished from its point" in solution.message
    np.testing.assert_allclose(solution.objective, get_solver("nuclear", engine="grouped").run(problem).objective,
                               rtol=1e-8)


def test_solve_path_mixes_engines_in_input_order():
    problems = [exp_problem(30), exp_problem(10), exp_problem(30, ratio=10.0)]
    solver = get_solver("nuclear")
    path = solver.solve_path(problems)
    assert [s.problem for s in path] == problems
    assert [s.extra["engine"] for s in path] == ["factored", "grouped", "factored"]
    for solution, problem in zip(path, problems):
        np.testing.assert_allclose(solution.objective, solver.run(problem).objective, rtol=1e-9)


def test_engine_setting_is_validated():
    with pytest.raises(LPMInputError) as info:
        get_solver("nuclear", engine="dense")
    assert str(info.value) == ("The 'engine' parameter of solver 'nuclear' must be one of 'auto', 'grouped', "
                               "'factored'. Got 'dense' instead.")


def test_a_resampled_problem_gets_a_bucketed_warm_start():
    """A sampler's class probabilities are averaged per bucket like the counts, so the factored
    engine takes re-sampled problems (e.g. square-root sampling) and certifies them."""
    counts = Problem.from_profile(K=120, ratio=100, profile="exp").counts
    q = np.sqrt(np.asarray(counts))
    problem = Problem.from_profile(K=120, ratio=100, profile="exp", E_W=1.0, E_H=5.0, sampling=tuple(q / q.sum()))
    solution = get_solver("nuclear", engine="factored").run(problem)
    assert solution.status is Status.OPTIMAL and solution.certificate.relative_gap <= 1e-9
    reference = get_solver("nuclear", engine="grouped").run(problem)
    assert abs(solution.objective - reference.objective) <= 1e-8 * max(1.0, abs(reference.objective))
