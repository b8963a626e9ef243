"""Closed-form optima with a fixed simplex-ETF classifier [Y22].

Per-sample budget (Theorems 1 and 2): every minimiser is
h_{k,i} = sqrt(E_H) · m_k, for any class counts. The optimal loss is

    CE:  log(1 + (K−1) · exp(−sqrt(E_W E_H) · K/(K−1)))
    DR:  0

Class-average budget (theory.md §5): the directions stay m_k and the norms
r_k solve the one-dimensional KKT system

    p_k · f'(r_k) + 2 λ r_k = 0,   Σ_k r_k² = K·E_H,

with f(r) = log(1 + (K−1) e^{−a r}), a = sqrt(E_W)·K/(K−1), for CE; DR keeps
r_k = sqrt(E_H).

Weight decay (theory.md §9, CE): stationarity p_k f'(r_k) + λ_H n_k r_k = 0
with p_k = n_k/N reads f'(r) + N λ_H r = 0 for every class, so all classes
share one norm r, the root of a(K−1)/(e^{a r} + K − 1) = N λ_H r: a fixed ETF
with weight decay shows no collapse and no re-allocation either.

Max-margin (theory.md §15, learnable classifier): the vanishing-regularisation
limit has the closed-form logits Z* = diag(t ⊙ a)(I − a aᵀ/‖a‖²) of
:mod:`lpm.core.maxmargin` (plain CE: a = t = 1, the SELI geometry), factored
as W = V S^{1/2}, H = D^{-1/2} U S^{1/2} from the SVD of D^{1/2} Z*, and
certified by the dual bound of that module.

The certificates of :mod:`lpm.core.certificates` confirm every returned point.
"""
from __future__ import annotations

import numpy as np

from .. import maxmargin
from ..certificates import fixed_classifier_certificate
from ..losses import LOSS_FAMILIES
from ..problem import Problem
from ..solution import Solution, Status
from .registry import Solver, register


def ce_etf_optimal_loss(num_classes: int, E_W: float, E_H: float) -> float:
    """Theorem 1's optimal per-sample CE loss."""
    K = num_classes
    return float(np.log1p((K - 1) * np.exp(-np.sqrt(E_W * E_H) * K / (K - 1))))


def class_average_norms(problem: Problem) -> np.ndarray:
    """Optimal feature norms r_k under the class-average budget (CE or DR)."""
    from scipy.optimize import (
        brentq,  # ≈0.5 s to import; only this budget form needs a root finder
    )

    K, p = problem.K, problem.weights
    if problem.loss.startswith("dr"):
        return np.full(K, np.sqrt(problem.E_H))
    a = np.sqrt(problem.E_W) * K / (K - 1)

    def minus_fprime(r):  # −f'(r) = a · (1 − softmax prob of the true class)
        return a * (K - 1) / (np.exp(a * r) + (K - 1))

    def norms(lam):
        out = np.empty(K)
        for k in range(K):
            g = lambda r: p[k] * minus_fprime(r) - 2 * lam * r  # noqa: E731  decreasing in r
            hi = 1.0
            while g(hi) > 0:
                hi *= 2
            out[k] = brentq(g, 0.0, hi, xtol=1e-15, rtol=1e-15)
        return out

    target = K * problem.E_H
    excess = lambda t: (norms(np.exp(t)) ** 2).sum() - target  # noqa: E731  decreasing in t = log λ
    lo, hi = -1.0, 1.0
    while excess(lo) < 0:
        lo -= 4.0
    while excess(hi) > 0:
        hi += 4.0
    r = norms(np.exp(brentq(excess, lo, hi, xtol=1e-14)))
    return r * np.sqrt(target / (r**2).sum())  # exact budget after root tolerance


def weight_decay_norms(problem: Problem) -> np.ndarray:
    """The optimal feature norms r_k of a fixed ETF with CE and weight decay (module docstring):
    the root of a(K−1)/(e^{a r} + K − 1) = (n_k/p_k) λ_H r, one value for all classes unless
    class weights make p_k differ from n_k/N."""
    from scipy.optimize import (
        brentq,  # ≈0.5 s to import; only this budget form needs a root finder
    )

    K = problem.K
    a = np.sqrt(problem.E_W) * K / (K - 1)
    n = np.asarray(problem.counts, dtype=np.float64)
    slopes = n / problem.weights * problem.lambda_H
    if problem.class_weights == "none" and problem.sampling is None:  # p_k = n_k/N exactly: one slope N λ_H
        slopes = np.full(K, sum(problem.counts) * problem.lambda_H)

    def root(slope):
        excess = lambda r: a * (K - 1) / (np.exp(min(a * r, 700.0)) + K - 1) - slope * r  # noqa: E731  decreasing
        hi = 1.0
        while excess(hi) > 0:
            hi *= 2
        return brentq(excess, 0.0, hi, xtol=1e-15, rtol=1e-15)

    values, index = np.unique(slopes, return_inverse=True)
    return np.array([root(v) for v in values])[index.ravel()]


@register
class AnalyticSolver(Solver):
    name = "analytic"
    certifies = True
    speed_rank = 0

    @classmethod
    def supports(cls, problem: Problem) -> str | None:
        if problem.budget == "max-margin":
            return None  # the Problem admits only the losses with a closed-form limit
        if problem.classifier != "fixed-etf":
            return f"closed forms exist only for the fixed-etf classifier, not '{problem.classifier}'"
        if problem.loss not in ("ce", "dr", "dr-unscaled") or (problem.regularised and problem.loss != "ce"):
            return (f"closed forms exist only for the ce and dr losses (ce with weight decay), not "
                    f"'{problem.loss}'" + (" (its logits depend on the class counts, so the ETF symmetry of "
                                           "Theorems 1-2 is broken)" if problem.loss in LOSS_FAMILIES else ""))
        return None

    def _run(self, problem: Problem) -> Solution:
        if problem.budget == "max-margin":
            return self._run_max_margin(problem)
        W = problem.fixed_classifier
        M = W.T / np.sqrt(problem.E_W)  # d×K unit ETF
        if problem.budget == "per-sample":
            r = np.full(problem.K, np.sqrt(problem.E_H))
        elif problem.regularised:
            r = weight_decay_norms(problem)
        else:
            r = class_average_norms(problem)
        H = r[:, None] * M.T
        objective = problem.objective(W, H)
        certificate = fixed_classifier_certificate(problem, H, W)
        return Solution(problem=problem, W=W, H=H, objective=objective, solver=self.name,
                        status=Status.OPTIMAL, certificate=certificate,
                        message="closed-form optimum (Y22 Theorems 1–2)")

    def _run_max_margin(self, problem: Problem) -> Solution:
        p = problem.weights
        a, t = maxmargin.problem_temperatures(problem)
        Z = maxmargin.closed_form_logits(p, a, t)
        certificate, scale = maxmargin.certificate(p, maxmargin.temperature_matrix(problem.K, a, t), Z)
        W, H = maxmargin.balanced_factors(p, Z * scale, problem.d)
        status = Status.OPTIMAL if certificate.relative_gap <= 1e-9 else Status.OPTIMAL_INACCURATE
        return Solution(problem=problem, W=W, H=H, objective=maxmargin.objective(p, W, H), solver=self.name,
                        status=status, certificate=certificate,
                        message="closed-form max-margin optimum (SELI, theory.md §15)")
