"""Long-tail remedies in the layer-peeled model (theory.md §14.6–§14.7).

:func:`plot_remedies` reads the ``results`` table of a ``solve`` sweep over R
with one learnable curve per remedy (a loss at its hyperparameters, or CE with
class weights) in each budget form it holds, beside fixed ETF + DR;
:func:`plot_remedy_tuning` reads that of a ``tuning`` sweep. They only draw.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .style import caption, etf_line, figure_legend, log_x_if_wide, panel_label, panels, style
from .tables import ok_rows

RATIO_LABEL = r"imbalance ratio $R = n_A / n_B$"
#: one colour per remedy (the loss, or CE with a weighting)
REMEDY_COLORS = {"ce": "#1f4e9c", "la": "#e7298a", "cdt": "#66a61e", "ldam": "#e6ab02", "vs": "#a6761d",
                 "ce + inverse": "#7570b3", "ce + sqrt": "#1b9e77", "ce + class-balanced": "#d95f02"}
SYMBOLS = {"tau": r"\tau", "gamma": r"\gamma", "margin": "m", "beta": r"\beta"}


def _number(value) -> float | None:
    value = pd.to_numeric(value, errors="coerce")
    return None if pd.isna(value) else float(value)


def remedy_label(row) -> str:
    """``la (τ=1)``, ``ce + class-balanced (β=0.9999)``, ``ce``: the remedy a results row stands for."""
    params = [(k, _number(row.get(k))) for k in ("tau", "gamma", "margin")]
    text = str(row["loss"])
    weights = row.get("class_weights")
    if isinstance(weights, str) and weights not in ("none", ""):
        text += f" + {weights}"
        params.append(("beta", _number(row.get("beta"))))
    shown = [f"${SYMBOLS[k]}$={v:g}" for k, v in params if v is not None]
    return text + (f" ({', '.join(shown)})" if shown else "")


def _key(label: str) -> str:
    return label.split(" (")[0]


def plot_remedies(table: pd.DataFrame, ax=None):
    """Which remedies prevent minority collapse, and from which R they fail.

    One row of panels per budget form of the learnable rows (e.g. class-average,
    weight-decay; a ``max-margin`` form appears as a further row once a grid
    holds it), against R: (a) the mean cosine of the minority classifiers (drawn
    where their norms are not negligible), (b) the norm-aware collapse index
    (1 = ETF, 0 = merged, theory.md §8.6). One curve per remedy; fixed ETF + DR
    (its own per-sample form) is the reference in every row.
    """
    t = ok_rows(table)
    t = t[t["task"] == "solve"] if "task" in t else t
    learnable, fixed = t[t["classifier"] == "learnable"], t[(t["classifier"] == "fixed-etf") & (t["loss"] == "dr")]
    if learnable.empty:
        raise ValueError("the remedies figure needs learnable rows with outcome 'ok'")
    K = int(t["K"].iloc[0])
    settings = list(dict.fromkeys(learnable["budget"]))
    notes: list[str] = []
    with style():
        fig, axes = panels(ax, 2 * len(settings), nrows=len(settings), height=2.9, width=8.0)
        for i, setting in enumerate(settings):
            pair = axes[2 * i: 2 * i + 2]
            rows = learnable[learnable["budget"] == setting].copy()
            rows["remedy"] = [remedy_label(r) for _, r in rows.iterrows()]
            for remedy, curve in rows.groupby("remedy", sort=False):
                weighted = _key(remedy) not in ("ce", "la", "cdt", "ldam", "vs")
                _draw(pair, curve, dict(color=REMEDY_COLORS.get(_key(remedy), "0.3"), label=f"learnable + {remedy}",
                                        linestyle="--" if weighted else "-", marker="s" if weighted else "o",
                                        markersize=2.5 if not weighted else 3.5, linewidth=1.2,
                                        markerfacecolor="none" if weighted else None))
            if len(fixed):
                _draw(pair, fixed, dict(color="k", linestyle=":", linewidth=1.4, label="fixed ETF + dr (per-sample)"))
            etf_line(pair[0], K, label=i == 0)
            pair[0].set_ylim(-0.25, 1.08)
            pair[1].set_ylim(-0.05, 1.1)
            pair[0].set_ylabel("mean minority cosine")
            pair[1].set_ylabel("collapse index")
            if setting == "weight-decay":
                first = rows.iloc[0]
                notes.append(f"weight decay: lambda_W = {_number(first['lambda_W']):g}, "
                             f"lambda_H = {_number(first['lambda_H']):g}, on the absolute counts of the sweep")
            if setting == "max-margin":
                notes.append(_max_margin_note(rows))
            panel_label(pair[0], f"({chr(97 + 2 * i)}) minority classifier cosine, {setting}")
            panel_label(pair[1], f"({chr(98 + 2 * i)}) norm-aware collapse index, {setting}")
            for axis in pair:
                log_x_if_wide(axis, t["ratio"])
                axis.set_xlabel(RATIO_LABEL)
        figure_legend(fig, axes, ncols=3)
        first = learnable.iloc[0]
        budgets = learnable[learnable["budget"].isin(("class-average", "per-sample"))]
        shown = (f", $E_W$={_number(budgets['E_W'].iloc[0]):g}, $E_H$={_number(budgets['E_H'].iloc[0]):g} "
                 f"({budgets['budget'].iloc[0]})" if len(budgets) else "")
        fig.suptitle(f"Long-tail remedies in the layer-peeled model: K={K}, $K_A$={int(first['majority'])}{shown}",
                     fontsize=10)
        caption(fig, "Certified optima (relative gap <= 1e-9). A cosine is drawn only where "
                     "the minority classifiers keep a norm; the collapse index is 0 when they merge or vanish. "
                     "Each loss at its published default (theory.md §14.1); CE + inverse and CE + class-balanced "
                     "nearly coincide at these counts. " + "; ".join(notes))
    return fig


def _max_margin_note(rows: pd.DataFrame) -> str:
    """Which remedies the max-margin row draws on top of CE's SELI curve (equal to 1e-9)."""
    ce = rows[rows["remedy"] == "ce"].set_index("ratio")["classifier_minority_cos"]
    same = []
    for remedy, curve in rows[rows["remedy"] != "ce"].groupby("remedy", sort=False):
        values = pd.to_numeric(curve.set_index("ratio")["classifier_minority_cos"], errors="coerce")
        if len(ce) and np.allclose(values.reindex(ce.index), pd.to_numeric(ce, errors="coerce"), atol=1e-9):
            same.append(_key(remedy))
    text = "max-margin: the closed-form limit as the weight decay vanishes (theory.md §15)"
    return text + (f"; {', '.join(same)} coincide with ce's SELI there (drawn on top of each other)" if same else "")


