"""``lpm plot``: draw any sweep table, one column against another.

Thin: options → :func:`lpm.figures.table_plot.plot_sweep`.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import user_errors


def plot_command(
    results: Path = typer.Argument(..., metavar="results", help="A sweep folder (lpm sweep -o FOLDER) or a CSV file."),
    x: str = typer.Option(..., "--x", help="Column on the x axis, e.g. ratio."),
    y: str = typer.Option(..., "--y", help="Column on the y axis, e.g. classifier_minority_cos."),
    hue: Optional[str] = typer.Option(None, "--hue", help="One line per value of this column, e.g. solver."),
    facet: Optional[str] = typer.Option(None, "--facet", help="One panel per value of this column, e.g. budget."),
    logx: bool = typer.Option(False, "--logx", help="Log scale on x."),
    logy: bool = typer.Option(False, "--logy", help="Log scale on y."),
    where: Optional[List[str]] = typer.Option(None, "--where", metavar="<column=value>",
                                              help="Keep only the rows where the column has this value "
                                                   "(repeat for several)."),
    table: str = typer.Option("results", "--table", help="Which table of a sweep folder: results, trajectory or "
                                                        "per_class."),
    title: Optional[str] = typer.Option(None, "--title", help="Figure title."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="<file stem>",
                                       help="Output, written as .png and .pdf (default: plot_<y>_vs_<x> beside "
                                            "the table)."),
):
    """Draw a column of a sweep table against another, as PNG and PDF.

    Rows sharing x (seeds) become a median line with a band from the lowest to
    the highest. A setting column (solver, loss, K, ...) with several values
    must be drawn (--hue, --facet) or fixed (--where).

    \b
    Examples:
      lpm sweep --ratio-range 1:1e4:21 --solver nuclear,gradient -o out/sw
      lpm plot out/sw --x ratio --y classifier_minority_cos --hue solver \\
        --logx
      lpm plot out/sw --table trajectory --x iteration --y objective \\
        --hue ratio --where solver=gradient --logy
    """
    from ..core.io import check_output_path
    from ..figures.table_plot import parse_where, plot_sweep

    with user_errors():
        if out is not None:
            check_output_path("out", out, "file")
        paths = plot_sweep(results, x, y, hue=hue, facet=facet, logx=logx, logy=logy, where=parse_where(where),
                           table=table, out=out, title=title)
    typer.echo("wrote " + ", ".join(str(p) for p in paths))


def register(app: typer.Typer) -> None:
    app.command("plot")(plot_command)
