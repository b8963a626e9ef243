"""Figures 1–2 of theory.md §10: minority collapse, and its absence with a
fixed simplex-ETF classifier.

Both read the ``results`` table of a ``solve`` sweep (one row per cell and
seed; :mod:`lpm.sweep.engine`). They only draw: nothing here solves.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .style import (PAIR_COLORS, SOLVER_STYLE, caption, etf_line, figure_legend, line_with_band, log_x_if_wide,
                    panel_label, panels, style)
from .tables import aggregate, ok_rows, only

RATIO_LABEL = r"imbalance ratio $R = n_A / n_B$"
#: the stated collapse criterion drawn in figure 1 (same default as lpm.core.thresholds)
COLLAPSED_BELOW = 1e-3


def plot_minority_collapse(table: pd.DataFrame, ax=None):
    """Figure 1 [F21]: minority collapse of the learnable CE layer-peeled model.

    Panels, against R (log scale), one curve per solver (seeds: mean ± std):
    (a) mean pairwise cosine of the minority classifiers w_k, k ≥ K_A, with
    the ETF value −1/(K−1) and the merged value 1; (b) the norm-aware
    collapse index (1 = ETF, 0 = merged; theory.md §8.6); (c) the
    minority/majority classifier norm ratio. When the table holds a
    ``threshold`` row (theory.md §4.3), the vertical line is R* itself: the
    KKT root, labelled with the bisection value beside it.
    """
    t = ok_rows(only(table, classifier="learnable", loss="ce"))
    if t.empty:
        raise ValueError("figure 1 needs learnable-ce rows with outcome 'ok'")
    K = int(t["K"].iloc[0])
    threshold = ok_rows(only(table, task="threshold"))
    with style():
        fig, axes = panels(ax, 3, height=3.0, width=7.6)
        columns = ("classifier_minority_cos", "collapse_index", "classifier_norm_ratio")
        for solver, rows in t.groupby("solver", sort=False):
            st = dict(SOLVER_STYLE.get(solver, dict(label=solver)))
            for axis, col in zip(axes, columns):
                line_with_band(axis, aggregate(rows, "ratio", col), "ratio", **st)
        for axis in axes:
            log_x_if_wide(axis, t["ratio"])
            axis.set_xlabel(RATIO_LABEL)
        if len(threshold):
            row = threshold.iloc[0]
            label = (f"$R^* = {row['ratio_star_kkt']:.4g}$ (KKT root; bisection on the index "
                     f"< {row['index_threshold']:g}: {row['ratio_star_index']:.4g})")
            for axis in axes:
                axis.axvline(row["ratio_star_kkt"], color="0.3", linestyle=":", linewidth=1.1,
                             label=label if axis is axes[0] else None)
        etf_line(axes[0], K)
        axes[0].axhline(1.0, color="0.6", linestyle="--", linewidth=0.8, label="merged: cos = 1")
        axes[0].set_ylabel("mean cosine")
        axes[1].set_ylabel("index (1 = ETF, 0 = merged)")
        axes[2].set_ylabel(r"mean $\|w_k\|$: minority / majority")
        panel_label(axes[0], "(a) minority classifier cosine")
        panel_label(axes[1], "(b) norm-aware collapse index")
        panel_label(axes[2], "(c) classifier norm ratio")
        figure_legend(fig, axes[:1])
        _coincidence_caption(fig, t, columns)
        _suptitle(fig, t, "Minority collapse, learnable classifier, CE")
    return fig


def _coincidence_caption(fig, t: pd.DataFrame, columns) -> None:
    """Say which curves of figure 1 lie on top of one another, with the largest gap measured."""
    def gap(a: pd.DataFrame, b: pd.DataFrame) -> float:
        keys = ["ratio"]
        m = a[[*keys, *columns]].merge(b[[*keys, *columns]], on=keys, suffixes=("_a", "_b"))
        diffs = [(pd.to_numeric(m[f"{c}_a"]) - pd.to_numeric(m[f"{c}_b"])).abs().max() for c in columns]
        return float(np.nanmax(diffs)) if len(m) else float("nan")

    notes = []
    by_solver = {solver: rows for solver, rows in t.groupby("solver")}
    if {"convex", "nuclear"} <= set(by_solver):
        notes.append(f"The certified convex and nuclear curves coincide (largest difference "
                     f"{gap(by_solver['convex'], by_solver['nuclear']):.1g}): both reach the optimum.")
    grad = by_solver.get("gradient")
    if grad is not None and grad["seed"].nunique() > 1:
        seeds = sorted(grad["seed"].unique())
        worst = max(gap(grad[grad["seed"] == seeds[0]], grad[grad["seed"] == s]) for s in seeds[1:])
        notes.append(f"The gradient markers are the median of {len(seeds)} seeds (random initialisations), which "
                     f"land on the same points (largest difference between seeds {worst:.1g}), as the "
                     "certified optimum predicts.")
    if notes:
        caption(fig, " ".join(notes), width=160)


def _suptitle(fig, t: pd.DataFrame, head: str) -> None:
    row = t.iloc[0]
    fig.suptitle(f"{head}: K={int(row['K'])}, $K_A$={int(row['majority'])}, "
                 f"$E_W$={row['E_W']:g}, $E_H$={row['E_H']:g}", fontsize=10)


def _pair_label(clf: str, loss: str, budget: str, multiple_budgets: bool) -> str:
    text = f"{clf} + {loss.upper()}"
    return f"{text} ({budget})" if multiple_budgets else text


def plot_fixed_vs_learnable(table: pd.DataFrame, ax=None):
    """Figure 2 [Y22]: a fixed simplex ETF prevents minority collapse.

    (a), (b): pairings with a unique optimum — one curve per classifier ×
    loss × budget (colour: pairing; line style: budget form), mean ± std over
    seeds, against R: mean cosine of the minority classifier rows, and of the
    minority class means (uncentred, so fixed-ETF directions m_k read exactly
    −1/(K−1) under either budget form). (c): learnable + DR, whose zero-loss
    minimisers form a set (theory.md §5): each solver and seed lands on a
    different one; the merged point (every w_k = √E_W u, h_k = √E_H u) has
    zero loss too and cosine 1.
    """
    t = ok_rows(table)
    if t.empty:
        raise ValueError("figure 2 needs rows with outcome 'ok'")
    K = int(t["K"].iloc[0])
    degenerate = (t["classifier"] == "learnable") & (t["loss"] == "dr")
    unique, dr = t[~degenerate], t[degenerate]
    dashes = {"per-sample": "-", "class-average": "--"}
    multiple = unique["budget"].nunique() > 1
    fixed_markers = iter(enumerate(("o", "s", "^", "D", "v", "P")))
    with style():
        fig, axes = panels(ax, 3 if len(dr) else 2, height=3.2, sharey=True)
        columns = ("classifier_minority_cos", "feature_minority_cos_uncentred")
        for (clf, loss, budget), rows in unique.groupby(["classifier", "loss", "budget"], sort=False):
            st = dict(color=PAIR_COLORS.get((clf, loss), "k"), linestyle=dashes.get(budget, "-."),
                      label=_pair_label(clf, loss, budget, multiple))
            if clf != "learnable":  # these curves coincide at −1/(K−1): offset markers keep each visible
                index, marker = next(fixed_markers, (0, "x"))
                st.update(marker=marker, markersize=4.5, markerfacecolor="none", markevery=(index % 4, 4))
            for axis, col in zip(axes, columns):
                line_with_band(axis, aggregate(rows, "ratio", col), "ratio", **st)
        axes[0].set_ylabel("mean minority cosine")
        panel_label(axes[0], "(a) classifiers $w_k$")
        panel_label(axes[1], "(b) class means $h_k$ (uncentred)")
        if len(dr):
            _draw_degenerate(axes[2], dr)
        for axis in axes:
            log_x_if_wide(axis, t["ratio"])
            axis.set_xlabel(RATIO_LABEL)
            etf_line(axis, K, label=axis is axes[0])
            axis.set_ylim(-0.35, 1.1)
        figure_legend(fig, axes, ncols=4)
        _suptitle(fig, t, "Fixed ETF vs learnable classifier")
        caption(fig, "The fixed-ETF curves (CE and DR, both budget forms, every seed) coincide at the ETF value "
                     "-1/(K-1) for every R; their markers are offset so that each one shows. Class means are "
                     "uncentred: the layer-peeled model has no bias, and centring would tilt the directions of "
                     "shrinking tail classes.")
    return fig


def _draw_degenerate(ax, dr: pd.DataFrame) -> None:
    markers = {"nuclear": "s", "convex": "D", "gradient": "o"}
    for (solver, seed), rows in dr.groupby(["solver", "seed"], sort=False):
        rows = rows.sort_values("ratio")
        label = f"learnable + DR, {solver}" + (f" seed {seed}" if solver == "gradient" else "")
        ax.plot(rows["ratio"], rows["classifier_minority_cos"], marker=markers.get(solver, "x"), linewidth=0.8,
                markersize=3.5, color=PAIR_COLORS[("learnable", "dr")], alpha=0.55 + 0.45 * (solver != "gradient"),
                label=label)
    ax.axhline(1.0, color="0.3", linestyle="--", linewidth=0.9, label="merged point (zero loss too)")
    worst = pd.to_numeric(dr["objective"], errors="coerce").groupby(dr["solver"]).max()
    panel_label(ax, "(c) learnable + DR minimisers")
    text = "\n".join(f"{solver}: loss ≤ {value:.0e}" for solver, value in worst.items())
    ax.text(0.97, 0.55, text, transform=ax.transAxes, ha="right", va="top", fontsize=7)
