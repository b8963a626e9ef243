"""``lpm sweep``: run a grid of layer-peeled problems into a results table."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import List, Optional

import typer

from ..core.errors import LPMInputError, check_choice
from ..core.losses import LOSS_NAMES
from ..core.weighting import CLASS_WEIGHTS
from ..core.problem import BUDGETS, CLASSIFIERS
from ..core.profiles import PROFILES
from ..core.io import check_output_path
from ..core.solvers import SOLVER_CHOICES
from ._common import CLUSTER_HELP, JOBS_HELP, interrupted, parse_counts, parse_float_list, user_errors


def _words(name: str, text: str | None, choices=None) -> list | None:
    if text is None:
        return None
    items = text.replace(" ", "").split(",")
    if not text.strip() or "" in items:  # an empty entry ('ce,,dr') is a value left out, never dropped
        raise LPMInputError(name, text, "a comma-separated list without empty entries, e.g. 'ce,dr'")
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
               seeds, settings, counts=None, lambda_W=None, lambda_H=None, tau=None, gamma=None, margin=None,
               class_weights=None, beta=None):
    """A :class:`lpm.sweep.Grid` from the command's comma-separated options.

    With ``counts`` (one or more explicit count lists) the class sizes come
    from them: then ratios, K and profiles are not given.
    """
    from ..sweep import Grid, parse_ratio_range

    if ewh is not None:  # the products replace both budgets: --EW/--EH would have no effect
        for name, value in (("EW", E_W), ("EH", E_H)):
            if value is not None:
                raise LPMInputError(name, value, "left out with --ewh (each cell then uses E_W = 1, E_H = the "
                                                 "product)")
    E_W, E_H = ("1" if E_W is None else E_W), ("5" if E_H is None else E_H)
    if ratios is not None and ratio_range is not None:
        raise LPMInputError("ratios", ratios, "omitted when --ratio-range is given (use one of them)")
    count_lists = parse_counts("counts", counts) if counts else None
    if count_lists is not None:
        for name, value in (("ratios", ratios), ("ratio-range", ratio_range), ("K", K), ("profile", profile)):
            if value is not None:
                raise LPMInputError(name, value, "left out with --counts (the counts fix K and the class sizes)")
        sizes = {"counts": count_lists}
    else:
        sizes = {"ratio": parse_ratio_range(ratio_range) if ratio_range else (_floats("ratios", ratios) or [100.0]),
                 "K": _ints("K", K or "10"), "profile": _words("profile", profile or "step", PROFILES)}
    return Grid(
        **sizes, majority=_ints("majority", majority) or [None],
        classifier=_words("classifier", classifier, CLASSIFIERS),
        loss=_words("loss", loss, LOSS_NAMES), budget=_words("budget", budget, BUDGETS) or [None],
        ewh=_floats("ewh", ewh), E_W=_floats("EW", E_W), E_H=_floats("EH", E_H),
        d=_ints("d", d) or [None], solver=_words("solver", solver, SOLVER_CHOICES), seed=_ints("seeds", seeds),
        lambda_W=_floats("lambda-W", lambda_W) or [None], lambda_H=_floats("lambda-H", lambda_H) or [None],
        tau=_floats("tau", tau) or [None], gamma=_floats("gamma", gamma) or [None],
        margin=_floats("margin", margin) or [None],
        class_weights=_words("class-weights", class_weights, CLASS_WEIGHTS) or ["none"],
        beta=_floats("beta", beta) or [None], solver_settings=_settings(settings), name="cli")


def _among(choices) -> str:
    """A metavar listing the choices of a comma-separated option (never wrapped in --help)."""
    return "<" + ",".join(choices) + ">"


def sweep_command(
    out: Path = typer.Option(..., "--out", "-o", metavar="<folder>",
                             help="Output folder (created; rerunning the same command resumes it)."),
    ratios: Optional[str] = typer.Option(None, "--ratios", metavar="<list>",
                                         help="Imbalance ratios R, e.g. 1,10,100 (default 100)."),
    ratio_range: Optional[str] = typer.Option(
        None, "--ratio-range", metavar="<start:stop:num>",
        help="Log-spaced ratios, e.g. 1:1e4:41 (R = 10^{0.1 i})."),
    K: Optional[str] = typer.Option(None, "--K", "-K", metavar="<list>",
                                    help="Numbers of classes, e.g. 10,20 (default 10)."),
    counts: List[str] = typer.Option(
        [], "--counts", metavar="<n1,n2,...>",
        help="Explicit class counts instead of --K/--ratios/--profile, e.g. 500,500,5,5; repeat the option (or "
             "separate lists by ';') to sweep several. Only proportions enter the model (the weight-decay form "
             "reads absolute counts)."),
    majority: Optional[str] = typer.Option(None, "--majority", metavar="<list>",
                                           help="K_A values, e.g. 2,5,8 (default K//2)."),
    profile: Optional[str] = typer.Option(None, "--profile", metavar=_among(PROFILES),
                                          help="Profiles (default step)."),
    classifier: str = typer.Option("learnable", "--classifier", metavar=_among(CLASSIFIERS),
                                   help="Classifier modes."),
    loss: str = typer.Option("ce", "--loss", metavar=_among(LOSS_NAMES), help="Losses."),
    budget: Optional[str] = typer.Option(
        None, "--budget", metavar=_among(BUDGETS),
        help="Feature budget forms (default: the classifier mode's own form)."),
    ewh: Optional[str] = typer.Option(
        None, "--ewh", metavar="<list>",
        help="E_W·E_H products; each cell then uses E_W=1, E_H=product (overrides --EW/--EH)."),
    E_W: Optional[str] = typer.Option(None, "--EW", metavar="<list>", help="Classifier budgets E_W (default 1)."),
    E_H: Optional[str] = typer.Option(None, "--EH", metavar="<list>", help="Feature budgets E_H (default 5)."),
    d: Optional[str] = typer.Option(None, "--d", metavar="<list>", help="Feature dimensions (default K)."),
    lambda_W: Optional[str] = typer.Option(None, "--lambda-W", metavar="<list>",
                                           help="Classifier weight decays, for --budget weight-decay."),
    lambda_H: Optional[str] = typer.Option(None, "--lambda-H", metavar="<list>",
                                           help="Feature weight decays, for --budget weight-decay."),
    tau: Optional[str] = typer.Option(None, "--tau", metavar="<list>",
                                      help="tau of the la and vs losses (default 1), e.g. 0,0.5,1."),
    gamma: Optional[str] = typer.Option(None, "--gamma", metavar="<list>",
                                        help="gamma of the cdt (default 0.2) and vs (default 0.3) losses."),
    margin: Optional[str] = typer.Option(None, "--margin", metavar="<list>",
                                         help="Largest margin of the ldam loss (default 0.5)."),
    class_weights: Optional[str] = typer.Option(None, "--class-weights", metavar=_among(CLASS_WEIGHTS),
                                                help="Class weighting schemes (default none)."),
    beta: Optional[str] = typer.Option(None, "--beta", metavar="<list>",
                                       help="beta of --class-weights class-balanced (default 0.9999)."),
    solver: str = typer.Option("auto", "--solver", metavar=_among(SOLVER_CHOICES), help="Back ends."),
    seeds: str = typer.Option("0", "--seeds", metavar="<list>",
                              help="Seeds (fixed-classifier draw and gradient init), e.g. 0,1,2."),
    setting: List[str] = typer.Option(
        [], "--setting", metavar="<solver.key=value>",
        help="Solver setting (repeatable), e.g. gradient.steps=2000."),
    jobs: Optional[int] = typer.Option(
        None, "--jobs", "-j", min=1,
        help=JOBS_HELP),
    cluster: Optional[str] = typer.Option(
        None, "--cluster", metavar="<local:N|address>",
        help=CLUSTER_HELP + " Workers send results back; no shared disk needed."),
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

    \b
    Examples:
      lpm sweep --ratio-range 1:1e4:41 --solver nuclear -o results/sweep
      lpm sweep --counts 500,500,5,5 --counts 5000,50,5 --loss ce,dr -o out
      lpm sweep --ratios 10,100 --loss la,cdt --tau 0,1 --gamma 0.2,0.5 -o out
    """
    from ..sweep import SweepInterrupted, make_executor, run_cells

    with user_errors():
        check_output_path("out", out, "folder")
        grid = build_grid(ratios, ratio_range, K, majority, profile, classifier, loss, budget, ewh, E_W, E_H, d,
                          solver, seeds, setting, counts=counts, lambda_W=lambda_W, lambda_H=lambda_H, tau=tau,
                          gamma=gamma, margin=margin, class_weights=class_weights, beta=beta)
        try:
            with make_executor(jobs, cluster) as executor:  # closed (workers stopped) however the sweep ends
                report = run_cells(grid, out, executor=executor, progress=progress, retry_failed=retry_failed,
                                   config={"command": "lpm sweep"})
        except SweepInterrupted as stop:
            raise interrupted(f"Interrupted: {stop.done} of {stop.cells} cells done in {out}; run the same "
                              "command again to resume.") from None
    typer.echo(f"{report.done} cells in {out / 'results.csv'} ({report.failed} failed)")
    if report.failed:
        typer.echo(f"Error: {report.failed} of {report.cells} cells failed; the first: {report.first_error} "
                   f"(every error is in the 'error' column; --retry-failed reruns them).", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep_command)
