"""Registered sweep tasks: functions from a cell spec to a result record.

A task takes the JSON-safe ``spec`` of a :class:`lpm.sweep.grid.Cell` and
returns ``{"row": {...}, "tables": {name: [row, ...]}}``: one flat row for
the results table and optional long tables (``trajectory``: one row per
recorded iteration; ``per_class``: one row per class). Each task registers
itself with :func:`register_task` when this module is imported (the engine
imports it, in every worker too).

A task may also register

* ``check(spec) -> Plan``: validates the spec *without solving* (the engine
  checks every cell of a grid before any cell runs, so a bad grid value is
  refused up front) and says how the cell may be scheduled: its ``batch``
  key (cells with equal keys can be solved by one batched call) and whether
  it is ``light`` (so cheap that starting worker processes would cost more);
* ``batch(specs) -> [result or exception]``: solves several cells at once.

Tasks: ``solve`` (one Problem, one back end, its geometry; nuclear cells
batch through :meth:`lpm.core.solvers.nuclear.NuclearSolver.solve_path`),
``threshold`` (R* of the learnable LPM, theory.md §4.3), ``tuning`` (the
count-aware loss's hyperparameter closest to the ETF, theory.md §14.7), ``regularised``
(the weight-decay model against its threshold formula, theory.md §9) and,
in :mod:`lpm.sweep.train`, ``train`` (one deep run).
"""
from __future__ import annotations

import contextlib
import importlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Hashable

import numpy as np

from ..core.errors import LPMInputError, check_choice, check_number
from ..core.geometry import collapse_index, max_other_cosine, measure_solution, minority_geometry, per_class_geometry
from ..core.io import jsonable
from ..core.problem import Problem
from ..core.profiles import step_counts
from ..core.solvers import REGISTRY, get_solver, resolve
from ..core.thresholds import collapse_threshold, regularised_threshold

TaskFn = Callable[[dict], dict]


@dataclass(frozen=True)
class Plan:
    """How a checked cell may be scheduled: cells with the same non-``None``
    ``batch`` key go to one batched call; ``light`` cells cost well under the
    start-up of a worker process."""

    batch: Hashable | None = None
    light: bool = False


_TASKS: dict[str, TaskFn] = {}
_CHECKS: dict[str, Callable[[dict], Plan]] = {}
_BATCHES: dict[str, Callable[[list[dict]], list]] = {}
#: tasks that write a run folder ``runs_dir/spec["run"]`` (called as ``fn(spec, runs_dir)``)
RUN_FOLDER_TASKS: set[str] = set()


def register_task(name: str, check: Callable[[dict], Plan] | None = None,
                  batch: Callable[[list[dict]], list] | None = None,
                  run_folders: bool = False) -> Callable[[TaskFn], TaskFn]:
    """Register ``fn(spec) -> {"row", "tables"}`` as task ``name``, with its
    optional up-front ``check`` and ``batch`` functions (see the module text).
    A task with ``run_folders`` is called as ``fn(spec, runs_dir)`` and writes
    the folder ``runs_dir/spec["run"]`` (see :mod:`lpm.sweep.train`)."""
    def deco(fn: TaskFn) -> TaskFn:
        _TASKS[name] = fn
        for registry, extra in ((_CHECKS, check), (_BATCHES, batch)):
            if extra is None:
                registry.pop(name, None)
            else:
                registry[name] = extra
        (RUN_FOLDER_TASKS.add if run_folders else RUN_FOLDER_TASKS.discard)(name)
        return fn
    return deco


def get_task(name: str) -> TaskFn:
    """A registered task, or ``"package.module:function"`` (imported here, so that
    a task of your own also runs in worker processes and on a Dask cluster)."""
    if name not in _TASKS and ":" in name:
        module, _, attr = name.partition(":")
        with contextlib.suppress(ImportError):
            fn = getattr(importlib.import_module(module), attr, None)
            if callable(fn):
                _TASKS.setdefault(name, fn)
    if name not in _TASKS:
        raise LPMInputError("task", name, "one of " + ", ".join(repr(t) for t in sorted(_TASKS))
                            + ", or 'package.module:function'")
    return _TASKS[name]


def check_cell(task: str, spec: dict) -> Plan:
    """Validate one cell without solving it (tasks without a check: accepted, heavy)."""
    get_task(task)
    check = _CHECKS.get(task)
    return check(spec) if check is not None else Plan()


def get_batch(task: str) -> Callable[[list[dict]], list] | None:
    return _BATCHES.get(task)


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
    if "counts" in p:
        return Problem.from_counts(p.pop("counts"), **p)
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


