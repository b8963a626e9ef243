"""Bad input to `lpm sweep` and `lpm reproduce`, table-driven: each case exits 2 with one
line on stderr naming the option or the file, no traceback, and no new or changed file
in the output location. Then the sweep folder's own rules: a lock against a second
sweep, a different grid refused, stale temporaries removed, Ctrl-C reported."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lpm.cli import app
from lpm.sweep import Grid, run_cells
from lpm.sweep import tasks as sweep_tasks
from lpm.sweep.folder import locked

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

SWEEP_CASES = [
    (["--K", "1"], "The 'K' parameter must be an int >= 2. Got 1 instead."),
    (["--K", "nan"], "The 'K' parameter must be a comma-separated list of integers, e.g. '0,1,2'. Got 'nan'"),
    (["--K", "inf"], "The 'K' parameter must be a comma-separated list of integers, e.g. '0,1,2'. Got 'inf'"),
    (["--majority", "20"], "The 'majority' parameter must be an int >= 1 and <= 9. Got 20 instead."),
    (["--seeds", "-1"], "The 'seed' parameter must be an int >= 0 and <= 4294967295. Got -1 instead."),
    (["--EW", "0"], "The 'E_W' parameter must be a number >= 1e-08 and <= 1e+08. Got 0.0 instead."),
    (["--EH", "-1"], "The 'E_H' parameter must be a number >= 1e-08 and <= 1e+08. Got -1.0 instead."),
    (["--EW", ""], "The 'EW' parameter must be a comma-separated list of numbers, e.g. '1,10,100'. Got ''"),
    (["--solver", "gradient", "--setting", "gradient.steps=-5"],
     "The 'steps' parameter of solver 'gradient' must be an int >= 1. Got -5 instead."),
    (["--solver", "gradient", "--setting", "gradient.nosuch=3"],
     "The 'nosuch' parameter of solver 'gradient' must be one of the settings"),
    (["--setting", "nosolver.steps=3"],
     "The 'setting' parameter must be a solver of this grid: one of 'auto'. Got 'nosolver' instead."),
    (["--setting", "gradient.steps=3"],
     "The 'setting' parameter must be a solver of this grid: one of 'auto'. Got 'gradient' instead."),
    (["--ratios", ""], "The 'ratios' parameter must be a comma-separated list of numbers, e.g. '1,10,100'. Got ''"),
    (["--d", "3"], "The 'd' parameter must be an int >= K-1 = 9 for the 'convex' solver"),
    (["--classifier", "fixed-etf", "--d", "3"],
     "The 'd' parameter must be an int >= K-1 = 9 for a fixed simplex ETF with K=10. Got 3 instead."),
    (["--classifier", "fixed-etf", "--solver", "nuclear"],
     "The 'nuclear' solver cannot solve this problem: the nuclear-norm form needs a learnable classifier"),
    (["--profile", "exp", "--ratios", "1e6"], "The 'n_max' parameter must be large enough that every class keeps"),
    (["--ratio-range", "1:1e4:0"], "The 'ratio range count' parameter must be an int >= 1. Got 0.0 instead."),
    (["--jobs", "2", "--cluster", "local:2"], "The 'jobs' parameter must be omitted with --cluster"),
]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*")}


def assert_refused(result, message: str, folder: Path, before: dict) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert snapshot(folder) == before  # nothing new, nothing changed


@pytest.mark.parametrize("args, message", SWEEP_CASES, ids=[" ".join(a) for a, _ in SWEEP_CASES])
def test_sweep_refuses_bad_grids_before_any_cell_runs(tmp_path, args, message):
    before = snapshot(tmp_path)
    result = runner.invoke(app, ["sweep", "-o", str(tmp_path / "out"), "--no-progress", *args])
    assert_refused(result, message, tmp_path, before)


def test_sweep_refuses_another_grid_in_a_finished_folder_but_accepts_an_extension(tmp_path):
    out = tmp_path / "out"
    run_cells(Grid(ratio=[1.0, 100.0], solver=["nuclear"], name="cli"), out, progress=False)
    before = snapshot(tmp_path)
    result = runner.invoke(app, ["sweep", "-o", str(out), "--ratios", "10", "--solver", "nuclear", "--no-progress"])
    assert_refused(result, "The 'out' parameter must be a new folder or one holding this sweep: it holds 2 "
                           "finished cells of another grid", tmp_path, before)
    # a grid that keeps every recorded cell (more ratios) extends the sweep
    result = runner.invoke(app, ["sweep", "-o", str(out), "--ratios", "1,10,100", "--solver", "nuclear",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "sweep.json").read_text())["cells_run_now"] == 1


def test_sweep_refuses_a_folder_another_sweep_holds(tmp_path):
    out = tmp_path / "out"
    with locked(out):  # as a running sweep holds it
        before = snapshot(tmp_path)
        result = runner.invoke(app, ["sweep", "-o", str(out), "--solver", "nuclear", "--no-progress"])
        assert_refused(result, f"The 'out' parameter must be a folder that no other sweep is writing to (lpm "
                               f"process {os.getpid()} (", tmp_path, before)
        assert f"holds {out / '.lock'}; wait for it to finish" in result.stderr
    assert runner.invoke(app, ["sweep", "-o", str(out), "--solver", "nuclear", "--no-progress"]).exit_code == 0
    assert not (out / ".lock").exists()  # a finished sweep leaves no lock file behind


def test_stale_temporaries_are_removed_on_the_next_start(tmp_path):
    out = tmp_path / "out"
    grid = Grid(ratio=[1.0, 100.0], solver=["nuclear"])
    run_cells(grid, out, progress=False)
    stale = [out / ".results.csv.k2j3h4.tmp", out / "cells" / ".0123456789abcdef.json.x7y8.tmp"]
    for path in stale:
        path.write_text("half-written")
    run_cells(grid, out, progress=False)
    assert not any(p.exists() for p in stale)


def test_ctrl_c_says_how_many_cells_are_done_and_how_to_resume(tmp_path, monkeypatch):
    original, calls = sweep_tasks.get_task("solve"), []

    def interrupted_third(spec):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(spec)

    monkeypatch.setitem(sweep_tasks._TASKS, "solve", interrupted_third)
    out = tmp_path / "out"
    args = ["sweep", "-o", str(out), "--classifier", "fixed-etf", "--ratios", "1,10,100,1000", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 130
    assert result.stderr.strip() == (f"Interrupted: 2 of 4 cells done in {out}; run the same command again to "
                                     f"resume.")
    assert len(list((out / "cells").glob("*.json"))) == 2
    calls.clear()
    assert runner.invoke(app, args).exit_code == 0 and len(calls) == 2


@pytest.mark.parametrize("executor", [["--jobs", "2"], ["--cluster", "local:2"]], ids=["pool", "local-cluster"])
def test_sigint_stops_a_sweep_with_workers_promptly_and_it_resumes(tmp_path, executor):
    """A real Ctrl-C (SIGINT to the whole process group) while worker processes are busy."""
    if executor[0] == "--cluster":
        pytest.importorskip("distributed", reason="needs the 'distributed' extra")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "out"
    args = [sys.executable, "-m", "lpm", "sweep", "-o", str(out), "--ratios", "1,3,10,30,100,300", "--solver",
            "gradient", "--setting", "gradient.steps=400", *executor, "--no-progress"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 180
    while not list((out / "cells").glob("*.json")) if (out / "cells").is_dir() else True:
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err  # the workers leave Ctrl-C to the client
    done = len(list((out / "cells").glob("*.json")))
    assert err.strip().splitlines()[-1] == (f"Interrupted: {done} of 6 cells done in {out}; run the same command "
                                            f"again to resume.")
    res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and json.loads((out / "sweep.json").read_text())["cells_run_now"] == 6 - done


def write_sim(folder: Path, name: str, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.toml").write_text(text)


GOOD_GRID = '[[grids]]\ntask = "solve"\nname = "g"\nratio = [1, 10]\nclassifier = ["fixed-etf"]\nsolver = ["analytic"]\n'
REPRODUCE_CASES = [
    ("empty-dir", None, "The 'sims-dir' parameter must be a folder holding simulation files (*.toml); it has none."),
    ("a-file", None, "The 'sims-dir' parameter must be a folder of simulation files (*.toml)."),
    ("bad", 'name = "bad"\nplot = "minority_collapse"\n' + GOOD_GRID.replace("[1, 10]", "[1, 10]\nK = \"ten\""),
     "simulation file bad.toml, grid 'g': The 'K' parameter must be an int >= 2. Got 'ten' instead."),
    ("bad", 'name = "bad"\ntitle = 5\n', "The 'title' parameter of simulation file bad.toml must be a string. Got 5"),
    ("bad", 'name = "bad"\ngrids = 3\n', "The 'grids' parameter of simulation file bad.toml must be an array of "
                                         "tables. Got 3 instead."),
    ("bad", 'name = "bad"\n' + GOOD_GRID, "The 'plot' parameter must be one of 'minority_collapse'"),
    ("bad", 'name = "bad"\nplot = "minority_collapse"\n' + GOOD_GRID.replace("ratio = [1, 10]", "ratio_range = [1, 10]"),
     "simulation file bad.toml, grid 'g': The 'ratio_range' parameter must be [START, STOP, NUM]"),
    ("bad", 'name = "bad"\nplot = "minority_collapse"\n' + GOOD_GRID + 'solver_settings = { nuclear = { tol = 0 } }\n',
     "simulation file bad.toml, grid 'g': The 'setting' parameter must be a solver of this grid: one of 'analytic'"),
    ("bad", 'name = "bad"\nplot = "minority_collapse"\n' + GOOD_GRID.replace('"analytic"', '"gradient"') + 'seed = [-2]\n',
     "simulation file bad.toml, grid 'g': The 'seed' parameter must be an int >= 0 and <= 4294967295. Got -2 instead."),
]


@pytest.mark.parametrize("kind, text, message", REPRODUCE_CASES, ids=[m[:40] for _, _, m in REPRODUCE_CASES])
def test_reproduce_refuses_bad_simulation_folders_and_files(tmp_path, kind, text, message):
    sims = tmp_path / "sims"
    if kind == "empty-dir":
        sims.mkdir()
    elif kind == "a-file":
        sims.write_text("not a folder")
    else:
        write_sim(sims, kind, text)
    before = snapshot(tmp_path)
    result = runner.invoke(app, ["reproduce", "all", "--sims-dir", str(sims), "-o", str(tmp_path / "out"),
                                 "--no-progress"])
    assert_refused(result, message, tmp_path, before)


def test_reproduce_all_checks_every_file_before_running_any(tmp_path):
    sims = tmp_path / "sims"
    write_sim(sims, "a-good", 'name = "a-good"\nplot = "fixed_vs_learnable"\n' + GOOD_GRID)
    write_sim(sims, "b-bad", 'name = "b-bad"\nplot = "minority_collapse"\n' + GOOD_GRID.replace("[1, 10]", "[0.5]"))
    before = snapshot(tmp_path)
    result = runner.invoke(app, ["reproduce", "all", "--sims-dir", str(sims), "-o", str(tmp_path / "out"),
                                 "--no-progress"])
    assert_refused(result, "simulation file b-bad.toml, grid 'g': The 'ratio' parameter must be a number >= 1. "
                           "Got 0.5 instead.", tmp_path, before)


def test_reproduce_surfaces_the_first_cell_error(tmp_path, monkeypatch):
    def failing(spec):
        raise RuntimeError(f"cannot solve R = {spec['problem']['ratio']:g}")

    monkeypatch.setitem(sweep_tasks._TASKS, "solve", failing)
    write_sim(tmp_path / "sims", "broken", 'name = "broken"\nplot = "minority_collapse"\n' + GOOD_GRID)
    result = runner.invoke(app, ["reproduce", "broken", "--sims-dir", str(tmp_path / "sims"), "-o",
                                 str(tmp_path / "out"), "--jobs", "1", "--no-progress"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"Error: simulation 'broken': all 2 cells failed; the first: RuntimeError: "
                                     f"cannot solve R = 1 (records in {tmp_path / 'out' / 'cells'})")
