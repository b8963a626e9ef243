"""cvxpy back end: the Gram SDP and the fixed-classifier convex program.

Learnable classifier (theory.md §4.1, [F21]). X is the 2K×2K Gram matrix of
[h_1 … h_K, w_1 … w_K], and the logits of class k are the row X[k, K:2K]:

    min  Σ_k p_k L(X[k, K:], k)
    s.t. X ⪰ 0,  tr(X_WW) ≤ K·E_W,
         tr(X_HH) ≤ K·E_H      (class-average budget)  or
         diag(X_HH) ≤ E_H      (per-sample budget: class means of a
                                per-sample-feasible point, optimal by Jensen).

Fixed classifier (theory.md §5, [Y22]), W = ``problem.fixed_classifier``:

    min_H  Σ_k p_k L(W h_k, k)
    s.t.   ‖h_k‖² ≤ E_H for every k   or   Σ_k ‖h_k‖² ≤ K·E_H.

(The per-sample form separates over classes, so it is solved with equal
weights, which leaves the minimiser unchanged and conditions rare classes as
well as common ones.)

Weight decay (theory.md §9.1): with D = diag(n_k) and Y = D^{1/2} Z, the
learnable model is min_Y Σ_k p_k L(n_k^{-1/2} Y[k], k) + sqrt(λ_W λ_H)‖Y‖_*
(``cp.normNuc``); the fixed one is min_H Σ_k p_k L(W h_k, k) +
(λ_H/2) Σ_k n_k ‖h_k‖².

Max-margin (theory.md §15): min ‖D^{1/2} Z‖_* s.t. T_kk Z_kk − T_kj Z_kj ≥ 1
(D = diag p_k, T the temperature matrix of :mod:`lpm.core.maxmargin`, all ones
for CE), certified by that module's dual bound with the solver's multipliers.

Losses: the ``cvxpy_value`` form of each loss in :mod:`lpm.core.losses`.

Recovery and certificate. The solver's point is turned into a feasible (W, H)
(balanced factorisation of Z = X_HW for the class-average budget,
eigen-factorisation of X for the per-sample one, the weight-decay
factorisation of Y; see :mod:`lpm.core.solvers.recovery`). The fixed-classifier
weight-decay model is smooth, separable and strongly convex, so its H is then
polished by Newton steps (:func:`~lpm.core.solvers.recovery.polish_fixed_weight_decay`):
an interior-point point is only about sqrt(gap) from the minimiser, and how
close depends on the back end's release. The reported
objective is re-evaluated there, and the lower bound is rigorous whatever
the solver's accuracy (:mod:`lpm.core.certificates`).

Status. ``Status.OPTIMAL`` when the certified relative gap is ≤ ``gap_tol``,
``Status.OPTIMAL_INACCURATE`` otherwise; a back end's own "optimal_inaccurate"
is reported as a warning in the message. Any other back-end outcome
(infeasible, unbounded, solver error, no point) raises
:class:`lpm.core.errors.SolverFailed`: no number is returned.

Settings: ``cvx_solver`` (an installed cvxpy solver; default CLARABEL, else
SCS), ``solver_options`` (keyword arguments for it, e.g. ``{"max_iters":
100}`` for SCS; by default CLARABEL gets tight tolerances), ``gap_tol``,
``verbose``.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np

from ..certificates import (fixed_classifier_certificate, gram_certificate, nuclear_certificate,
                            penalised_nuclear_certificate, project_features)
from .. import maxmargin
from ..errors import LPMInputError, SolverFailed, check_number
from ..problem import Problem
from ..solution import Solution, Status
from .recovery import balanced_factors, gram_factors, penalised_factors, polish_fixed_weight_decay
from .registry import Solver, register

_PREFERRED = ("CLARABEL", "SCS")  # both ship with cvxpy and handle exp + PSD cones
#: Back-end options unless ``solver_options`` overrides them. Interior-point
#: iterates sit about sqrt(tolerance) from the SDP's degenerate optimal face,
#: and the first-order certificate sees that distance, so the Gram SDP asks
#: for 1e-12; the fixed-classifier programs meet 1e-9 without warnings.
GRAM_DEFAULTS = {"CLARABEL": {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12}}
FIXED_DEFAULTS = {"CLARABEL": {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9}}
#: the max-margin SDP meets 1e-10 without CLARABEL's inaccuracy warning
MAX_MARGIN_DEFAULTS = {"CLARABEL": {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}}
#: A second try when CLARABEL stops early with a certified gap above ``gap_tol`` (and the user set no
#: options): ten times its default static regularisation. Seen at K = 10, R = 10^1.1 in one BLAS
#: thread, where the first solve stalls after 20 iterations at a relative gap of 1.4e-5 and the
#: second certifies 6e-11. The better certificate of the two is kept.
RETRY_OPTIONS = {"CLARABEL": {"static_regularization_constant": 1e-7}}


def _cvxpy():
    import cvxpy  # heavy (≈1.5 s to import): loaded only when a convex program is built

    return cvxpy


@functools.lru_cache(maxsize=1)
def installed_solvers() -> tuple[str, ...]:
    """cvxpy's installed solvers (cached: the look-up costs milliseconds)."""
    return tuple(_cvxpy().installed_solvers())


