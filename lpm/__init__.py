"""lpm: layer-peeled models of neural collapse under class imbalance."""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import LPMInputError, SolverRefused
from .etf import check_etf, simplex_etf
from .problem import Problem
from .solution import Certificate, Solution, Status, Trajectory
from .solvers import available_solvers, get_solver, solve

__all__ = [
    "LPMInputError", "SolverRefused", "Problem", "Solution", "Certificate", "Status", "Trajectory",
    "simplex_etf", "check_etf", "solve", "get_solver", "available_solvers", "__version__",
]
