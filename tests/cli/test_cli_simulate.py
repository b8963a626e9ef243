import json

import pytest
from typer.testing import CliRunner

from lpm.cli import app
from lpm.core.solvers.analytic import ce_etf_optimal_loss

runner = CliRunner()


def test_simulate_fixed_etf_json_has_required_fields():
    res = runner.invoke(app, ["simulate", "--K", "10", "--ratio", "100", "--loss", "ce",
                              "--classifier", "fixed-etf", "--json"])
    assert res.exit_code == 0, res.output
    [entry] = json.loads(res.stdout)
    for key in ("classifier", "loss", "solver", "objective", "gap", "metrics"):
        assert key in entry
    for key in ("classifier_minority_cos", "feature_minority_cos", "collapse_index", "nc1", "nc2", "nc3"):
        assert key in entry["metrics"]
    assert entry["classifier"] == "fixed-etf" and entry["solver"] == "analytic"
    assert entry["budget"] == "per-sample"
    assert entry["objective"] == pytest.approx(ce_etf_optimal_loss(10, 1, 5), abs=1e-12)
    assert entry["metrics"]["feature_minority_cos"] == pytest.approx(-1 / 9, abs=1e-12)


def test_simulate_budget_override_is_reported(tmp_path):
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["simulate", "--classifier", "fixed-etf", "--budget", "class-average",
                              "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "class-average" in res.stdout
    [entry] = json.loads(out.read_text())
    assert entry["budget"] == "class-average" and entry["problem"]["budget"] == "class-average"


@pytest.mark.parametrize("args,message", [
    (["--K", "1"], "Error: The 'K' parameter must be an int >= 2. Got 1 instead."),
    (["--ratio", "0.5"], "Error: The 'ratio' parameter must be a number >= 1. Got 0.5 instead."),
    (["--EH", "0"], "Error: The 'E_H' parameter must be a number >= 1e-08 and <= 1e+08. Got 0.0 instead."),
    (["--EW", "-2"], "Error: The 'E_W' parameter must be a number >= 1e-08 and <= 1e+08. Got -2.0 instead."),
    (["--classifier", "fixed-etf", "--d", "3"],
     "Error: The 'd' parameter must be an int >= K-1 = 9 for a fixed simplex ETF with K=10. Got 3 instead."),
    (["--counts", "5,4,3", "--K", "4"],
     "Error: The 'K' parameter must be left out with counts (K is the number of counts given, 3). Got 4 instead."),
    (["--K", "10", "--counts", "500,500,5,5"],
     "Error: The 'K' parameter must be left out with counts (K is the number of counts given, 4). Got 10 instead."),
    (["--counts", "5,1", "--ratio", "10"],
     "Error: The 'ratio' parameter must be left out with counts (the counts fix the class sizes). Got 10.0 instead."),
    (["--counts", "5,1", "--profile", "exp"],
     "Error: The 'profile' parameter must be left out with counts (the counts fix the class sizes). "
     "Got 'exp' instead."),
    (["--counts", "5"], "Error: The 'counts' parameter must be a list of at least 2 positive, finite numbers. "
                        "Got [5.0] instead."),
    (["--counts", "5,-1"], "Error: The 'counts' parameter must be a list of at least 2 positive, finite numbers. "
                           "Got [5.0, -1.0] instead."),
    (["--counts", "5,inf"], "Error: The 'counts' parameter must be a list of at least 2 positive, finite numbers. "
                            "Got [5.0, inf] instead."),
    (["--counts", "5,x"],
     "Error: The 'counts' parameter must be a comma-separated list of numbers, e.g. '1,10,100'. Got '5,x' instead."),
    (["--majority", "10"], "Error: The 'majority' parameter must be an int >= 1 and <= 9. Got 10 instead."),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    res = runner.invoke(app, ["simulate", *args])
    assert res.exit_code == 2
    assert res.stderr.strip() == message
    assert "Traceback" not in res.output


@pytest.mark.parametrize("args,name", [(["--loss", "hinge"], "--loss"), (["--solver", "magic"], "--solver"),
                                       (["--profile", "zipf"], "--profile")])
def test_unknown_names_are_rejected_by_the_option(args, name):
    res = runner.invoke(app, ["simulate", *args])
    assert res.exit_code == 2
    assert f"Invalid value for '{name}'" in res.output and "Traceback" not in res.output


def test_console_entry_point_exits_2_without_traceback():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "lpm", "simulate", "--ratio", "0.5"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "Error: The 'ratio' parameter must be a number >= 1. Got 0.5 instead."


def test_cvx_solver_is_only_for_the_convex_back_end():
    res = runner.invoke(app, ["simulate", "--cvx-solver", "SCS", "--solver", "nuclear"])
    assert res.exit_code == 2
    assert res.stderr.strip() == ("Error: The 'cvx_solver' parameter must be given only with --solver convex "
                                  "(or auto, which it then turns into convex). Got 'SCS' instead.")


def test_default_learnable_ce_collapses_and_fixed_etf_does_not():
    """The issue's headline: at R = 100 the learnable minority rows merge, the ETF's do not."""
    res = runner.invoke(app, ["simulate", "--K", "10", "--ratio", "100", "--loss", "ce", "--json"])
    assert res.exit_code == 0, res.output
    learnable, etf = json.loads(res.stdout)
    assert (learnable["classifier"], learnable["budget"]) == ("learnable", "class-average")
    assert (etf["classifier"], etf["budget"]) == ("fixed-etf", "per-sample")
    assert learnable["gap"] <= 1e-8 and etf["gap"] <= 1e-12           # both certified
    assert learnable["metrics"]["collapse_index"] < 1e-6
    assert learnable["metrics"]["classifier_minority_cos"] == pytest.approx(1.0, abs=1e-6)
    assert etf["metrics"]["collapse_index"] == pytest.approx(1.0, abs=1e-12)


def test_gradient_run_reports_its_gap_to_the_certified_optimum():
    res = runner.invoke(app, ["simulate", "--solver", "gradient", "--classifier", "learnable", "--ratio", "3",
                              "--json"])
    assert res.exit_code == 0, res.output
    [entry] = json.loads(res.stdout)
    assert entry["solver"] == "gradient"
    assert entry["gap_to_certified_optimum"] is not None
    assert 0 <= entry["gap_to_certified_optimum"] <= 1e-6


def test_learnable_dr_is_flagged_as_degenerate():
    res = runner.invoke(app, ["simulate", "--loss", "dr"])
    assert res.exit_code == 0, res.output
    assert "learnable + dr is degenerate" in res.stdout
    for args in (["--loss", "ce"], []):  # the default pairs DR with the fixed ETF only
        res = runner.invoke(app, ["simulate", *args])
        assert "degenerate" not in res.stdout


def _json(*args):
    res = runner.invoke(app, ["simulate", *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_default_shows_the_mission_learnable_ce_collapses_fixed_etf_dr_does_not():
    res = runner.invoke(app, ["simulate", "--K", "10", "--ratio", "100"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == "K=10 classes (K_A=5 majority), step profile, R=100, E_W=1, E_H=5, d=10"
    assert "learnable + ce" in lines[2] and "fixed-etf + dr" in lines[2]
    assert lines[-4:] == ["learnable + ce: COLLAPSED, minority classifiers merged",
                          "  collapse index (1 = ETF, 0 = merged): angle-only 0.000, norm-aware 0.000",
                          "fixed-etf + dr: not collapsed",
                          "  collapse index (1 = ETF, 0 = merged): angle-only 1.000, norm-aware 1.000"]
    assert max(map(len, lines)) <= 80
    learnable, etf = _json("--K", "10", "--ratio", "100")
    assert (learnable["classifier"], learnable["loss"], etf["classifier"], etf["loss"]) == \
        ("learnable", "ce", "fixed-etf", "dr")
    assert learnable["metrics"]["collapse_index"] < 1e-6 and etf["metrics"]["collapse_index"] == pytest.approx(1)
    assert etf["objective"] <= 1e-12 and etf["gap"] <= 1e-12  # DR's optimum is 0, at the ETF itself


def test_out_writes_the_json_and_prints_the_table(tmp_path):
    out = tmp_path / "new" / "folder" / "r.json"  # missing parents are created
    res = runner.invoke(app, ["simulate", "--classifier", "fixed-etf", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "fixed-etf + ce" in res.stdout and res.stdout.rstrip().endswith(f"wrote {out}")
    written = json.loads(out.read_text())
    printed = _json("--classifier", "fixed-etf")
    for entry in (written[0], printed[0]):
        entry.pop("time_s")
    assert written == printed


def test_counts_are_relative_sizes():
    """Only proportions enter the model: fractions and huge counts give the same optimum."""
    base = _json("--counts", "500,500,5,5", "--loss", "ce")
    for counts in ("0.5,0.5,0.005,0.005", "5e305,5e305,5e303,5e303"):
        same = _json("--counts", counts, "--loss", "ce")
        for a, b in zip(base, same):
            assert b["problem"]["counts"] != a["problem"]["counts"]
            assert b["objective"] == pytest.approx(a["objective"], rel=1e-9, abs=1e-12)
            assert b["metrics"]["collapse_index"] == pytest.approx(a["metrics"]["collapse_index"], abs=1e-6)
    [both] = [_json("--counts", c, "--classifier", "learnable") for c in ("1e308,1e308",)]
    [balanced] = _json("--counts", "1,1", "--classifier", "learnable")
    assert both[0]["objective"] == pytest.approx(balanced["objective"], rel=1e-12)


def test_the_largest_ratios_are_solved_as_their_limit():
    """R = 1e308 (the largest float) is the R → ∞ limit: minority proportions ~1e-308 change nothing."""
    huge, limit = _json("--ratio", "1e308"), _json("--ratio", "1e300")
    for a, b in zip(huge, limit):
        assert a["status"] == "optimal"
        assert a["objective"] == pytest.approx(b["objective"], rel=1e-12)
        assert a["metrics"]["collapse_index"] == pytest.approx(b["metrics"]["collapse_index"], abs=1e-9)


def test_fixed_etf_under_the_class_average_budget_is_not_called_collapsed():
    """The class-average budget shrinks the minority means (norm-aware index ≈ 0.08) but keeps
    every direction m_k: the verdict, judged on the angle-only index, says not collapsed."""
    res = runner.invoke(app, ["simulate", "--classifier", "fixed-etf", "--loss", "ce", "--budget",
                              "class-average"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().splitlines()[-2:] == [
        "fixed-etf + ce: not collapsed",
        "  collapse index (1 = ETF, 0 = merged): angle-only 1.000, norm-aware 1.000"]


def test_simulate_max_margin_limit():
    """--budget max-margin solves learnable + CE's vanishing-regularisation limit (theory.md §15):
    the SELI closed form, no norm budgets or weight decays in the labels."""
    res = runner.invoke(app, ["simulate", "--budget", "max-margin", "--ratio", "100"])
    assert res.exit_code == 0, res.output
    first = res.stdout.splitlines()[0]
    assert first == ("K=10 classes (K_A=5 majority), step profile, R=100, max-margin limit (vanishing weight "
                     "decay: no E_W, E_H or lambda), d=10")
    assert "learnable + ce" in res.stdout and "fixed-etf" not in res.stdout
    res = runner.invoke(app, ["simulate", "--budget", "max-margin", "--counts", "50,20,7,3,1", "--json"])
    [entry] = json.loads(res.stdout)
    assert entry["solver"] == "analytic" and entry["budget"] == "max-margin"
    assert entry["problem"]["E_W"] is None and entry["problem"]["lambda_H"] is None
    assert entry["gap"] <= 1e-12
    res = runner.invoke(app, ["simulate", "--budget", "max-margin", "--classifier", "fixed-etf"])
    assert res.exit_code == 2
    assert "Error: The 'classifier' parameter must be 'learnable' with budget='max-margin'" in res.output


def test_simulate_weight_decay_labels_its_coefficients():
    res = runner.invoke(app, ["simulate", "--budget", "weight-decay", "--counts", "50,5,5", "--loss", "ce",
                              "--lambda-W", "1e-3", "--lambda-H", "1e-3"])
    assert res.exit_code == 0, res.output
    first = res.stdout.splitlines()[0]
    # each column names the numbers that enter its model: λ_W, λ_H for the learnable head, E_W (the
    # fixed classifier's scale) and λ_H for the fixed one; E_H enters neither
    assert first.endswith("learnable + ce: λ_W=0.001, λ_H=0.001; fixed-etf + ce: E_W=1, λ_H=0.001, d=3")
    assert "E_H" not in first