def default_cvx_solver() -> str:
    """The first of CLARABEL, SCS that cvxpy has installed."""
    installed = installed_solvers()
    for name in _PREFERRED:
        if name in installed:
            return name
    raise SolverFailed("convex", "no solver", "cvxpy has neither CLARABEL nor SCS installed")


def logit_loss(problem: Problem, Z, weights: np.ndarray | None = None):
    """Σ_k p_k L(Z[k, :], k) as a cvxpy expression of the K×K logits Z
    (``weights`` replaces p when given)."""
    return problem.loss_fn.cvxpy_value(Z, problem.weights if weights is None else weights, problem.dr_target)


def _gram_program(problem: Problem):
    cp, K = _cvxpy(), problem.K
    X = cp.Variable((2 * K, 2 * K), PSD=True)
    X_HH, X_WW = X[:K, :K], X[K:, K:]
    if problem.budget == "class-average":
        feature = cp.trace(X_HH) <= K * problem.E_H
    else:
        feature = cp.diag(X_HH) <= problem.E_H
    classifier = cp.trace(X_WW) <= K * problem.E_W
    return cp.Problem(cp.Minimize(logit_loss(problem, X[:K, K:])), [feature, classifier]), X, feature, classifier


def _penalised_program(problem: Problem):
    cp = _cvxpy()
    root = np.sqrt(np.asarray(problem.counts, dtype=np.float64))
    Y = cp.Variable((problem.K, problem.K))
    mu = float(np.sqrt(problem.lambda_W * problem.lambda_H))
    loss = logit_loss(problem, cp.multiply(1.0 / root[:, None], Y))
    return cp.Problem(cp.Minimize(loss + mu * cp.normNuc(Y))), Y


def max_margin_program(weights: np.ndarray, T: np.ndarray):
    """min ‖D^{1/2} Z‖_* s.t. T_kk Z_kk − T_kj Z_kj ≥ 1 (k ≠ j), D = diag(weights): the cvxpy
    problem, its variable Z and the margin constraint (whose dual value holds the multipliers)."""
    cp = _cvxpy()
    weights = np.asarray(weights, dtype=np.float64)
    K = len(weights)
    Z = cp.Variable((K, K))
    M = cp.multiply(T, Z)
    own = cp.reshape(cp.diag(M), (K, 1), order="F") @ np.ones((1, K))
    margins = own - M + np.eye(K) >= 1  # the diagonal reads 1 >= 1 and carries no multiplier
    objective = cp.normNuc(np.diag(np.sqrt(weights / weights.sum())) @ Z)
    return cp.Problem(cp.Minimize(objective), [margins]), Z, margins


