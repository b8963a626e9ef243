"""Figure 8 of theory.md §10: the convergence map of CE against DR with a fixed ETF.

Reads the ``results`` table of a ``convergence`` sweep
(:class:`lpm.sweep.grid.ConvergenceGrid`): one row per form, E_W·E_H, budget
form, R, step multiplier and seed, with the iterations to each threshold.
Only draws (and evaluates the closed-form rates of :mod:`lpm.core.rates`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.rates import crossing, fitted_start, predicted_crossover
from .style import LOSS_COLORS, caption, figure_legend, panel_label, panels, style
from .tables import ok_rows

FORM_STYLE = {"ce": dict(color=LOSS_COLORS["ce"], marker="o", label="CE"),
              "dr": dict(color=LOSS_COLORS["dr"], marker="s", markersize=6, markerfacecolor="none", linewidth=3.0,
                         alpha=0.7, label="DR (paper, §5)"),
              "dr-released": dict(color="#8c2d04", marker="D", markersize=3.5, label="DR (released, §6.1)")}
#: the budget at which CE's one free constant (the initial amplitude of its slow mode) is fitted
FIT_AT = 20.0


def _threshold_columns(t: pd.DataFrame) -> list[tuple[float, str]]:
    cols = [c for c in t.columns if c.startswith("iterations_to_")]
    return sorted(((float(c[len("iterations_to_"):]), c) for c in cols), reverse=True)


def iteration_table(t: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per form, E_W·E_H, setting and lr: the median over seeds of the iterations to a threshold,
    a censored run (never reached within ``steps``) counting as the cap; ``censored`` marks them."""
    t = t.copy()
    t["censored"] = t[column].isna()
    t["iterations"] = pd.to_numeric(t[column], errors="coerce").fillna(t["steps"].astype(float))
    keys = ["budget", "ratio", "form", "lr", "ewh"]
    return t.groupby(keys).agg(iterations=("iterations", "median"), censored=("censored", "all")).reset_index()


def best_of_grid(table: pd.DataFrame) -> pd.DataFrame:
    """The fewest iterations over the step multipliers, per form, E_W·E_H and setting."""
    keys = ["budget", "ratio", "form", "ewh"]
    best = table.sort_values("iterations").groupby(keys, as_index=False).first()
    return best.sort_values(keys)


def crossovers(panel: pd.DataFrame, threshold: float, K: int) -> dict:
    """Measured and predicted E_W·E_H beyond which DR (paper) needs fewer iterations than CE
    (own step, lr = 1): measured by interpolating the medians; predicted from CE's rate
    (theory.md §12) with its initial amplitude fitted at E_W·E_H = :data:`FIT_AT` and DR's
    measured count, which does not depend on E_W·E_H."""
    own = panel[panel["lr"] == 1.0]
    ce = own[own["form"] == "ce"].set_index("ewh").sort_index()
    t_dr, measured = _measured_crossover(own, "dr")
    out = {"measured": measured, "predicted": None}
    if t_dr is None or ce.empty:
        return out
    if FIT_AT in ce.index and not ce.loc[FIT_AT, "censored"]:
        start = fitted_start(FIT_AT, K, threshold, ce.loc[FIT_AT, "iterations"])
        out["predicted"] = predicted_crossover(K, threshold, start, t_dr)
    return out


def _measured_crossover(chosen: pd.DataFrame, form: str) -> tuple[float | None, float | None]:
    """DR form ``form``'s median iterations (it does not depend on E_W·E_H; ``None`` if it never
    reaches the threshold) and the E_W·E_H where CE's count overtakes it, among the rows ``chosen``."""
    ce = chosen[chosen["form"] == "ce"].set_index("ewh").sort_index()
    dr = chosen[(chosen["form"] == form) & ~chosen["censored"]]
    if dr.empty:
        return None, None
    t_dr = float(dr["iterations"].median())
    return t_dr, (crossing(ce.index, np.full(len(ce), t_dr), ce["iterations"]) if len(ce) else None)


def _setting_label(budget: str, ratio: float) -> str:
    return f"{budget}, R = {ratio:g}"


