"""Figures 3–4 of theory.md §10: optimisation dynamics.

Both read the ``trajectory`` long table of a ``solve`` sweep run with the
``gradient`` back end (one row per recorded iteration;
:func:`lpm.sweep.tasks.trajectory_rows`).
"""
from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pandas as pd

from .style import BAND_NOTE, LOSS_COLORS, caption, coinciding, figure_legend, line_with_band, panels, style
from .tables import aggregate

RATIO_STYLES = ("-", "--", ":", "-.")
VARIANT_COLORS = {"CE": LOSS_COLORS["ce"], "DR (paper, §5)": LOSS_COLORS["dr"], "DR (released, §6.1)": "#8c2d04"}
#: floor for log-scale curves that reach exact zero
FLOOR = 1e-16


def variant_label(loss: str, dr_variant) -> str:
    if loss != "dr":
        return loss.upper()
    return "DR (released, §6.1)" if dr_variant == "released" else "DR (paper, §5)"


def convergence_curves(trajectory: pd.DataFrame) -> pd.DataFrame:
    """Fixed-classifier rows with a ``variant`` label, the suboptimality
    normalised by its first recorded value, and the angle in degrees."""
    t = trajectory[trajectory["classifier"] != "learnable"].copy()
    variants = t["setting_dr_variant"] if "setting_dr_variant" in t else pd.Series(None, index=t.index)
    t["variant"] = [variant_label(loss, v) for loss, v in zip(t["loss"], variants)]
    first = t.sort_values("iteration").groupby("cell_id")["suboptimality"].transform("first")
    t["relative_suboptimality"] = np.maximum(t["suboptimality"] / first, FLOOR)
    t["angle_deg"] = np.maximum(np.degrees(t["angle"]), 1e-8)
    return t


def plot_convergence(table: pd.DataFrame, ax=None):
    """Figure 3 [Y22 §5]: CE vs DR with a fixed simplex-ETF classifier.

    Columns: budget form. Rows: (f_t − f*)/(f_0 − f*) (f* the closed-form
    optimum) and the largest angle between a class-mean feature and its
    optimal direction √E_H m_k, in degrees, both on log scales, against the
    gradient iteration. Colour: loss (and DR form); line style: R; mean ± std
    over seeds.

    What it shows (checked in tests/figures/test_sims_claims.py): with exact
    gradient steps on the layer-peeled model, CE reaches the optimal
    directions within tens of iterations and DR does not, in either form.
    DR's gradient −(√(E_W E_H) − w_yᵀh) w_y only moves h along w_y; the
    orthogonal error is removed by the ball projection alone, and the loss
    grows only like the fourth power of the angle near the optimum, so the
    decay is sublinear. [Y22]'s argument for faster DR convergence is not
    borne out in this model.
    """
    t = convergence_curves(table)
    if t.empty:
        raise ValueError("figure 3 needs fixed-classifier trajectories")
    budgets = [b for b in ("per-sample", "class-average") if b in set(t["budget"])]
    ratios = sorted(t["ratio"].unique())
    with style():
        fig, axes = panels(ax, 2 * len(budgets), nrows=2, height=2.4, sharex=True)
        hidden = []
        for c, budget in enumerate(budgets):
            sub = t[t["budget"] == budget]
            medians: dict[str, dict[str, np.ndarray]] = {"relative_suboptimality": {}, "angle_deg": {}}
            for (variant, ratio), rows in sub.groupby(["variant", "ratio"], sort=False):
                st = dict(color=VARIANT_COLORS.get(variant, "k"),
                          linestyle=RATIO_STYLES[ratios.index(ratio) % len(RATIO_STYLES)],
                          label=f"{variant}, R={ratio:g}", linewidth=1.3)
                for r, col in enumerate(("relative_suboptimality", "angle_deg")):
                    agg = aggregate(rows, "iteration", col)
                    line_with_band(axes[r * len(budgets) + c], agg, "iteration", **st)
                    medians[col][st["label"]] = np.log10(agg["median"].to_numpy(float))
            if budget != "per-sample":  # the per-sample coincidences are stated with their theory below
                for col, name in (("relative_suboptimality", "suboptimality"), ("angle_deg", "angle")):
                    hidden += [f"{budget} {name}: " + " = ".join(g) for g in coinciding(medians[col], tol=0.05)]
            axes[c].set_title(f"{budget} feature budget")
            axes[len(budgets) + c].set_xlabel("gradient iteration")
        for a in axes:
            a.set_yscale("log")
        axes[0].set_ylabel(r"$(f_t - f^*) / (f_0 - f^*)$")
        axes[len(budgets)].set_ylabel(r"max angle to optimum [deg]")
        figure_legend(fig, axes[-1:], where="right center", ncols=1)
        seeds = int(t.groupby(["variant", "ratio", "budget"])["seed"].nunique().max()) if "seed" in t else 1
        notes = [f"{BAND_NOTE} ({seeds} seeds)." if seeds > 1 else "One seed per curve."]
        if "per-sample" in budgets:
            notes.append("Per-sample budget: the curves for every R coincide for each loss, and DR (released) "
                         "coincides with DR (paper) - by theory: the problem splits into one problem per sample, "
                         "the counts only weighting them (theory.md §5), and the two DR forms have equal gradients "
                         "on the sphere (theory.md §6.1).")
        if hidden:
            notes.append("Curves on one another (within 0.05 decades at every iteration): " + "; ".join(hidden)
                         + ".")
        notes.append(f"Values are floored at {FLOOR:.0e} (suboptimality) and 1e-8 deg (angle) for the log axes.")
        caption(fig, " ".join(notes), width=120, under_legend=False)
        row = t.iloc[0]
        fig.suptitle(f"Fixed ETF: CE vs DR convergence, K={int(row['K'])}, $K_A$={int(row['majority'])}, "
                     f"$E_W$={row['E_W']:g}, $E_H$={row['E_H']:g}", fontsize=10)
    return fig


