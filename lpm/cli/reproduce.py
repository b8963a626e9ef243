"""``lpm reproduce NAME``: make a theorem-checking figure from ``sims/NAME.toml``."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Optional

import typer

from ..core.errors import LPMInputError
from ..core.io import check_output_path
from ._common import CLUSTER_HELP, JOBS_HELP, interrupted, user_errors


def reproduce_command(
    name: Optional[str] = typer.Argument(None, metavar="name", help="Simulation name (see --list), or 'all'."),
    list_: bool = typer.Option(False, "--list", help="List the simulations with one line each, then exit."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", metavar="<folder>",
        help="Output folder, created (default results/NAME; with 'all', one subfolder per name)."),
    jobs: Optional[int] = typer.Option(
        None, "--jobs", "-j", min=1,
        help=JOBS_HELP),
    cluster: Optional[str] = typer.Option(
        None, "--cluster", metavar="<local:N|address>",
        help=CLUSTER_HELP),
    runs_dir: Optional[Path] = typer.Option(
        None, "--runs-dir", metavar="<folder>",
        help="Folder for deep-run folders (default OUT/runs). Give one on a file system that every worker "
             "reaches and workers write their runs there; otherwise each remote worker sends its finished run "
             "folder back, and this machine writes it under OUT/runs."),
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
    from ..reproduce import check_simulation, get_simulation, list_simulations, reproduce
    from ..sweep import SweepFailed, SweepInterrupted, make_executor

    with user_errors():
        if list_:  # options that --list would ignore
            given = {"name": name, "out": out, "jobs": jobs, "cluster": cluster, "runs-dir": runs_dir,
                     "smoke": smoke or None}
            for option, value in given.items():
                if value is not None:
                    raise LPMInputError(option, value, "left out with --list (it only lists the simulations)")
        sims = list_simulations(sims_dir)
        if list_:
            width = max(len(s.name) for s in sims) + 2
            columns = max(shutil.get_terminal_size().columns, width + 30)
            for s in sims:
                typer.echo(textwrap.fill(s.description, columns - 1, initial_indent=s.name.ljust(width),
                                         subsequent_indent=" " * width, break_on_hyphens=False))
            return
        if name is None:
            typer.echo(f"Error: Missing argument 'name': one of {', '.join(s.name for s in sims)}, or 'all' "
                       "(lpm reproduce --list describes each).", err=True)
            raise typer.Exit(2)
        chosen = sims if name == "all" else [get_simulation(name, sims_dir)]
        for sim in chosen:  # every file is checked before the first one runs
            check_simulation(sim, smoke)
        if runs_dir is not None and all(s.runner == "sweep" for s in chosen):
            raise LPMInputError("runs-dir", str(runs_dir), "left out for simulations without deep runs (the "
                                                           "'sweep' runner trains no networks)")
        names = [s.name for s in chosen]
        check_output_path("out", out if out is not None else Path("results"), "folder")
        failures = []
        with make_executor(jobs, cluster) as executor:  # one executor (and one cluster) for every name
            for n in names:
                target = None if out is None else (out / n if name == "all" else out)
                try:
                    result = reproduce(n, target, smoke=smoke, executor=executor, runs_dir=runs_dir,
                                       progress=progress, sims_dir=sims_dir)
                except SweepFailed as exc:
                    typer.echo(f"Error: {exc}", err=True)
                    raise typer.Exit(1) from None
                except SweepInterrupted as stop:
                    raise interrupted(f"Interrupted: {stop.done} of {stop.cells} cells of '{n}' done in "
                                      f"{stop.out_dir}; run the same command again to resume.") from None
                figures = ", ".join(str(p) for p in result.figures)
                typer.echo(f"{n}: {figures} ({result.seconds:.1f} s)")
                if result.failed:
                    failures.append(f"{result.failed} cells of '{n}' failed (the first: {result.first_error})")
    if failures:
        typer.echo("Error: " + "; ".join(failures) + " (each failed cell's record is in its cells/ folder).",
                   err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("reproduce")(reproduce_command)
