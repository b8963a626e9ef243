"""Interchangeable solver back ends behind one registry.

Each back end is a :class:`Solver` subclass: settings (tolerances,
iterations, device) go to its constructor, the problem goes to
:meth:`Solver.run`, and every one returns a :class:`lpm.solution.Solution`.
``supports(problem)`` returns ``None`` or the reason it refuses.
"""
from __future__ import annotations

import importlib
import time

from ..errors import LPMInputError, SolverRefused
from ..problem import Problem
from ..solution import Solution

_REGISTRY: dict[str, type["Solver"]] = {}
# Modules that register back ends; imported lazily so optional parts stay optional.
_BACKENDS = ("analytic", "nuclear", "convex", "gradient")


class Solver:
    name: str = ""
    certifies: bool = False
    #: lower is faster; ``auto`` picks the fastest certifying solver that applies
    speed_rank: int = 100

    def __init__(self, **settings):
        unknown = set(settings) - set(self.default_settings())
        if unknown:
            key = sorted(unknown)[0]
            raise LPMInputError(key, settings[key], "one of the settings " + ", ".join(sorted(self.default_settings())),
                                owner=f"solver '{self.name}'")
        self.settings = {**self.default_settings(), **settings}

    @classmethod
    def default_settings(cls) -> dict:
        return {}

    def supports(self, problem: Problem) -> str | None:
        return None

    def run(self, problem: Problem) -> Solution:
        reason = self.supports(problem)
        if reason:
            raise SolverRefused(self.name, reason)
        start = time.perf_counter()
        solution = self._run(problem)
        solution.time_s = time.perf_counter() - start
        return solution

    def _run(self, problem: Problem) -> Solution:  # pragma: no cover - abstract
        raise NotImplementedError


def register(cls: type[Solver]) -> type[Solver]:
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    for mod in _BACKENDS:
        try:
            importlib.import_module(f"{__name__}.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{mod}":
                raise


def available_solvers() -> list[str]:
    _load_all()
    return sorted(_REGISTRY, key=lambda n: (_REGISTRY[n].speed_rank, n))


SOLVER_CHOICES = ("auto", "convex", "nuclear", "gradient", "analytic")


def get_solver(name: str, **settings) -> Solver:
    _load_all()
    if name not in _REGISTRY:
        allowed = ["auto", *available_solvers()]
        raise LPMInputError("solver", name, "one of " + ", ".join(repr(a) for a in allowed))
    return _REGISTRY[name](**settings)


def choose_solver(problem: Problem) -> str:
    """Fastest certifying back end that supports ``problem``; else ``gradient``."""
    _load_all()
    for name in available_solvers():
        cls = _REGISTRY[name]
        if cls.certifies and cls().supports(problem) is None:
            return name
    return "gradient"


def solve(problem: Problem, method: str = "auto", **settings) -> Solution:
    """Solve ``problem`` with the named back end (``auto`` chooses)."""
    name = choose_solver(problem) if method == "auto" else method
    return get_solver(name, **settings).run(problem)


def certified_optimum(problem: Problem) -> Solution | None:
    """The proven optimum of ``problem`` from the fastest certifying back end,
    or ``None`` when no certifying back end supports it."""
    name = choose_solver(problem)
    if not _REGISTRY.get(name, Solver).certifies:
        return None
    return get_solver(name).run(problem)
