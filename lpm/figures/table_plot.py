"""Any sweep table as a figure: ``lpm plot`` and its Python API.

:func:`plot_table` draws one column against another from a tidy table (the
``results``, ``trajectory`` or ``per_class`` table of ``lpm sweep``, or any
CSV with one row per observation), in the project's figure style: one line
per ``hue`` value, one panel per ``facet`` value, the median over the rows
that share x (seeds, for a sweep) with a band from the lowest to the highest
of them. :func:`plot_sweep` reads a sweep folder or a CSV file, draws, and
writes PNG and PDF.

Rows are never pooled silently: when a setting column (classifier, loss,
solver, budget, K, …) takes several values that are not on the x axis, the
hue or the facets, the call is refused with the columns named, so that a
figure never averages over different settings without saying so. ``where``
keeps the rows whose columns equal given values.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.errors import LPMInputError
from .style import caption, coinciding, figure_legend, line_with_band, panels, save_figure, style
from .tables import aggregate, ok_rows

#: columns that name a setting: rows with several values of one of them at the same (facet, hue, x) are not
#: pooled into one point (``counts`` is left out: it follows from the ratio and profile)
SETTING_COLUMNS = ("task", "grid", "K", "profile", "ratio", "majority", "classifier", "loss", "budget", "E_W", "E_H",
                   "ewh", "d", "solver", "lambda_W", "lambda_H", "setting_dr_variant", "head", "dataset",
                   "dr_form", "form", "lr", "threshold")
TABLES = ("results", "trajectory", "per_class")
#: hue values beyond which a legend stops being readable
MAX_HUES = 12


def _check_column(table: pd.DataFrame, option: str, column: str | None, source: str) -> None:
    if column is not None and column not in table.columns:
        raise LPMInputError(option, column, f"a column of {source}: " + ", ".join(map(str, table.columns)))


def _where(table: pd.DataFrame, where: Mapping[str, object], source: str) -> pd.DataFrame:
    for column, value in where.items():
        _check_column(table, "where", column, source)
        col = table[column]
        numeric = pd.to_numeric(col, errors="coerce")
        try:
            wanted = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            wanted = None
        if wanted is not None and numeric.notna().any():
            mask = np.isclose(numeric.to_numpy(float), wanted, rtol=1e-12, atol=0)
        else:
            mask = col.astype(str) == str(value)
        if not mask.any():
            values = ", ".join(map(str, sorted(col.dropna().astype(str).unique())[:20]))
            raise LPMInputError("where", f"{column}={value}", f"a value that {column} takes in {source}: {values}")
        table = table[mask]
    return table


def plot_table(table: pd.DataFrame, x: str, y: str, hue: str | None = None, facet: str | None = None,
               logx: bool = False, logy: bool = False, where: Mapping[str, object] | None = None,
               title: str | None = None, source: str = "the table", ax=None):
    """Draw column ``y`` against column ``x`` of ``table``; return the Figure.

    One line per value of ``hue`` and one panel per value of ``facet``; rows that share
    (facet, hue, x), e.g. seeds, become a median line with a lowest-to-highest band.
    ``where`` keeps rows whose columns equal the given values. Errors name the column or
    the value: an unknown column, a y with no numbers, setting columns that vary but are
    not drawn (pass them as ``hue``/``facet`` or fix them with ``where``), non-positive
    values only on a log axis."""
    for option, column in (("x", x), ("y", y), ("hue", hue), ("facet", facet)):
        _check_column(table, option, column, source)
    t = ok_rows(table)
    t = _where(t, dict(where or {}), source)
    t = t.assign(**{y: pd.to_numeric(t[y], errors="coerce")}).dropna(subset=[y, x])
    if t.empty:
        raise LPMInputError("y", y, f"a column with numbers in the rows drawn from {source}")
    drawn = list(dict.fromkeys(c for c in (facet, hue, x) if c is not None))
    groups = t.groupby(drawn, dropna=False)
    mixed = [c for c in SETTING_COLUMNS if c in t and c not in drawn and groups[c].nunique(dropna=True).max() > 1]
    if mixed:
        detail = "; ".join(f"{c} takes {', '.join(map(str, sorted(t[c].dropna().astype(str).unique())[:6]))}"
                           for c in mixed)
        raise LPMInputError("hue", hue, f"a column that separates the settings the rows mix ({detail}): give them "
                                        f"as --hue or --facet, or keep one with --where {mixed[0]}=VALUE")
    dropped = 0
    for flag, column in ((logx, x), (logy, y)):
        if flag:
            values = pd.to_numeric(t[column], errors="coerce")
            keep = values > 0
            dropped += int((~keep).sum())
            t = t[keep]
    if t.empty:
        raise LPMInputError("logy" if logy else "logx", True, f"used only where the values are > 0 (no row of "
                                                             f"{source} has one)")
    facets = sorted(t[facet].dropna().unique(), key=_order) if facet else [None]
    hues = sorted(t[hue].dropna().unique(), key=_order) if hue else [None]
    if len(hues) > MAX_HUES:
        raise LPMInputError("hue", hue, f"a column with at most {MAX_HUES} values (it has {len(hues)}); use "
                                        "--facet or --where for the others")
    import matplotlib as mpl

    colors = mpl.colormaps["tab10" if len(hues) <= 10 else "tab20"]
    with style():
        fig, axes = panels(ax, len(facets), width=min(7.0, 3.2 * len(facets) + 0.6), height=2.8,
                           sharey=len(facets) > 1)
        most, hidden = 1, []
        span = float(t[y].max() - t[y].min()) or 1.0
        for axis, value in zip(axes, facets):
            sub = t if facet is None else t[t[facet] == value]
            lines = {}
            for i, h in enumerate(hues):
                rows = sub if hue is None else sub[sub[hue] == h]
                if rows.empty:
                    continue
                agg = aggregate(rows, x, y)
                most = max(most, int(agg["count"].max()))
                label = None if hue is None else f"{hue} = {_fmt(h)}"
                # earlier lines wider, so that lines lying on one another all show
                width = 2.6 - 1.6 * i / max(len(hues) - 1, 1)
                line_with_band(axis, agg, x, color=colors(i % colors.N), marker="o" if len(agg) < 30 else None,
                               markersize=3, linewidth=width, label=label)
                lines.setdefault(tuple(agg[x]), {})[label] = agg["median"].to_numpy(float)
            where_ = "" if facet is None else f" ({facet} = {_fmt(value)})"
            for same_x in lines.values():  # only lines over the same x values can coincide
                hidden += [" and ".join(g) + where_ for g in coinciding(same_x, tol=1e-3 * span)]
            if logx:
                axis.set_xscale("log")
            if logy:
                axis.set_yscale("log")
            axis.set_xlabel(x)
            if facet is not None:
                axis.set_title(f"{facet} = {_fmt(value)}", loc="left")
        axes[0].set_ylabel(y)
        if hue is not None:
            figure_legend(fig, axes, ncols=min(len(hues), 4))
        notes = []
        if most > 1:
            notes.append(f"Line: median of the rows at each x (up to {most}, e.g. seeds); band: lowest to highest.")
        if hidden:
            notes.append("Lines on top of one another (within 0.1 % of the y range): " + "; ".join(hidden) + ".")
        if dropped:
            notes.append(f"{dropped} rows with values <= 0 left out for the log axis.")
        if where:
            notes.append("Rows with " + ", ".join(f"{k} = {v}" for k, v in where.items()) + ".")
        if notes:
            caption(fig, " ".join(notes), width=110)
        if title:
            fig.suptitle(title, fontsize=10)
    return fig


def read_sweep_table(path: Path | str, table: str = "results") -> tuple[pd.DataFrame, str]:
    """(the table, a name for messages) from a sweep folder (its ``TABLE.csv``) or a CSV file."""
    path = Path(path)
    if path.is_dir():
        if table not in TABLES:
            raise LPMInputError("table", table, "one of " + ", ".join(repr(t) for t in TABLES))
        path = path / f"{table}.csv"
    if not path.is_file():
        raise LPMInputError("results", str(path), "a sweep folder holding results.csv (lpm sweep -o FOLDER) or a "
                                                  "CSV file")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LPMInputError("results", str(path), f"a readable CSV table ({type(exc).__name__})") from None
    return frame, path.name


def plot_sweep(results: Path | str, x: str, y: str, *, hue: str | None = None, facet: str | None = None,
               logx: bool = False, logy: bool = False, where: Mapping[str, object] | None = None,
               table: str = "results", out: Path | str | None = None, title: str | None = None) -> list[Path]:
    """Read a sweep folder (or CSV file), draw ``y`` against ``x`` and write ``OUT.png`` and
    ``OUT.pdf``; return both paths. ``out`` defaults to ``<folder>/plot_<y>_vs_<x>`` beside the
    table."""
    frame, name = read_sweep_table(results, table)
    fig = plot_table(frame, x, y, hue=hue, facet=facet, logx=logx, logy=logy, where=where, title=title,
                     source=name)
    base = Path(results) if Path(results).is_dir() else Path(results).parent
    stem = Path(out) if out is not None else base / f"plot_{y}_vs_{x}"
    if stem.suffix.lower() in (".png", ".pdf"):
        stem = stem.with_suffix("")
    return save_figure(fig, stem)


def parse_where(items: Sequence[str] | None) -> dict[str, str]:
    """['loss=ce', 'K=10'] → {'loss': 'ce', 'K': '10'}."""
    out: dict[str, str] = {}
    for item in items or ():
        column, sep, value = item.partition("=")
        if not sep or not column.strip():
            raise LPMInputError("where", item, "COLUMN=VALUE, e.g. loss=ce")
        out[column.strip()] = value.strip()
    return out


def _order(value):
    return (0, float(value), "") if isinstance(value, (int, float, np.number)) else (1, 0.0, str(value))


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)