_UNCENTRED = ("feature_minority_cos", "feature_majority_cos", "feature_cross_cos", "feature_collapse_index",
              "feature_angle_collapse_index")
#: a nuclear batch whose problems have at most this many equal-count groups (and
#: an analytic cell up to this K) solves in milliseconds: run it in-process
LIGHT_GROUPS = 32
LIGHT_K = 200


def solve_setup(spec: dict):
    """The problem of a ``solve`` cell, the back end that runs it and that
    back end's settings (the problem's seed added where it has one)."""
    problem = build_problem(spec["problem"])
    name = resolve(problem, spec["solver"]).solver
    settings = dict(spec.get("settings", {}))
    if "seed" in REGISTRY[name].default_settings() and "seed" not in settings:
        settings["seed"] = problem.seed
    return problem, name, settings


def check_solve_cell(spec: dict) -> Plan:
    """Build the problem, resolve the back end and build it with its settings:
    every check short of solving. Nuclear cells batch by (settings, K)."""
    problem, name, settings = solve_setup(spec)
    get_solver(name, **settings)
    if problem.d < problem.K - 1 and REGISTRY[name].certifies:
        raise LPMInputError("d", problem.d, f"an int >= K-1 = {problem.K - 1} for the '{name}' solver (a certified "
                            "optimum needs room for a simplex ETF; the 'gradient' solver explores smaller d)")
    if name == "nuclear":
        groups = len(set(problem.counts))
        return Plan(batch=("nuclear", json.dumps(settings, sort_keys=True), problem.K),
                    light=groups <= LIGHT_GROUPS and problem.K <= LIGHT_K)
    return Plan(light=name == "analytic" and problem.K <= LIGHT_K)


def describe_solution(problem, solution) -> dict:
    """The results row and long tables of one solved ``solve`` cell."""
    row = {k: _cell_value(v) for k, v in problem.describe().items()}
    row["ewh"] = problem.E_W * problem.E_H
    if problem.budget == "max-margin":  # the limit has no norm budgets (theory.md §15)
        row["E_W"] = row["E_H"] = row["ewh"] = None
    row.update({k: jsonable(v) for k, v in solution.summary().items()})
    row["relative_gap"] = jsonable(solution.certificate.relative_gap)
    row.update({f"extra_{k}": jsonable(v) for k, v in solution.extra.items()
                if isinstance(v, (int, float, str, bool, np.generic)) or v is None})
    row.update({k: jsonable(v) for k, v in measure_solution(solution).items()})
    raw = minority_geometry(solution.H, solution.W, problem.minority, center="none")  # the means' own directions
    row.update({f"{k}_uncentred": jsonable(raw[k]) for k in _UNCENTRED})
    f_ref = reference_objective(problem, solution) if solution.trajectory is not None else None
    row["reference_objective"] = jsonable(f_ref)
    tables = {"trajectory": trajectory_rows(solution.trajectory, f_ref),
              "per_class": per_class_rows(problem, solution.W, solution.H)}
    return {"row": row, "tables": tables}


def solve_cells(specs: list[dict]) -> list:
    """Solve cells that share a batch key (one back end, one set of settings)
    in one batched call; one result (or the exception it raised) per cell.
    The batched solutions equal the cell-by-cell ones to the last bit (each
    problem's iterates are independent); should the batched call itself
    fail, every cell is solved on its own."""
    setups = [solve_setup(spec) for spec in specs]
    problems = [problem for problem, _, _ in setups]
    try:
        solutions = get_solver(setups[0][1], **setups[0][2]).solve_path(problems)
    except Exception:  # noqa: BLE001 - the cells then run (and fail) one by one
        return [_result_or_error(solve_cell, spec) for spec in specs]
    return [_result_or_error(describe_solution, problem, solution) for problem, solution in zip(problems, solutions)]


def _result_or_error(fn, *args):
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - becomes that cell's error record
        return exc


@register_task("solve", check=check_solve_cell, batch=solve_cells)
def solve_cell(spec: dict) -> dict:
    """Solve one problem with one back end and measure its geometry."""
    problem, name, settings = solve_setup(spec)
    return describe_solution(problem, get_solver(name, **settings).run(problem))


# --------------------------------------------------------------- threshold task
def _threshold_values(spec: dict):
    K = check_number("K", spec["K"], low=3, integer=True)
    KA = check_number("majority", spec["majority"], low=1, high=K - 2, integer=True)
    ewh = check_number("ewh", spec["ewh"], low=0, low_open=True)
    return K, KA, ewh


