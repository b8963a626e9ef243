"""Figure 7 of theory.md §10: deep runs drawn over the layer-peeled prediction.

Every function only draws numbers computed by :mod:`lpm.compare` (nothing
here solves or trains):

* :func:`plot_cosine_matrices` — class-mean and classifier cosine matrices of
  a run beside the LPM optimum's, one shared colour scale [−1, 1], undefined
  cosines (vectors of ~zero norm) left blank;
* :func:`plot_group_history` — group cosines and relative norms over epochs,
  the LPM's values as horizontal reference lines;
* :func:`plot_collapse_vs_ratio` — collapse index and minority cosine of the
  runs against R over the LPM curve for their profile;
* :func:`plot_distances` — each run's Gram distance to the LPM and to the ETF.
"""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .style import FULL_WIDTH, PAIR_COLORS, caption, etf_line, log_x_if_wide, panel_label, panels, style

_MATRICES = (("run_means", "run: class means"), ("lpm_means", "LPM: class means"),
             ("run_classifier", "run: classifier"), ("lpm_classifier", "LPM: classifier"))
_GROUP_COLORS = {"majority": "#1f4e9c", "minority": "#d95f02", "cross": "#666666", "head": "#1f4e9c",
                 "medium": "#33a02c", "tail": "#d95f02", "many": "#1f4e9c", "few": "#d95f02"}
RATIO_LABEL = r"imbalance ratio $R = n_{\max}/n_{\min}$"


