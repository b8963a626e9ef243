"""``lpm simulate``: solve one layer-peeled setting, learnable + CE beside fixed ETF + DR."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..core.errors import LPMInputError
from ..core.losses import LOSS_NAMES
from ..core.weighting import CLASS_WEIGHTS
from ..core.problem import CLASSIFIERS
from ..core.profiles import PROFILES
from ..core.solvers import SOLVER_CHOICES
from ..core.io import check_output_path
from ._common import Budget, choice_enum, parse_float_list, user_errors

Loss = choice_enum("Loss", LOSS_NAMES)
ClassWeights = choice_enum("ClassWeights", CLASS_WEIGHTS)
Classifier = choice_enum("Classifier", CLASSIFIERS)
Profile = choice_enum("Profile", PROFILES)
SolverName = choice_enum("SolverName", SOLVER_CHOICES)


def simulate_command(
    K: Optional[int] = typer.Option(None, "--K", "-K", help="Number of classes, >= 2 (default 10)."),
    ratio: Optional[float] = typer.Option(None, "--ratio", "-R",
                                          help="Imbalance ratio R = n_max/n_min, >= 1 (default 100)."),
    loss: Optional[Loss] = typer.Option(None, "--loss", help="Loss for every classifier (default: ce; with "
                                                             "neither --loss nor --classifier, the pairings above)."),
    classifier: Optional[Classifier] = typer.Option(None, "--classifier", help="Solve this classifier mode only."),
    profile: Optional[Profile] = typer.Option(None, "--profile", help="Imbalance profile (default step)."),
    majority: Optional[int] = typer.Option(None, "--majority", help="K_A majority classes (default K//2)."),
    counts: Optional[str] = typer.Option(
        None, "--counts", metavar="<n1,n2,...>",
        help="Explicit class counts, e.g. 500,500,5,5; K is their number. Relative sizes: only the proportions "
             "enter the model, so fractions are fine (the weight-decay form reads absolute counts)."),
    E_W: Optional[float] = typer.Option(None, "--EW", help="Classifier budget E_W (> 0) (default 1)."),
    E_H: Optional[float] = typer.Option(None, "--EH", help="Feature budget E_H (> 0) (default 5)."),
    d: Optional[int] = typer.Option(None, "--d", help="Feature dimension (default K)."),
    budget: Optional[Budget] = typer.Option(
        None, "--budget", help="Feature budget form for every column (default: class-average for learnable, "
                               "per-sample for fixed classifiers)."),
    lambda_W: Optional[float] = typer.Option(None, "--lambda-W", help="Classifier weight decay lambda_W, with "
                                                                     "--budget weight-decay (learnable only)."),
    lambda_H: Optional[float] = typer.Option(None, "--lambda-H", help="Feature weight decay lambda_H, with "
                                                                     "--budget weight-decay."),
    tau: Optional[float] = typer.Option(None, "--tau", help="tau of the la and vs losses (default 1: la is then "
                                                             "the balanced softmax)."),
    gamma: Optional[float] = typer.Option(None, "--gamma", help="gamma of the cdt (default 0.2) and vs (default 0.3) "
                                                                 "losses."),
    margin: Optional[float] = typer.Option(None, "--margin", help="Largest margin of the ldam loss (default 0.5)."),
    class_weights: ClassWeights = typer.Option(ClassWeights("none"), "--class-weights",
                                               help="Class weights for every column (theory.md §14)."),
    beta: Optional[float] = typer.Option(None, "--beta", help="beta of --class-weights class-balanced "
                                                               "(default 0.9999)."),
    solver: SolverName = typer.Option(SolverName("auto"), "--solver", help="Back end; auto = the fastest "
                                                                           "certifying one."),
    cvx_solver: Optional[str] = typer.Option(None, "--cvx-solver", metavar="<name>",
                                             help="cvxpy back end for --solver convex, e.g. SCS."),
    seed: int = typer.Option(0, "--seed", help="Seed for fixed classifiers and gradient initialisation."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="<file.json>",
                                       help="Also write the results as JSON to this file (parent folders are "
                                            "created)."),
    json_stdout: bool = typer.Option(False, "--json", help="Print the results as JSON instead of the table."),
):
    """Solve the layer-peeled model and print its collapse geometry.

    By default two settings are solved from the same class counts: a
    learnable classifier with cross-entropy (Fang et al.: its minority
    classifiers merge beyond a threshold ratio) beside a fixed simplex-ETF
    classifier with DR (Yang et al.: they cannot merge). --loss or
    --classifier solve other settings instead.

    \b
    Examples:
      lpm simulate --K 10 --ratio 100
      lpm simulate --counts 500,500,5,5 --loss ce -o result.json
      lpm simulate --counts 500,500,5,5 --loss ce --budget weight-decay \\
        --lambda-W 5e-4 --lambda-H 5e-4
      lpm simulate --loss la --tau 1 --classifier learnable
      lpm simulate --loss cdt --gamma 0.5 --class-weights class-balanced \\
        --beta 0.999
    """
    from .. import simulate as sim
    from ..core.io import write_text_atomic

    with user_errors():
        if out is not None:
            check_output_path("out", out, "file")
        count_list = parse_float_list("counts", counts)
        if budget is not None and budget.value == "weight-decay" and classifier == Classifier("learnable"):
            for name, value in (("E_W", E_W), ("E_H", E_H)):  # the weight-decay model has no norm budgets
                if value is not None:
                    raise LPMInputError(name, value, "left out with --budget weight-decay for the learnable "
                                                     "classifier (that model has weight decays: --lambda-W, "
                                                     "--lambda-H)")
        E_W, E_H = 1.0 if E_W is None else E_W, 5.0 if E_H is None else E_H
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
            solver=solver.value, solver_settings=settings, K=K, ratio=ratio, loss=loss.value if loss else None,
            classifiers=[classifier.value] if classifier else None, profile=profile.value if profile else None,
            majority=majority, counts=count_list, E_W=E_W, E_H=E_H, d=d, budget=budget.value if budget else None,
            seed=seed, lambda_W=lambda_W, lambda_H=lambda_H, tau=tau, gamma=gamma, margin=margin,
            class_weights=class_weights.value, beta=beta)
        text = sim.to_json(results)
        if out is not None:
            write_text_atomic(out, text + "\n")
    if json_stdout:
        typer.echo(text)
        return
    from rich.console import Console  # rich only when a table is drawn

    typer.echo(sim.describe_setting(results))
    Console().print(sim.render_table(results))
    for line in sim.verdicts(results):
        typer.echo(line)
    if out is not None:
        typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
