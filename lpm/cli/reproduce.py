"""``lpm reproduce NAME``: make a theorem-checking figure from ``sims/NAME.toml``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..core.errors import LPMInputError
from ._common import user_errors


def reproduce_command(
    name: Optional[str] = typer.Argument(None, help="Simulation name (see --list), or 'all'."),
    list_: bool = typer.Option(False, "--list", help="List the simulations with one line each, then exit."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Output folder (default results/NAME; with 'all', one subfolder per name)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Parallel worker processes."),
    smoke: bool = typer.Option(False, "--smoke", help="Use the reduced grids (what the test suite runs)."),
    sims_dir: Optional[Path] = typer.Option(None, "--sims-dir", help="Folder of simulation files (default sims/)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
):
    """Run (or resume) the sweep behind a simulation file and write its figure
    as PNG and PDF beside its CSV tables.

    Example: lpm reproduce minority-collapse --jobs 2
    """
    from ..reproduce import get_simulation, list_simulations, reproduce

    with user_errors():
        sims = list_simulations(sims_dir)
        if list_:
            width = max((len(s.name) for s in sims), default=0)
            for s in sims:
                typer.echo(f"{s.name:<{width}}  {s.description}")
            return
        if name is None:
            raise LPMInputError("name", None, "a simulation name or 'all' (see lpm reproduce --list)",
                                owner="lpm reproduce")
        names = [s.name for s in sims] if name == "all" else [get_simulation(name, sims_dir).name]
        for n in names:
            target = None if out is None else (out / n if name == "all" else out)
            result = reproduce(n, target, smoke=smoke, jobs=jobs, progress=progress, sims_dir=sims_dir)
            figures = ", ".join(str(p) for p in result.figures)
            typer.echo(f"{n}: {figures} ({result.seconds:.1f} s)")


def register(app: typer.Typer) -> None:
    app.command("reproduce")(reproduce_command)
