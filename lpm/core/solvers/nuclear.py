"""Certified optimum of the learnable LPM through its nuclear-norm form.

theory.md §4.2 *(derived)*: for d ≥ K and the class-average budgets, the
layer-peeled model with a learnable classifier equals

    min_Z  f(Z) = Σ_k p_k L(Z[k, :], k)   s.t.  ‖Z‖_* ≤ ρ = K·sqrt(E_W E_H),

with Z = H Wᵀ (K×K, row k = logits of class mean k): ‖H Wᵀ‖_* ≤ ‖H‖_F ‖W‖_F
≤ ρ, and the balanced factorisation attains it. The solver runs accelerated
projected gradient in the subspace that the symmetry between equal-count
classes leaves invariant (:mod:`lpm.core.solvers.grouped`), recovers
W = c V S^{1/2}, H = c⁻¹ U S^{1/2} (c² = sqrt(E_W/E_H)) from Z = U S Vᵀ, and
certifies the recovered point with the Frank–Wolfe bound evaluated on the
full K×K logits H Wᵀ (:func:`lpm.core.certificates.nuclear_certificate`),
so the certificate does not rely on the reduction.

:meth:`NuclearSolver.solve_path` solves many problems (e.g. a ratio sweep)
in one batched iteration when they share K, the loss and the equal-count
groups.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from ..certificates import nuclear_certificate, penalised_nuclear_certificate
from ..errors import SolverRefused, check_number
from ..problem import Problem
from ..solution import Solution, Status
from .grouped import Reduction, fista, group_labels
from .recovery import balanced_factors, penalised_factors
from .registry import Solver, register


@register
class NuclearSolver(Solver):
    """FISTA on the nuclear ball with a rigorous Frank–Wolfe certificate.

    Settings: ``tol`` (target relative gap, gap / max(1, |lower bound|)),
    ``max_iter``, ``check_every`` (iterations between gap evaluations).
    """

    name = "nuclear"
    certifies = True
    speed_rank = 10

    @classmethod
    def default_settings(cls) -> dict:
        return {"tol": 1e-9, "max_iter": 100_000, "check_every": 5}

    def __init__(self, **settings):
        super().__init__(**settings)
        s, owner = self.settings, f"solver '{self.name}'"
        s["tol"] = check_number("tol", s["tol"], low=0, low_open=True, owner=owner)
        s["max_iter"] = check_number("max_iter", s["max_iter"], low=1, integer=True, owner=owner)
        s["check_every"] = check_number("check_every", s["check_every"], low=1, integer=True, owner=owner)

    @classmethod
    def supports(cls, problem: Problem) -> str | None:
        if problem.classifier != "learnable":
            return f"the nuclear-norm form needs a learnable classifier, not '{problem.classifier}'"
        if problem.budget == "per-sample":
            return ("the nuclear-norm form holds for the class-average and weight-decay forms, "
                    "not 'per-sample' (the 'convex' solver handles it)")
        if problem.d < problem.K:
            return f"the nuclear-norm form needs d >= K = {problem.K}, got d = {problem.d}"
        return None

    def _run(self, problem: Problem) -> Solution:
        return self._solve_batch([problem])[0]

    def solve_path(self, problems: Sequence[Problem]) -> list[Solution]:
        """Solve a sequence of problems, batching those that share K, the
        loss and the equal-count groups; ``time_s`` is each batch's wall time
        split evenly over its problems. Returns solutions in input order."""
        batches: dict[tuple, list[int]] = {}
        for i, problem in enumerate(problems):
            reason = self.supports(problem)
            if reason:
                raise SolverRefused(self.name, reason)
            key = (problem.K, problem.loss, problem.budget, tuple(group_labels(problem)))
            batches.setdefault(key, []).append(i)
        solutions: list[Solution | None] = [None] * len(problems)
        for members in batches.values():
            began = time.perf_counter()
            batch = self._solve_batch([problems[i] for i in members])
            share = (time.perf_counter() - began) / len(members)
            for i, solution in zip(members, batch):
                solution.time_s = share
                solutions[i] = solution
        return solutions

    def _solve_batch(self, problems: Sequence[Problem]) -> list[Solution]:
        red = Reduction(problems)
        s = self.settings
        (alpha, R), _, iterations = fista(red, red.start(), s["tol"], s["max_iter"], s["check_every"])
        return [self._finish(problem, red.to_full(alpha[b], R[b]), int(iterations[b]), len(red.size))
                for b, problem in enumerate(problems)]

    def _finish(self, problem: Problem, matrix: np.ndarray, iterations: int, groups: int) -> Solution:
        """Recover (W, H) from Z (or Y = D^{1/2}Z under weight decay), re-evaluate
        the objective there and certify it."""
        if problem.regularised:
            root = np.sqrt(np.asarray(problem.counts, dtype=np.float64))
            W, H, note = penalised_factors(problem, matrix / root[:, None])
            certificate = penalised_nuclear_certificate(problem, W, H)
        else:
            W, H, note = balanced_factors(problem, matrix)
            certificate = nuclear_certificate(problem, H @ W.T)
        objective = problem.objective(W, H)
        tol = self.settings["tol"]
        certified = certificate.relative_gap <= tol
        why = (f"relative gap {certificate.relative_gap:.2e} <= tol {tol:g} ({certificate.method})" if certified
               else f"stopped after {iterations} iterations with relative gap "
                    f"{certificate.relative_gap:.2e} > tol {tol:g}")
        return Solution(problem=problem, W=W, H=H, objective=objective, solver=self.name,
                        status=Status.OPTIMAL if certified else Status.STOPPED,
                        certificate=certificate, iterations=iterations,
                        message="; ".join(m for m in (why, note) if m),
                        extra={"symmetry_groups": groups})