def plot_gradient_decomposition(table: pd.DataFrame, ax=None):
    """Figure 4 [F21 §4.4]: pull and push on the minority classifiers.

    For CE, ∇_{w_k} f = Σ_samples (p_k(h) − δ_{ky}) h / N splits into the
    pull of class k's own samples and the push of all other samples.
    Panels against the iteration, one colour per R: (a) mean ‖pull‖ and
    (b) mean ‖push‖ over minority rows k ≥ K_A, (c) their ratio push/pull.
    """
    t = table[(table["classifier"] == "learnable") & (table["loss"] == "ce")].copy()
    if t.empty or "push_norm" not in t:
        raise ValueError("figure 4 needs learnable-ce trajectories recorded with record_gradients=True")
    t["push_over_pull"] = t["push_norm"] / np.maximum(t["pull_norm"], 1e-300)
    ratios = sorted(t["ratio"].unique())
    cmap = mpl.colormaps["plasma"]
    with style():
        fig, axes = panels(ax, 3)
        for ratio, rows in t.groupby("ratio"):
            color = cmap(0.85 * ratios.index(ratio) / max(len(ratios) - 1, 1))
            for a, col in zip(axes, ("pull_norm", "push_norm", "push_over_pull")):
                agg = aggregate(rows, "iteration", col)
                agg[["median", "min", "max"]] = np.maximum(agg[["median", "min", "max"]], FLOOR)
                line_with_band(a, agg, "iteration", color=color, label=f"R = {ratio:g}")
        titles = ("(a) pull: own samples", "(b) push: other samples", "(c) push / pull")
        ylabels = (r"mean $\|\mathrm{pull}_k\|$, minority k", r"mean $\|\mathrm{push}_k\|$, minority k",
                   "push / pull")
        for a, title, ylabel in zip(axes, titles, ylabels):
            a.set_yscale("log")
            a.set_title(title, loc="left")
            a.set_xlabel("gradient iteration")
            a.set_ylabel(ylabel)
        axes[2].axhline(1.0, color="0.45", linestyle=":", linewidth=1.0, label="push = pull")
        figure_legend(fig, axes, ncols=5)  # below the panels: no legend over the curves
        seeds = int(t.groupby("ratio")["seed"].nunique().max()) if "seed" in t else 1
        if seeds > 1:
            caption(fig, f"{BAND_NOTE} ({seeds} seeds).")
        row = t.iloc[0]
        fig.suptitle(f"Gradient on minority classifiers, learnable CE, K={int(row['K'])}, "
                     f"$K_A$={int(row['majority'])}, $E_W$={row['E_W']:g}, $E_H$={row['E_H']:g}", fontsize=10)
    return fig
