"""Certified optimum of the learnable LPM through its nuclear-norm form.

theory.md §4.2 *(derived)*: for d ≥ K and the class-average budgets, the
layer-peeled model with a learnable classifier equals

    min_Z  f(Z) = Σ_k p_k L(Z[k, :], k)   s.t.  ‖Z‖_* ≤ ρ = K·sqrt(E_W E_H),

with Z = H Wᵀ (K×K, row k = logits of class mean k): ‖H Wᵀ‖_* ≤ ‖H‖_F ‖W‖_F
≤ ρ, and the balanced factorisation attains it. Under weight decay the model
is the penalised program min_Y f(D^{-1/2} Y) + μ‖Y‖_*, Y = D^{1/2} Z
(theory.md §9.1).

Two engines solve either program, chosen by the number m of distinct class
counts (:func:`lpm.core.solvers.factored.grouped_is_cheaper`):

* ``grouped`` (m ≤ max(16, K/5)): accelerated projected (proximal) gradient
  in the subspace that the symmetry between equal-count classes leaves
  invariant, O(m³) per iteration (:mod:`lpm.core.solvers.grouped`);
* ``factored`` (more distinct counts, e.g. an exponential profile):
  Burer–Monteiro trust-region Newton on factors of the matrix, warm-started
  from a bucketed grouped solve (:mod:`lpm.core.solvers.factored`). Should
  it stop uncertified (say, a ball whose optimum lies strictly inside), the
  grouped engine finishes from its point. Its arrays are NumPy's or, with
  the setting ``backend='torch'``, torch's on ``device`` (CUDA when present:
  float32 Hessian products on the GPU; every certificate in float64 on the
  recovered point, as always).

The solver then recovers W = c V S^{1/2}, H = c⁻¹ U S^{1/2} (c² =
sqrt(E_W/E_H)) from Z = U S Vᵀ (under weight decay the penalised
factorisation of :mod:`lpm.core.solvers.recovery`), and certifies the
recovered point with the bounds of :mod:`lpm.core.certificates` evaluated
on the full K×K logits H Wᵀ (:func:`lpm.core.certificates.nuclear_certificate`,
:func:`lpm.core.certificates.penalised_nuclear_certificate`), so the
certificate relies on neither engine. ``Solution.extra["engine"]`` says which
engine ran.

:meth:`NuclearSolver.solve_path` solves many problems (e.g. a ratio sweep)
in one batched iteration when they share K, the loss and the equal-count
groups and the grouped engine applies; problems for the factored engine are
solved one by one.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from ..certificates import nuclear_certificate, penalised_nuclear_certificate
from ..errors import LPMInputError, SolverRefused, check_choice, check_number
from ..problem import Problem, logits_of
from ..solution import Solution, Status
from .backends import BACKENDS, DEVICES, make_backend
from .factored import grouped_is_cheaper, solve_factored
from .grouped import Reduction, fista, group_labels
from .recovery import balanced_factors, balanced_factors_of, penalised_factors, penalised_factors_of
from .registry import Solver, register

#: values of the ``engine`` setting
ENGINES = ("auto", "grouped", "factored")


@register
class NuclearSolver(Solver):
    """The nuclear-norm program by the grouped or the factored engine, with a
    rigorous certificate at the recovered (W, H).

    Settings: ``tol`` (target relative gap, gap / max(1, |lower bound|)),
    ``max_iter`` (iterations of the grouped engine), ``check_every``
    (iterations between its gap evaluations), ``max_newton`` (Newton steps of
    the factored engine), ``engine`` (``auto``: by the number of distinct
    counts, module docstring; or ``grouped`` / ``factored`` forced),
    ``backend`` (the factored engine's arrays: ``numpy``, or ``torch``, whose
    Hessian products run on ``device``: ``auto`` = CUDA when present, ``cpu``,
    ``cuda``; :mod:`lpm.core.solvers.backends`).
    """

    name = "nuclear"
    certifies = True
    speed_rank = 10

    @classmethod
    def default_settings(cls) -> dict:
        return {"tol": 1e-9, "max_iter": 100_000, "check_every": 5, "max_newton": 500, "engine": "auto",
                "backend": "numpy", "device": "auto"}

    def __init__(self, **settings):
        super().__init__(**settings)
        s, owner = self.settings, f"solver '{self.name}'"
        s["tol"] = check_number("tol", s["tol"], low=0, low_open=True, owner=owner)
        s["max_iter"] = check_number("max_iter", s["max_iter"], low=1, integer=True, owner=owner)
        s["check_every"] = check_number("check_every", s["check_every"], low=1, integer=True, owner=owner)
        s["max_newton"] = check_number("max_newton", s["max_newton"], low=1, integer=True, owner=owner)
        s["engine"] = check_choice("engine", s["engine"], ENGINES, owner=owner)
        s["backend"] = check_choice("backend", s["backend"], BACKENDS, owner=owner)
        s["device"] = check_choice("device", s["device"], DEVICES, owner=owner)
        if s["backend"] == "numpy" and s["device"] == "cuda":
            raise LPMInputError("device", "cuda", "'auto' or 'cpu' with backend 'numpy' (set backend='torch')",
                                owner=owner)

    @classmethod
    def supports(cls, problem: Problem) -> str | None:
        if problem.classifier != "learnable":
            return f"the nuclear-norm form needs a learnable classifier, not '{problem.classifier}'"
        if problem.budget == "max-margin":
            return "the max-margin limit is solved by 'analytic' (closed form) and 'convex'"
        if problem.budget == "per-sample":
            return ("the nuclear-norm form holds for the class-average and weight-decay forms, "
                    "not 'per-sample' (the 'convex' solver handles it)")
        if problem.d < problem.K:
            return f"the nuclear-norm form needs d >= K = {problem.K}, got d = {problem.d}"
        return None

    def engine(self, problem: Problem) -> str:
        """``grouped`` or ``factored``: the setting, or for ``auto`` the dispatch rule."""
        if self.settings["engine"] != "auto":
            return self.settings["engine"]
        groups = len(np.unique(np.asarray(problem.counts)))
        return "grouped" if grouped_is_cheaper(groups, problem.K) else "factored"

    def _run(self, problem: Problem) -> Solution:
        if self.engine(problem) == "factored":
            return self._solve_factored(problem)
        return self._solve_batch([problem])[0]

    def solve_path(self, problems: Sequence[Problem]) -> list[Solution]:
        """Solve a sequence of problems, batching those for the grouped engine
        that share K, the loss and the equal-count groups (factored ones run one
        by one); ``time_s`` is each batch's wall time split evenly over its
        problems. Returns solutions in input order."""
        batches: dict[tuple, list[int]] = {}
        for i, problem in enumerate(problems):
            reason = self.supports(problem)
            if reason:
                raise SolverRefused(self.name, reason)
            if self.engine(problem) == "factored":
                key: tuple = ("factored", i)
            else:
                key = (problem.K, problem.loss, problem.budget, tuple(group_labels(problem)))
            batches.setdefault(key, []).append(i)
        solutions: list[Solution | None] = [None] * len(problems)
        for key, members in batches.items():
            began = time.perf_counter()
            if key[0] == "factored":
                batch = [self._solve_factored(problems[members[0]])]
            else:
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
        groups = len(red.size)
        return [self._finish(problem, red.to_full(alpha[b], R[b]), int(iterations[b]), groups, "grouped",
                             f"grouped engine on {groups} groups")
                for b, problem in enumerate(problems)]

    def _solve_factored(self, problem: Problem, start: np.ndarray | None = None) -> Solution:
        """The factored engine, certified on the recovered (W, H) (recovered from the
        factors in O(K r²)); the grouped engine finishes from its point if it stopped
        uncertified. ``start``: factors [H; W] to start from instead of the bucketed warm start."""
        s = self.settings

        def certify(A: np.ndarray, B: np.ndarray):
            point = self._recover(problem, A, B)
            return point[2].relative_gap, point

        result = solve_factored(problem, s["tol"], s["max_newton"], backend=make_backend(s["backend"], s["device"]),
                                start=start, certify=certify)
        iterations = result.steps
        groups = len(np.unique(np.asarray(problem.counts)))
        detail = f"factored engine: {result.summary}"
        if result.relative_gap <= s["tol"] and result.certified is not None:
            return self._finish(problem, None, iterations, groups, "factored", detail, recovered=result.certified)
        matrix = result.matrix
        red = Reduction([problem])
        alpha, R = red.from_full(matrix)
        (alpha, R), _, more = fista(red, (alpha[None], R[None]), s["tol"], s["max_iter"], s["check_every"])
        matrix, iterations = red.to_full(alpha[0], R[0]), iterations + int(more[0])
        detail += (f"; uncertified there (relative gap {result.relative_gap:.1e}), so the grouped engine "
                   f"on {groups} groups finished from its point in {int(more[0])} iterations")
        return self._finish(problem, matrix, iterations, groups, "factored", detail)

    def _recover(self, problem: Problem, A: np.ndarray, B: np.ndarray):
        """(W, H, certificate, note) at the model point recovered from the program's
        factors A Bᵀ (Z, or Y = D^{1/2} Z under weight decay)."""
        if problem.regularised:
            W, H, note = penalised_factors_of(problem, A, B)
            certificate = penalised_nuclear_certificate(problem, W, H)
        else:
            W, H, note = balanced_factors_of(problem, A, B)
            certificate = nuclear_certificate(problem, logits_of(H, W), factors=(H, W))
        return W, H, certificate, note

    def _finish(self, problem: Problem, matrix: np.ndarray | None, iterations: int, groups: int, engine: str,
                detail: str, recovered: tuple | None = None) -> Solution:
        """Recover (W, H) from Z (or Y = D^{1/2}Z under weight decay), re-evaluate
        the objective there and certify it (``recovered``: that already done, as
        (W, H, certificate, note))."""
        if recovered is not None:
            W, H, certificate, note = recovered
        elif problem.regularised:
            root = np.sqrt(np.asarray(problem.counts, dtype=np.float64))
            W, H, note = penalised_factors(problem, matrix / root[:, None])
            certificate = penalised_nuclear_certificate(problem, W, H)
        else:  # the grouped engine stops at the target by the first-order bound: no refinement needed
            W, H, note = balanced_factors(problem, matrix)
            certificate = nuclear_certificate(problem, logits_of(H, W))
        objective = problem.objective(W, H)
        tol = self.settings["tol"]
        certified = certificate.relative_gap <= tol
        unit = "Newton steps" if engine == "factored" else "iterations"
        why = (f"relative gap {certificate.relative_gap:.2e} <= tol {tol:g} ({certificate.method})" if certified
               else f"stopped after {iterations} {unit} with relative gap "
                    f"{certificate.relative_gap:.2e} > tol {tol:g}")
        return Solution(problem=problem, W=W, H=H, objective=objective, solver=self.name,
                        status=Status.OPTIMAL if certified else Status.STOPPED,
                        certificate=certificate, iterations=iterations,
                        message="; ".join(m for m in (why, detail, note) if m),
                        extra={"symmetry_groups": groups, "engine": engine})
