"""`lpm reproduce` with its default settings runs every cell with one BLAS and one torch
thread, in worker processes (the default --jobs is one per usable core) and in this
process alike; each cell's record says what it saw from inside the cell."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lpm.sweep import usable_cores

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

SIM = """
name = "threads"
description = "gradient cells that report their threads"
runner = "sweep"
plot = "objective"
[[grids]]
task = "solve"
name = "g"
ratio = {ratios}
classifier = ["learnable"]
solver = ["gradient"]
solver_settings = {{ gradient = {{ steps = 30, record_every = 10 }} }}
"""


@pytest.mark.parametrize("ratios, pooled", [("[1.0, 10.0]", True), ("[10.0]", False)])
def test_default_reproduce_uses_one_thread_per_worker(tmp_path, ratios, pooled):
    sims = tmp_path / "sims"
    sims.mkdir()
    (sims / "threads.toml").write_text(SIM.format(ratios=ratios))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}  # no help from outside
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")])
    out = tmp_path / "out"
    # a plug-in figure is registered in Python (a simulation file cannot name code by path)
    script = ("import sys, sweep_plugins; from lpm.figures import register_plot; "
              "register_plot('objective')(sweep_plugins.objective_plot); from lpm.cli import main; "
              "main(sys.argv[1:], prog_name='lpm')")
    res = subprocess.run([sys.executable, "-c", script, "reproduce", "threads", "--sims-dir", str(sims), "-o",
                          str(out), "--no-progress"], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    records = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert len(records) == len(json.loads(ratios)) and all(r["outcome"] == "ok" for r in records)
    for record in records:  # measured inside the cell, after torch was loaded by the gradient solver
        assert record["threads"] == {"blas": 1, "torch": 1}, record["threads"]
    cores = usable_cores()
    expected = f"local pool of {cores} processes" if pooled and cores > 1 else "in-process"
    assert json.loads((out / "sweep.json").read_text())["ran_on"] == expected
