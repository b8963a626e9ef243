"""The sweep engine: grid expansion, resume after an interrupt, failed cells,
parallel workers and provenance."""
from __future__ import annotations

import json
import os
import socket

import numpy as np
import pandas as pd
import pytest

from lpm.core.errors import LPMInputError
from lpm.sweep import Cell, Grid, log_range, parse_ratio_range, read_table, run_cells, run_sweep
from lpm.sweep import tasks as sweep_tasks
from lpm.sweep.grid import RegularisedGrid

TIME_COLUMNS = ["cell_time_s", "time_s"]


def small_grid(**changes) -> Grid:
    spec = dict(ratio=[1.0, 10.0, 100.0], classifier=["fixed-etf"], loss=["ce", "dr"], solver=["analytic"],
                seed=[0, 1], name="small")
    spec.update(changes)
    return Grid(**spec)


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=[c for c in TIME_COLUMNS if c in table]).reset_index(drop=True)


def test_log_range_is_the_paper_grid():
    np.testing.assert_allclose(log_range(1, 1e4, 41), [10 ** (0.1 * i) for i in range(41)], rtol=1e-11)
    assert parse_ratio_range("1:1e4:41") == log_range(1, 1e4, 41)
    with pytest.raises(LPMInputError, match=r"The 'ratio-range' parameter must be START:STOP:NUM"):
        parse_ratio_range("1:1e4")


def test_grid_expansion_order_ewh_and_identity():
    grid = Grid(ratio=[1, 10], ewh=[2.0, 8.0], seed=[0, 1], solver=["nuclear"])
    cells = grid.cells()
    assert len(cells) == 2 * 2 * 2
    # seed varies fastest, then ratio; ewh means E_W = 1, E_H = product
    assert [c.spec["problem"]["seed"] for c in cells[:2]] == [0, 1]
    assert [(c.spec["problem"]["E_W"], c.spec["problem"]["E_H"]) for c in cells[::4]] == [(1.0, 2.0), (1.0, 8.0)]
    # the same ratio written two ways is the same cell
    twin = Grid(ratio=[10 ** 1.0, 1], ewh=[2.0, 8.0], seed=[0, 1], solver=["nuclear"]).cells()
    assert {c.cell_id for c in twin} == {c.cell_id for c in cells}
    assert len({c.cell_id for c in cells}) == len(cells)


def test_table_has_problem_fields_metrics_and_provenance(tmp_path):
    table = run_sweep(small_grid(), tmp_path, progress=False)
    assert len(table) == 12 and set(table["status"]) == {"optimal"}
    for col in ("counts", "d", "classifier", "loss", "budget", "E_W", "E_H", "majority", "ratio", "seed", "solver",
                "objective", "gap", "time_s", "collapse_index", "classifier_minority_cos", "nc2", "error"):
        assert col in table, col
    # Theorem 1 [Y22]: the fixed-ETF CE optimum does not depend on the counts
    ce = table[table["loss"] == "ce"]["objective"].to_numpy()
    np.testing.assert_allclose(ce, np.log1p(9 * np.exp(-np.sqrt(5.0) * 10 / 9)), rtol=1e-12)
    info = json.loads((tmp_path / "sweep.json").read_text())
    assert info["lpm_version"] and "commit" in info["git"] and info["hardware"]["cpu_count"] >= 1
    assert info["seeds"] == [0, 1] and info["grids"][0]["ratio"] == [1.0, 10.0, 100.0]
    assert info["cells"] == 12 and info["outcomes"] == {"ok": 12}
    assert len(list((tmp_path / "cells").glob("*.json"))) == 12
    per_class = read_table(tmp_path, "per_class")
    assert len(per_class) == 12 * 10


def test_interrupted_sweep_resumes_without_recomputing(tmp_path, monkeypatch):
    reference = run_sweep(small_grid(), tmp_path / "uninterrupted", progress=False)
    calls, interrupt = [], {"at": 5}
    original = sweep_tasks.get_task("solve")

    def counting(spec):
        calls.append(spec["problem"]["ratio"])
        if len(calls) == interrupt["at"]:
            interrupt["at"] = None
            raise KeyboardInterrupt  # Ctrl-C in the middle of the fifth cell
        return original(spec)

    monkeypatch.setitem(sweep_tasks._TASKS, "solve", counting)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(small_grid(), tmp_path / "resumed", progress=False)
    # the four finished cells are on disk and in the consolidated table
    assert len(list((tmp_path / "resumed" / "cells").glob("*.json"))) == 4
    assert len(read_table(tmp_path / "resumed")) == 4
    calls.clear()
    table = run_sweep(small_grid(), tmp_path / "resumed", progress=False)
    assert len(calls) == 12 - 4  # only the unfinished cells ran
    pd.testing.assert_frame_equal(comparable(table), comparable(reference))
    calls.clear()
    run_sweep(small_grid(), tmp_path / "resumed", progress=False)
    assert calls == []  # a finished sweep recomputes nothing


