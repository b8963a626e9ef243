"""Theorem-checking figures (theory.md §10): functions ``plot_x(table, ax=None)
-> Figure`` that only draw a results table; nothing here solves.

:func:`get_plot` maps the names used in ``sims/*.toml`` to these functions.
Only registered names are drawn: a simulation file cannot name an arbitrary
``"module:function"`` (that would let a shared file run code). A plug-in
figure is registered in Python with :func:`register_plot`; the ``module:function``
path of a registered figure is accepted as its name.
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
    "collapse_vs_ratio": "lpm.figures.compare:plot_collapse_vs_ratio",
    "classifier_question": "lpm.figures.classifier_question:plot_classifier_question",
    "remedies": "lpm.figures.remedies:plot_remedies",
    "remedy_tuning": "lpm.figures.remedies:plot_remedy_tuning",
}
#: plot functions registered from Python (:func:`register_plot`)
_PLUGINS: dict[str, Callable] = {}


def register_plot(name: str) -> Callable[[Callable], Callable]:
    """Register ``fn(table, **plot_options) -> Figure`` under ``name`` for simulation files."""
    def deco(fn: Callable) -> Callable:
        _PLUGINS[name] = fn
        return fn
    return deco


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
    """The plot function registered as ``name`` (or whose registered ``module:function`` path is
    ``name``); any other name is refused without importing anything."""
    if name in _PLUGINS:
        return _PLUGINS[name]
    refs = {**FIGURES, **{ref: ref for ref in FIGURES.values()}}
    if name in refs:
        found = load_ref(refs[name])
        assert found is not None, refs[name]
        return found
    allowed = ", ".join(repr(f) for f in (*FIGURES, *_PLUGINS))
    raise LPMInputError("plot", name, f"one of {allowed} (a figure registered with lpm.figures.register_plot; "
                                      "simulation files cannot name other code)")


__all__ = ["FIGURES", "get_plot", "register_plot"]
