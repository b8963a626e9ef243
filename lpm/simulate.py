"""One-shot solves of the layer-peeled model, side by side (``lpm simulate``).

:func:`simulate` builds one :class:`Problem` per classifier mode from the
same profile, solves each with the chosen back end, and measures the
geometry. :func:`render_table` prints them as columns of one terminal table.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from .core.errors import LPMInputError, check_choice
from .core.geometry import measure_solution
from .core.problem import BUDGETS, CLASSIFIERS, Problem
from .core.solution import Solution
from .core.solvers import REGISTRY, get_solver, resolve


@dataclass
class SimulationResult:
    problem: Problem
    solution: Solution
    metrics: dict[str, Any]
    reference_gap: float | None = None  # gap to a certified optimum, for uncertified solvers

    def to_dict(self) -> dict[str, Any]:
        s = self.solution.summary()
        return {
            "classifier": self.problem.classifier, "loss": self.problem.loss, "budget": self.problem.budget,
            "solver": s["solver"], "status": s["status"], "objective": s["objective"],
            "lower_bound": s["lower_bound"], "gap": s["gap"], "kkt_residual": s["kkt_residual"],
            "gap_to_certified_optimum": self.reference_gap, "iterations": s["iterations"], "time_s": s["time_s"],
            "message": s["message"], "problem": self.problem.describe(), "metrics": self.metrics,
        }


def build_problems(K: int | None = 10, ratio: float = 100.0, loss: str = "ce", classifiers: Sequence[str] | None = None,
                   profile: str = "step", majority: int | None = None, counts: Sequence[float] | None = None,
                   E_W: float = 1.0, E_H: float = 5.0, d: int | None = None, budget: str | None = None,
                   seed: int = 0) -> list[Problem]:
    """One Problem per classifier mode (default: learnable and fixed-etf)."""
    classifiers = list(classifiers or ("learnable", "fixed-etf"))
    for c in classifiers:
        check_choice("classifier", c, CLASSIFIERS)
    if budget is not None:
        check_choice("budget", budget, BUDGETS)
    common = dict(loss=loss, E_W=E_W, E_H=E_H, d=d, budget=budget, seed=seed)
    if counts is not None:
        if K is not None and len(counts) != K:
            raise LPMInputError("counts", list(counts), f"a list of K={K} numbers (one per class)")
        return [Problem.from_counts(counts, classifier=c, majority=majority, **common) for c in classifiers]
    return [Problem.from_profile(K=10 if K is None else K, ratio=ratio, profile=profile, majority=majority, classifier=c, **common)
            for c in classifiers]


def solve_one(problem: Problem, solver: str = "auto", **settings) -> SimulationResult:
    """Solve with the back end :func:`lpm.core.solvers.resolve` picks; for a back
    end that cannot certify itself, its certificate (from the certified
    reference optimum) gives the gap to the certified optimum."""
    name = resolve(problem, solver).solver
    solution = get_solver(name, **settings).run(problem)
    reference_gap = None if REGISTRY[name].certifies else solution.certificate.gap
    return SimulationResult(problem, solution, measure_solution(solution), reference_gap)


def simulate(solver: str = "auto", solver_settings: dict | None = None, **problem_args) -> list[SimulationResult]:
    """Build the problems (see :func:`build_problems`) and solve each one."""
    return [solve_one(p, solver, **(solver_settings or {})) for p in build_problems(**problem_args)]


def to_json(results: Sequence[SimulationResult]) -> str:
    return json.dumps([r.to_dict() for r in results], indent=2)


_ROWS = [
    ("budget form", lambda r: r.problem.budget),
    ("solver", lambda r: r.solution.solver),
    ("status", lambda r: r.solution.status.value),
    ("objective", lambda r: r.solution.objective),
    ("certificate gap", lambda r: r.solution.certificate.gap),
    ("gap to certified optimum", lambda r: r.reference_gap),
    ("NC1", lambda r: r.metrics["nc1"]),
    ("NC2 (Gram dist. to ETF)", lambda r: r.metrics["nc2"]),
    ("NC3", lambda r: r.metrics["nc3"]),
    ("minority classifier cos", lambda r: r.metrics["classifier_minority_cos"]),
    ("minority class-mean cos", lambda r: r.metrics["feature_minority_cos"]),
    ("collapse index (1=ETF, 0=merged)", lambda r: r.metrics["collapse_index"]),
    ("‖w‖ minority / majority", lambda r: r.metrics["classifier_norm_ratio"]),
    ("‖h‖ minority / majority", lambda r: r.metrics["feature_norm_ratio"]),
]


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3e}" if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4) else f"{value:.4f}"
    return str(value)


def render_table(results: Sequence[SimulationResult]):
    """A rich Table with one column per solved problem."""
    from rich.table import Table

    p = results[0].problem
    title = (f"K={p.K}, {p.profile} profile" + (f", R={p.ratio:g}" if p.ratio else "")
             + f", K_A={p.majority}, loss={p.loss}, E_W={p.E_W:g}, E_H={p.E_H:g}, d={p.d}")
    table = Table(title=title, title_justify="left")
    table.add_column("metric", style="bold")
    for r in results:
        table.add_column(r.problem.classifier, justify="right")
    for label, get in _ROWS:
        table.add_row(label, *[_fmt(get(r)) for r in results])
    return table


def verdicts(results: Sequence[SimulationResult], collapsed_below: float = 0.05) -> list[str]:
    """One plain sentence per problem on whether its minority classifiers collapsed."""
    lines = []
    for r in results:
        ci = r.metrics["collapse_index"]
        if ci is None:
            continue
        state = "COLLAPSED (minority classifiers merged)" if ci < collapsed_below else "not collapsed"
        lines.append(f"{r.problem.classifier}: {state}; collapse index {ci:.3f}")
        if r.problem.classifier == "learnable" and r.problem.loss == "dr":
            lines.append("  learnable + dr is degenerate: DR has no push term, so any point with w_k·h_k = "
                         "sqrt(E_W E_H) for every k (e.g. all classes sharing one w and one h) has loss 0; "
                         "the geometry shown is one of many optima (theory.md §5).")
    return lines
