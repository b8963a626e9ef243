"""Theorem-checking figures (theory.md §10): functions ``plot_x(table, ax=None)
-> Figure`` that only draw a results table; nothing here solves.

:func:`get_plot` maps the names used in ``sims/*.toml`` to these functions
(or resolves a ``"module:function"`` path for figures defined elsewhere).
"""
from __future__ import annotations

import importlib
from typing import Callable

from ..core.errors import LPMInputError

FIGURES = {
    "minority_collapse": "lpm.figures.collapse:plot_minority_collapse",
    "fixed_vs_learnable": "lpm.figures.collapse:plot_fixed_vs_learnable",
    "convergence": "lpm.figures.dynamics:plot_convergence",
    "gradient_decomposition": "lpm.figures.dynamics:plot_gradient_decomposition",
    "phase_diagram": "lpm.figures.phase:plot_phase_diagram",
    "long_tailed": "lpm.figures.longtail:plot_long_tailed",
    "convergence_map": "lpm.figures.convergence_map:plot_convergence_map",
    "remedies": "lpm.figures.remedies:plot_remedies",
    "remedy_tuning": "lpm.figures.remedies:plot_remedy_tuning",
}


def load_ref(ref: str) -> Callable | None:
    """The object at ``"package.module:attribute"``; ``None`` if that module or
    attribute does not exist (errors raised while importing it propagate)."""
    mod, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(mod)
    except ModuleNotFoundError as exc:
        if exc.name is not None and mod.startswith(exc.name):
            return None
        raise
    return getattr(module, attr, None)


def get_plot(name: str) -> Callable:
    """The plot function registered as ``name``, or at ``"module:function"``."""
    ref = FIGURES.get(name, name)
    found = load_ref(ref) if ":" in ref else None
    if found is not None:
        return found
    raise LPMInputError("plot", name, "one of " + ", ".join(repr(f) for f in FIGURES) + ", or 'module:function'")


__all__ = ["FIGURES", "get_plot"]
