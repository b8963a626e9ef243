"""``lpm sweep``: run a grid of layer-peeled problems into a results table."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import List, Optional

import typer

from ..core.errors import LPMInputError, check_choice
from ._common import parse_float_list, user_errors


def _words(name: str, text: str | None, choices=None) -> list | None:
    if text is None:
        return None
    items = [t for t in text.replace(" ", "").split(",") if t]
    if not items:
        raise LPMInputError(name, text, "a comma-separated list, e.g. 'ce,dr'")
    for item in items:
        if choices is not None:
            check_choice(name, item, choices)
    return items


def _ints(name: str, text: str | None) -> list[int] | None:
    values = parse_float_list(name, text)
    if values is None:
        return None
    if not values or any(not math.isfinite(v) or v != int(v) for v in values):
        raise LPMInputError(name, text, "a comma-separated list of integers, e.g. '0,1,2'")
    return [int(v) for v in values]


def _floats(name: str, text: str | None) -> list[float] | None:
    values = parse_float_list(name, text)
    if values is not None and not values:
        raise LPMInputError(name, text, "a comma-separated list of numbers, e.g. '1,10,100'")
    return values


def _settings(items: list[str]) -> dict[str, dict]:
    """'gradient.steps=2000' → {'gradient': {'steps': 2000}} (values parsed as JSON, else text)."""
    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        solver, dot, name = key.partition(".")
        if not sep or not dot or not solver or not name:
            raise LPMInputError("setting", item, "SOLVER.KEY=VALUE, e.g. 'gradient.steps=2000'")
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        out.setdefault(solver, {})[name] = parsed
    return out


def build_grid(ratios, ratio_range, K, majority, profile, classifier, loss, budget, ewh, E_W, E_H, d, solver,
               seeds, settings):
    """A :class:`lpm.sweep.Grid` from the command's comma-separated options."""
    from ..core.losses import LOSS_NAMES
    from ..core.problem import BUDGETS, CLASSIFIERS
    from ..core.profiles import PROFILES
    from ..core.solvers import SOLVER_CHOICES
    from ..sweep import Grid, parse_ratio_range

    if ratios is not None and ratio_range is not None:
        raise LPMInputError("ratios", ratios, "omitted when --ratio-range is given (use one of them)")
    if ratio_range is not None:
        ratio_values = parse_ratio_range(ratio_range)
    else:
        ratio_values = [100.0] if ratios is None else _floats("ratios", ratios)
    dims = _ints("d", d)
    return Grid(
        ratio=ratio_values, K=_ints("K", K), majority=_ints("majority", majority) or [None],
        profile=_words("profile", profile, PROFILES), classifier=_words("classifier", classifier, CLASSIFIERS),
        loss=_words("loss", loss, LOSS_NAMES), budget=_words("budget", budget, BUDGETS) or [None],
        ewh=_floats("ewh", ewh), E_W=_floats("EW", E_W), E_H=_floats("EH", E_H),
        d=dims or [None], solver=_words("solver", solver, SOLVER_CHOICES), seed=_ints("seeds", seeds),
        solver_settings=_settings(settings), name="cli")


def sweep_command(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder; rerunning the same command resumes it."),
    ratios: Optional[str] = typer.Option(None, "--ratios", help="Imbalance ratios R, e.g. '1,10,100' (default 100)."),
    ratio_range: Optional[str] = typer.Option(
        None, "--ratio-range", help="Log-spaced ratios START:STOP:NUM, e.g. '1:1e4:41' (R = 10^{0.1 i})."),
    K: str = typer.Option("10", "--K", "-K", help="Numbers of classes, e.g. '10,20'."),
    majority: Optional[str] = typer.Option(None, "--majority", help="K_A values (default K//2), e.g. '2,5,8'."),
    profile: str = typer.Option("step", "--profile", help="Profiles: step, exp."),
    classifier: str = typer.Option("learnable", "--classifier", help="learnable, fixed-etf, fixed-random."),
    loss: str = typer.Option("ce", "--loss", help="Losses: ce, dr, mse."),
    budget: Optional[str] = typer.Option(
        None, "--budget", help="per-sample, class-average (default: the classifier mode's own form)."),
    ewh: Optional[str] = typer.Option(
        None, "--ewh", help="E_W·E_H products; each cell then uses E_W=1, E_H=product (overrides --EW/--EH)."),
    E_W: str = typer.Option("1", "--EW", help="Classifier budgets E_W."),
    E_H: str = typer.Option("5", "--EH", help="Feature budgets E_H."),
    d: Optional[str] = typer.Option(None, "--d", help="Feature dimensions (default K)."),
    solver: str = typer.Option("auto", "--solver", help="Back ends: auto, analytic, nuclear, convex, gradient."),
    seeds: str = typer.Option("0", "--seeds", help="Seeds (fixed-classifier draw and gradient init), e.g. '0,1,2'."),
    setting: List[str] = typer.Option(
        [], "--setting", help="Solver setting SOLVER.KEY=VALUE (repeatable), e.g. gradient.steps=2000."),
    jobs: Optional[int] = typer.Option(
        None, "--jobs", "-j", min=1,
        help="Local worker processes (default: one per usable core; small, light grids run in this process)."),
    cluster: Optional[str] = typer.Option(
        None, "--cluster",
        help="Run the cells on Dask: 'local:N' (N workers here) or a scheduler address, e.g. tcp://10.0.0.5:8786 "
             "(needs lpm's 'distributed' extra). Workers send results back; no shared disk needed."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Rerun cells that failed before."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
):
    """Sweep a grid (every combination of the comma-separated lists) and write
    a tidy CSV table, one row per cell and seed.

    OUT holds results.csv (every Problem field, metric, objective, gap,
    solver, status, time; 'error' for failed cells), trajectory.csv and
    per_class.csv (long tables), sweep.json (grid, versions, git commit,
    hardware) and cells/ (one JSON per finished cell). Every cell is checked
    before any runs (a bad value exits 2). A failed cell is recorded and the
    others go on, and the command then exits 1. Rerunning resumes without
    recomputing; a folder holding another grid's cells is refused.

    Example: lpm sweep --ratio-range 1:1e4:41 --solver nuclear,gradient --seeds 0,1 --jobs 2 -o results/sweep
    """
    from ..sweep import SweepInterrupted, make_executor, run_cells

    with user_errors():
        grid = build_grid(ratios, ratio_range, K, majority, profile, classifier, loss, budget, ewh, E_W, E_H, d,
                          solver, seeds, setting)
        try:
            with make_executor(jobs, cluster) as executor:  # closed (workers stopped) however the sweep ends
                report = run_cells(grid, out, executor=executor, progress=progress, retry_failed=retry_failed,
                                   config={"command": "lpm sweep"})
        except SweepInterrupted as stop:
            typer.echo(f"Interrupted: {stop.done} of {stop.cells} cells done in {out}; run the same command again "
                       "to resume.", err=True)
            raise typer.Exit(130) from None
    typer.echo(f"{report.done} cells in {out / 'results.csv'} ({report.failed} failed)")
    if report.failed:
        typer.echo(f"Error: {report.failed} of {report.cells} cells failed; the first: {report.first_error} "
                   f"(every error is in the 'error' column; --retry-failed reruns them).", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep_command)