def plot_cosine_matrices(matrices: dict[str, np.ndarray], title: str = "", ax=None):
    """2×2 heatmaps (rows: class means, classifier; columns: run, LPM) of K×K cosine
    matrices from :meth:`lpm.compare.RunComparison.cosine_matrices`; NaN cells are blank.
    ``ax``: four axes to draw into (the colour bar then goes beside them)."""
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="white")
    with style():
        if ax is None:  # a fixed layout: constrained layout costs seconds per save for this figure
            fig = Figure(figsize=(0.75 * FULL_WIDTH, 5.0))
            grid = fig.subplots(2, 2)
            fig.subplots_adjust(left=0.08, right=0.82, bottom=0.08, top=0.86, wspace=0.35, hspace=0.45)
            axes = list(grid.ravel())
        else:
            fig, axes = panels(ax, 4)
        for axis, (key, label) in zip(axes, _MATRICES):
            C = np.asarray(matrices[key], dtype=float)
            image = axis.imshow(np.ma.masked_invalid(C), cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest")
            axis.grid(False)
            axis.set_title(label)
            ticks = np.arange(C.shape[0])
            axis.set_xticks(ticks if len(ticks) <= 20 else ticks[::max(1, len(ticks) // 10)])
            axis.set_yticks(axis.get_xticks())
            axis.set_xlabel("class")
            axis.set_ylabel("class")
        fig.colorbar(image, ax=axes, shrink=0.8, label="cosine (blank: undefined, norm ~ 0)")
        if title:
            fig.suptitle(title, fontsize=9)
    return fig


def plot_group_history(history: pd.DataFrame, reference: pd.DataFrame, ax=None):
    """Four panels over epochs — classifier / feature within-group cosines, classifier /
    feature group norms relative to the mean over all classes — one colour per group; the
    LPM's values are dashed horizontal lines of the same colour. Tables from
    :func:`lpm.compare.group_history`."""
    layout = (("classifier", "cos", "classifier cosine within group"), ("feature", "cos", "class-mean cosine within group"),
              ("classifier", "norm", "classifier norm / mean norm"), ("feature", "norm", "class-mean norm / mean norm"))
    with style():
        fig, axes = panels(ax, 4, nrows=2, height=2.3)
        for axis, (part, quantity, label) in zip(axes, layout):
            rows = history[(history["part"] == part) & (history["quantity"] == quantity)]
            refs = reference[(reference["part"] == part) & (reference["quantity"] == quantity)]
            for group, g in rows.groupby("group", sort=False):
                color = _GROUP_COLORS.get(group)
                line = axis.plot(g["epoch"], pd.to_numeric(g["value"]), marker=".", color=color, label=group)[0]
                ref = pd.to_numeric(refs.loc[refs["group"] == group, "value"]).dropna()
                if len(ref):
                    axis.axhline(float(ref.iloc[0]), color=line.get_color(), linestyle="--", linewidth=1.0)
            axis.set_xlabel("epoch")
            axis.set_ylabel(label)
            panel_label(axis, label)
        axes[0].plot([], [], color="0.3", linestyle="--", label="LPM optimum")
        axes[0].legend(loc="best")
        run = history["run"].iloc[0] if len(history) else (reference["run"].iloc[0] if len(reference) else "")
        fig.suptitle(f"{run}: group geometry over epochs (dashed: LPM prediction)", fontsize=10)
    return fig


def _pair_color(head: str, loss: str) -> str:
    return PAIR_COLORS.get((head, loss), "#444444")


def _curve_parameters(curve: pd.DataFrame, regularised: bool) -> str:
    """The curve's budgets, or its weight-decay coefficients for the regularised model."""
    if regularised:
        lw, lh = (float(pd.to_numeric(curve[c]).iloc[0]) for c in ("lambda_W", "lambda_H"))
        return f"weight decay $\\lambda_W$={lw:.2g}, $\\lambda_H$={lh:.2g}"
    return f"$E_W$={curve['E_W'].iloc[0]:.3g}, $E_H$={curve['E_H'].iloc[0]:.3g}"


def plot_collapse_vs_ratio(table: pd.DataFrame, ax=None):
    """Collapse index and minority classifier cosine against R: LPM curves (lines, one per
    head × loss family), the runs (small filled squares, drawn on top) and the LPM at each run's
    own budgets or weight-decay coefficients (large rings): a run on its LPM point sits inside its
    ring. Table from :func:`lpm.compare.collapse_table`."""
    columns = (("collapse_index", "collapse index (1 = ETF, 0 = merged)", "(a) norm-aware collapse index"),
               ("classifier_minority_cos", "mean minority classifier cosine", "(b) minority classifier cosine"))
    t = table.copy()
    t["ratio"] = pd.to_numeric(t["ratio"], errors="coerce")
    with style():
        fig, axes = panels(ax, 2, height=3.6)
        if "reference" not in t:  # tables written before the reference column
            t["reference"] = t["loss"]
        for (head, loss, reference), fam in t.groupby(["head", "loss", "reference"], sort=False):
            color = _pair_color(head, loss)
            name = f"{head} + {loss.upper()}" + ("" if reference == loss else f" (LPM reference {reference})")
            curve, deep, own = (fam[fam["source"] == s].sort_values("ratio") for s in ("lpm", "deep", "lpm-run"))
            regularised = "lambda_W" in fam and pd.to_numeric(fam["lambda_W"], errors="coerce").notna().any()
            for axis, (col, _, _) in zip(axes, columns):
                if len(curve):
                    axis.plot(curve["ratio"], pd.to_numeric(curve[col]), color=color,
                              label=f"LPM, {name} ({_curve_parameters(curve, regularised)})")
                axis.plot(own["ratio"], pd.to_numeric(own[col]), linestyle="none", marker="o", markerfacecolor="none",
                          color=color, markersize=10, markeredgewidth=1.5,
                          label=f"LPM at each run's {'coefficients' if regularised else 'budgets'}, {name}")
                # small squares drawn above the rings, so a run that sits on its LPM point shows inside it
                axis.plot(deep["ratio"], pd.to_numeric(deep[col]), linestyle="none", marker="s", markersize=4.5,
                          color=color, zorder=4, label=f"deep runs, {name}")
        K = int(t["K"].iloc[0]) if len(t) else 2
        etf_line(axes[1], K)
        for axis, (_, ylabel, title) in zip(axes, columns):
            log_x_if_wide(axis, t["ratio"])
            axis.set_xlabel(RATIO_LABEL)
            axis.set_ylabel(ylabel)
            panel_label(axis, title)
        found = {}
        for axis in axes:
            for handle, label in zip(*axis.get_legend_handles_labels()):
                found.setdefault(label, handle)
        fig.legend(list(found.values()), list(found), loc="outside lower center", ncol=2, fontsize=7)
        notes = _collapse_notes(t, K)
        if notes:
            caption(fig, " ".join(notes), width=140)
        fig.suptitle("Deep runs over the layer-peeled prediction for the same class counts", fontsize=10)
    return fig


def _collapse_notes(t: pd.DataFrame, K: int) -> list[str]:
    """What the figure cannot show by itself: ratios without a minority (no point) and indices above 1."""
    notes = []
    index = pd.to_numeric(t["collapse_index"], errors="coerce")
    runs = t["source"].isin(["deep", "lpm-run"])
    undefined = sorted(set(t.loc[runs & index.isna(), "ratio"].dropna()) - set(t.loc[runs & index.notna(), "ratio"]))
    if undefined:
        notes.append(f"R = {', '.join(f'{r:g}' for r in undefined)}: no point, because no class falls in the "
                     "minority there (at R = 1 every class has the same count), so the minority index and cosine "
                     "are undefined.")
    above = t[runs & (index > 1)]
    if len(above):
        top = above.loc[pd.to_numeric(above["collapse_index"]).idxmax()]
        notes.append(f"An index above 1 (up to {float(top['collapse_index']):.3f}, {top['head']} + "
                     f"{str(top['loss']).upper()} at R = {float(top['ratio']):g}) is not an error: the minority rows "
                     f"are further apart, relative to the mean row norm, than the rows of an equal-norm simplex ETF "
                     f"(e.g. a minority cosine below -1/(K-1) = {-1 / (K - 1):.3f}; theory.md §8.6).")
    return notes


def plot_distances(distances: pd.DataFrame, ax=None):
    """Per run, the joint/means/classifier Gram distances (0 = same up to rotation and scale)
    to the LPM optimum and to the simplex ETF. Table: ``distances.csv`` of ``lpm compare``."""
    parts = (("joint", "(a) joint"), ("means", "(b) class means"), ("classifier", "(c) classifier"))
    names = distances["run"].astype(str).tolist()
    y = np.arange(len(names))
    with style():
        fig, axes = panels(ax, 3, height=max(2.0, 0.28 * len(names) + 1.0))
        for axis, (part, title) in zip(axes, parts):
            axis.barh(y - 0.2, distances[f"dist_lpm_{part}"], height=0.4, color="#1f4e9c", label="to LPM optimum")
            axis.barh(y + 0.2, distances[f"dist_etf_{part}"], height=0.4, color="#bbbbbb", label="to simplex ETF")
            axis.set_yticks(y)
            axis.set_yticklabels(names if axis is axes[0] else [])
            axis.invert_yaxis()
            axis.set_xlabel(r"Gram distance (0 … $\sqrt{2}$)")
            panel_label(axis, title)
        axes[0].legend(loc="best")
    return fig
