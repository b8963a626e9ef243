"""lpm: layer-peeled models of neural collapse under class imbalance.

The core API (problem, solvers, solutions, ETF) is re-exported here and
loaded on first use, so that ``import lpm.core.geometry`` (as the deep side
does) never pulls in the solvers, and the command line starts quickly.
"""
from __future__ import annotations

from .core.lazy import lazy_exports

__version__ = "0.2.0"

_EXPORTS = {
    "LPMInputError": "lpm.core.errors", "SolverRefused": "lpm.core.errors", "SolverFailed": "lpm.core.errors",
    "Problem": "lpm.core.problem", "Solution": "lpm.core.solution", "Certificate": "lpm.core.solution",
    "Status": "lpm.core.solution", "Trajectory": "lpm.core.solution", "simplex_etf": "lpm.core.etf",
    "check_etf": "lpm.core.etf", "solve": "lpm.core.solvers", "resolve": "lpm.core.solvers",
    "get_solver": "lpm.core.solvers", "available_solvers": "lpm.core.solvers",
    "certified_optimum": "lpm.core.solvers",
}
__all__ = [*_EXPORTS, "__version__", "sims_dir"]


def sims_dir():
    """The folder of the simulation files that ``lpm reproduce`` runs.

    In a source checkout, its top-level ``sims/`` folder (edit a file there
    and the next run uses it). In an installed package, the copy shipped
    inside it as ``lpm/sims`` (``pyproject.toml`` maps the package data
    ``lpm.sims`` to ``sims/``). Returns a :class:`pathlib.Path`.
    """
    from importlib.resources import files
    from pathlib import Path

    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "sims").is_dir():
        return checkout / "sims"
    return Path(str(files(__name__) / "sims"))


__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