def plot_convergence_map(table: pd.DataFrame, ax=None):
    """Iterations to bring the mean angle to the fixed-ETF optimum below each threshold (rows)
    against E_W·E_H, per budget form and R (columns): each form with its own 1/L step (solid,
    median over seeds) and with the best step of the grid (dashed); ▲ = not reached within the
    cap. Vertical lines: the measured crossover (solid) and the one predicted from the
    curvature argument (dotted), where DR (paper) starts to need fewer iterations than CE."""
    t = ok_rows(table)
    t = t[t["task"] == "convergence"] if "task" in t else t
    if t.empty:
        raise ValueError("the convergence map needs 'convergence' rows with outcome 'ok'")
    thresholds = _threshold_columns(t)
    settings = sorted({(b, float(r)) for b, r in zip(t["budget"], t["ratio"])}, key=lambda s: (s[0] != "per-sample",
                                                                                             s[1]))
    K, cap = int(t["K"].iloc[0]), float(t["steps"].max())
    with style():
        fig, axes = panels(ax, len(thresholds) * len(settings), nrows=len(thresholds), height=2.5,
                           width=2.45 * len(settings) + 0.6, sharex=True, sharey="row")
        for row, (threshold, column) in enumerate(thresholds):
            table_at = iteration_table(t, column)
            best = best_of_grid(table_at)
            for col, (budget, ratio) in enumerate(settings):
                axis = axes[row * len(settings) + col]
                here = (table_at["budget"] == budget) & (table_at["ratio"] == ratio)
                _draw_panel(axis, table_at[here], best[(best["budget"] == budget) & (best["ratio"] == ratio)], cap)
                found = crossovers(table_at[here], threshold, K) if ratio == 1.0 else {"measured": None}
                _draw_crossovers(axis, found)
                panel_label(axis, f"{_setting_label(budget, ratio)}: θ < {threshold:g} rad")
                axis.title.set_fontsize(8.5)
                axis.set_xscale("log")
                axis.set_yscale("log")
                if row == len(thresholds) - 1:
                    axis.set_xlabel(r"$E_W E_H$")
                if col == 0:
                    axis.set_ylabel("iterations")
        figure_legend(fig, axes, ncols=4)
        caption(fig, "θ: the mean angle between a class-mean feature and its optimal direction, in radians "
                     f"(thresholds {', '.join(f'{th:g} rad = {np.degrees(th):.2g} deg' for th, _ in thresholds)}). "
                     "Each loss with its own 1/L step (lr = 1, solid; median over seeds) and with the best step "
                     "multiplier of the grid (dashed). CE converges linearly at a rate that collapses like "
                     "exp(-sqrt(E_W E_H)); DR sublinearly (angle ~ 1/sqrt(t)) at a speed independent of E_W E_H. "
                     "So CE reaches a coarse angle first at small budgets and DR at large ones; the crossover is "
                     "marked where measured (solid) and where predicted from CE's curvature along the sphere "
                     "(dotted, theory.md §12), in panels where DR (paper) reaches the angle. Triangles: not reached "
                     "within the cap. Under the per-sample budget with E_W = 1 the two DR forms need the same "
                     "iterations (equal gradients on the sphere, theory.md §6.1).",
                width=130)
    return fig


def _draw_panel(axis, own_and_others: pd.DataFrame, best: pd.DataFrame, cap: float) -> None:
    for form, style_ in FORM_STYLE.items():
        rows = own_and_others[(own_and_others["form"] == form) & (own_and_others["lr"] == 1.0)].sort_values("ewh")
        if len(rows):
            reached = rows[~rows["censored"]]
            axis.plot(reached["ewh"], reached["iterations"], linestyle="-", **{"markersize": 3.5, **style_})
            axis.plot(rows.loc[rows["censored"], "ewh"], np.full(rows["censored"].sum(), cap), linestyle="none",
                      marker="^", color=style_["color"], markersize=5)
        grid = best[best["form"] == form].sort_values("ewh")
        grid = grid[~grid["censored"]]
        if len(grid):
            axis.plot(grid["ewh"], grid["iterations"], linestyle="--", color=style_["color"], linewidth=1.0,
                      label=f"{style_['label']}, best step of the grid")
    axis.axhline(cap, color="0.7", linewidth=0.6, linestyle=":")


def _draw_crossovers(axis, found: dict) -> None:
    if found.get("measured"):
        axis.axvline(found["measured"], color="0.25", linewidth=1.0,
                     label="crossover, measured")
    if found.get("predicted"):
        axis.axvline(found["predicted"], color="0.25", linewidth=1.0, linestyle=":",
                     label="crossover, predicted (theory.md §12)")


def crossover_table(table: pd.DataFrame) -> pd.DataFrame:
    """Every crossover the map shows, one row per threshold, budget form, R, DR form and step
    choice (``own``: lr = 1; ``best``: the best step of the grid): the E_W·E_H beyond which that
    DR form needs fewer iterations than CE (``measured``; empty where the DR form never reaches the
    threshold within the cap, or never overtakes CE), DR's iteration count there, and, for the
    paper form with its own step, the crossover predicted by :func:`crossovers` (theory.md §12).
    ``python -m lpm.figures.convergence_map results/convergence-map/results.csv`` prints it."""
    t = ok_rows(table)
    t = t[t["task"] == "convergence"] if "task" in t else t
    K = int(t["K"].iloc[0])
    rows = []
    for threshold, column in _threshold_columns(t):
        for (budget, ratio), panel in t.groupby(["budget", "ratio"]):
            it = iteration_table(panel, column)
            predicted = crossovers(it, threshold, K)["predicted"]
            for step, chosen in (("own", it[it["lr"] == 1.0]), ("best", best_of_grid(it))):
                for form in ("dr", "dr-released"):
                    t_dr, measured = _measured_crossover(chosen, form)
                    rows.append({"threshold": threshold, "budget": budget, "ratio": ratio, "dr_form": form,
                                 "step": step, "dr_iterations": t_dr, "measured": measured,
                                 "predicted": predicted if (form, step) == ("dr", "own") else None})
    return pd.DataFrame(rows)


def _main(argv: list[str]) -> int:
    """``python -m lpm.figures.convergence_map TABLE``: print the crossovers of a finished
    convergence-map table (results.csv of ``lpm reproduce convergence-map``)."""
    import sys

    if len(argv) != 1:
        print("Usage: python -m lpm.figures.convergence_map results/convergence-map/results.csv", file=sys.stderr)
        return 2
    try:
        table = pd.read_csv(argv[0])
        needed = {"form", "ewh", "budget", "ratio", "lr", "K", "steps"}
        if needed - set(table.columns) or not any(c.startswith("iterations_to_") for c in table.columns):
            raise ValueError("it is not a convergence-map results table (lpm reproduce convergence-map)")
    except (OSError, ValueError) as exc:
        print(f"Error: cannot read '{argv[0]}': {exc}", file=sys.stderr)
        return 2
    found = crossover_table(table).round({"dr_iterations": 0, "measured": 1, "predicted": 1})
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(found.to_string(index=False))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
