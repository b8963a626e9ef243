"""The weight-decay model from the command line (theory.md §9): `lpm simulate` and
`lpm sweep` take λ_W and λ_H, the threshold n_B ≤ N²λ_Wλ_H decides collapse, and a
missing coefficient is one clear line."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from lpm.cli import app
from lpm.sweep import Grid

runner = CliRunner()
COUNTS = "500,500,500,5,5,5"          # N = 1515, n_B = 5: collapse iff λ_Wλ_H >= 5 / N² = 2.18e-6


@pytest.mark.parametrize("lam, collapsed", [(1e-3, False), (2e-3, True)])
def test_simulate_weight_decay_follows_the_threshold(lam, collapsed):
    """λ_Wλ_H = 1e-6 < 2.18e-6: the minority classifiers stay apart; 4e-6 > 2.18e-6: they merge."""
    res = runner.invoke(app, ["simulate", "--counts", COUNTS, "--loss", "ce", "--budget", "weight-decay",
                              "--lambda-W", str(lam), "--lambda-H", str(lam), "--json"])
    assert res.exit_code == 0, res.output
    learnable, fixed = json.loads(res.stdout)
    assert (learnable["classifier"], learnable["solver"], learnable["status"]) == ("learnable", "nuclear", "optimal")
    assert learnable["problem"]["lambda_W"] == lam and learnable["problem"]["lambda_H"] == lam
    cos = learnable["metrics"]["classifier_minority_cos"]
    assert (cos > 1 - 1e-6) if collapsed else (cos < 0.9)
    # the fixed ETF's W is not trained: it takes λ_H only, and keeps the simplex angle
    assert fixed["classifier"] == "fixed-etf" and fixed["problem"]["lambda_W"] is None
    assert fixed["status"] == "optimal"
    assert fixed["metrics"]["feature_minority_cos_uncentred"] == pytest.approx(-1 / 5, abs=1e-9)


def test_simulate_weight_decay_without_a_coefficient_is_one_line():
    res = runner.invoke(app, ["simulate", "--counts", COUNTS, "--loss", "ce", "--budget", "weight-decay",
                              "--lambda-H", "1e-3"])
    assert res.exit_code == 2
    assert res.stderr.strip() == ("Error: The 'lambda_W' parameter must be a number >= 1e-08 and <= 1e+08, given "
                                  "with budget='weight-decay' (the weight-decay coefficient). Got None instead.")


def test_grid_expands_the_coefficients_only_for_weight_decay_cells():
    grid = Grid(counts=[[5, 5, 1]], classifier=["learnable", "fixed-etf"], budget=["weight-decay", None],
                lambda_W=[1e-3], lambda_H=[1e-3, 1e-2])
    problems = [c.spec["problem"] for c in grid.cells()]
    decayed = [(p["classifier"], p.get("lambda_W"), p.get("lambda_H")) for p in problems
               if p["budget"] == "weight-decay"]
    assert decayed == [("learnable", 1e-3, 1e-3), ("learnable", 1e-3, 1e-2),
                       ("fixed-etf", None, 1e-3), ("fixed-etf", None, 1e-2)]
    # other cells carry no coefficients, so their identities are those of a grid without them
    plain = [p for p in problems if p["budget"] is None]
    assert len(plain) == 2 and all("lambda_W" not in p and "lambda_H" not in p for p in plain)
    before = Grid(counts=[[5, 5, 1]], classifier=["learnable", "fixed-etf"]).cells()
    assert {c.cell_id for c in before} <= {c.cell_id for c in grid.cells()}


def test_sweep_over_weight_decay(tmp_path):
    out = tmp_path / "wd"
    res = runner.invoke(app, ["sweep", "-o", str(out), "--counts", COUNTS, "--budget", "weight-decay",
                              "--lambda-W", "1e-3,2e-3", "--lambda-H", "1e-3,2e-3", "--jobs", "1",
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    t = pd.read_csv(out / "results.csv")
    assert len(t) == 4 and set(t["status"]) == {"optimal"}
    product = t["lambda_W"] * t["lambda_H"]
    merged = t["classifier_minority_cos"] > 1 - 1e-6
    assert (merged == (product >= 5 / 1515**2)).all()


def test_simulate_weight_decay_names_the_coefficients_not_unused_budgets():
    """Under weight decay the table's setting line shows λ_W, λ_H (and the fixed ETF's scale E_W), never the
    norm budgets E_W, E_H that do not enter the learnable model; a norm budget shows E_W, E_H alone."""
    res = runner.invoke(app, ["simulate", "--counts", COUNTS, "--loss", "ce", "--budget", "weight-decay",
                              "--lambda-W", "0.001", "--lambda-H", "0.002"])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0] == ("K=6 classes (K_A=3 majority), counts 500, 500, 500, 5, 5, 5, "
                                          "learnable + ce: λ_W=0.001, λ_H=0.002; fixed-etf + ce: E_W=1, λ_H=0.002, "
                                          "d=6")
    res = runner.invoke(app, ["simulate", "--counts", COUNTS, "--classifier", "learnable", "--loss", "ce",
                              "--budget", "weight-decay", "--lambda-W", "0.001", "--lambda-H", "0.002"])
    assert res.stdout.splitlines()[0] == ("K=6 classes (K_A=3 majority), counts 500, 500, 500, 5, 5, 5, "
                                          "λ_W=0.001, λ_H=0.002, d=6")
    res = runner.invoke(app, ["simulate", "--counts", COUNTS])
    assert res.stdout.splitlines()[0] == ("K=6 classes (K_A=3 majority), counts 500, 500, 500, 5, 5, 5, E_W=1, E_H=5, "
                                          "d=6")
