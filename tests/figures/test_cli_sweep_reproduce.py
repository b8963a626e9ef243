"""`lpm sweep` and `lpm reproduce` through the CLI: outputs, exit codes, messages."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from lpm.cli import app
from lpm.sweep import tasks as sweep_tasks

runner = CliRunner()
SIMS = ("minority-collapse", "fixed-etf", "convergence", "gradient-decomposition", "phase-diagram", "long-tailed")


def invoke(*args):
    return runner.invoke(app, list(args))


def test_reproduce_list_names_all_six():
    result = invoke("reproduce", "--list")
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.output.strip().splitlines()]
    assert set(SIMS) <= set(listed)


def test_reproduce_unknown_name_exits_2_with_the_valid_names():
    result = invoke("reproduce", "no-such-figure")
    assert result.exit_code == 2
    sims = Path(__file__).resolve().parents[2] / "sims"
    names = ", ".join(repr(n) for n in sorted(p.stem for p in sims.glob("*.toml")))
    assert f"The 'name' parameter of lpm reproduce must be one of {names} (or 'all')." in " ".join(result.output.split())
    assert "Got 'no-such-figure' instead." in result.output


def test_reproduce_needs_a_name_and_positive_jobs():
    result = invoke("reproduce")
    assert result.exit_code == 2
    names = ", ".join(sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "sims").glob("*.toml")))
    assert "convergence, convergence-map, fixed-etf, gradient-decomposition" in names
    assert result.stderr.strip() == (f"Error: Missing argument 'name': one of {names}, or 'all' "
                                     "(lpm reproduce --list describes each).")
    result = invoke("reproduce", "fixed-etf", "--jobs", "0")
    assert result.exit_code == 2 and "--jobs" in result.output


def test_sweep_writes_the_table_and_resumes(tmp_path):
    out = tmp_path / "run"
    args = ("sweep", "-o", str(out), "--ratios", "1,100", "--classifier", "fixed-etf,learnable", "--loss", "ce",
            "--solver", "auto", "--ewh", "5", "--seeds", "0", "--no-progress")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "4 cells" in result.output and "(0 failed)" in result.output
    table = pd.read_csv(out / "results.csv")
    assert set(table["solver"]) == {"analytic", "nuclear"} and (table["E_H"] == 5.0).all()
    etf = table[table["classifier"] == "fixed-etf"]
    np.testing.assert_allclose(etf["classifier_minority_cos"], -1 / 9, atol=1e-12)
    learn = table[table["classifier"] == "learnable"].set_index("ratio")
    assert learn.loc[100.0, "collapse_index"] < 1e-6  # collapsed at R=100 (E_W·E_H = 5, K_A = 5)
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    assert invoke(*args).exit_code == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")} == stamps  # nothing rerun
    info = json.loads((out / "sweep.json").read_text())
    assert info["grids"][0]["ewh"] == [5.0] and info["cells_run_now"] == 0


def test_sweep_with_failed_cells_exits_1_and_says_so_last(tmp_path, monkeypatch):
    original = sweep_tasks.get_task("solve")

    def failing_at_100(spec):
        if spec["problem"]["ratio"] == 100.0:
            raise RuntimeError("no optimum at R = 100")
        return original(spec)

    monkeypatch.setitem(sweep_tasks._TASKS, "solve", failing_at_100)
    result = invoke("sweep", "-o", str(tmp_path), "--classifier", "fixed-etf", "--ratios", "1,100", "--solver",
                    "analytic", "--jobs", "1", "--no-progress")
    assert result.exit_code == 1
    assert "2 cells" in result.stdout and "(1 failed)" in result.stdout
    assert result.stderr.strip().splitlines() == [
        "Error: 1 of 2 cells failed; the first: RuntimeError: no optimum at R = 100 (every error is in the "
        "'error' column; --retry-failed reruns them)."]
    table = pd.read_csv(tmp_path / "results.csv")
    assert list(table["outcome"]) == ["ok", "error"]


def test_sweep_bad_options_exit_2():
    cases = [
        (("--ratio-range", "1:1e4"), "The 'ratio-range' parameter must be START:STOP:NUM"),
        (("--ratios", "1,x"), "The 'ratios' parameter must be a comma-separated list of numbers"),
        (("--ratios", "0.5"), "The 'ratio' parameter must be a number >= 1. Got 0.5 instead."),
        (("--loss", "hinge"), "The 'loss' parameter must be one of 'ce', 'dr', 'dr-unscaled', 'mse', 'la', 'cdt', 'ldam', 'vs'. Got 'hinge' instead."),
        (("--solver", "magic"), "The 'solver' parameter must be one of"),
        (("--setting", "steps=3"), "The 'setting' parameter must be SOLVER.KEY=VALUE"),
        (("--ratios", "1", "--ratio-range", "1:10:2"), "The 'ratios' parameter must be omitted when --ratio-range"),
    ]
    for extra, message in cases:
        result = invoke("sweep", "-o", "unused-dir", *extra)
        assert result.exit_code == 2, (extra, result.output)
        assert message in result.output, (extra, result.output)
