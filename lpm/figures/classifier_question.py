"""The figure of ``lpm reproduce classifier-question`` (docs/classifier-question.md).

:func:`plot_classifier_question` draws ``summary.csv`` of
:mod:`lpm.compare.classifier_question` (nothing here trains or tests): one
row of panels per (data set, ratio), and in each row

(a) balanced accuracy, (b) few-shot accuracy, (c) ECE (Δ = arm − baseline): every arm's paired
    difference from the baseline arm over seeds, with its 95 % t interval,
    one marker per recipe; a filled marker is significant after the
    multiple-comparison correction (adjusted p < 0.05), a hollow one is not;
(d) the measured minority classifier cosine of each arm (squares, with its
    interval over seeds) beside its own LPM optimum's (rings); the dashed line
    is the simplex ETF's −1/(K−1).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .style import FULL_WIDTH, style

_RECIPE_STYLE = {"paper": ("#1f4e9c", "o", -0.15), "terminal": ("#d95f02", "D", 0.15)}
_DIFF_PANELS = (("balanced", "Δ balanced acc."), ("few", "Δ few-shot acc."), ("ece", "Δ ECE"))
ALPHA = 0.05


def plot_classifier_question(summary: pd.DataFrame, K: int = 10, ax=None):
    """Paired differences from the baseline (three metrics) and minority geometry vs the LPM,
    one row per (data set, ratio). ``summary``: summary.csv of the classifier-question runner."""
    from matplotlib.figure import Figure

    t = summary.copy()
    settings = t[["dataset", "ratio"]].drop_duplicates().sort_values(["dataset", "ratio"]).to_numpy().tolist()
    arms = list(dict.fromkeys(t["arm"]))
    baseline = t.loc[t["balanced_diff"].isna(), "arm"]
    base = baseline.iloc[0] if len(baseline) else ""
    y = {arm: i for i, arm in enumerate(arms)}
    with style():
        fig = Figure(figsize=(FULL_WIDTH, 1.2 + 0.32 * len(arms) * len(settings)), layout="constrained")
        grid = np.atleast_2d(fig.subplots(len(settings), 4, sharey=True, squeeze=False))
        for r, (dataset, ratio) in enumerate(settings):
            rows = t[(t["dataset"] == dataset) & (t["ratio"] == ratio)]
            for c, (metric, label) in enumerate(_DIFF_PANELS):
                axis = grid[r, c]
                axis.axvline(0.0, color="0.5", linewidth=0.8)
                for recipe, g in rows.groupby("recipe", sort=False):
                    color, marker, shift = _RECIPE_STYLE.get(recipe, ("#444444", "s", 0.0))
                    g = g[g[f"{metric}_diff"].notna()]
                    pos = np.array([y[a] for a in g["arm"]]) + shift
                    d = g[f"{metric}_diff"].to_numpy(float)
                    err = np.vstack([d - g[f"{metric}_diff_low"].to_numpy(float),
                                     g[f"{metric}_diff_high"].to_numpy(float) - d])
                    axis.errorbar(d, pos, xerr=np.nan_to_num(err), fmt="none", ecolor=color, elinewidth=1.0)
                    significant = g[f"{metric}_p_adj"].to_numpy(float) < ALPHA
                    axis.plot(d[significant], pos[significant], linestyle="none", marker=marker, color=color,
                              label=f"{recipe} recipe (filled: adjusted p < {ALPHA:g})")
                    axis.plot(d[~significant], pos[~significant], linestyle="none", marker=marker, color=color,
                              markerfacecolor="white")
                axis.set_xlabel(f"({'abc'[c]}) {label}")
            axis = grid[r, 3]
            for recipe, g in rows.groupby("recipe", sort=False):
                color, marker, shift = _RECIPE_STYLE.get(recipe, ("#444444", "s", 0.0))
                pos = np.array([y[a] for a in g["arm"]]) + shift
                m = g["run_classifier_minority_cos"].to_numpy(float)
                err = np.vstack([m - g["run_classifier_minority_cos_low"].to_numpy(float),
                                 g["run_classifier_minority_cos_high"].to_numpy(float) - m])
                axis.errorbar(m, pos, xerr=np.nan_to_num(err), fmt="s", color=color, markersize=4,
                              label=f"measured, {recipe}")
                axis.plot(g["lpm_classifier_minority_cos"].to_numpy(float), pos, linestyle="none", marker="o",
                          markerfacecolor="none", markersize=9, color=color, label=f"LPM optimum, {recipe}")
            axis.axvline(-1.0 / (K - 1), color="0.4", linestyle="--", linewidth=0.8, label="simplex ETF")
            axis.set_xlabel("(d) minority classifier cosine")
            grid[r, 0].set_ylabel(f"{dataset}, R = {ratio:g}")
        for axis in grid[:, 0]:
            axis.set_yticks(range(len(arms)))
            axis.set_yticklabels(arms)
            axis.set_ylim(len(arms) - 0.5, -0.5)
        found: dict = {}
        for axis in (grid[0, 0], grid[0, 3]):
            for handle, label in zip(*axis.get_legend_handles_labels()):
                found.setdefault(label, handle)
        fig.legend(list(found.values()), list(found), loc="outside lower center", ncol=3, fontsize=7)
        fig.suptitle(f"Each arm against {base} (paired over seeds, 95 % t intervals, Holm-adjusted tests), and "
                     "its minority geometry beside its LPM optimum", fontsize=9)
    return fig
