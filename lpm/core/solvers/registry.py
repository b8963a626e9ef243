"""The solver interface, its registry, and the choice of back end (theory.md §11).

A back end is a :class:`Solver` subclass registered with :func:`register`:
settings (tolerances, iterations, device) go to its constructor, the problem
to :meth:`Solver.run`, and ``supports(problem)`` returns ``None`` or the
reason it refuses. Back ends import heavy libraries (cvxpy, torch) only when
they run, so registering them all costs nothing.

:func:`resolve` is the one place that decides which back end ``auto`` means
and which certifying back end provides the reference optimum for a back end
that cannot certify its own answer; the CLI, the sweeps, ``compare`` and the
gradient solver all ask it.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

from ..errors import LPMInputError, SolverRefused, check_choice
from ..problem import Problem
from ..solution import Solution

REGISTRY: dict[str, type["Solver"]] = {}


class Solver:
    name: str = ""
    #: whether ``run`` proves its answer optimal (a certificate of its own)
    certifies: bool = False
    #: lower is faster; ``auto`` picks the fastest certifying solver that applies
    speed_rank: int = 100

    def __init__(self, **settings):
        unknown = set(settings) - set(self.default_settings())
        if unknown:
            key = sorted(unknown)[0]
            allowed = ", ".join(sorted(self.default_settings())) or "(none)"
            raise LPMInputError(key, settings[key], "one of the settings " + allowed, owner=f"solver '{self.name}'")
        self.settings = {**self.default_settings(), **settings}

    @classmethod
    def default_settings(cls) -> dict:
        return {}

    @classmethod
    def supports(cls, problem: Problem) -> str | None:
        return None

    def run(self, problem: Problem) -> Solution:
        reason = self.supports(problem)
        if reason:
            raise SolverRefused(self.name, reason)
        check_memory(problem)
        start = time.perf_counter()
        solution = self._run(problem)
        solution.time_s = time.perf_counter() - start
        return solution

    def _run(self, problem: Problem) -> Solution:  # pragma: no cover - abstract
        raise NotImplementedError


def physical_memory() -> int | None:
    """This machine's memory in bytes (``None`` where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def check_memory(problem: Problem, available: int | None = None) -> None:
    """Refuse, before allocating anything, a problem whose estimated memory
    (:meth:`Problem.memory_bytes`) exceeds this machine's."""
    available = physical_memory() if available is None else available
    need = problem.memory_bytes()
    if available is not None and need > available:
        raise LPMInputError("K", problem.K, f"small enough to fit in memory: K={problem.K}, d={problem.d} needs "
                                            f"about {need / 2**30:.1f} GiB, this machine has "
                                            f"{available / 2**30:.1f} GiB")


def register(cls: type[Solver]) -> type[Solver]:
    REGISTRY[cls.name] = cls
    return cls


def available_solvers() -> list[str]:
    """Registered back ends, fastest first."""
    return sorted(REGISTRY, key=lambda n: (REGISTRY[n].speed_rank, n))


def solver_choices(certifying: bool = False) -> tuple[str, ...]:
    """``auto`` and every registered back end (only those that certify, if asked)."""
    return ("auto", *(n for n in available_solvers() if REGISTRY[n].certifies or not certifying))


def get_solver(name: str, **settings) -> Solver:
    check_choice("solver", name, available_solvers())
    return REGISTRY[name](**settings)


@dataclass(frozen=True)
class Resolution:
    """Which back end runs a problem, and which certifies it.

    ``reference`` names the fastest certifying back end for the same problem
    when ``solver`` cannot certify its own answer (``None`` when ``solver``
    certifies, or when no certifying back end supports the problem).
    """

    solver: str
    reference: str | None


def _fastest_certifying(problem: Problem) -> str | None:
    for name in available_solvers():
        cls = REGISTRY[name]
        if cls.certifies and cls.supports(problem) is None:
            return name
    return None


def resolve(problem: Problem, method: str = "auto", require_certificate: bool = False) -> Resolution:
    """The back end for ``method`` (``auto``: the fastest certifying one that
    supports ``problem``, else the first that supports it) and its reference.

    Raises :class:`SolverRefused` when the named back end cannot handle the
    problem, and :class:`LPMInputError` for an unknown name, or for a
    non-certifying one when ``require_certificate``.
    """
    check_choice("solver", method, solver_choices())
    certifying = _fastest_certifying(problem)
    if method == "auto":
        name = certifying or next((n for n in available_solvers() if REGISTRY[n].supports(problem) is None), None)
        if name is None:
            raise SolverRefused("auto", "no registered back end supports this problem")
    else:
        name = method
        reason = REGISTRY[name].supports(problem)
        if reason:
            raise SolverRefused(name, reason)
    if require_certificate and not REGISTRY[name].certifies:
        raise LPMInputError("solver", name, "a back end that certifies its optimum (one of "
                            + ", ".join(repr(c) for c in solver_choices(certifying=True)) + ")")
    return Resolution(name, None if REGISTRY[name].certifies else certifying)


def solve(problem: Problem, method: str = "auto", **settings) -> Solution:
    """Solve ``problem`` with the back end :func:`resolve` picks for ``method``."""
    return get_solver(resolve(problem, method).solver, **settings).run(problem)


def certified_optimum(problem: Problem, settings: dict | None = None) -> Solution | None:
    """The proven optimum from the fastest certifying back end (``settings`` by
    back-end name), or ``None`` when none supports ``problem``."""
    name = _fastest_certifying(problem)
    if name is None:
        return None
    return get_solver(name, **(settings or {}).get(name, {})).run(problem)
