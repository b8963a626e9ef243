"""``lpm compare``: deep runs beside the layer-peeled prediction for their own class counts.

Thin: options → :func:`lpm.compare.compare_runs` → :func:`lpm.compare.write_report`.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..compare.budgets import BUDGET_RULES
from ..compare.classes import FITTED_ABOVE
from ..compare.runs import GROUPINGS
from ..core.geometry import CENTERS
from ..core.solvers import CERTIFYING
from ..core.io import check_output_path, folder_lock
from ._common import Budget, choice_enum, user_errors

BudgetRule = choice_enum("BudgetRule", BUDGET_RULES)
CertifyingSolver = choice_enum("CertifyingSolver", CERTIFYING)
Center = choice_enum("Center", CENTERS)
Groups = choice_enum("Groups", GROUPINGS)


def compare_command(
    run_dirs: List[Path] = typer.Argument(..., metavar="run_dir", help="Run folders written by `lpm train-deep`."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="<folder>",
                                       help="Output folder, created (default: compare/ beside the first run)."),
    E_W: Optional[float] = typer.Option(None, "--EW", help="Classifier budget E_W for every run (default: the "
                                                           "run's mean squared classifier row norm)."),
    E_H: Optional[float] = typer.Option(None, "--EH", help="Feature budget E_H for every run (default: 1 for "
                                                           "l2-normalised fixed heads, else from the run's "
                                                           "class-mean norms: mean square (class-average budget) "
                                                           "or largest square (per-sample budget))."),
    budget: Optional[Budget] = typer.Option(None, "--budget", help="Feature budget form (default: class-average "
                                                                   "for learnable, per-sample for fixed heads)."),
    budget_rule: BudgetRule = typer.Option(BudgetRule("norms"), "--budget-rule",
                                           help="How budgets not given are chosen: 'norms' = the run's own "
                                                "energies; for learnable heads, 'logits' = E_W*E_H from the nuclear "
                                                "norm of the run's class-mean logits, 'loss' = E_W*E_H at which the "
                                                "LPM's optimal loss equals the run's class-mean loss (CE), "
                                                "'weight-decay' = the regularised model with lambda_W = the run's "
                                                "weight decay (fixed heads: 'norms')."),
    solver: CertifyingSolver = typer.Option(CertifyingSolver("auto"), "--solver",
                                            help="Certifying back end; auto = the fastest one."),
    center: Optional[Center] = typer.Option(None, "--center", help="Centre of the class means (default: the "
                                                                   "run's own)."),
    groups: Groups = typer.Option(Groups("auto"), "--groups", help="Groups over epochs: majority/minority (auto when "
                                                                "the run has K_A) or the run's head/medium/tail."),
    curve_points: int = typer.Option(9, "--curve-points", min=2, help="Ratios on each LPM curve against R."),
    lambda_W: Optional[float] = typer.Option(None, "--lambda-W", help="With --budget-rule weight-decay: lambda_W "
                                                                     "(default: the run's weight decay)."),
    lambda_H: Optional[float] = typer.Option(None, "--lambda-H", help="With --budget-rule weight-decay: lambda_H "
                                                                     "(default: from the balance lambda_W*||W||^2 = "
                                                                     "lambda_H*sum_k n_k*||mu_k||^2 at the run)."),
    minority_below: Optional[float] = typer.Option(None, "--minority-below",
                                                   help="Minority = classes with fewer training samples than "
                                                        "this (default: 20; step profiles: every class below "
                                                        "the top count)."),
    fitted_above: float = typer.Option(FITTED_ABOVE, "--fitted-above",
                                       help="Classes whose final training accuracy is below this are flagged "
                                            "unfitted and left out of the minority metrics."),
):
    """Set deep runs beside the layer-peeled model's optimum for the same class counts.

    The LPM of each run has the run's own objective: its loss and hyperparameters, the
    class weights in force at the end of training (after DRW) and its sampler as the
    equivalent re-weighting; a cRT stage gets its re-training objective, a tau-norm or
    logit-adjust stage its parent's (the 'reference' column names it; docs/remedies.md).

    Writes cosine-matrix heatmaps, group geometry over epochs, collapse against R
    (runs at several ratios) and distances.csv (Gram distance of each run to the
    LPM optimum and to the simplex ETF) into --out.

    \b
    Example:
      lpm compare runs/learnable-ce_R10 runs/learnable-ce_R100 -o results/compare
    """
    from ..compare import compare_runs, default_out_dir, summary_lines, write_report

    with user_errors():
        folder = out if out is not None else default_out_dir(run_dirs[0])
        check_output_path("out", folder, "folder")
        report = compare_runs(run_dirs, E_W=E_W, E_H=E_H, budget=None if budget is None else budget.value,
                              budget_rule=budget_rule.value, method=solver.value,
                              center=None if center is None else center.value, grouping=groups.value,
                              curve_points=curve_points, lambda_W=lambda_W, lambda_H=lambda_H,
                              minority_below=minority_below, fitted_above=fitted_above)
        with folder_lock(folder, "out", "comparison"):  # one writer of the report at a time
            paths = write_report(report, folder)
    for line in summary_lines(report):
        typer.echo(line)
    typer.echo(f"wrote {len(paths)} files to {folder}: distances.csv (table), "
               + ", ".join(sorted({p.suffix[1:] for p in paths})) + " files")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_command)
