"""`lpm compare` and `lpm reproduce theory-vs-practice` on tiny runs trained through
full_model's API (synthetic-lt, 3 epochs), and on broken run folders."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lpm.cli import app
from lpm.compare import load_run_geometry, problem_for_run
from lpm.compare.practice import ensure_run, run_settings
from lpm.reproduce import get_simulation, reproduce

runner = CliRunner()


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The theory-vs-practice smoke run: learnable+CE at R = 4, 20 and fixed-ETF+DR at R = 20."""
    return reproduce("theory-vs-practice", tmp_path_factory.mktemp("tvp"), smoke=True, progress=False)


def test_reproduce_writes_figure_tables_and_reuses_runs(smoke):
    assert [p.name for p in smoke.figures] == ["theory-vs-practice.png", "theory-vs-practice.pdf"]
    for path in smoke.figures:
        assert path.stat().st_size > 5000
    record = json.loads((smoke.out_dir / "practice.json").read_text())
    assert [r["action"] for r in record["runs"]] == ["trained"] * 3
    names = ["learnable-ce_R4_seed0", "learnable-ce_R20_seed0", "etf-dr_R20_seed0"]
    assert list(smoke.tables["distances"]["run"]) == names
    for stem in ("distances", "collapse_vs_ratio"):  # the smoke run skips the per-run figures
        assert (smoke.out_dir / "compare" / f"{stem}.png").is_file()
        assert (smoke.out_dir / "compare" / f"{stem}.pdf").is_file()
    assert (smoke.out_dir / "compare" / "distances.csv").is_file()
    settings = run_settings(get_simulation("theory-vs-practice"), smoke.out_dir, smoke=True)
    assert ensure_run(settings[0]) == {"run": names[0], "action": "reused", "seconds": 0.0}


def test_theory_vs_practice_claims(smoke):
    t = smoke.tables["distances"].set_index("run")
    etf = t.loc["etf-dr_R20_seed0"]
    # fixed ETF + DR: the LPM optimum is the ETF itself (Y22 Thm 2), with the run's own classifier
    # (stored in float32 by the network, hence E_W = 1 to 1e-7)
    assert etf["lpm_solver"] == "analytic" and etf["E_H"] == 1.0
    np.testing.assert_allclose(etf["E_W"], 1.0, rtol=1e-7)
    np.testing.assert_allclose(etf["lpm_collapse_index"], 1.0, atol=1e-12)
    np.testing.assert_allclose(etf["dist_lpm_classifier"], 0.0, atol=1e-7)
    np.testing.assert_allclose(etf["dist_lpm_means"], etf["dist_etf_means"], atol=1e-7)
    # learnable + CE, trained with weight decay: set beside the weight-decay model with λ_W = the run's
    # decay and λ_H from the optimum's balance (theory.md §9, §13), solved with a certificate
    for name in ("learnable-ce_R4_seed0", "learnable-ce_R20_seed0"):
        row = t.loc[name]
        assert row["lpm_solver"] == "nuclear" and row["lpm_status"] == "optimal" and row["budget"] == "weight-decay"
        assert row["budget_source"].startswith("lambda_W = 0.0005 = the run's weight decay; lambda_H = ")
        assert row["lambda_W"] == 5e-4 and row["lambda_H"] > 0
        assert row["minority_rule"].startswith("minority: classes with fewer than 100 training samples")
    c = smoke.tables["collapse"]
    curve = c[(c["source"] == "lpm") & (c["head"] == "learnable")].sort_values("ratio").set_index("ratio")
    assert curve.index[0] == 1.0 and {4.0, 20.0} <= set(curve.index)
    assert set(c["minority_rule"]) == {"minority: classes with fewer than 100 training samples"}
    np.testing.assert_allclose(curve.loc[1.0, "collapse_index"], 1.0, atol=1e-6)  # balanced: the ETF


