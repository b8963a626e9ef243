"""One-shot solves of the layer-peeled model, side by side (``lpm simulate``).

By default :func:`simulate` solves the two settings the theory contrasts,
from the same class counts: a learnable classifier trained with
cross-entropy (Fang et al.'s model: beyond the threshold R* the minority
classifiers merge, theory.md §4.3) and a fixed simplex-ETF classifier trained
with DR (Yang et al.'s remedy: its minority classifiers cannot merge,
theory.md §5). :func:`render_table` prints them as the columns of one
terminal table and :func:`verdicts` says in words which one collapsed.

Class counts. Give a profile (``K``, ``ratio``, ``profile``, ``majority``)
or explicit ``counts``; then K is the number of counts and neither
``ratio`` nor ``profile`` may be given. Counts are relative class sizes:
only the proportions n_k/N enter the norm-constrained model, so fractional
counts (``0.5, 0.3, 0.2``) are meaningful and scaling every count by the
same factor changes nothing; the weight-decay budget form alone reads them
as absolute sample counts (theory.md §9).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from .core.errors import LPMInputError, check_choice
from .core.geometry import measure_solution
from .core.losses import LOSS_FAMILIES
from .core.problem import BUDGETS, CLASSIFIERS, Problem
from .core.solution import Solution
from .core.solvers import REGISTRY, check_memory, get_solver, resolve

#: the default settings: (classifier, loss) of Fang et al. [F21] beside Yang et al. [Y22]
PAIRINGS = (("learnable", "ce"), ("fixed-etf", "dr"))

@dataclass
class SimulationResult:
    problem: Problem
    solution: Solution
    metrics: dict[str, Any]
    reference_gap: float | None = None  # gap to a certified optimum, for uncertified solvers

    @property
    def label(self) -> str:
        return f"{self.problem.classifier} + {loss_label(self.problem)}"

    def to_dict(self) -> dict[str, Any]:
        s = self.solution.summary()
        return {
            "classifier": self.problem.classifier, "loss": self.problem.loss, "budget": self.problem.budget,
            "solver": s["solver"], "status": s["status"], "objective": s["objective"],
            "lower_bound": s["lower_bound"], "gap": s["gap"], "kkt_residual": s["kkt_residual"],
            "gap_to_certified_optimum": self.reference_gap, "iterations": s["iterations"], "time_s": s["time_s"],
            "message": s["message"], "problem": _described(self.problem), "metrics": self.metrics,
        }


def _described(problem: Problem) -> dict[str, Any]:
    """``problem.describe()`` without the norm budgets where they do not apply (the max-margin limit)."""
    out = problem.describe()
    if problem.budget == "max-margin":
        out["E_W"] = out["E_H"] = None
    return out


def loss_label(problem: Problem) -> str:
    """The loss with its hyperparameters, e.g. ``la (tau=1)`` or ``vs (gamma=0.3, tau=1)``."""
    params = {k: getattr(problem, k) for k in ("tau", "gamma", "margin") if getattr(problem, k) is not None}
    return problem.loss + (" (" + ", ".join(f"{k}={v:g}" for k, v in params.items()) + ")" if params else "")


def weights_label(problem: Problem) -> str:
    """The class weighting, e.g. ``class-balanced (beta=0.9999)``."""
    return problem.class_weights + (f" (beta={problem.beta:g})" if problem.beta is not None else "")


def pairings(classifiers: Sequence[str] | None = None, loss: str | None = None) -> list[tuple[str, str]]:
    """The (classifier, loss) settings to solve: :data:`PAIRINGS` when
    neither is given; else each classifier (default: learnable and
    fixed-etf) with ``loss`` (default: ce)."""
    if classifiers is None and loss is None:
        return list(PAIRINGS)
    return [(c, loss or "ce") for c in (classifiers or ("learnable", "fixed-etf"))]


def build_problems(K: int | None = None, ratio: float | None = None, loss: str | None = None,
                   classifiers: Sequence[str] | None = None, profile: str | None = None, majority: int | None = None,
                   counts: Sequence[float] | None = None, E_W: float = 1.0, E_H: float = 5.0, d: int | None = None,
                   budget: str | None = None, seed: int = 0, lambda_W: float | None = None,
                   lambda_H: float | None = None, tau: float | None = None, gamma: float | None = None,
                   margin: float | None = None, class_weights: str = "none",
                   beta: float | None = None) -> list[Problem]:
    """One Problem per setting of :func:`pairings`, all from the same counts:
    ``counts`` if given, else the ``profile`` (default step) with ``K``
    classes (default 10) at imbalance ``ratio`` (default 100). ``lambda_W``
    and ``lambda_H`` (budget ``weight-decay``) go to every problem, except
    that fixed classifiers, whose W is not trained, take no ``lambda_W``.
    ``tau``, ``gamma``, ``margin`` (the count-aware losses' hyperparameters,
    theory.md §14) need a ``loss`` that takes them; ``class_weights`` and
    ``beta`` go to every problem."""
    settings = pairings(classifiers, loss)
    if budget == "max-margin" and classifiers is None:
        settings = [("learnable", loss or "ce")]  # the limit exists for the learnable classifier only (§15)
    given = {k: v for k, v in (("tau", tau), ("gamma", gamma), ("margin", margin)) if v is not None}
    if given and loss is None:
        name, value = next(iter(given.items()))
        raise LPMInputError(name, value, "given only with a loss that takes it (--loss la or vs for tau, cdt or "
                                         "vs for gamma, ldam for margin)")
    for c, _ in settings:
        check_choice("classifier", c, CLASSIFIERS)
    if budget is not None:
        check_choice("budget", budget, BUDGETS)
    common = dict(E_W=E_W, E_H=E_H, d=d, budget=budget, seed=seed, lambda_H=lambda_H, class_weights=class_weights,
                  beta=beta, **given)
    decay = lambda c: {"lambda_W": lambda_W if c == "learnable" else None}  # noqa: E731
    if counts is not None:
        counts = list(counts)
        if K is not None and K != len(counts):
            raise LPMInputError("K", K, f"left out with counts (K is the number of counts given, {len(counts)})")
        for name, value in (("ratio", ratio), ("profile", profile)):
            if value is not None:
                raise LPMInputError(name, value, "left out with counts (the counts fix the class sizes)")
        return [Problem.from_counts(counts, classifier=c, loss=l, majority=majority, **common, **decay(c))
                for c, l in settings]
    return [Problem.from_profile(K=10 if K is None else K, ratio=100.0 if ratio is None else ratio,
                                 profile=profile or "step", majority=majority, classifier=c, loss=l, **common,
                                 **decay(c))
            for c, l in settings]


#: metrics also measured on uncentred class means: the layer-peeled model has no bias, and
#: centring would tilt the directions of shrinking minority means (theory.md §8)
UNCENTRED = ("feature_minority_cos", "feature_angle_collapse_index")


def solve_one(problem: Problem, solver: str = "auto", **settings) -> SimulationResult:
    """Solve with the back end :func:`lpm.core.solvers.resolve` picks; for a back
    end that cannot certify itself, its certificate (from the certified
    reference optimum) gives the gap to the certified optimum."""
    name = resolve(problem, solver).solver
    solution = get_solver(name, **settings).run(problem)
    reference_gap = None if REGISTRY[name].certifies else solution.certificate.gap
    metrics = measure_solution(solution)
    raw = measure_solution(solution, center="none")
    metrics.update({f"{key}_uncentred": raw[key] for key in UNCENTRED})
    return SimulationResult(problem, solution, metrics, reference_gap)


def simulate(solver: str = "auto", solver_settings: dict | None = None, **problem_args) -> list[SimulationResult]:
    """Build the problems (see :func:`build_problems`), check that they fit
    in memory, then solve each one."""
    problems = build_problems(**problem_args)
    for p in problems:
        check_memory(p)
    return [solve_one(p, solver, **(solver_settings or {})) for p in problems]


def to_json(results: Sequence[SimulationResult]) -> str:
    return json.dumps([r.to_dict() for r in results], indent=2)


_ROWS = [
    ("budget form", lambda r: r.problem.budget),
    ("solver", lambda r: r.solution.solver),
    ("status", lambda r: r.solution.status.value),
    ("objective", lambda r: r.solution.objective),
    ("certificate gap", lambda r: r.solution.certificate.gap),
    ("gap to certified optimum", lambda r: r.reference_gap),
    ("NC1 (Σ_B cut at 1e-6, §8.1)", lambda r: r.metrics["nc1"]),
    ("NC1 (full pseudo-inverse)", lambda r: r.metrics.get("nc1_pinv")),
    ("NC2 (Gram dist. to ETF)", lambda r: r.metrics["nc2"]),
    ("NC3", lambda r: r.metrics["nc3"]),
    ("minority classifier cos", lambda r: r.metrics["classifier_minority_cos"]),
    ("minority class-mean cos (uncentred)", lambda r: r.metrics["feature_minority_cos_uncentred"]),
    ("collapse index, norm-aware", lambda r: r.metrics["collapse_index"]),
    ("collapse index, angle-only", lambda r: r.metrics["angle_collapse_index"]),
    ("‖w‖ minority / majority", lambda r: r.metrics["classifier_norm_ratio"]),
    ("‖h‖ minority / majority", lambda r: r.metrics["feature_norm_ratio"]),
]


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3e}" if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4) else f"{value:.4f}"
    return str(value)


def describe_setting(results: Sequence[SimulationResult]) -> str:
    """One line: the class counts and budgets every column shares."""
    p = results[0].problem
    sizes = f"{p.profile} profile, R={p.ratio:g}" if p.ratio else f"counts {', '.join(f'{c:g}' for c in p.counts)}"
    budgets = {r.problem.budget_text() for r in results}
    if len(budgets) == 1:  # the numbers that enter the model: E_W, E_H or, under weight decay, λ_W, λ_H
        shared = budgets.pop()
    else:
        shared = "; ".join(f"{r.label}: {r.problem.budget_text()}" for r in results)
    losses = "; ".join(dict.fromkeys(f"{r.problem.loss}: {r.problem.loss_fn.description}" for r in results
                                     if r.problem.loss in LOSS_FAMILIES))
    weights = f", class weights {weights_label(p)}" if p.class_weights != "none" else ""
    return (f"K={p.K} classes (K_A={p.majority} majority), {sizes}, {shared}, d={p.d}{weights}"
            + (f"; {losses}" if losses else ""))


def render_table(results: Sequence[SimulationResult]):
    """A rich Table with one column per solved setting ("classifier + loss")."""
    from rich.table import Table  # rich only when a table is drawn

    table = Table()
    table.add_column("metric", style="bold")
    for r in results:
        table.add_column(r.label, justify="right")
    for label, get in _ROWS:
        table.add_row(label, *[_fmt(get(r)) for r in results])
    return table


def verdicts(results: Sequence[SimulationResult], collapsed_below: float = 0.05) -> list[str]:
    """One plain sentence per setting on whether its minority classifiers collapsed, judged on the
    angle-only collapse index of the classifier rows (theory.md §8.6; the norm-aware one, which
    also counts shrinking rows as collapse, is given beside it; 1 = ETF, 0 = merged)."""
    lines = []
    for r in results:
        angle, norm_aware = r.metrics["angle_collapse_index"], r.metrics["collapse_index"]
        if angle is None:
            continue
        state = "COLLAPSED, minority classifiers merged" if angle < collapsed_below else "not collapsed"
        lines.append(f"{r.label}: {state}")
        lines.append(f"  collapse index (1 = ETF, 0 = merged): angle-only {angle:.3f}, norm-aware {norm_aware:.3f}")
        if r.problem.classifier == "learnable" and r.problem.loss.startswith("dr"):
            lines.append("  learnable + dr is degenerate: DR has no push term, so any point with w_k·h_k = "
                         "sqrt(E_W E_H) for every k (e.g. all classes sharing one w and one h) has loss 0; "
                         "the geometry shown is one of many optima (theory.md §5).")
    return lines
