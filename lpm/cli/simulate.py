"""``lpm simulate``: solve one layer-peeled setting for each classifier mode."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..core.errors import LPMInputError
from ..core.losses import LOSS_NAMES
from ..core.problem import CLASSIFIERS
from ..core.profiles import PROFILES
from ..core.solvers import SOLVER_CHOICES
from ._common import Budget, choice_enum, parse_float_list, user_errors

Loss = choice_enum("Loss", LOSS_NAMES)
Classifier = choice_enum("Classifier", CLASSIFIERS)
Profile = choice_enum("Profile", PROFILES)
SolverName = choice_enum("SolverName", SOLVER_CHOICES)


def simulate_command(
    K: Optional[int] = typer.Option(None, "--K", "-K", help="Number of classes (>= 2; default 10, or len(--counts))."),
    ratio: float = typer.Option(100.0, "--ratio", "-R", help="Imbalance ratio R = n_max/n_min (>= 1)."),
    loss: Loss = typer.Option(Loss("ce"), "--loss", help="Loss function."),
    classifier: Optional[Classifier] = typer.Option(
        None, "--classifier", help="Solve one classifier mode (default: learnable and fixed-etf side by side)."),
    profile: Profile = typer.Option(Profile("step"), "--profile", help="Imbalance profile."),
    majority: Optional[int] = typer.Option(None, "--majority", help="K_A majority classes (default K/2)."),
    counts: Optional[str] = typer.Option(None, "--counts", help="Explicit class counts, e.g. '500,500,5,5'."),
    E_W: float = typer.Option(1.0, "--EW", help="Classifier budget E_W (> 0)."),
    E_H: float = typer.Option(5.0, "--EH", help="Feature budget E_H (> 0)."),
    d: Optional[int] = typer.Option(None, "--d", help="Feature dimension (default K)."),
    budget: Optional[Budget] = typer.Option(
        None, "--budget", help="Feature budget form for every row (default: class-average for learnable, "
                               "per-sample for fixed classifiers)."),
    solver: SolverName = typer.Option(SolverName("auto"), "--solver", help="Back end; auto = fastest certifying one."),
    cvx_solver: Optional[str] = typer.Option(None, "--cvx-solver", help="cvxpy back end for --solver convex."),
    seed: int = typer.Option(0, "--seed", help="Seed for fixed classifiers and gradient initialisation."),
    json_path: Optional[str] = typer.Option(None, "--json", help="Write results as JSON to PATH ('-' = stdout)."),
):
    """Solve the layer-peeled model and print its collapse geometry.

    Example: lpm simulate --K 10 --ratio 100 --loss dr
    """
    from .. import simulate as sim
    from ..core.io import write_text_atomic

    with user_errors():
        count_list = parse_float_list("counts", counts)
        settings = {}
        if cvx_solver is not None:
            if solver not in (SolverName("auto"), SolverName("convex")):
                raise LPMInputError("cvx_solver", cvx_solver, "given only with --solver convex (or auto, which it "
                                                              "then turns into convex)")
            solver = SolverName("convex")
            settings["cvx_solver"] = cvx_solver
        if solver == SolverName("gradient"):
            settings["seed"] = seed
        results = sim.simulate(
            solver=solver.value, solver_settings=settings, K=K if K is not None or count_list is not None else 10,
            ratio=ratio, loss=loss.value, classifiers=[classifier.value] if classifier else None,
            profile=profile.value, majority=majority, counts=count_list, E_W=E_W, E_H=E_H, d=d,
            budget=budget.value if budget else None, seed=seed)
        if json_path == "-":
            typer.echo(sim.to_json(results))
            return
        from rich.console import Console

        console = Console()
        console.print(sim.render_table(results))
        for line in sim.verdicts(results):
            console.print(line)
        if json_path:
            write_text_atomic(Path(json_path), sim.to_json(results))
            console.print(f"wrote {json_path}")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