def test_invalid_grids_are_refused_before_any_cell_runs(tmp_path):
    cases = [
        (small_grid(d=[10, 5]), "The 'd' parameter must be an int >= K-1 = 9 for a fixed simplex ETF with K=10. "
                                "Got 5 instead."),
        (small_grid(solver=["nuclear"]), "The 'nuclear' solver cannot solve this problem: the nuclear-norm form "
                                         "needs a learnable classifier, not 'fixed-etf'."),
        (small_grid(classifier=["learnable"], solver=["auto"], d=[3]),
         "The 'd' parameter must be an int >= K-1 = 9 for the 'convex' solver"),
        (small_grid(majority=[20]), "The 'majority' parameter must be an int >= 1 and <= 9. Got 20 instead."),
        (small_grid(K=[1]), "The 'K' parameter must be an int >= 2. Got 1 instead."),
        (small_grid(seed=[-1]), "The 'seed' parameter must be an int >= 0 and <= 4294967295. Got -1 instead."),
    ]
    for grid, message in cases:
        with pytest.raises(LPMInputError) as info:
            run_sweep(grid, tmp_path / "out", progress=False)
        assert message in str(info.value), str(info.value)
        assert not (tmp_path / "out").exists()  # nothing was written
    with pytest.raises(LPMInputError, match=r"The 'setting' parameter must be a solver of this grid: one of "
                                            r"'analytic'. Got 'gradient' instead."):
        small_grid(solver_settings={"gradient": {"steps": 3}})


def failing_task(spec):
    """A task that raises for odd ``x`` (as a solver that fails at run time would)."""
    if spec["x"] % 2:
        raise RuntimeError(f"odd x = {spec['x']}")
    return {"row": {"x2": 2 * spec["x"]}}


@pytest.fixture
def flaky_task(monkeypatch):
    calls = []

    def counted(spec):
        calls.append(spec["x"])
        return failing_task(spec)

    monkeypatch.setitem(sweep_tasks._TASKS, "flaky", counted)
    return calls


def test_a_cell_that_raises_becomes_an_error_record(tmp_path, flaky_task):
    cells = [Cell("flaky", {"x": x}) for x in range(4)]
    report = run_cells(cells, tmp_path, jobs=1, progress=False)
    assert (report.cells, report.ok, report.failed) == (4, 2, 2)
    assert report.first_error == "RuntimeError: odd x = 1"
    table = read_table(tmp_path)
    assert list(table["outcome"]) == ["ok", "error", "ok", "error"]
    assert list(table["x2"].fillna(-1)) == [0, -1, 4, -1]
    record = json.loads((tmp_path / "cells" / f"{cells[1].cell_id}.json").read_text())
    assert "RuntimeError: odd x = 1" in record["traceback"]
    info = json.loads((tmp_path / "sweep.json").read_text())
    assert info["outcomes"] == {"ok": 2, "error": 2} and info["first_error"] == "RuntimeError: odd x = 1"


def test_failed_cells_rerun_only_when_asked(tmp_path, flaky_task):
    cells = [Cell("flaky", {"x": x}) for x in range(4)]
    run_cells(cells, tmp_path, jobs=1, progress=False)
    flaky_task.clear()
    run_cells(cells, tmp_path, jobs=1, progress=False)
    assert flaky_task == []
    run_cells(cells, tmp_path, jobs=1, progress=False, retry_failed=True)
    assert flaky_task == [1, 3]


def test_parallel_workers_give_the_serial_table(tmp_path):
    grid = RegularisedGrid(loss=["ce"], K=[10], majority=[5], lam=[1e-4, 1e-3], ratio=[10.0, 100.0])
    serial = run_sweep(grid, tmp_path / "serial", jobs=1, progress=False)
    parallel = run_sweep(grid, tmp_path / "parallel", jobs=2, progress=False)
    pd.testing.assert_frame_equal(comparable(parallel), comparable(serial), check_exact=True)
    workers = {json.loads(p.read_text())["worker"] for p in (tmp_path / "parallel" / "cells").glob("*.json")}
    assert f"{socket.gethostname()}:{os.getpid()}" not in workers  # the cells ran in worker processes
    serial_workers = {json.loads(p.read_text())["worker"] for p in (tmp_path / "serial" / "cells").glob("*.json")}
    assert serial_workers == {f"{socket.gethostname()}:{os.getpid()}"}
    assert json.loads((tmp_path / "parallel" / "sweep.json").read_text())["ran_on"] == "local pool of 2 processes"


def test_a_local_worker_that_dies_takes_its_cells_to_a_fresh_pool(tmp_path):
    # sweep_plugins sits beside this file, on the path the fork server hands its workers
    cells = [Cell("sweep_plugins:die_once", {"marker": str(tmp_path / "marker"), "i": i}) for i in range(3)]
    report = run_cells(cells, tmp_path / "out", jobs=2, progress=False)
    assert (tmp_path / "marker").exists()  # a worker was killed
    assert (report.ok, report.failed, report.executor) == (3, 0, "local pool of 2 processes")
    assert sorted(read_table(tmp_path / "out")["value"]) == [0, 1, 2]


def test_a_light_grid_runs_in_process_whatever_jobs(tmp_path):
    grid = Grid(ratio=[1.0, 10.0, 100.0], solver=["nuclear"], name="light")
    report = run_cells(grid, tmp_path, jobs=2, progress=False)
    assert report.executor == "in-process" and report.ok == 3


def test_jobs_must_be_positive(tmp_path):
    with pytest.raises(LPMInputError, match=r"The 'jobs' parameter must be an int >= 1. Got 0 instead."):
        run_sweep(small_grid(), tmp_path, jobs=0)
