"""Registered sweep tasks: functions from a cell spec to a result record.

A task takes the JSON-safe ``spec`` of a :class:`lpm.sweep.grid.Cell` and
returns ``{"row": {...}, "tables": {name: [row, ...]}}``: one flat row for
the results table and optional long tables (``trajectory``: one row per
recorded iteration; ``per_class``: one row per class). Tasks are looked up by
name in worker processes, so each lives in an importable module listed in
``_TASK_MODULES`` and registers itself with :func:`register_task`.
"""
from __future__ import annotations

import importlib
import json
import math
from typing import Any, Callable

import numpy as np

from ..errors import LPMInputError

TaskFn = Callable[[dict], dict]
_TASKS: dict[str, TaskFn] = {}
_TASK_MODULES = ("lpm.sweep.tasks", "lpm.thresholds")


def register_task(name: str) -> Callable[[TaskFn], TaskFn]:
    def deco(fn: TaskFn) -> TaskFn:
        _TASKS[name] = fn
        return fn
    return deco


def get_task(name: str) -> TaskFn:
    for mod in _TASK_MODULES:
        importlib.import_module(mod)
    if name not in _TASKS:
        raise LPMInputError("task", name, "one of " + ", ".join(repr(t) for t in sorted(_TASKS)))
    return _TASKS[name]


def jsonable(value: Any) -> Any:
    """Plain Python scalars (NaN/inf → None) for JSON and CSV."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def flatten_spec(spec: dict) -> dict[str, Any]:
    """Columns that identify a cell: problem fields as-is, solver settings as
    ``setting_<name>``, other nested keys as ``<key>_<name>``; lists as JSON."""
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if isinstance(value, dict):
            prefix = "" if key == "problem" else ("setting_" if key == "settings" else f"{key}_")
            out.update({prefix + k: _cell_value(v) for k, v in value.items()})
        else:
            out[key] = _cell_value(value)
    return out


def _cell_value(v):
    return json.dumps(v) if isinstance(v, (list, tuple, dict)) else jsonable(v)


# --------------------------------------------------------------- solve task
def build_problem(problem_spec: dict):
    """The :class:`lpm.Problem` of a ``solve`` cell (see :class:`lpm.sweep.Grid`)."""
    from ..problem import Problem

    p = dict(problem_spec)
    K, ratio, profile, majority = p.pop("K"), p.pop("ratio"), p.pop("profile"), p.pop("majority")
    return Problem.from_profile(K=K, ratio=ratio, profile=profile, majority=majority, **p)


def per_class_rows(problem, W: np.ndarray, H: np.ndarray) -> list[dict]:
    """Per-class norms ‖h_k‖, ‖w_k‖, the angle between h_k and w_k
    (:func:`lpm.geometry.per_class_geometry`), and each class's largest cosine
    with another class (feature means and classifier rows; 1 means merged).

    Uncentred: the layer-peeled model has no bias, and centring at the mean of
    the class means would tilt the directions of shrinking tail classes even
    when, as with a fixed ETF, every h_k points exactly along m_k."""
    from ..geometry import per_class_geometry

    geo = per_class_geometry(H, W, center="none")
    rows = []
    maxcos = {"feature_max_cos": _max_other_cos(H), "classifier_max_cos": _max_other_cos(W)}
    for k in range(problem.K):
        row = {"class_index": k, "count": problem.counts[k], "proportion": float(problem.weights[k]),
               "group": "majority" if k < problem.majority else "minority"}
        row.update({name: jsonable(values[k]) for name, values in {**geo, **maxcos}.items()})
        rows.append(row)
    return rows


def _max_other_cos(V: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(V, axis=1)
    U = V / np.maximum(n, 1e-300)[:, None]
    G = U @ U.T
    np.fill_diagonal(G, -np.inf)
    out = G.max(axis=1)
    out[n <= 1e-8 * max(n.max(), 1e-300)] = np.nan  # a zero vector has no direction
    return out


def trajectory_rows(trajectory, reference_objective: float | None = None) -> list[dict]:
    """One row per recorded iteration. The recorded ``loss`` value is renamed
    ``objective`` (``loss`` names the loss function in every table), and
    ``suboptimality`` = objective − ``reference_objective`` is added."""
    if trajectory is None:
        return []
    data = trajectory.as_dict()
    its = data.pop("iteration")
    data = {("objective" if k == "loss" else k): v for k, v in data.items()}
    rows = [{"iteration": it, **{k: jsonable(v[i]) for k, v in data.items() if i < len(v)}}
            for i, it in enumerate(its)]
    if reference_objective is not None:
        for row in rows:
            if row.get("objective") is not None:
                row["suboptimality"] = row["objective"] - reference_objective
    return rows


def reference_objective(problem, solution) -> float | None:
    """The optimal value to measure progress against: the closed form where
    it applies (fixed ETF, CE/DR), else a certified lower bound."""
    from ..solvers import get_solver

    analytic = get_solver("analytic")
    if analytic.supports(problem) is None:
        return float(analytic.run(problem).objective)
    return solution.certificate.lower_bound


_UNCENTRED = ("feature_minority_cos", "feature_majority_cos", "feature_cross_cos", "feature_collapse_index")


@register_task("solve")
def solve_cell(spec: dict) -> dict:
    """Solve one problem with one back end and measure its geometry."""
    from ..geometry import measure_solution
    from ..solvers import choose_solver, get_solver

    problem = build_problem(spec["problem"])
    name = choose_solver(problem) if spec["solver"] == "auto" else spec["solver"]
    settings = dict(spec.get("settings", {}))
    if "seed" in get_solver(name).settings and "seed" not in settings:
        settings["seed"] = problem.seed
    solution = get_solver(name, **settings).run(problem)
    row = {k: _cell_value(v) for k, v in problem.describe().items()}
    row["ewh"] = problem.E_W * problem.E_H
    row.update({k: jsonable(v) for k, v in solution.summary().items()})
    row["relative_gap"] = jsonable(solution.certificate.relative_gap)
    row.update({f"extra_{k}": jsonable(v) for k, v in solution.extra.items()
                if isinstance(v, (int, float, str, bool, np.generic)) or v is None})
    row.update({k: jsonable(v) for k, v in measure_solution(solution).items()})
    raw = measure_solution(solution, center="none")  # directions of the means themselves
    row.update({f"{k}_uncentred": jsonable(raw[k]) for k in _UNCENTRED})
    f_ref = reference_objective(problem, solution) if solution.trajectory is not None else None
    row["reference_objective"] = jsonable(f_ref)
    tables = {"trajectory": trajectory_rows(solution.trajectory, f_ref),
              "per_class": per_class_rows(problem, solution.W, solution.H)}
    return {"row": row, "tables": tables}
