"""``lpm simulate`` and ``lpm sweep`` with the count-aware losses and class weights (theory.md §14):
hyperparameters in the description, the column labels and every table row; options with no
effect refused in one line (exit 2)."""
from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from lpm import Problem
from lpm.cli import app
from lpm.core.solvers import get_solver

runner = CliRunner()


def test_simulate_la_prints_its_hyperparameter_and_the_certified_optimum():
    res = runner.invoke(app, ["simulate", "--loss", "la", "--tau", "0.5", "--classifier", "learnable", "--K", "6",
                              "--ratio", "20"])
    assert res.exit_code == 0, res.output
    first = res.stdout.splitlines()[0]
    assert first.startswith("K=6 classes (K_A=3 majority), step profile, R=20, E_W=1, E_H=5, d=6; "
                            "la: logit-adjusted CE")
    assert "(tau=0.5)" in first and "learnable + la (tau=0.5)" in res.stdout
    res = runner.invoke(app, ["simulate", "--loss", "la", "--tau", "0.5", "--classifier", "learnable", "--K", "6",
                              "--ratio", "20", "--json"])
    [entry] = json.loads(res.stdout)
    direct = get_solver("nuclear").run(Problem.from_profile(K=6, ratio=20, loss="la", tau=0.5))
    assert entry["objective"] == pytest.approx(direct.objective, abs=1e-12)
    assert entry["problem"]["tau"] == 0.5 and entry["problem"]["gamma"] is None


def test_simulate_cdt_with_class_balanced_weights():
    res = runner.invoke(app, ["simulate", "--loss", "cdt", "--gamma", "0.5", "--class-weights", "class-balanced",
                              "--beta", "0.999", "--classifier", "learnable", "--json"])
    assert res.exit_code == 0, res.output
    assert "class weights class-balanced (beta=0.999); cdt: class-dependent temperatures" in runner.invoke(
        app, ["simulate", "--loss", "cdt", "--gamma", "0.5", "--class-weights", "class-balanced", "--beta", "0.999",
              "--classifier", "learnable"]).stdout.splitlines()[0]
    [entry] = json.loads(res.stdout)
    p = entry["problem"]
    assert (p["loss"], p["gamma"], p["class_weights"], p["beta"]) == ("cdt", 0.5, "class-balanced", 0.999)
    assert entry["status"] == "optimal" and entry["gap"] <= 1e-8 * max(1.0, abs(entry["objective"]))


@pytest.mark.parametrize("args,message", [
    (["--tau", "1"], "Error: The 'tau' parameter must be given only with a loss that takes it (--loss la or vs for "
                     "tau, cdt or vs for gamma, ldam for margin). Got 1.0 instead."),
    (["--loss", "cdt", "--tau", "1"], "Error: The 'tau' parameter must be left unset for the loss 'cdt' (it takes "
                                      "gamma; tau is for 'la', 'vs'). Got 1.0 instead."),
    (["--loss", "la", "--margin", "0.2"], "Error: The 'margin' parameter must be left unset for the loss 'la' (it "
                                          "takes tau; margin is for 'ldam'). Got 0.2 instead."),
    (["--beta", "0.9"], "Error: The 'beta' parameter must be left unset unless class_weights='class-balanced'. "
                        "Got 0.9 instead."),
    (["--class-weights", "class-balanced", "--beta", "1"], "Error: The 'beta' parameter must be a number > 0 and < 1. "
                                                           "Got 1.0 instead."),
])
def test_simulate_refuses_options_without_effect(args, message):
    res = runner.invoke(app, ["simulate", *args])
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1] == message


def test_sweep_takes_hyperparameters_and_weights_as_axes(tmp_path):
    out = tmp_path / "s"
    res = runner.invoke(app, ["sweep", "--K", "6", "--ratios", "10", "--loss", "ce,la,vs", "--tau", "0,2",
                              "--gamma", "0.5", "--class-weights", "none,class-balanced", "--beta", "0.99",
                              "-o", str(out), "--no-progress", "-j", "1"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((out / "results.csv").open()))
    # ce: 2 weightings; la: 2 taus x 2; vs: 2 taus x 1 gamma x 2
    assert len(rows) == 2 + 4 + 4
    got = {(r["loss"], r["tau"], r["gamma"], r["class_weights"], r["beta"]) for r in rows}
    assert ("ce", "", "", "none", "") in got and ("ce", "", "", "class-balanced", "0.99") in got
    assert ("la", "2.0", "", "class-balanced", "0.99") in got and ("vs", "0.0", "0.5", "none", "") in got
    assert all(r["status"] == "optimal" for r in rows)
    # la at tau = 0 is CE: the same optimum
    value = {(r["loss"], r["tau"], r["class_weights"]): float(r["objective"]) for r in rows}
    assert value[("la", "0.0", "none")] == pytest.approx(value[("ce", "", "none")], abs=1e-9)
    per_class = list(csv.DictReader((out / "per_class.csv").open()))
    assert {"tau", "gamma", "margin", "class_weights", "beta"} <= set(per_class[0])


@pytest.mark.parametrize("args,message", [
    (["--margin", "0.3"], "Error: The 'margin' parameter must be left unset unless the losses include one that takes "
                          "it ('ldam'). Got 0.3 instead."),
    (["--loss", "la", "--beta", "0.9"], "Error: The 'beta' parameter must be left unset unless class_weights include "
                                        "'class-balanced'. Got 0.9 instead."),
    (["--class-weights", "focal"], "Error: The 'class-weights' parameter must be one of 'none', 'inverse', 'sqrt', "
                                   "'class-balanced'. Got 'focal' instead."),
])
def test_sweep_refuses_axes_without_effect(tmp_path, args, message):
    res = runner.invoke(app, ["sweep", "-o", str(tmp_path / "x"), *args])
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1] == message
