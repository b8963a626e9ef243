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
#: the budget at which the fitted variant of the prediction fits CE's one free constant (the
#: initial amplitude of its slow mode); the headline prediction fits nothing (theory.md §12)
FIT_AT = 20.0
#: the angle measures of a convergence table: the per-sample angle that theory.md §12 analyses
#: (the headline) and the angle of the class means of the s vectors per class
MEASURES = {"per-sample": ("sample_iterations_to_", "initial_sample_angle_mean"),
            "class-mean": ("iterations_to_", "initial_angle_mean")}
DEFAULT_SAMPLES = 4


def _threshold_columns(t: pd.DataFrame, measure: str = "per-sample") -> list[tuple[float, str]]:
    prefix = MEASURES[measure][0]
    if not any(c.startswith(prefix) for c in t.columns):  # a table from before the per-sample angle
        prefix = MEASURES["class-mean"][0]
    cols = [c for c in t.columns if c.startswith(prefix)]
    return sorted(((float(c[len(prefix):]), c) for c in cols), reverse=True)


def _samples(t: pd.DataFrame) -> pd.Series:
    return t["samples_per_class"].fillna(DEFAULT_SAMPLES) if "samples_per_class" in t else pd.Series(
        DEFAULT_SAMPLES, index=t.index)


def measured_start(t: pd.DataFrame, measure: str = "per-sample") -> float | None:
    """The median over the rows of the measured mean start angle (radians) of ``measure``."""
    column = MEASURES[measure][1]
    if column not in t or t[column].dropna().empty:
        return None
    return float(t[column].median())


