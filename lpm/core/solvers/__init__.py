"""Interchangeable solver back ends behind one registry (theory.md §11).

``analytic`` (closed forms), ``nuclear`` (the nuclear-norm program),
``convex`` (cvxpy) and ``gradient`` (torch) register themselves on import;
:mod:`.registry` holds the interface and :func:`resolve`.
"""
from __future__ import annotations

from . import analytic, convex, gradient, nuclear  # noqa: F401  (each registers its back end)
from .registry import (REGISTRY, Resolution, Solver, available_solvers, certified_optimum, check_memory, get_solver,
                       register, resolve, solve, solver_choices)

#: what ``--solver`` accepts: ``auto`` and every registered back end
SOLVER_CHOICES: tuple[str, ...] = solver_choices()
#: ``auto`` and the back ends that certify their answer
CERTIFYING: tuple[str, ...] = solver_choices(certifying=True)

__all__ = ["REGISTRY", "Solver", "register", "available_solvers", "solver_choices", "SOLVER_CHOICES", "CERTIFYING",
           "get_solver", "resolve", "Resolution", "solve", "certified_optimum", "check_memory"]