def _draw(pair, rows: pd.DataFrame, style_kwargs: dict) -> None:
    rows = rows.sort_values("ratio")
    for axis, col in zip(pair, ("classifier_minority_cos", "collapse_index")):
        axis.plot(rows["ratio"], pd.to_numeric(rows[col], errors="coerce"), **style_kwargs)


def plot_remedy_tuning(table: pd.DataFrame, ax=None):
    """For each R, the hyperparameter of ``la`` (τ), ``cdt`` and ``vs`` (γ) that brings the
    learnable classifier closest to the simplex ETF (certified search, theory.md §14.7):
    (a) the value found, with the published default and the neutral value 0 (CE, or for
    ``vs`` logit adjustment alone); (b) its Gram distance to the ETF beside that at 0."""
    t = ok_rows(table)
    t = t[t["task"] == "tuning"] if "task" in t else t
    if t.empty:
        raise ValueError("the remedy-tuning figure needs tuning rows with outcome 'ok'")
    from ..core.losses import DEFAULT_HYPERPARAMETERS

    with style():
        fig, axes = panels(ax, 2, height=3.2, width=8.0)
        for (loss, parameter, budget), rows in t.groupby(["loss", "parameter", "budget"], sort=False):
            rows = rows.sort_values("ratio")
            color = REMEDY_COLORS.get(loss, "0.3")
            dash = "-" if budget == "class-average" else "--"
            name = f"{loss}: ${SYMBOLS.get(parameter, parameter)}$ ({budget})"
            axes[0].plot(rows["ratio"], rows["best"], color=color, linestyle=dash, marker="o", markersize=3,
                         label=name)
            axes[1].plot(rows["ratio"], rows["distance"], color=color, linestyle=dash, marker="o", markersize=3,
                         label=f"{name}, best")
            axes[1].plot(rows["ratio"], rows["neutral_distance"], color=color, linestyle=":", linewidth=1.0,
                         label=f"{loss} at ${SYMBOLS.get(parameter, parameter)}$ = 0 ({budget})")
            default = DEFAULT_HYPERPARAMETERS.get(loss, {}).get(parameter)
            if default is not None:
                axes[0].axhline(default, color=color, linewidth=0.6, alpha=0.5)
        axes[0].axhline(0.0, color="0.4", linewidth=0.8, linestyle=":")
        axes[0].set_ylabel("hyperparameter closest to the ETF")
        axes[1].set_ylabel("Gram distance of $W$ to the ETF")
        axes[1].set_ylim(bottom=0.0)
        panel_label(axes[0], "(a) best value (thin lines: published defaults)")
        panel_label(axes[1], "(b) distance at the best value and at 0")
        for axis in axes:
            log_x_if_wide(axis, t["ratio"])
            axis.set_xlabel(RATIO_LABEL)
        figure_legend(fig, axes, ncols=3)
        first = t.iloc[0]
        fig.suptitle(f"Remedy tuning toward the simplex ETF: K={int(first['K'])}, $K_A$={int(first['majority'])}, "
                     f"$E_W$={float(first['E_W']):g}, $E_H$={float(first['E_H']):g}", fontsize=10)
        worst = float(np.nanmax(pd.to_numeric(t["worst_relative_gap"], errors="coerce")))
        caption(fig, f"Every point of the search is a certified solve (worst relative gap {worst:.1e}); the "
                     "search scans its bounds and refines the best value by bounded Brent minimisation "
                     "(theory.md §14.7). No closed form is known for these finite-budget optima.")
    return fig
