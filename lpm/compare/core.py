"""A deep run beside the LPM optimum for its class counts (theory.md §8, §10.7).

Distance. Geometries are defined up to a rotation and a scale, so we compare
normalised Gram matrices,

    gram_distance(A, B) = ‖ G(A) − G(B) ‖_F,   G(V) = V Vᵀ / ‖V Vᵀ‖_F,

for the centred class means (K×d), the classifier rows (K×d), and the two
stacked after each is scaled to unit Frobenius norm ("joint", which also sees
how features align with classifiers, NC3). It lies in [0, √2] and is 0 exactly
when A = c·B·Q for a scale c > 0 and an orthogonal Q (for "joint", one Q
shared by means and classifier). It takes no cosine of a vanishing vector, so
it stays defined when minority norms go to 0 (theory.md §4.3). The simplex
ETF (Gram matrix (K·I − 11ᵀ)/(K−1)) is the second reference.

Budgets are chosen in :mod:`lpm.compare.budgets`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import check_choice
from ..etf import etf_gram
from ..geometry import centre_means, measure
from ..losses import class_mean_objective
from ..problem import Problem
from ..solution import Solution
from .budgets import Budgets, problem_for_run, solve_certified
from .runs import RunGeometry

GROUPINGS = ("auto", "majority", "class-groups")
#: metrics placed side by side (run_*, lpm_*) in the distance table
COMPARED_METRICS = ("collapse_index", "feature_collapse_index", "classifier_minority_cos", "feature_minority_cos",
                    "classifier_majority_cos", "classifier_cross_cos", "classifier_norm_ratio", "feature_norm_ratio",
                    "nc2", "nc2_classifier", "nc3")


# ---------------------------------------------------------------- distances
def _normalised_gram(V: np.ndarray) -> np.ndarray:
    G = V @ V.T
    return G / max(np.linalg.norm(G), 1e-300)


def gram_distance(A: np.ndarray, B: np.ndarray) -> float:
    """‖G(A) − G(B)‖_F with G(V) = VVᵀ/‖VVᵀ‖_F (A, B: K×·, any widths); in [0, √2]."""
    return float(np.linalg.norm(_normalised_gram(np.asarray(A, float)) - _normalised_gram(np.asarray(B, float))))


def _joint(C: np.ndarray, W: np.ndarray) -> np.ndarray:
    return np.vstack([C / max(np.linalg.norm(C), 1e-300), W / max(np.linalg.norm(W), 1e-300)])


def geometry_distances(C_run, W_run, C_ref, W_ref) -> dict[str, float]:
    """Gram distances of two (centred means, classifier) configurations: means, classifier, joint."""
    return {"means": gram_distance(C_run, C_ref), "classifier": gram_distance(W_run, W_ref),
            "joint": gram_distance(_joint(C_run, W_run), _joint(C_ref, W_ref))}


def etf_reference(num_classes: int) -> np.ndarray:
    """K×K matrix whose rows form a unit simplex ETF (its Gram matrix is :func:`etf_gram`)."""
    vals, vecs = np.linalg.eigh(etf_gram(num_classes))
    return vecs * np.sqrt(np.maximum(vals, 0.0))


def cosine_matrix(V: np.ndarray, norm_tol: float = 1e-4) -> np.ndarray:
    """K×K cosines of the rows of V; rows with norm ≤ norm_tol·(mean row norm) give NaN (undefined)."""
    V = np.asarray(V, dtype=np.float64)
    n = np.linalg.norm(V, axis=1)
    ok = n > norm_tol * max(n.mean(), 1e-300)
    U = V / np.maximum(n, 1e-300)[:, None]
    C = U @ U.T
    C[~ok, :] = np.nan
    C[:, ~ok] = np.nan
    return C


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
    run_metrics: dict[str, Any]
    lpm_metrics: dict[str, Any]
    distances: dict[str, float]

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
            "head": run.head, "loss": run.loss, "dr_form": run.dr_form, "ratio": run.ratio, "profile": run.profile,
            "epoch": run.epoch, "majority": p.majority, "counts": " ".join(f"{c:.10g}" for c in run.counts),
            "center": self.center, "budget": p.budget, "E_W": p.E_W, "E_H": p.E_H, "E_W_times_E_H": p.E_W * p.E_H,
            "budget_source": self.budgets.source,
            "lpm_solver": s.solver, "lpm_status": s.status.value, "lpm_gap": s.certificate.gap,
            "lpm_relative_gap": s.certificate.relative_gap, "lpm_objective": s.objective,
            "lpm_gap_over_objective": self.gap_over_objective,
            "run_objective": class_mean_objective(p, run.W, run.means),
            "last_test_accuracy": run.summary.get("last_test_accuracy")}
        row.update({f"dist_{k}": v for k, v in self.distances.items()})
        for key in COMPARED_METRICS:
            row[f"run_{key}"], row[f"lpm_{key}"] = self.run_metrics.get(key), self.lpm_metrics.get(key)
        return row


def _groups(run: RunGeometry, grouping: str):
    check_choice("groups", grouping, GROUPINGS)
    if grouping == "majority" or (grouping == "auto" and run.majority is not None):
        return None
    return run.groups


def compare_run(run: RunGeometry, *, E_W: float | None = None, E_H: float | None = None, budget: str | None = None,
                budget_rule: str = "norms", method: str = "auto", center: str | None = None,
                grouping: str = "auto") -> RunComparison:
    """Solve the run's LPM and measure both geometries with the same code and centre."""
    problem, budgets = problem_for_run(run, E_W, E_H, budget, budget_rule, method)
    solution = solve_certified(problem, method)
    center = run.center if center is None else center
    groups = _groups(run, grouping)
    common = dict(majority=problem.majority, groups=run.groups, center=center)
    run_m = measure(run.means, run.W, counts=run.counts, **common)
    lpm_m = measure(solution.H, solution.W, counts=np.asarray(problem.counts), **common)
    C_run = centre_means(run.means, run.counts, center)
    C_lpm = centre_means(solution.H, problem.counts, center)
    E = etf_reference(run.K)
    dist = {f"lpm_{k}": v for k, v in geometry_distances(C_run, run.W, C_lpm, solution.W).items()}
    dist.update({f"etf_{k}": v for k, v in geometry_distances(C_run, run.W, E, E).items()})
    return RunComparison(run, problem, budgets, solution, center, groups, run_m, lpm_m, dist)


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
    return history, reference
