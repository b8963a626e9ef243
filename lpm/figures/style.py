"""One look for every figure: fonts, colours, reference lines, error bands.

Figures are sized for a two-column paper (full width 7 in) and drawn with
constrained layout. Colours encode the same thing everywhere: a
classifier × loss pairing, or a solver.
"""
from __future__ import annotations

import contextlib
import io
import textwrap
from pathlib import Path
from typing import Iterator

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..core.io import write_bytes_atomic

RC = {
    "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 7.5,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "lines.linewidth": 1.6, "lines.markersize": 4,
    "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5, "axes.spines.top": False,
    "axes.spines.right": False, "legend.frameon": False, "savefig.dpi": 200, "figure.dpi": 100,
    "pdf.fonttype": 42, "ps.fonttype": 42, "mathtext.fontset": "dejavusans",
}
FULL_WIDTH, PANEL_HEIGHT = 7.0, 2.6

#: colour per classifier × loss pairing (fig 2, 6) and per solver (fig 1)
PAIR_COLORS = {
    ("learnable", "ce"): "#1f4e9c", ("learnable", "dr"): "#8c2d04", ("learnable", "mse"): "#6a3d9a",
    ("fixed-etf", "ce"): "#33a02c", ("fixed-etf", "dr"): "#e6550d", ("fixed-etf", "mse"): "#b15928",
    ("fixed-random", "ce"): "#1b9e77", ("fixed-random", "dr"): "#d95f02", ("fixed-random", "mse"): "#7570b3",
}
LOSS_COLORS = {"ce": "#1f4e9c", "dr": "#d95f02", "mse": "#6a3d9a"}
SOLVER_STYLE = {
    "convex": dict(color="#222222", linestyle="-", marker=None, label="convex (Gram SDP, certified)"),
    "nuclear": dict(color="#1f78b4", linestyle="--", marker=None, label="nuclear (first-order, certified)"),
    "gradient": dict(color="#e31a1c", linestyle="none", marker="o", label="gradient (torch, per-sample)"),
    "analytic": dict(color="#33a02c", linestyle="-", marker=None, label="analytic"),
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    with matplotlib.rc_context(RC):
        yield


def panels(ax, n: int, width: float = FULL_WIDTH, height: float = PANEL_HEIGHT, nrows: int = 1,
           sharex: bool | str = False, sharey: bool | str = False):
    """(figure, list of n axes): new ones in a row (or grid), or the given ones.

    New figures are plain :class:`matplotlib.figure.Figure` objects (no pyplot
    state, nothing to close): they are saved with :func:`save_figure` or shown
    in a notebook as they are."""
    if ax is not None:
        axes = list(np.atleast_1d(ax).ravel())
        if len(axes) != n:
            raise ValueError(f"this figure draws {n} panels; got {len(axes)} axes")
        return axes[0].figure, axes
    ncols = int(np.ceil(n / nrows))
    fig = Figure(figsize=(width, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=sharex, sharey=sharey, squeeze=False)
    axes = list(axes.ravel())
    for extra in axes[n:]:
        extra.remove()
    return fig, axes[:n]


def etf_line(ax, K: int, label: bool = True) -> None:
    """Horizontal reference at the simplex-ETF cosine −1/(K−1)."""
    ax.axhline(-1.0 / (K - 1), color="0.45", linestyle=":", linewidth=1.0,
               label=f"ETF: $-1/(K-1) = {-1.0 / (K - 1):.3f}$" if label else None)


def panel_label(ax, text: str) -> None:
    ax.set_title(text, loc="left")


def log_x_if_wide(ax, x) -> None:
    """Log x-scale when the values span more than a decade."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x) & (x > 0)]
    if len(x) and x.max() / x.min() > 10:
        ax.set_xscale("log")


#: what :func:`line_with_band` draws, for captions of figures over several seeds
BAND_NOTE = "Line: median over seeds; shaded band: lowest to highest seed"


def line_with_band(ax, agg: pd.DataFrame, x: str, **kwargs) -> None:
    """Median line over seeds, and a band from the lowest to the highest seed where there are
    several (n > 1). Unlike mean ± std, both stay inside the seeds' own values, so they are
    defined on a log axis and one outlying seed widens the band only as far as that seed."""
    label = kwargs.pop("label", None)
    line = ax.plot(agg[x], agg["median"], label=label, **kwargs)[0]
    if (agg["count"] > 1).any():
        ax.fill_between(agg[x], agg["min"], agg["max"], color=line.get_color(), alpha=0.18, linewidth=0)


def coinciding(curves: dict[str, np.ndarray], tol: float = 1e-6) -> list[list[str]]:
    """Groups (two or more labels) of curves that agree within ``tol`` at every point, so that
    one hides the others on the figure; curves of different lengths never coincide."""
    groups: list[list[str]] = []
    for label, values in curves.items():
        v = np.asarray(values, dtype=float)
        for group in groups:
            w = np.asarray(curves[group[0]], dtype=float)
            if w.shape == v.shape and np.allclose(w, v, rtol=0, atol=tol, equal_nan=True):
                group.append(label)
                break
        else:
            groups.append([label])
    return [g for g in groups if len(g) > 1]


#: resolution of every saved PNG (a 7-inch figure is then 1400 px wide)
DPI = 200


def caption(fig, text: str, width: int = 150, under_legend: bool = True) -> None:
    """A caption under the panels, wrapped at ``width`` characters. With a figure legend it
    heads that legend (the layout then keeps both clear of the panels); otherwise (or with
    ``under_legend=False``, for a legend beside the panels) it is the figure's bottom label."""
    wrapped = textwrap.fill(text, width)
    if fig.legends and under_legend:
        legend = fig.legends[0]
        legend.set_title(wrapped, prop={"size": 7.5})
        legend.get_title().set_color("0.2")
        legend.set_alignment("left")
    else:
        fig.supxlabel(wrapped, fontsize=7.5, color="0.2")


def save_figure(fig, stem: Path | str) -> list[Path]:
    """Write ``stem.png`` (at :data:`DPI`) and ``stem.pdf`` atomically; return both paths."""
    stem = Path(stem)
    paths = []
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, bbox_inches="tight", dpi=DPI)
        path = stem.with_suffix(f".{ext}")
        write_bytes_atomic(path, buf.getvalue())
        paths.append(path)
    return paths


def figure_legend(fig, axes, where: str = "lower center", ncols: int = 3) -> None:
    """One legend for the whole figure, outside the panels when the layout
    allows it; duplicate labels across panels appear once."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    seen: dict = {}
    for a in axes:
        for handle, label in zip(*a.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    outside = isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine)
    fig.legend(list(seen.values()), list(seen), loc=("outside " + where) if outside else where,
               ncols=min(ncols, max(len(seen), 1)))
