"""Cells that one batched call can solve are solved together, and the table is the
cell-by-cell table to the last digit; the sweep path with the nuclear and analytic
solvers loads neither torch, cvxpy nor pandas."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from lpm.core.solvers.nuclear import NuclearSolver
from lpm.sweep import Grid, log_range, run_cells
from lpm.sweep import tasks as sweep_tasks

ROOT = Path(__file__).resolve().parents[2]
TIME_COLUMNS = ["cell_time_s", "time_s"]


def grids():
    return [Grid(ratio=log_range(1, 1e4, 41), solver=["nuclear"], name="step"),
            Grid(ratio=[1.0, 10.0, 100.0], profile=["exp"], solver=["nuclear"], seed=[0, 1], name="exp")]


def without_times(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path / "results.csv")
    return table.drop(columns=TIME_COLUMNS)


def test_a_batched_sweep_writes_the_cell_by_cell_table(tmp_path, monkeypatch):
    calls = []
    original = NuclearSolver.solve_path

    def spy(self, problems):
        calls.append(len(problems))
        return original(self, problems)

    monkeypatch.setattr(NuclearSolver, "solve_path", spy)
    batched = run_cells(grids(), tmp_path / "batched", jobs=1, progress=False)
    assert batched.ok == 47 and calls == [47]  # one batched call for every cell
    monkeypatch.delitem(sweep_tasks._BATCHES, "solve")
    calls.clear()
    single = run_cells(grids(), tmp_path / "single", jobs=1, progress=False)
    assert single.ok == 47 and calls == []
    a, b = without_times(tmp_path / "batched"), without_times(tmp_path / "single")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert (a["status"] == "optimal").all() and a["iterations"].nunique() > 1
    for name in ("trajectory", "per_class"):
        if (tmp_path / "batched" / f"{name}.csv").exists():
            assert (tmp_path / "batched" / f"{name}.csv").read_text() == (tmp_path / "single" / f"{name}.csv").read_text()


SCRIPT = """
import sys
from lpm.sweep import Grid, log_range, run_cells
run_cells(Grid(ratio=log_range(1, 1e4, 5), solver=["nuclear"]), sys.argv[1] + "/a", progress=False)
run_cells(Grid(classifier=["fixed-etf"], loss=["ce", "dr"], solver=["analytic"]), sys.argv[1] + "/b", progress=False)
print(" ".join(sorted(m for m in ("torch", "cvxpy", "pandas") if m in sys.modules)) or "none")
"""


def test_the_sweep_path_loads_no_torch_cvxpy_or_pandas(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "none", res.stdout + res.stderr
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "lpm", "sweep", "--ratio-range", "1:1e4:5",
                          "--solver", "nuclear", "-o", str(tmp_path / "cli"), "--no-progress"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    loaded = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert not {"torch", "cvxpy", "pandas"} & loaded
