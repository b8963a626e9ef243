"""One battery for every registered back end (theory.md §11).

For every solver in the registry and every balanced problem of the battery:
if it supports the problem, it must find the known answer (a simplex ETF
with the closed-form value), follow the status rules, and return a finite,
valid certificate; if not, it must refuse with a sentence naming itself and
the reason. A second battery runs every loss (the count-aware ones of
theory.md §14 included) under every class weighting on imbalanced counts,
against the certified optimum of a certifying back end. A new back end or a
new loss is covered by registering it.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from lpm import Problem, SolverRefused, Status
from lpm.core.etf import check_etf
from lpm.core.losses import LOSS_NAMES, LOSSES
from lpm.core.solvers import REGISTRY, available_solvers, get_solver
from lpm.core.solvers.analytic import ce_etf_optimal_loss
from lpm.core.weighting import CLASS_WEIGHTS

K, E_W, E_H = 6, 1.0, 5.0
SETTINGS = {"gradient": {"steps": 3000}}   # every other back end runs with its defaults
#: how close each back end must come to the known optimal value (absolute)
VALUE_TOL = {"analytic": 1e-12, "nuclear": 1e-9, "convex": 1e-6, "gradient": 1e-7}


def _geometry_tol(name: str, problem: Problem) -> float:
    """How close to a simplex ETF the answer must be. Gradient descent on DR converges
    sublinearly, θ_t ≈ 1/sqrt(η E_W t) ≈ 0.02 rad after 3000 steps (theory.md §12)."""
    return 5e-2 if name == "gradient" and problem.loss.startswith("dr") else 1e-5


def _balanced(classifier: str, loss: str, budget: str, **extra) -> Problem:
    return Problem.from_counts([7.0] * K, classifier=classifier, loss=loss, budget=budget, E_W=E_W, E_H=E_H, **extra)


def _weight_decay_value(problem: Problem) -> float:
    """Balanced CE with weight decay: logits r·m_kᵀm_j (a scaled ETF); the value is
    min_r f(r) + penalty, both closed-form along the ETF ray (theory.md §9.1)."""
    n = problem.counts[0]
    N = n * K
    fixed = problem.fixed

    def total(r):  # r = ‖h_k‖·‖w_k‖ for a learnable head, ‖h_k‖ for a fixed one
        margin = (r * np.sqrt(E_W) if fixed else r) * K / (K - 1)
        loss = np.log1p((K - 1) * np.exp(-margin))
        if fixed:
            return loss + 0.5 * problem.lambda_H * N * r**2
        return loss + np.sqrt(problem.lambda_W * problem.lambda_H) * np.sqrt(n) * K * r

    return float(minimize_scalar(total, bounds=(0.0, 50.0), method="bounded", options={"xatol": 1e-12}).fun)


def _known_value(problem: Problem) -> float:
    if problem.budget == "max-margin":  # balanced SELI: tr (P D P)^{1/2} = (K−1)/sqrt(K) (theory.md §15)
        return (K - 1) / np.sqrt(K)
    if problem.regularised:
        return _weight_decay_value(problem)
    if problem.loss.startswith("dr"):
        return 0.0
    return ce_etf_optimal_loss(K, E_W, E_H)


BATTERY = [
    _balanced("learnable", "ce", "class-average"),
    _balanced("learnable", "ce", "per-sample"),
    _balanced("fixed-etf", "ce", "per-sample"),
    _balanced("fixed-etf", "ce", "class-average"),
    *[_balanced("fixed-etf", loss, budget) for loss in LOSSES if loss.startswith("dr")
      for budget in ("per-sample", "class-average")],
    _balanced("learnable", "ce", "weight-decay", lambda_W=1e-3, lambda_H=1e-3),
    _balanced("fixed-etf", "ce", "weight-decay", lambda_H=1e-3),
    _balanced("learnable", "ce", "max-margin"),
]
CASES = [(name, problem) for name in available_solvers() for problem in BATTERY]


def _id(case):
    name, p = case
    return f"{name}-{p.classifier}-{p.loss}-{p.budget}"


def _refuses_by_name(solver, name: str, problem: Problem) -> str | None:
    """The solver's reason for refusing ``problem`` (None if it supports it), after checking that
    running it raises SolverRefused with the one sentence naming the solver and that reason."""
    reason = solver.supports(problem)
    if reason is not None:
        with pytest.raises(SolverRefused) as info:
            solver.run(problem)
        assert str(info.value) == f"The '{name}' solver cannot solve this problem: {reason}."
    return reason


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_every_back_end_finds_the_balanced_optimum_or_refuses(case):
    name, problem = case
    solver = get_solver(name, **SETTINGS.get(name, {}))
    if _refuses_by_name(solver, name, problem) is not None:
        return
    solution = solver.run(problem)
    # the known answer
    np.testing.assert_allclose(solution.objective, _known_value(problem), atol=VALUE_TOL[name], rtol=0)
    at_means = problem.objective(solution.W, solution.H)
    if solution.features is None:
        np.testing.assert_allclose(solution.objective, at_means, rtol=1e-12, atol=1e-15)
    else:  # a per-sample objective is at least the class-mean one (Jensen)
        assert at_means <= solution.objective + 1e-15
    tol = _geometry_tol(name, problem)
    assert check_etf((solution.H - solution.H.mean(axis=0)).T, scale=None).ok(tol)
    if not problem.fixed:
        assert check_etf(solution.W.T, scale=None).ok(tol)
    # the certificate: finite, a valid lower bound, and tight where the status says so
    cert = solution.certificate
    assert cert.lower_bound is not None and np.isfinite(cert.lower_bound) and np.isfinite(cert.gap)
    assert cert.gap >= 0 and cert.lower_bound <= _known_value(problem) + 1e-9
    if REGISTRY[name].certifies:
        assert solution.status is Status.OPTIMAL
        assert cert.relative_gap <= 1e-5
    else:  # a back end without a proof of its own is certified against a reference
        assert solution.status in (Status.OPTIMAL, Status.STOPPED)
        assert cert.gap <= 1e-6
    if solution.features is not None:  # per-sample solvers: every sample on its class mean (NC1 = 0)
        spread = np.linalg.norm(solution.features - solution.H[solution.labels], axis=1)
        assert spread.max() <= tol * np.sqrt(E_H)


# ------------------------------------------------------------------ every loss × class weighting, imbalanced
#: a step profile: the count-aware losses and the class weights act only where counts differ
IMBALANCED = (9.0, 9.0, 9.0, 1.0, 1.0, 1.0)
CE_FAMILY = ("ce", "la", "cdt", "ldam", "vs")
#: the gradient solver runs thousands of steps per case: it gets every count-aware loss once and every
#: weighting once (with a learnable classifier, la and ldam; cdt and vs take 5-8 s there), the
#: certifying back ends the whole product
GRADIENT_SUBSET = {(loss, "none") for loss in CE_FAMILY} | {("ce", w) for w in CLASS_WEIGHTS}


def _imbalanced(classifier: str, budget: str, loss: str, weights: str, **extra) -> Problem:
    return Problem.from_counts(IMBALANCED, classifier=classifier, budget=budget, loss=loss, class_weights=weights,
                               E_W=E_W, E_H=E_H, **extra)


REMEDY_BATTERY = [
    *[_imbalanced("learnable", "class-average", loss, w) for loss in LOSS_NAMES for w in CLASS_WEIGHTS],
    *[_imbalanced("fixed-etf", "per-sample", loss, w) for loss in LOSS_NAMES for w in CLASS_WEIGHTS],
    *[_imbalanced("learnable", "weight-decay", loss, w, lambda_W=1e-3, lambda_H=1e-3)
      for loss in CE_FAMILY for w in CLASS_WEIGHTS],
]
REMEDY_CASES = [(name, p) for name in available_solvers() for p in REMEDY_BATTERY
                if name != "gradient" or ((p.loss, p.class_weights) in GRADIENT_SUBSET
                                          and (p.fixed or p.loss not in ("cdt", "vs")))]


def _remedy_id(case):
    name, p = case
    return f"{name}-{p.classifier}-{p.budget}-{p.loss}-{p.class_weights}"


@pytest.fixture(scope="module")
def references():
    """The certified optimum of each problem by the certifying back end of its kind (nuclear for a
    learnable classifier, convex for a fixed one), computed once."""
    cache = {}

    def get(problem):
        if problem not in cache:
            cache[problem] = get_solver("convex" if problem.fixed else "nuclear").run(problem)
        return cache[problem]
    return get


@pytest.mark.parametrize("case", REMEDY_CASES, ids=[_remedy_id(c) for c in REMEDY_CASES])
def test_every_back_end_solves_every_loss_and_weighting_or_refuses(case, references):
    """Imbalanced counts, every loss × class weighting: a back end either refuses by name or reaches
    the certified optimum of a certifying back end, with a valid certificate of the same quality as CE's."""
    name, problem = case
    solver = get_solver(name, **SETTINGS.get(name, {}))
    reason = _refuses_by_name(solver, name, problem)
    if reason is not None:
        if problem.loss in ("la", "cdt", "ldam", "vs") and name == "analytic" and problem.fixed:
            assert f"not '{problem.loss}'" in reason
        return
    reference = references(problem)
    assert reference.status is Status.OPTIMAL and reference.certificate.relative_gap <= 1e-8
    solution = solver.run(problem)
    cert = solution.certificate
    assert cert.lower_bound is not None and np.isfinite(cert.lower_bound) and cert.gap >= -1e-12
    assert cert.lower_bound <= reference.objective + 1e-9     # a lower bound of the true optimum
    tol = max(VALUE_TOL[name], 1e-6) if name != reference.solver else 0.0
    np.testing.assert_allclose(solution.objective, reference.objective, atol=tol + 1e-12, rtol=0)
    if REGISTRY[name].certifies:
        assert solution.status is Status.OPTIMAL
        assert cert.relative_gap <= (1e-8 if name == "nuclear" else 1e-5)
    else:
        assert solution.status in (Status.OPTIMAL, Status.STOPPED)
        assert cert.gap <= 1e-6
