"""``lpm reproduce NAME``: make a theorem-checking figure from ``sims/NAME.toml``."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Optional

import typer

from ..core.errors import LPMInputError
from ..core.io import check_output_path
from ._common import user_errors


def reproduce_command(
    name: Optional[str] = typer.Argument(None, metavar="name", help="Simulation name (see --list), or 'all'."),
    list_: bool = typer.Option(False, "--list", help="List the simulations with one line each, then exit."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", metavar="<folder>",
        help="Output folder, created (default results/NAME; with 'all', one subfolder per name)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Parallel worker processes."),
    smoke: bool = typer.Option(False, "--smoke", help="Use the reduced grids (what the test suite runs)."),
    sims_dir: Optional[Path] = typer.Option(None, "--sims-dir", metavar="<folder>",
                                            help="Folder of simulation files (default: the ones shipped with lpm)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
):
    """Run (or resume) the sweep behind a simulation file and write its figure
    as PNG and PDF beside its CSV tables.

    \b
    Examples:
      lpm reproduce --list
      lpm reproduce minority-collapse -o results/minority-collapse
    """
    from ..reproduce import get_simulation, list_simulations, reproduce

    with user_errors():
        if sims_dir is not None and not sims_dir.is_dir():
            raise LPMInputError("sims-dir", str(sims_dir), "a folder of simulation files (*.toml)")
        sims = list_simulations(sims_dir)
        if not sims:
            where = str(sims_dir) if sims_dir is not None else "the shipped simulation folder"
            raise LPMInputError("sims-dir", where, "a folder holding at least one simulation file (*.toml)")
        if list_:
            width = max(len(s.name) for s in sims) + 2
            columns = max(shutil.get_terminal_size().columns, width + 30)
            for s in sims:
                typer.echo(textwrap.fill(s.description, columns - 1, initial_indent=s.name.ljust(width),
                                         subsequent_indent=" " * width, break_on_hyphens=False))
            return
        if name is None:
            raise LPMInputError("name", None, "a simulation name or 'all' (see lpm reproduce --list)",
                                owner="lpm reproduce")
        names = [s.name for s in sims] if name == "all" else [get_simulation(name, sims_dir).name]
        check_output_path("out", out if out is not None else Path("results"), "folder")
        for n in names:
            target = None if out is None else (out / n if name == "all" else out)
            result = reproduce(n, target, smoke=smoke, jobs=jobs, progress=progress, sims_dir=sims_dir)
            figures = ", ".join(str(p) for p in result.figures)
            typer.echo(f"{n}: {figures} ({result.seconds:.1f} s)")


def register(app: typer.Typer) -> None:
    app.command("reproduce")(reproduce_command)
