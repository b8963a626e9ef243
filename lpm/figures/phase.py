"""Figure 5 of theory.md §10: the phase diagram of minority collapse.

Reads the ``results`` table of a sweep with ``threshold`` rows (R* per
K, K_A, E_W·E_H; :mod:`lpm.core.thresholds`) and, optionally, ``regularised`` rows
(the regularised-UFM check of theory.md §9).
"""
from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pandas as pd

from .style import LOSS_COLORS, caption, panel_label, panels, style
from .tables import ok_rows


def plot_phase_diagram(table: pd.DataFrame, ax=None):
    """(a) R* against K_A/K, one colour per E_W·E_H: markers are the index
    bisection (collapse index < threshold), lines the KKT root
    log(λ/p_B) = 0; up-triangles mark R* beyond the bracket.
    (b) Regularised UFM: minority collapse index against R / R*_formula with
    R*_formula = (1/sqrt(λ_W λ_H) − K_B)/K_A, i.e. n_B = N² λ_W λ_H; every
    curve must reach 0 at 1 (theory.md §9). Points where the whole solution
    has vanished (every ‖w_k‖ < 1e-4) have no index and are left out.
    """
    t = ok_rows(table)
    thr = t[t["task"] == "threshold"] if "task" in t else t
    reg = t[t["task"] == "regularised"] if "task" in t else t.iloc[0:0]
    with style():
        fig, axes = panels(ax, 2 if len(reg) else 1, height=3.0, width=7.0 if len(reg) else 3.6)
        _draw_thresholds(axes[0], thr)
        if len(reg):
            _draw_regularised(axes[1], reg)
        caption(fig, "(a) R* two ways: circles bisect R on the certified collapse index; lines are the KKT root, "
                     "where the spectral norm lambda = ||G||_2 of the logit gradient at the merged point reaches "
                     "the minority proportion p_B, so that the merged minority classifiers satisfy the optimality "
                     "conditions (theory.md §4.3). (b) The weight-decay model, minority index against R over its "
                     "formula threshold (theory.md §9).", width=110)
    return fig


def _draw_thresholds(ax, thr: pd.DataFrame) -> None:
    if thr.empty:
        raise ValueError("figure 5 needs 'threshold' rows with outcome 'ok'")
    products = sorted(thr["ewh"].unique())
    cmap = mpl.colormaps["viridis"]
    colors = {e: cmap(i / max(len(products) - 1, 1) * 0.9) for i, e in enumerate(products)}
    top = float(thr["bracket_high"].max()) if "bracket_high" in thr else np.nan
    for e, rows in thr.groupby("ewh"):
        rows = rows.sort_values("majority_fraction")
        x = rows["majority_fraction"].to_numpy(float)
        kkt = pd.to_numeric(rows["ratio_star_kkt"], errors="coerce").to_numpy(float)
        idx = pd.to_numeric(rows["ratio_star_index"], errors="coerce").to_numpy(float)
        ax.plot(x, kkt, color=colors[e], linestyle="-", label=f"$E_W E_H$ = {e:g}")
        ax.plot(x, idx, color=colors[e], linestyle="none", marker="o", markerfacecolor="none", markersize=6)
        beyond = ~np.isfinite(idx) & np.isfinite(top)
        ax.plot(x[beyond], np.full(beyond.sum(), top), color=colors[e], linestyle="none", marker="^")
    ax.set_yscale("log")
    ax.set_xlabel(r"majority fraction $K_A / K$")
    ax.set_ylabel(r"collapse threshold $R^*$")
    thr0 = thr.iloc[0]
    ax.plot([], [], color="0.3", marker="o", markerfacecolor="none", linestyle="none",
            label=f"bisection: index < {thr0['index_threshold']:g}")
    ax.plot([], [], color="0.3", linestyle="-", label=r"KKT root: $\|G\|_2 = p_B$")
    if np.isfinite(top):
        ax.plot([], [], color="0.3", marker="^", linestyle="none", label=f"$R^* > {top:g}$")
    # below the panel: inside it, any corner covers a curve of some E_W E_H
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncols=3, columnspacing=1.0)
    panel_label(ax, f"(a) LPM, learnable CE, K={int(thr0['K'])}")


def _draw_regularised(ax, reg: pd.DataFrame) -> None:
    markers = ["o", "s", "D", "v", "P", "X"]
    if "all_vanished" in reg:  # W = 0 there: no index to draw
        reg = reg[~reg["all_vanished"].astype(bool)]
    lams = sorted(reg["lam"].unique())
    for (loss, lam, _), rows in reg.groupby(["loss", "lam", "majority"]):
        rows = rows.sort_values("ratio")
        ax.plot(rows["ratio"] / rows["ratio_star_formula"], pd.to_numeric(rows["collapse_index"], errors="coerce"),
                color=LOSS_COLORS.get(loss, "k"), marker=markers[lams.index(lam) % len(markers)], markersize=3,
                linewidth=0.8, alpha=0.8)
    for loss in sorted(reg["loss"].unique()):
        ax.plot([], [], color=LOSS_COLORS.get(loss, "k"), label=loss.upper())
    for lam in lams:
        ax.plot([], [], color="0.4", linestyle="none", marker=markers[lams.index(lam) % len(markers)],
                label=f"$\\lambda_W\\lambda_H$ = {lam:g}")
    ax.axvline(1.0, color="0.3", linestyle=":", label=r"$n_B = N^2 \lambda_W \lambda_H$")
    ax.set_xscale("log")
    ax.set_xlabel(r"$R \,/\, R^*_{\mathrm{formula}}$")
    ax.set_ylabel("minority collapse index")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncols=3, columnspacing=1.0)  # off the curves
    majorities = ", ".join(str(int(m)) for m in sorted(reg["majority"].unique()))
    panel_label(ax, f"(b) weight-decay model (theory.md §9), $K_A$ ∈ {{{majorities}}}")
