"""Collapse thresholds: R* of the learnable LPM (theory.md §4.3) and the
weight-decay formula of theory.md §9 (the phase diagram, §10.5).

**LPM threshold R*** (theory.md §4.3). For the learnable CE layer-peeled model
with a step profile, the minority classifiers merge exactly beyond a finite
ratio R*. Two independent definitions are computed from certified solves:

* *index*: bisection in log R on "collapsed" := norm-aware collapse index
  (:func:`lpm.core.geometry.collapse_index` of the minority rows of W) below
  ``index_threshold`` (default 1e-3);
* *KKT* *(derived)*: in the nuclear form (theory.md §4.2) with logit matrix
  Z = W H̄ᵀ and gradient G = ∂f/∂Z (column k: p_k (softmax(z_k) − e_k)), the
  optimality condition is −G ∈ λ ∂‖Z‖_* with λ = ‖G‖₂. At a point whose
  minority rows are merged, G has singular value exactly p_B on the
  minority-centred subspace, so the merged point is optimal iff
  p_B ≤ λ. Below R* the same singular value equals λ and is p_B(1 − (s_kk −
  s_jk)) < p_B. Hence R*_KKT is the root of  log(λ(R)/p_B(R)) = 0, found by
  Brent's method in log R.

**Regularised model** (theory.md §9): ``budget="weight-decay"`` problems,

    min_{W,H} (1/N) Σ_k n_k L(W h_k, k) + (λ_W/2)‖W‖²_F + (λ_H/2) Σ_k n_k ‖h_k‖²

(mean loss, penalty summed over samples). Theory.md §9 predicts, for CE with
two groups, minority collapse iff n_B ≤ N² λ_W λ_H, and for MSE that class k
vanishes iff n_k ≤ N² λ_W λ_H. With the step counts n_A = R, n_B = 1
(N = K_A R + K_B) both give R*_formula = (1/sqrt(λ_W λ_H) − K_B)/K_A
(:func:`regularised_threshold`); the phase-diagram sweep checks it against
certified solves.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from .geometry import collapse_index
from .problem import Problem
from .solvers import get_solver

#: the stated definition of "collapsed" for the index threshold
DEFAULT_INDEX_THRESHOLD = 1e-3


def lpm_problem(K: int, majority: int, ratio: float, ewh: float) -> Problem:
    """Learnable CE LPM with step profile, E_W = 1, E_H = E_W·E_H product."""
    return Problem.from_profile(K=K, ratio=ratio, profile="step", majority=majority, classifier="learnable",
                                loss="ce", E_W=1.0, E_H=ewh, budget="class-average")


def kkt_collapse_margin(solution) -> float:
    """log(λ / p_B) with λ = ‖G‖₂: ≥ 0 iff merged minority classifiers satisfy the
    KKT conditions (module docstring). Needs a learnable CE step problem."""
    p = solution.problem
    _, G = p.logit_objective(solution.H @ solution.W.T)
    return float(math.log(np.linalg.norm(G, 2) / p.weights[p.majority]))


def _bisect_log(collapsed, lo: float, hi: float, log10_tol: float) -> tuple[float, float]:
    """Shrink [lo, hi] (lo not collapsed, hi collapsed) to width log10_tol."""
    while math.log10(hi / lo) > log10_tol:
        mid = math.sqrt(lo * hi)
        if collapsed(mid):
            hi = mid
        else:
            lo = mid
    return lo, hi


def collapse_threshold(K: int, majority: int, ewh: float, solver: str = "nuclear",
                       settings: Mapping[str, Any] | None = None, bracket: Sequence[float] = (1.0, 1e6),
                       index_threshold: float = DEFAULT_INDEX_THRESHOLD, log10_tol: float = 0.01) -> dict:
    """R* by index bisection and by the KKT root, for one (K, K_A, E_W·E_H).

    Returns a flat dict; a threshold is ``None`` when the bracket's upper end
    is not yet collapsed (or its lower end already is).
    """
    from scipy.optimize import (
        brentq,  # ≈0.5 s to import: only threshold searches need it
    )

    engine = get_solver(solver, **dict(settings or {}))
    solves: dict[float, Any] = {}

    def solution(R: float):
        if R not in solves:
            solves[R] = engine.run(lpm_problem(K, majority, R, ewh))
        return solves[R]

    def index(R: float) -> float:
        value = collapse_index(solution(R).W, np.arange(majority, K))
        return 0.0 if value is None else float(value)  # plain floats: the result prints as numbers

    lo, hi = float(bracket[0]), float(bracket[1])
    out: dict[str, Any] = {"index_at_lo": index(lo), "index_at_hi": index(hi)}
    r_index = None
    if out["index_at_lo"] >= index_threshold > out["index_at_hi"]:
        a, b = _bisect_log(lambda R: index(R) < index_threshold, lo, hi, log10_tol)
        r_index = math.sqrt(a * b)
    n_index = len(solves)
    margin = lambda t: kkt_collapse_margin(solution(10.0**t))  # noqa: E731
    r_kkt = None
    m_lo, m_hi = margin(math.log10(lo)), margin(math.log10(hi))
    if m_lo < 0 <= m_hi:
        r_kkt = 10.0 ** brentq(margin, math.log10(lo), math.log10(hi), xtol=log10_tol / 10)
    statuses = {s.status.value for s in solves.values()}
    worst_gap = max((s.certificate.relative_gap or 0.0) for s in solves.values())
    out.update(ratio_star_index=r_index, ratio_star_kkt=r_kkt, kkt_margin_at_lo=m_lo, kkt_margin_at_hi=m_hi,
               solves_index=n_index, solves_total=len(solves), solver_statuses=",".join(sorted(statuses)),
               worst_relative_gap=worst_gap)
    return out


def regularised_threshold(K: int, majority: int, lam: float) -> float:
    """R*_formula = (1/sqrt(λ_W λ_H) − K_B) / K_A for step counts n_A = R, n_B = 1."""
    return (1.0 / math.sqrt(lam) - (K - majority)) / majority
