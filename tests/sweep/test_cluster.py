"""The Dask executor in this process: a LocalCluster gives the `--jobs 1` table value for
value, a cell that raises on a worker becomes an error record, and every way of asking
for a cluster that cannot work is one line and exit code 2, with nothing written."""
from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lpm.cli import app
from lpm.sweep import Cell, DaskExecutor, read_table, run_cells, run_sweep
from lpm.sweep.grid import RegularisedGrid

distributed = pytest.importorskip("distributed", reason="needs the 'distributed' extra (scripts/setup.sh installs it)")

HERE = Path(__file__).resolve().parent
TIME_COLUMNS = ["cell_time_s", "time_s"]
runner = CliRunner()


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=[c for c in TIME_COLUMNS if c in table])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_local_cluster_equals_jobs_1_and_records_cell_errors(tmp_path, monkeypatch):
    # the workers import the test task module, as a user's own task module
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    grid = RegularisedGrid(loss=["ce", "mse"], K=[10], majority=[5], lam=[1e-4, 1e-3], ratio=[10.0, 100.0])
    serial = run_sweep(grid, tmp_path / "serial", jobs=1, progress=False)
    shown = []
    with DaskExecutor(workers=2, echo=shown.append) as cluster:
        table = run_sweep(grid, tmp_path / "cluster", executor=cluster, progress=False)
        cells = [Cell("sweep_plugins:square_or_fail", {"x": x}) for x in (3, -2)]
        report = run_cells(cells, tmp_path / "errors", executor=cluster, progress=False)
    pd.testing.assert_frame_equal(comparable(table), comparable(serial), check_exact=True)
    assert len(table) == 8 and set(table["outcome"]) == {"ok"}
    here = f"{socket.gethostname()}:{os.getpid()}"
    workers = {json.loads(p.read_text())["worker"] for p in (tmp_path / "cluster" / "cells").glob("*.json")}
    assert here not in workers and workers  # computed on the cluster's worker processes
    assert len(shown) == 1 and shown[0].startswith("Dask dashboard: http://127.0.0.1:")
    assert (report.ok, report.failed, report.first_error) == (1, 1, "ValueError: negative x = -2")
    errors = read_table(tmp_path / "errors")
    assert list(errors["outcome"]) == ["ok", "error"] and errors["square"].iloc[0] == 9


def _sweep(*args):
    return runner.invoke(app, ["sweep", "--ratios", "1,10", "--no-progress", *args])


def test_unreachable_scheduler_is_one_line_exit_2_nothing_written(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "out"
    result = _sweep("-o", str(out), "--cluster", address)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: The 'cluster' parameter must be the address of a "
                                                   "running Dask scheduler (nothing answered at 127.0.0.1:")
    assert lines[0].endswith(f"Got '{address}' instead.") and "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (("--cluster", "local:0"), "The 'cluster' parameter must be 'local:N' with N >= 1 workers"),
    (("--cluster", "tcp://127.0.0.1"),
     "The 'cluster' parameter must be 'local:N' or a scheduler address [tcp://|tls://]HOST:PORT"),
    (("--cluster", "local:2", "--jobs", "2"), "The 'jobs' parameter must be omitted with --cluster"),
])
def test_bad_cluster_choices_exit_2(tmp_path, args, message):
    result = _sweep("-o", str(tmp_path / "out"), *args)
    assert result.exit_code == 2 and result.stderr.startswith("Error: " + message), result.output
    assert not (tmp_path / "out").exists()


def test_without_the_extra_cluster_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    result = _sweep("-o", str(tmp_path / "out"), "--cluster", "local:2")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("Error: The 'cluster' parameter must be used with Dask distributed installed "
                                     "(pip install 'lpm[distributed]'). Got 'local:2' instead.")
    assert not (tmp_path / "out").exists()
