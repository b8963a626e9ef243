"""Figure 6 of theory.md §10: per-class geometry under a long-tailed profile.

Reads the ``per_class`` long table of a ``solve`` sweep (one row per class
of each cell; :func:`lpm.sweep.tasks.per_class_rows`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.problem import CLASSIFIERS
from .style import BAND_NOTE, LOSS_COLORS, caption, coinciding, figure_legend, line_with_band, panels, style
from .tables import aggregate

ROWS = (
    ("feature_norm", r"feature norm $\|h_k\|$"),
    ("classifier_norm", r"classifier norm $\|w_k\|$"),
    ("feature_max_cos", r"$\max_{j\neq k} \cos(h_k, h_j)$"),
    ("angle_deg", r"angle $\angle(h_k, w_k)$ [deg]"),
)


def plot_long_tailed(table: pd.DataFrame, ax=None):
    """Per-class norms and angles against class index k (n_k decreasing).

    Grid of panels: one column per classifier mode, one row per quantity —
    ‖h_k‖, ‖w_k‖, the largest cosine of the class mean h_k with another
    (1 = merged with a neighbour; −1/(K−1) for an ETF) and the angle between
    h_k and w_k (0 = self-dual); all uncentred (the LPM has no bias).
    Colour: loss; line style: budget form (solid class-average, dashed
    per-sample); mean ± std over seeds.
    """
    t = table
    if "outcome" in t:
        t = t[t["outcome"] == "ok"]
    if t.empty:
        raise ValueError("figure 6 needs per-class rows")
    modes = [c for c in CLASSIFIERS if c in set(t["classifier"])]
    dashes = {"class-average": "-", "per-sample": "--"}
    K = int(t["K"].iloc[0])
    hidden = []
    with style():
        fig, axes = panels(ax, len(ROWS) * len(modes), height=1.75, nrows=len(ROWS), sharex=True, sharey="row")
        grid = [axes[r * len(modes):(r + 1) * len(modes)] for r in range(len(ROWS))]
        for c, mode in enumerate(modes):
            sub = t[t["classifier"] == mode]
            drawn = {}
            for (loss, budget), rows in sub.groupby(["loss", "budget"], sort=False):
                label = f"{loss.upper()}, {budget}"
                medians = []
                for r, (col, _) in enumerate(ROWS):
                    agg = aggregate(rows, "class_index", col)
                    line_with_band(grid[r][c], agg, "class_index", color=LOSS_COLORS.get(loss, "k"),
                                   linestyle=dashes.get(budget, "-."), marker=".", label=label)
                    medians.append(agg["median"].to_numpy(float))
                drawn[label] = np.concatenate(medians)
            hidden += [f"{mode}: " + " = ".join(group) for group in coinciding(drawn, tol=1e-4)]
            grid[0][c].set_title(mode)
            grid[-1][c].set_xlabel("class index k (head → tail)")
            grid[2][c].axhline(-1.0 / (K - 1), color="0.45", linestyle=":", linewidth=1.0)
        for r, (_, label) in enumerate(ROWS):
            grid[r][0].set_ylabel(label)
        figure_legend(fig, axes, ncols=6)
        notes = []
        if hidden:
            notes.append("Curves drawn on top of one another (equal within 1e-4 in every panel): "
                         + "; ".join(hidden) + ".")
            if any(h.startswith("fixed-") for h in hidden):
                notes.append("For fixed classifiers the rows all have norm sqrt(E_W) by construction; DR's optimum "
                             "is sqrt(E_H) m_k under either budget form, as CE's is under the per-sample budget "
                             "(theory.md §5); MSE's optimum lies inside the budget under both forms here, so its "
                             "two curves agree too.")
        if "seed" in t and t.groupby(["classifier", "loss", "budget"])["seed"].nunique().max() > 1:
            notes.append(BAND_NOTE + ".")
        if notes:
            caption(fig, " ".join(notes), width=150)
        row = t.iloc[0]
        fig.suptitle(f"Long-tailed (exp) profile, K={K}, R={row['ratio']:g}, "
                     f"$E_W$={row['E_W']:g}, $E_H$={row['E_H']:g}; dotted: ETF cosine $-1/(K-1)$", fontsize=10)
    return fig

