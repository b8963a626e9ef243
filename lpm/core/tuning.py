"""The hyperparameter of a count-aware loss at which the learnable geometry is
closest to the simplex ETF (theory.md §14.7).

For a problem family p(v) (one hyperparameter v free: τ of ``la``, γ of
``cdt`` or ``vs``), every evaluation is a certified solve of the learnable
LPM (the ``nuclear`` back end, relative gap ≤ ``tol``) and the objective is
the Gram distance of its classifier rows to the simplex ETF
(:func:`lpm.core.geometry.distances.gram_distance_to_etf`, 0 = ETF, defined
also when minority rows vanish). The distance is not unimodal in v, so the
search scans a grid of ``points`` values over ``bounds`` and refines the best
one by bounded Brent minimisation between its neighbours (to ``xatol``). A
solve that does not certify stops the search with :class:`SolverFailed`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .errors import SolverFailed
from .geometry.distances import gram_distance_to_etf
from .problem import Problem
from .solvers import get_solver


@dataclass
class TuningResult:
    """The best value, its distance, the distance of the neutral value (v = 0, where the
    loss is CE) and every certified evaluation (value, distance, relative gap)."""

    best: float
    distance: float
    neutral_distance: float
    evaluations: list[tuple[float, float, float]] = field(default_factory=list)

    @property
    def worst_gap(self) -> float:
        return max(gap for _, _, gap in self.evaluations)


def closest_to_etf(family: Callable[[float], Problem], bounds: tuple[float, float], points: int = 9,
                   xatol: float = 1e-3, tol: float = 1e-9) -> TuningResult:
    """Minimise the classifier's Gram distance to the ETF over v ∈ ``bounds`` (module docstring)."""
    from scipy.optimize import minimize_scalar  # ≈0.5 s to import; only the search needs it

    solver = get_solver("nuclear", tol=tol)
    seen: dict[float, tuple[float, float]] = {}

    def distance(v: float) -> float:
        v = float(v)
        if v not in seen:
            solution = solver.run(family(v))
            gap = solution.certificate.relative_gap
            if not gap <= tol:
                raise SolverFailed("nuclear", solution.status.value, f"uncertified at {v:g} (relative gap {gap:.1e})")
            seen[v] = (gram_distance_to_etf(solution.W), gap)
        return seen[v][0]

    low, high = bounds
    grid = np.linspace(low, high, points)
    values = [distance(v) for v in grid]
    i = int(np.argmin(values))
    left, right = grid[max(i - 1, 0)], grid[min(i + 1, points - 1)]
    minimize_scalar(distance, bounds=(left, right), method="bounded", options={"xatol": xatol})
    neutral = distance(0.0) if low <= 0.0 <= high else float("nan")
    best = min(seen, key=lambda v: (seen[v][0], abs(v)))  # every evaluation counts, the grid's included
    return TuningResult(best=best, distance=seen[best][0], neutral_distance=neutral,
                        evaluations=sorted((v, d, g) for v, (d, g) in seen.items()))