def check_threshold_cell(spec: dict) -> Plan:
    _threshold_values(spec)
    get_solver(spec["solver"], **spec["settings"])
    bracket = spec["bracket"]
    if not isinstance(bracket, (list, tuple)) or len(bracket) != 2:
        raise LPMInputError("bracket", bracket, "two ratios [low, high]")
    low = check_number("bracket", bracket[0], low=1)
    check_number("bracket", bracket[1], low=low, low_open=True)
    return Plan()


@register_task("threshold", check=check_threshold_cell)
def threshold_cell(spec: dict) -> dict:
    """R* of the learnable CE LPM for one (K, K_A, E_W·E_H) (:func:`lpm.core.thresholds.collapse_threshold`)."""
    K, KA, ewh = _threshold_values(spec)
    found = collapse_threshold(K, KA, ewh, spec["solver"], spec["settings"], spec["bracket"],
                               spec["index_threshold"], spec["log10_tol"])
    row = {"K": K, "majority": KA, "majority_fraction": KA / K, "ewh": ewh,
           "bracket_low": float(spec["bracket"][0]), "bracket_high": float(spec["bracket"][1]),
           **{k: jsonable(v) for k, v in found.items()}}
    found_both = row["ratio_star_index"] is not None and row["ratio_star_kkt"] is not None
    row["status"] = "ok" if found_both else "outside-bracket"
    return {"row": row, "tables": {}}


# --------------------------------------------------------------- tuning task
def _tuning_family(spec: dict):
    """The problem family p(v) of a ``tuning`` cell and the search bounds (checked)."""
    from ..core.losses import LOSS_HYPERPARAMETERS

    loss, parameter = spec["loss"], spec["parameter"]
    check_choice("loss", loss, [n for n, takes in LOSS_HYPERPARAMETERS.items() if takes])
    check_choice("parameter", parameter, LOSS_HYPERPARAMETERS[loss], owner=f"loss '{loss}'")
    low = check_number("bounds", spec["bounds"][0])
    high = check_number("bounds", spec["bounds"][1], low=low, low_open=True)
    extra = {k: spec[k] for k in ("lambda_W", "lambda_H") if spec.get(k) is not None}

    def family(v: float) -> Problem:
        return Problem.from_profile(K=spec["K"], ratio=spec["ratio"], profile="step", majority=spec["majority"],
                                    loss=loss, budget=spec["budget"], E_W=spec["E_W"], E_H=spec["E_H"],
                                    **{parameter: v}, **extra)
    family(low), family(high)  # every check of the Problem, without solving
    return family, (low, high)


def check_tuning_cell(spec: dict) -> Plan:
    _tuning_family(spec)
    check_number("points", spec["points"], low=3, integer=True)
    check_number("xatol", spec["xatol"], low=0, low_open=True)
    return Plan()


@register_task("tuning", check=check_tuning_cell)
def tuning_cell(spec: dict) -> dict:
    """The hyperparameter value closest to the ETF for one (loss, R, budget form)
    (:func:`lpm.core.tuning.closest_to_etf`, theory.md §14.7)."""
    from ..core.tuning import closest_to_etf

    family, bounds = _tuning_family(spec)
    found = closest_to_etf(family, bounds, points=spec["points"], xatol=spec["xatol"])
    at_best = get_solver("nuclear").run(family(found.best))
    metrics = measure_solution(at_best)
    row = {k: spec[k] for k in ("loss", "parameter", "ratio", "budget", "K", "majority", "E_W", "E_H")}
    row.update({"lambda_W": spec.get("lambda_W"), "lambda_H": spec.get("lambda_H"), "bound_low": bounds[0],
                "bound_high": bounds[1], "best": found.best, "distance": found.distance,
                "neutral_distance": found.neutral_distance, "evaluations": len(found.evaluations),
                "worst_relative_gap": found.worst_gap, "status": "ok",
                "classifier_minority_cos": jsonable(metrics["classifier_minority_cos"]),
                "collapse_index": jsonable(metrics["collapse_index"])})
    search = [{"loss": spec["loss"], "ratio": spec["ratio"], "budget": spec["budget"], "value": v,
               "distance": d, "relative_gap": g} for v, d, g in found.evaluations]
    return {"row": row, "tables": {"search": search}}


# --------------------------------------------------------------- regularised task
#: every classifier row below this norm: the regularised optimum is 0 and the
#: collapse index (a ratio of norms) is undefined
VANISHED = 1e-4