def iteration_table(t: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per form, E_W·E_H, setting and lr: the median over seeds of the iterations to a threshold,
    a censored run (never reached within ``steps``) counting as the cap; ``censored`` marks them."""
    t = t.copy()
    t["censored"] = t[column].isna()
    t["iterations"] = pd.to_numeric(t[column], errors="coerce").fillna(t["steps"].astype(float))
    t["samples_per_class"] = _samples(t)
    keys = ["budget", "ratio", "form", "lr", "ewh", "samples_per_class"]
    return t.groupby(keys).agg(iterations=("iterations", "median"), censored=("censored", "all")).reset_index()


def best_of_grid(table: pd.DataFrame) -> pd.DataFrame:
    """The fewest iterations over the step multipliers, per form, E_W·E_H and setting."""
    keys = ["budget", "ratio", "form", "ewh", "samples_per_class"]
    best = table.sort_values("iterations").groupby(keys, as_index=False).first()
    return best.sort_values(keys)


def crossovers(panel: pd.DataFrame, threshold: float, K: int, start: float | None = None) -> dict:
    """Measured and predicted E_W·E_H beyond which DR (paper) needs fewer iterations than CE
    (own step, lr = 1), for the angle measure the iterations of ``panel`` count:

    * ``measured``: by interpolating the medians;
    * ``predicted`` (needs ``start``, the measured mean start angle θ_0 of the per-sample
      measure): nothing fitted, t_CE(θ_0) of theory.md §12 against t_DR = K/((K−1))·(θ⁻² − θ_0⁻²);
    * ``predicted_fitted``: CE's initial amplitude ``fitted_start`` fitted to CE's measured count
      at E_W·E_H = :data:`FIT_AT`, against DR's measured count."""
    own = panel[panel["lr"] == 1.0]
    ce = own[own["form"] == "ce"].set_index("ewh").sort_index()
    t_dr, measured = _measured_crossover(own, "dr")
    out = {"measured": measured, "predicted": None, "predicted_fitted": None, "fitted_start": None,
           "start": start}
    if start is not None and start > threshold:
        out["predicted"] = predicted_crossover(K, threshold, start, K / (K - 1) * (threshold**-2 - start**-2))
    if t_dr is None or ce.empty:
        return out
    if FIT_AT in ce.index and not ce.loc[FIT_AT, "censored"]:
        fitted = fitted_start(FIT_AT, K, threshold, ce.loc[FIT_AT, "iterations"])
        out["fitted_start"] = fitted
        out["predicted_fitted"] = predicted_crossover(K, threshold, fitted, t_dr)
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
    t = t[_samples(t) == DEFAULT_SAMPLES]  # panels: s = 4 vectors per class; the table has every s
    thresholds = _threshold_columns(t, "per-sample")
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
                start = measured_start(t[(t["budget"] == budget) & (t["ratio"] == ratio)])
                found = crossovers(table_at[here], threshold, K, start) if ratio == 1.0 else {"measured": None}
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
        caption(fig, "Angle: the mean over every feature vector (4 per class) of its angle to the optimum, in radians, "
                     "the quantity theory.md §12 analyses (thresholds "
                     f"{', '.join(f'{th:g} rad = {np.degrees(th):.2g} deg' for th, _ in thresholds)}; the class "
                     "means' angle is smaller for DR; every crossover, both measures and each number of vectors "
                     "per class: python -m lpm.figures.convergence_map). "
                     "Each loss with its own 1/L step (lr = 1, solid; median over seeds) and with the best step "
                     "multiplier of the grid (dashed). CE converges linearly at a rate that collapses like "
                     "exp(-sqrt(E_W E_H)); DR sublinearly (angle ~ 1/sqrt(t)) at a speed independent of E_W E_H. "
                     "So CE reaches a coarse angle first at small budgets and DR at large ones; the crossover is "
                     "marked where measured (solid) and where predicted from the measured start angle with nothing "
                     "fitted (dotted, theory.md §12), in panels where DR (paper) reaches the angle. "
                     "Triangles: not reached "
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
                     label=f"crossover, measured (per-sample angle, {DEFAULT_SAMPLES} vectors per class)")
    if found.get("predicted"):
        axis.axvline(found["predicted"], color="0.25", linewidth=1.0, linestyle=":",
                     label="crossover, predicted from the measured start (theory.md §12)")


def crossover_table(table: pd.DataFrame) -> pd.DataFrame:
    """Every crossover the map shows, one row per angle measure (``per-sample``: every feature
    vector; ``class-mean``: the means of the vectors of a class), vectors per class
    (``samples_per_class``), threshold, budget form, R, DR form and step choice (``own``: lr = 1;
    ``best``: the best step of the grid): the E_W·E_H beyond which that DR form needs fewer
    iterations than CE (``measured``; empty where the DR form never reaches the threshold within
    the cap, or never overtakes CE), DR's iteration count there, the measured mean start angle,
    and, for the paper form with its own step, the crossovers of :func:`crossovers` (theory.md §12):
    from the measured start with nothing fitted (``predicted``; per-sample measure, where every
    sample sits on one sphere: per-sample budget or R = 1) and with CE's start fitted
    (``predicted_fitted``, ``fitted_start``).
    ``python -m lpm.figures.convergence_map results/convergence-map/results.csv`` prints it."""
    t = ok_rows(table)
    t = t[t["task"] == "convergence"] if "task" in t else t
    t = t.assign(samples_per_class=_samples(t))
    K = int(t["K"].iloc[0])
    rows = []
    for measure in MEASURES:
        if not any(c.startswith(MEASURES[measure][0]) for c in t.columns):
            continue
        for threshold, column in _threshold_columns(t, measure):
            for (s, budget, ratio), panel in t.groupby(["samples_per_class", "budget", "ratio"]):
                it = iteration_table(panel, column)
                start = measured_start(panel, measure)
                # the prediction assumes every sample on one sphere: the per-sample budget, or R = 1 (theory.md §12)
                predictable = measure == "per-sample" and (budget == "per-sample" or ratio == 1.0)
                found = crossovers(it, threshold, K, start if predictable else None)
                for step, chosen in (("own", it[it["lr"] == 1.0]), ("best", best_of_grid(it))):
                    for form in ("dr", "dr-released"):
                        t_dr, measured = _measured_crossover(chosen, form)
                        first = (form, step) == ("dr", "own")
                        rows.append({"measure": measure, "samples_per_class": int(s), "threshold": threshold,
                                     "budget": budget, "ratio": ratio, "dr_form": form, "step": step,
                                     "dr_iterations": t_dr, "measured": measured, "start_angle": start,
                                     "predicted": found["predicted"] if first else None,
                                     "predicted_fitted": found["predicted_fitted"] if first else None,
                                     "fitted_start": found["fitted_start"] if first else None})
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
    found = crossover_table(table).round({"dr_iterations": 0, "measured": 1, "predicted": 1, "predicted_fitted": 1,
                                          "start_angle": 3, "fitted_start": 3})
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(found.to_string(index=False))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
