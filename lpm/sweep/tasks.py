"""Registered sweep tasks: functions from a cell spec to a result record.

A task takes the JSON-safe ``spec`` of a :class:`lpm.sweep.grid.Cell` and
returns ``{"row": {...}, "tables": {name: [row, ...]}}``: one flat row for
the results table and optional long tables (``trajectory``: one row per
recorded iteration; ``per_class``: one row per class). Each task registers
itself with :func:`register_task` when this module is imported (the engine
imports it, in every worker too).

Tasks: ``solve`` (one Problem, one back end, its geometry), ``threshold``
(R* of the learnable LPM, theory.md §4.3) and ``regularised`` (the
weight-decay model against its threshold formula, theory.md §9).
"""
from __future__ import annotations

import json
from typing import Any, Callable

import numpy as np

from ..core.errors import LPMInputError, check_number
from ..core.geometry import collapse_index, max_other_cosine, measure_solution, per_class_geometry
from ..core.io import jsonable
from ..core.problem import Problem
from ..core.profiles import step_counts
from ..core.solvers import REGISTRY, get_solver, resolve
from ..core.thresholds import collapse_threshold, regularised_threshold

TaskFn = Callable[[dict], dict]
_TASKS: dict[str, TaskFn] = {}


def register_task(name: str) -> Callable[[TaskFn], TaskFn]:
    def deco(fn: TaskFn) -> TaskFn:
        _TASKS[name] = fn
        return fn
    return deco


def get_task(name: str) -> TaskFn:
    if name not in _TASKS:
        raise LPMInputError("task", name, "one of " + ", ".join(repr(t) for t in sorted(_TASKS)))
    return _TASKS[name]


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
def build_problem(problem_spec: dict) -> Problem:
    """The :class:`lpm.Problem` of a ``solve`` cell (see :class:`lpm.sweep.Grid`)."""
    p = dict(problem_spec)
    K, ratio, profile, majority = p.pop("K"), p.pop("ratio"), p.pop("profile"), p.pop("majority")
    return Problem.from_profile(K=K, ratio=ratio, profile=profile, majority=majority, **p)


def per_class_rows(problem, W: np.ndarray, H: np.ndarray) -> list[dict]:
    """Per-class norms ‖h_k‖, ‖w_k‖, the angle between h_k and w_k
    (:func:`lpm.core.geometry.per_class_geometry`), and each class's largest cosine
    with another class (feature means and classifier rows; 1 means merged).

    Uncentred: the layer-peeled model has no bias, and centring at the mean of
    the class means would tilt the directions of shrinking tail classes even
    when, as with a fixed ETF, every h_k points exactly along m_k."""
    geo = per_class_geometry(H, W, center="none")
    rows = []
    maxcos = {"feature_max_cos": max_other_cosine(H), "classifier_max_cos": max_other_cosine(W)}
    for k in range(problem.K):
        row = {"class_index": k, "count": problem.counts[k], "proportion": float(problem.weights[k]),
               "group": "majority" if k < problem.majority else "minority"}
        row.update({name: jsonable(values[k]) for name, values in {**geo, **maxcos}.items()})
        rows.append(row)
    return rows


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
    analytic = get_solver("analytic")
    if analytic.supports(problem) is None:
        return float(analytic.run(problem).objective)
    return solution.certificate.lower_bound


_UNCENTRED = ("feature_minority_cos", "feature_majority_cos", "feature_cross_cos", "feature_collapse_index")


@register_task("solve")
def solve_cell(spec: dict) -> dict:
    """Solve one problem with one back end and measure its geometry."""
    problem = build_problem(spec["problem"])
    name = resolve(problem, spec["solver"]).solver
    settings = dict(spec.get("settings", {}))
    if "seed" in REGISTRY[name].default_settings() and "seed" not in settings:
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


# --------------------------------------------------------------- threshold task
@register_task("threshold")
def threshold_cell(spec: dict) -> dict:
    """R* of the learnable CE LPM for one (K, K_A, E_W·E_H) (:func:`lpm.core.thresholds.collapse_threshold`)."""
    K = check_number("K", spec["K"], low=3, integer=True)
    KA = check_number("majority", spec["majority"], low=1, high=K - 2, integer=True)
    ewh = check_number("ewh", spec["ewh"], low=0, low_open=True)
    found = collapse_threshold(K, KA, ewh, spec["solver"], spec["settings"], spec["bracket"],
                               spec["index_threshold"], spec["log10_tol"])
    row = {"K": K, "majority": KA, "majority_fraction": KA / K, "ewh": ewh,
           "bracket_low": float(spec["bracket"][0]), "bracket_high": float(spec["bracket"][1]),
           **{k: jsonable(v) for k, v in found.items()}}
    found_both = row["ratio_star_index"] is not None and row["ratio_star_kkt"] is not None
    row["status"] = "ok" if found_both else "outside-bracket"
    return {"row": row, "tables": {}}


# --------------------------------------------------------------- regularised task
#: every classifier row below this norm: the regularised optimum is 0 and the
#: collapse index (a ratio of norms) is undefined
VANISHED = 1e-4


@register_task("regularised")
def regularised_cell(spec: dict) -> dict:
    """The weight-decay model (theory.md §9) at step counts n_A = R, n_B = 1, solved
    with a certificate, beside the threshold formula n_B ≤ N²λ_Wλ_H."""
    K, KA, lam, R = spec["K"], spec["majority"], spec["lam"], spec["ratio"]
    lam_W = float(np.sqrt(lam * spec["lam_split"]))
    lam_H = lam / lam_W
    problem = Problem.from_counts(step_counts(K, R, KA), classifier="learnable", loss=spec["loss"], majority=KA,
                                  budget="weight-decay", lambda_W=lam_W, lambda_H=lam_H)
    solution = get_solver(spec.get("solver", "nuclear")).run(problem)
    N = float(sum(problem.counts))
    w_norms = np.linalg.norm(solution.W, axis=1)
    vanished = bool(w_norms.max() < VANISHED)
    row = {"loss": spec["loss"], "K": K, "majority": KA, "ratio": R, "lam": lam, "lam_W": lam_W, "lam_H": lam_H,
           "N": N, "n_minority": 1.0, "N2_lam": N * N * lam,
           "ratio_star_formula": regularised_threshold(K, KA, lam),
           "predicted_collapse": bool(1.0 <= N * N * lam),
           "predicted_majority_vanish": bool(R <= N * N * lam),  # MSE: class k vanishes iff n_k <= N² λ
           "all_vanished": vanished,
           "collapse_index": None if vanished else jsonable(collapse_index(solution.W, np.arange(KA, K))),
           "minority_norm": float(w_norms[KA:].mean()), "majority_norm": float(w_norms[:KA].mean()),
           "objective": solution.objective, "solver": solution.solver, "status": solution.status.value,
           "gap": jsonable(solution.certificate.gap), "relative_gap": jsonable(solution.certificate.relative_gap),
           "iterations": solution.iterations}
    return {"row": row, "tables": {}}