def regularised_problem(spec: dict) -> Problem:
    """The weight-decay problem of a ``regularised`` cell (step counts n_A = R, n_B = 1)."""
    K, KA, R = spec["K"], spec["majority"], spec["ratio"]
    lam = check_number("lam", spec["lam"], low=0, low_open=True)
    lam_W = float(np.sqrt(lam * check_number("lam_split", spec["lam_split"], low=0, low_open=True)))
    return Problem.from_counts(step_counts(K, R, KA), classifier="learnable", loss=spec["loss"], majority=KA,
                               budget="weight-decay", lambda_W=lam_W, lambda_H=lam / lam_W)


def check_regularised_cell(spec: dict) -> Plan:
    problem = regularised_problem(spec)
    resolve(problem, spec.get("solver", "nuclear"))
    return Plan()


@register_task("regularised", check=check_regularised_cell)
def regularised_cell(spec: dict) -> dict:
    """The weight-decay model (theory.md §9) at step counts n_A = R, n_B = 1, solved
    with a certificate, beside the threshold formula n_B ≤ N²λ_Wλ_H."""
    K, KA, lam, R = spec["K"], spec["majority"], spec["lam"], spec["ratio"]
    problem = regularised_problem(spec)
    lam_W, lam_H = problem.lambda_W, problem.lambda_H
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


# --------------------------------------------------------------- convergence task
#: the forms of the convergence map: (loss, how the gradient solver descends it)
CONVERGENCE_FORMS = {"ce": ("ce", "paper"), "dr": ("dr", "paper"), "dr-released": ("dr", "released")}


def convergence_problem(spec: dict) -> Problem:
    """The fixed-ETF problem of a ``convergence`` cell (E_W = 1, E_H = the product)."""
    loss, _ = CONVERGENCE_FORMS[check_choice("form", spec["form"], CONVERGENCE_FORMS)]
    return Problem.from_profile(K=spec["K"], ratio=spec["ratio"], profile="step", majority=spec["majority"],
                                classifier="fixed-etf", loss=loss, E_W=1.0, E_H=spec["ewh"], budget=spec["budget"],
                                seed=spec["seed"])


def convergence_settings(spec: dict) -> dict:
    """Gradient-solver settings: the own 1/L step times ``lr``, every step recorded up to 200 and
    then on a log scale, stopped once the mean angle is below the smallest threshold."""
    thresholds = [check_number("thresholds", t, low=0, low_open=True) for t in spec["thresholds"]]
    return {"steps": spec["steps"], "lr": spec["lr"], "record_every": "log", "tol": 0.0,
            "stop_angle": min(thresholds), "dr_variant": CONVERGENCE_FORMS[spec["form"]][1], "seed": spec["seed"],
            "samples_per_class": spec.get("samples_per_class", 4)}


def check_convergence_cell(spec: dict) -> Plan:
    convergence_problem(spec)
    get_solver("gradient", **convergence_settings(spec))
    return Plan()


@register_task("convergence", check=check_convergence_cell)
def convergence_cell(spec: dict) -> dict:
    """Iterations to bring the mean angle to the optimum below each threshold (theory.md §10.8), measured
    two ways: on the class means of the s feature vectors per class (``iterations_to_*``) and on
    every vector (``sample_iterations_to_*``, the per-sample angle that theory.md §12 analyses)."""
    problem = convergence_problem(spec)
    solution = get_solver("gradient", **convergence_settings(spec)).run(problem)
    values = solution.trajectory.as_dict()
    its = np.asarray(values["iteration"])
    angles, samples = np.asarray(values["angle_mean"]), np.asarray(values["sample_angle_mean"])
    row = {"form": spec["form"], "loss": problem.loss, "ewh": spec["ewh"], "budget": problem.budget,
           "ratio": spec["ratio"], "lr": spec["lr"], "seed": spec["seed"], "K": problem.K, "steps": spec["steps"],
           "samples_per_class": settings_samples(spec),
           "initial_angle_mean": float(angles[0]), "final_angle_mean": float(angles[-1]),
           "initial_sample_angle_mean": float(samples[0]), "final_sample_angle_mean": float(samples[-1]),
           "steps_run": int(solution.iterations), "status": solution.status.value}
    for threshold in spec["thresholds"]:
        for prefix, measured in (("", angles), ("sample_", samples)):
            reached = np.flatnonzero(measured <= threshold)
            row[f"{prefix}iterations_to_{threshold:g}"] = int(its[reached[0]]) if len(reached) else None
    return {"row": row, "tables": {}}


def settings_samples(spec: dict) -> int:
    """The feature vectors per class of a ``convergence`` cell (4 unless the grid sweeps them)."""
    return int(spec.get("samples_per_class", 4))
