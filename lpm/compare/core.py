"""A deep run beside the LPM optimum for its class counts (theory.md §8, §10.7).

Distances are the rotation- and scale-invariant Gram distances of
:mod:`lpm.core.geometry.distances` (means, classifier, joint), to the LPM
optimum and to the simplex ETF.

Budgets are chosen in :mod:`lpm.compare.budgets`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import check_choice
from ..core.geometry import centre_means, cosine_matrix, etf_reference, geometry_distances, measure
from ..core.problem import Problem
from ..core.solution import Solution
from .budgets import Budgets, Reference, problem_for_run, reference_for_run, solve_certified
from .classes import FITTED_ABOVE, ClassRoles, class_roles
from .runs import GROUPINGS, RunGeometry

#: metrics placed side by side (run_*, lpm_*) in the distance table
#: the run's own evaluation (docs/evaluation.md), from its summary.json, beside the last test accuracy;
#: ``shot_split`` names the many/medium/few split (thresholds or count thirds)
EVALUATION_KEYS = ("test_balanced_accuracy", "test_many_shot_accuracy", "test_medium_shot_accuracy",
                   "test_few_shot_accuracy", "shot_split", "test_ece")
COMPARED_METRICS = ("collapse_index", "feature_collapse_index", "classifier_minority_cos", "feature_minority_cos",
                    "classifier_majority_cos", "classifier_cross_cos", "classifier_norm_ratio", "feature_norm_ratio",
                    "nc2", "nc2_classifier", "nc3")


# ---------------------------------------------------------------- one run
@dataclass
class RunComparison:
    """A run beside the LPM optimum for its class counts."""

    run: RunGeometry
    problem: Problem
    budgets: Budgets
    solution: Solution
    center: str
    groups: tuple[np.ndarray, tuple[str, ...]] | None
    roles: ClassRoles
    run_metrics: dict[str, Any]
    lpm_metrics: dict[str, Any]
    distances: dict[str, float]
    reference: Reference | None = None  # the LPM's objective, from the run's loss, weights and sampler

    def cosine_matrices(self) -> dict[str, np.ndarray]:
        """K×K cosines of centred class means and classifier rows, run and LPM (NaN = undefined)."""
        p = self.problem
        return {"run_means": cosine_matrix(centre_means(self.run.means, self.run.counts, self.center)),
                "run_classifier": cosine_matrix(self.run.W),
                "lpm_means": cosine_matrix(centre_means(self.solution.H, p.counts, self.center)),
                "lpm_classifier": cosine_matrix(self.solution.W)}

    @property
    def gap_over_objective(self) -> float | None:
        """Certified gap / LPM objective: when not ≪ 1 the LPM geometry is only loosely pinned
        (None without a gap, or where the optimal loss is 0, as for DR at the ETF)."""
        gap, obj = self.solution.certificate.gap, self.solution.objective
        return None if gap is None or obj <= 1e-12 else float(gap / obj)

    @property
    def well_determined(self) -> bool:
        """Certified optimal, with a gap below 1 % of the objective (or below 1e-12, where the
        optimal loss is 0 as for DR at the ETF)."""
        gap, obj = self.solution.certificate.gap, self.solution.objective
        small = gap is None or gap <= 1e-12 or gap <= 1e-2 * obj
        return self.solution.status.value == "optimal" and small

    def row(self) -> dict[str, Any]:
        """One row of the distance table."""
        run, p, s = self.run, self.problem, self.solution
        row: dict[str, Any] = {
            "run": run.name, "path": str(run.path or ""), "dataset": run.dataset, "K": run.K, "d": run.d,
            "head": run.head, "loss": run.loss, "stage": run.stage, "reference": self.reference.label,
            "reference_source": self.reference.note, "dr_form": run.dr_form, "ratio": run.ratio, "profile": run.profile,
            "epoch": run.epoch, "majority": p.majority, "counts": " ".join(f"{c:.10g}" for c in run.counts),
            "center": self.center, "budget": p.budget,
            # only the budget numbers that enter the model (weight decay: λ_W, λ_H, not E_W, E_H)
            **{k: p.budget_parameters().get(k) for k in ("E_W", "E_H", "lambda_W", "lambda_H")},
            "E_W_times_E_H": None if p.regularised else p.E_W * p.E_H, "budget_source": self.budgets.source,
            **self.roles.describe(),
            "lpm_solver": s.solver, "lpm_status": s.status.value, "lpm_gap": s.certificate.gap,
            "lpm_relative_gap": s.certificate.relative_gap, "lpm_objective": s.objective,
            "lpm_gap_over_objective": self.gap_over_objective,
            "run_objective": p.objective(run.W, run.means),
            "last_test_accuracy": run.summary.get("last_test_accuracy")}
        row.update({f"last_{key}": run.summary.get(f"last_{key}") for key in EVALUATION_KEYS})
        row.update({f"dist_{k}": v for k, v in self.distances.items()})
        for key in COMPARED_METRICS:
            row[f"run_{key}"], row[f"lpm_{key}"] = self.run_metrics.get(key), self.lpm_metrics.get(key)
        return row


def used_columns(H: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """H, W without the feature coordinates that are zero in both. An LPM optimum of rank r is
    embedded in d ≥ r dimensions by zero columns (K = 1000, d = 1024: r ≈ 140); dropping them
    keeps every inner product between rows, so each metric and Gram distance is the same up to
    rounding (only the rank cut-off of ``nc1_pinv_rank``, max(K, width)·ε, reads the width), at
    O(K²r) instead of O(K²d)."""
    used = np.any(H != 0, axis=0) | np.any(W != 0, axis=0)
    return (H, W) if used.all() else (H[:, used], W[:, used])


def _groups(run: RunGeometry, grouping: str):
    check_choice("groups", grouping, GROUPINGS)
    if grouping == "majority" or (grouping == "auto" and run.majority is not None):
        return None
    return run.groups


def compare_run(run: RunGeometry, *, E_W: float | None = None, E_H: float | None = None, budget: str | None = None,
                budget_rule: str = "norms", method: str = "auto", center: str | None = None,
                grouping: str = "auto", lambda_W: float | None = None, lambda_H: float | None = None,
                minority_below: float | None = None, fitted_above: float = FITTED_ABOVE) -> RunComparison:
    """Solve the run's LPM and measure both geometries with the same code, centre and
    minority: the classes that are minority by counts and fitted (:mod:`lpm.compare.classes`)."""
    problem, budgets = problem_for_run(run, E_W, E_H, budget, budget_rule, method, lambda_W, lambda_H)
    solved = budgets.solution  # the loss rule solves this very problem on its way
    solution = solved if solved is not None and solved.problem == problem else solve_certified(problem, method)
    center = run.center if center is None else center
    roles = class_roles(run.counts, run.train_class_accuracy, run.profile, minority_below, fitted_above)
    common = dict(minority=roles.measured_minority, groups=run.groups, center=center)
    run_m = measure(run.means, run.W, counts=run.counts, **common)
    H, W = used_columns(solution.H, solution.W)
    lpm_m = measure(H, W, counts=np.asarray(problem.counts), **common)
    C_run = centre_means(run.means, run.counts, center)
    C_lpm = centre_means(H, problem.counts, center)
    E = etf_reference(run.K)
    dist = {f"lpm_{k}": v for k, v in geometry_distances(C_run, run.W, C_lpm, W).items()}
    dist.update({f"etf_{k}": v for k, v in geometry_distances(C_run, run.W, E, E).items()})
    return RunComparison(run, problem, budgets, solution, center, _groups(run, grouping), roles, run_m, lpm_m, dist,
                         reference_for_run(run))


# ---------------------------------------------------------------- group history
def _group_sets(comparison: RunComparison) -> tuple[list[str], dict[str, int], bool]:
    """Names of the groups to follow, their sizes, and whether a cross (majority–minority) cosine exists."""
    if comparison.groups is None:
        KA, K = comparison.problem.majority, comparison.problem.K
        return ["majority", "minority"], {"majority": KA, "minority": K - KA}, True
    ids, names = comparison.groups
    return list(names), {n: int(np.sum(ids == g)) for g, n in enumerate(names)}, False


def _group_values(metrics: dict, names: list[str], sizes: dict[str, int], cross: bool) -> dict[tuple, float]:
    """{(part, quantity, group): value}: within-group cosines and norms relative to the mean over all classes."""
    out: dict[tuple, float] = {}
    for part in ("classifier", "feature"):
        norms = {n: metrics.get(f"{part}_{n}_norm") for n in names}
        total = sum(sizes[n] * v for n, v in norms.items() if v is not None) / max(sum(sizes.values()), 1)
        for n in names:
            out[(part, "cos", n)] = metrics.get(f"{part}_{n}_cos")
            out[(part, "norm", n)] = norms[n] / total if norms[n] is not None and total > 0 else None
        if cross:
            out[(part, "cos", "cross")] = metrics.get(f"{part}_cross_cos")
    return out


def group_history(comparison: RunComparison) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history, reference): long tables with columns part (classifier/feature), quantity
    (cos: mean pairwise cosine within the group; norm: mean norm of the group / mean norm of
    all classes), group, value — history per tracked epoch, reference from the LPM optimum."""
    names, sizes, cross = _group_sets(comparison)
    rows = []
    for metrics in comparison.run.history:
        if metrics.get("nc2") is None:  # an epoch without tracking
            continue
        for (part, quantity, group), value in _group_values(metrics, names, sizes, cross).items():
            rows.append({"epoch": metrics["epoch"], "part": part, "quantity": quantity, "group": group,
                         "value": value})
    ref = [{"part": part, "quantity": quantity, "group": group, "value": value}
           for (part, quantity, group), value in _group_values(comparison.lpm_metrics, names, sizes, cross).items()]
    history = pd.DataFrame(rows, columns=["epoch", "part", "quantity", "group", "value"])
    history.insert(0, "run", comparison.run.name)
    reference = pd.DataFrame(ref, columns=["part", "quantity", "group", "value"])
    reference.insert(0, "run", comparison.run.name)
    reference.insert(1, "reference", comparison.reference.label)
    return history, reference