def _fixed_program(problem: Problem):
    cp, K, W = _cvxpy(), problem.K, problem.fixed_classifier
    H = cp.Variable((K, problem.d))
    if problem.budget == "per-sample":
        # One independent problem per class: the weights p_k do not move the
        # minimiser, and equal weights keep rare classes as well conditioned
        # as common ones. The objective is re-evaluated with p afterwards.
        constraints = [cp.norm(H, 2, axis=1) <= np.sqrt(problem.E_H)]
        loss = logit_loss(problem, H @ W.T, np.full(K, 1.0 / K))
    elif problem.budget == "class-average":
        constraints = [cp.sum_squares(H) <= K * problem.E_H]
        loss = logit_loss(problem, H @ W.T)
    else:
        constraints = []
        n = np.asarray(problem.counts, dtype=np.float64)
        loss = logit_loss(problem, H @ W.T) + 0.5 * problem.lambda_H * cp.sum(cp.multiply(n[:, None], cp.square(H)))
    return cp.Problem(cp.Minimize(loss), constraints), H


@register
class ConvexSolver(Solver):
    """Certified optimum of every LPM variant through cvxpy (slow beyond K ≈ 50
    for learnable classifiers; prefer ``nuclear`` there)."""

    name = "convex"
    certifies = True
    speed_rank = 20

    @classmethod
    def default_settings(cls) -> dict:
        return {"cvx_solver": None, "solver_options": None, "gap_tol": 1e-5, "verbose": False}

    def __init__(self, **settings):
        super().__init__(**settings)
        s, owner = self.settings, f"solver '{self.name}'"
        if s["cvx_solver"] is not None:
            installed = installed_solvers()
            if not isinstance(s["cvx_solver"], str) or s["cvx_solver"].upper() not in installed:
                raise LPMInputError("cvx_solver", s["cvx_solver"],
                                    "one of the installed cvxpy solvers " + ", ".join(installed), owner)
            s["cvx_solver"] = s["cvx_solver"].upper()
        if s["solver_options"] is None:
            s["solver_options"] = {}
        elif not isinstance(s["solver_options"], dict):
            raise LPMInputError("solver_options", s["solver_options"],
                                "a dict of keyword arguments for the cvxpy solver", owner)
        s["gap_tol"] = check_number("gap_tol", s["gap_tol"], low=0, low_open=True, owner=owner)

    def _solve(self, program, defaults: dict | None = None, retry: bool = False) -> str:
        """Run cvxpy and return a note on its status, or raise
        :class:`SolverFailed` when it returned no optimum."""
        cp = _cvxpy()
        backend = self.settings["cvx_solver"] or default_cvx_solver()
        options = {**(defaults or {}).get(backend, {}), **(RETRY_OPTIONS.get(backend, {}) if retry else {}),
                   **self.settings["solver_options"]}
        try:
            with warnings.catch_warnings():  # cvxpy's "may be inaccurate" goes into our message
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                program.solve(solver=backend, verbose=self.settings["verbose"], **options)
        except cp.error.SolverError as exc:
            detail = f"cvxpy back end {backend} raised: {str(exc).rstrip('.')}"
            raise SolverFailed(self.name, "solver_error", detail) from exc
        if program.status == cp.OPTIMAL:
            return f"{backend}: optimal"
        if program.status == cp.OPTIMAL_INACCURATE:
            return f"warning: {backend} reported optimal_inaccurate"
        raise SolverFailed(self.name, str(program.status),
                           f"cvxpy back end {backend} returned no optimum, so no solution is reported")

    def _run(self, problem: Problem) -> Solution:
        run = self._run_fixed if problem.fixed else self._run_learnable
        program, message, W, H, note, certificate = first = run(problem)
        backend = self.settings["cvx_solver"] or default_cvx_solver()
        if (certificate.relative_gap > self.settings["gap_tol"] and backend in RETRY_OPTIONS
                and not self.settings["solver_options"]):
            try:
                second = run(problem, retry=True)
            except SolverFailed:
                second = None
            if second is not None and second[5].relative_gap < certificate.relative_gap:
                program, message, W, H, note, certificate = second
                options = ", ".join(f"{k}={v:g}" for k, v in RETRY_OPTIONS[backend].items())
                message = (f"{message} (second try with {options}; the first stopped at a certified relative "
                           f"gap {first[5].relative_gap:.2e})")
        objective = (maxmargin.objective(problem.weights, W, H) if problem.budget == "max-margin"
                     else problem.objective(W, H))
        rel = certificate.relative_gap
        parts = [message, f"certified relative gap {rel:.2e} ({certificate.method})", note]
        # Status.OPTIMAL means "certified gap within tolerance", so the status
        # follows the rigorous certificate; the back end's own inaccuracy flag
        # stays in the message as a warning.
        status = Status.OPTIMAL if rel <= self.settings["gap_tol"] else Status.OPTIMAL_INACCURATE
        if status is Status.OPTIMAL_INACCURATE:
            parts.append(f"warning: the certified gap exceeds gap_tol {self.settings['gap_tol']:g}")
        return Solution(problem=problem, W=W, H=H, objective=objective, solver=self.name, status=status,
                        certificate=certificate,
                        iterations=int(getattr(program.solver_stats, "num_iters", 0) or 0),
                        message="; ".join(p for p in parts if p),
                        extra={"cvx_solver": self.settings["cvx_solver"] or default_cvx_solver()})

    def _run_fixed(self, problem: Problem, retry: bool = False):
        program, H_var = _fixed_program(problem)
        message = self._solve(program, FIXED_DEFAULTS, retry)
        W = problem.fixed_classifier
        H, note = project_features(problem, _value(H_var, self.name)), ""
        if problem.regularised:  # interior-point accuracy is sqrt(gap) in H: finish with Newton steps
            polished, note = polish_fixed_weight_decay(problem, H)
            if problem.objective(W, polished) <= problem.objective(W, H):
                H = polished
            else:
                note = ""
        return program, message, W, H, note, fixed_classifier_certificate(problem, H, W)

    def _run_learnable(self, problem: Problem, retry: bool = False):
        if problem.budget == "max-margin":
            T = maxmargin.temperature_matrix(problem.K, *maxmargin.problem_temperatures(problem))
            program, Z_var, margins = max_margin_program(problem.weights, T)
            message = self._solve(program, MAX_MARGIN_DEFAULTS, retry)
            Z = _value(Z_var, self.name)
            certificate, scale = maxmargin.certificate(problem.weights, T, Z, margins.dual_value)
            if not np.isfinite(scale):
                raise SolverFailed(self.name, "infeasible_point", "the solver's logits violate a margin constraint")
            W, H = maxmargin.balanced_factors(problem.weights, Z * scale, problem.d)
            return program, message, W, H, "", certificate
        if problem.regularised:
            program, Y_var = _penalised_program(problem)
            message = self._solve(program, GRAM_DEFAULTS, retry)  # an SDP too (the nuclear norm's cone)
            root = np.sqrt(np.asarray(problem.counts, dtype=np.float64))
            W, H, note = penalised_factors(problem, _value(Y_var, self.name) / root[:, None])
            return program, message, W, H, note, penalised_nuclear_certificate(problem, W, H)
        program, X_var, feature, classifier = _gram_program(problem)
        message = self._solve(program, GRAM_DEFAULTS, retry)
        X = _value(X_var, self.name)
        Z = X[: problem.K, problem.K:]
        if problem.budget == "class-average":
            W, H, note = balanced_factors(problem, Z)
            return program, message, W, H, note, nuclear_certificate(problem, H @ W.T, factors=(H, W))
        # An interior-point X can have rank > d on a degenerate optimal face;
        # the balanced factors of X_HW (rows clipped to the budget) are a second
        # feasible candidate. Keep the better of the two.
        candidates = (gram_factors(problem, X), balanced_factors(problem, Z))
        W, H, note = min(candidates, key=lambda c: problem.objective(c[0], c[1]))
        certificate = gram_certificate(problem, H @ W.T, feature.dual_value, classifier.dual_value)
        return program, message, W, H, note, certificate


def _value(variable, solver: str) -> np.ndarray:
    if variable.value is None or not np.all(np.isfinite(variable.value)):
        raise SolverFailed(solver, "no_value", "the cvxpy back end returned no finite point")
    return np.asarray(variable.value, dtype=np.float64)