def test_compare_cli_on_a_trained_run(smoke, tmp_path):
    run_dir = smoke.out_dir / "runs" / "learnable-ce_R20_seed0"
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["compare", str(run_dir), "--out", str(out), "--EW", "2", "--EH", "3"])
    assert res.exit_code == 0, res.output
    assert "budgets (class-average): E_W = 2 set by the user; E_H = 3 set by the user" in res.output
    for stem in ("learnable-ce_R20_seed0_cosines", "learnable-ce_R20_seed0_groups", "distances"):
        assert (out / f"{stem}.png").stat().st_size > 5000 and (out / f"{stem}.pdf").is_file()
    table = pd.read_csv(out / "distances.csv")
    config = json.loads((run_dir / "config.json").read_text())
    counts = config["data"]["train_counts"]
    assert len(table) == 1 and table["counts"][0] == " ".join(str(c) for c in counts)
    assert (table["E_W"][0], table["E_H"][0], table["head"][0], table["loss"][0]) == (2.0, 3.0, "learnable", "ce")
    problem, _ = problem_for_run(load_run_geometry(run_dir))
    assert problem.counts == tuple(float(c) for c in counts)
    assert (problem.classifier, problem.loss, problem.d) == ("learnable", "ce", config["model"]["feature_dim"])
    assert problem.majority == config["data"]["majority"]



def test_compare_cli_weight_decay_rule_and_class_options(smoke, tmp_path):
    """The options of the library reach it from the command line: the weight-decay model with the
    user's lambda_W, lambda_H, and the minority and fitted thresholds, each stated in the table."""
    run_dir = smoke.out_dir / "runs" / "learnable-ce_R20_seed0"
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["compare", str(run_dir), "-o", str(out), "--budget-rule", "weight-decay",
                              "--lambda-W", "0.001", "--lambda-H", "0.002", "--minority-below", "7",
                              "--fitted-above", "0.25"])
    assert res.exit_code == 0, res.output
    row = pd.read_csv(out / "distances.csv").iloc[0]
    assert (row["budget"], row["lambda_W"], row["lambda_H"]) == ("weight-decay", 0.001, 0.002)
    # the norm budgets do not enter the weight-decay model of a learnable head: no number in their columns
    assert pd.isna(row["E_W"]) and pd.isna(row["E_H"]) and pd.isna(row["E_W_times_E_H"])
    assert "  minority classes [" in res.stdout and "(classes with fewer than 7 training samples)" in res.stdout
    assert row["budget_source"] == "lambda_W = 0.001 set by the user; lambda_H = 0.002 set by the user"
    assert row["minority_rule"].startswith("minority: classes with fewer than 7 training samples")
    assert row["minority_rule"].endswith("unfitted: training accuracy below 0.25")
    res = runner.invoke(app, ["compare", str(run_dir), "-o", str(out), "--fitted-above", "2"])
    assert res.exit_code == 2
    assert res.stderr.strip() == "Error: The 'fitted_above' parameter must be a number >= 0 and <= 1. Got 2.0 instead."


def _broken_copy(smoke, tmp_path, name):
    folder = tmp_path / name
    shutil.copytree(smoke.out_dir / "runs" / "etf-dr_R20_seed0", folder)
    return folder


def test_missing_file_is_named(smoke, tmp_path):
    folder = _broken_copy(smoke, tmp_path, "no-summary")
    (folder / "summary.json").unlink()
    res = runner.invoke(app, ["compare", str(folder)])
    assert res.exit_code == 2
    assert res.stderr.strip() == (f"Error: The 'run_dir' parameter must be a run folder written by `lpm train-deep` "
                                  f"(missing summary.json). Got '{folder}' instead.")
    assert not (tmp_path / "compare").exists()


def test_incompatible_format_version_is_named(smoke, tmp_path):
    folder = _broken_copy(smoke, tmp_path, "old-format")
    config = json.loads((folder / "config.json").read_text())
    config["format_version"] = 0
    (folder / "config.json").write_text(json.dumps(config))
    res = runner.invoke(app, ["compare", str(folder)])
    assert res.exit_code == 2
    assert res.stderr.strip() == (f"Error: The 'run_dir' parameter must be a run folder written by `lpm train-deep` "
                                  f"(config.json has format_version 0, this lpm reads 1). Got '{folder}' instead.")


def test_not_a_folder(tmp_path):
    res = runner.invoke(app, ["compare", str(tmp_path / "nowhere")])
    assert res.exit_code == 2
    assert res.stderr.strip() == (f"Error: The 'run_dir' parameter must be a run folder written by `lpm train-deep` "
                                  f"(no such folder). Got '{tmp_path / 'nowhere'}' instead.")
