"""Collapse against the imbalance ratio: deep runs over the LPM curve for their profile (theory.md §10.7)."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..core.errors import LPMInputError, check_choice
from ..core.geometry import measure_solution
from ..core.problem import Problem
from ..core.profiles import profile_counts
from ..core.solvers import get_solver, resolve
from .budgets import SOLVER_SETTINGS, Reference, solve_certified
from .classes import minority_by_counts
from .core import RunComparison

CURVE_METRICS = ("collapse_index", "classifier_minority_cos", "feature_collapse_index", "feature_minority_cos",
                 "classifier_norm_ratio", "feature_norm_ratio")


def collapse_curve(template: Problem, ratios: Sequence[float], n_max: float | None = None,
                   method: str = "auto", minority_below: float | None = None,
                   reference: Reference | None = None) -> pd.DataFrame:
    """LPM metrics against R for the template's profile (``step`` or ``exp``), K, d, head,
    loss (with its hyperparameters and class weights), budgets (or weight decay) and K_A: one
    row per ratio with the :data:`CURVE_METRICS`, the minority taken by counts at each ratio
    (:func:`lpm.compare.classes.minority_by_counts`). ``reference`` (a run's objective) gives
    the loss, weights and sampler at each ratio's counts; without it the template's loss,
    hyperparameters and class weights are kept (and a re-sampling template is refused)."""
    profile = check_choice("profile", template.profile, ("step", "exp"))
    problems = []
    for R in ratios:
        counts = profile_counts(profile, template.K, float(R), template.majority, n_max)
        if reference is not None:
            objective = reference.problem_fields(counts)
        else:
            if template.sampling is not None:
                raise LPMInputError("reference", None, "the run's Reference for a re-sampled template (its sampling "
                                                       "probabilities depend on the counts)")
            objective = {k: getattr(template, k) for k in ("loss", "tau", "gamma", "margin", "class_weights", "beta")}
        problems.append(Problem.from_profile(K=template.K, ratio=float(R), profile=profile, majority=template.majority,
                                             n_max=n_max, d=template.d, classifier=template.classifier,
                                             E_W=template.E_W, E_H=template.E_H, budget=template.budget,
                                             seed=template.seed, lambda_W=template.lambda_W,
                                             lambda_H=template.lambda_H, **objective))
    rows = []
    for R, s in zip(ratios, _solve_all(problems, method)):
        minority, _ = minority_by_counts(s.problem.counts, profile, minority_below)
        m = measure_solution(s, minority=minority)
        rows.append({"ratio": float(R), "lpm_solver": s.solver, "lpm_status": s.status.value,
                     "lpm_gap": s.certificate.gap, **{k: m.get(k) for k in CURVE_METRICS}})
    return pd.DataFrame(rows)


def _solve_all(problems: Sequence[Problem], method: str):
    """Certified solutions; batched in one iteration where the back end can (nuclear ``solve_path``)."""
    name = resolve(problems[0], method, require_certificate=True).solver
    solver = get_solver(name, **SOLVER_SETTINGS.get(name, {}))
    if hasattr(solver, "solve_path") and all(solver.supports(p) is None for p in problems):
        return solver.solve_path(problems)
    return [solve_certified(p, method) for p in problems]


def _geomean(values: Iterable[float]) -> float:
    v = np.asarray(list(values), dtype=float)
    return float(np.exp(np.mean(np.log(v))))


def curve_ratios(ratios: Sequence[float], points: int, n_max: float | None, profile: str) -> list[float]:
    """A log grid from 1 to the largest run ratio, with the runs' own ratios added."""
    top = max(max(ratios), 1.0)
    if profile == "exp" and n_max is not None:
        top = min(top, float(n_max))
    grid = np.geomspace(1.0, top, points) if top > 1 else np.array([1.0])
    return sorted({round(float(r), 10) for r in [*grid, *[r for r in ratios if r <= top]]})


def collapse_table(comparisons: Sequence[RunComparison], points: int = 9, method: str = "auto",
                   E_W: float | None = None, E_H: float | None = None,
                   minority_below: float | None = None) -> pd.DataFrame:
    """Long table for the figure against R. ``source``: ``deep`` (the run), ``lpm-run`` (the
    LPM at the run's own budgets) and ``lpm`` (the curve for the run family's profile, at the
    geometric mean of the family's budgets — or weight-decay coefficients — unless E_W/E_H are
    given). A family is the runs sharing data set, K, d, head, loss, reference objective
    (loss, hyperparameters, class weights, sampler), profile, n_max, K_A and budget form.
    Every row states its minority rule and the reference."""
    rows, families = [], {}
    for c in comparisons:
        base = {"dataset": c.run.dataset, "head": c.run.head, "loss": c.run.loss, "reference": c.reference.label,
                "profile": c.run.profile,
                "K": c.run.K, "d": c.run.d, "n_max": c.run.n_max, "majority": c.problem.majority,
                "budget": c.problem.budget, "minority_rule": c.roles.rule.split(";")[0]}
        for source, metrics in (("deep", c.run_metrics), ("lpm-run", c.lpm_metrics)):
            rows.append({**base, "source": source, "run": c.run.name, "ratio": c.run.ratio, **_budget_columns(c.problem),
                         "unfitted_classes": len(c.roles.unfitted), **{k: metrics.get(k) for k in CURVE_METRICS}})
        if c.run.ratio is not None and c.run.profile in ("step", "exp"):
            families.setdefault(tuple(base.items()), []).append(c)
    for key, members in families.items():
        base = dict(key)
        ratios = sorted({c.run.ratio for c in members})
        if len(ratios) < 2:
            continue
        template = _family_template(members, E_W, E_H)
        curve = collapse_curve(template, curve_ratios(ratios, points, base["n_max"], base["profile"]),
                               base["n_max"], method, minority_below, members[0].reference)
        for r in curve.to_dict("records"):
            rows.append({**base, "source": "lpm", "run": None, **_budget_columns(template),
                         **{k: r[k] for k in ("ratio", "lpm_status", "lpm_gap", *CURVE_METRICS)}})
    return pd.DataFrame(rows)


def _budget_columns(problem: Problem) -> dict:
    """The budget numbers that enter the model; the others (E_W, E_H under weight decay) are left empty."""
    return {k: problem.budget_parameters().get(k) for k in ("E_W", "E_H", "lambda_W", "lambda_H")}


def _family_template(members: Sequence[RunComparison], E_W: float | None, E_H: float | None) -> Problem:
    """The first run's problem at the family's geometric-mean budgets (or coefficients)."""
    first = members[0].problem
    if first.regularised:
        return first.replace(lambda_W=_geomean(c.problem.lambda_W for c in members),
                             lambda_H=_geomean(c.problem.lambda_H for c in members))
    return first.replace(E_W=E_W if E_W is not None else _geomean(c.problem.E_W for c in members),
                         E_H=E_H if E_H is not None else _geomean(c.problem.E_H for c in members))
