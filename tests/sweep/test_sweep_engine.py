"""The sweep engine: grid expansion, resume after an interrupt, failed cells,
parallel workers and provenance."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lpm.core.errors import LPMInputError
from lpm.sweep import Grid, log_range, parse_ratio_range, read_table, run_sweep
from lpm.sweep import tasks as sweep_tasks

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


def test_invalid_cells_are_recorded_and_the_rest_complete(tmp_path):
    grids = [small_grid(d=[10, 5], loss=["ce"], seed=[0]),                    # d=5 < K-1: invalid ETF
             small_grid(classifier=["fixed-etf"], solver=["nuclear"], loss=["ce"], seed=[0], ratio=[10.0])]
    table = run_sweep(grids, tmp_path, progress=False)
    assert len(table) == 3 + 3 + 1
    bad_d = table[table["d"] == 5]
    assert set(bad_d["status"]) == {"error"} and set(bad_d["outcome"]) == {"error"}
    assert set(bad_d["error"]) == {"LPMInputError: The 'd' parameter must be an int >= K-1 = 9 for a fixed "
                                   "simplex ETF with K=10. Got 5 instead."}
    refused = table[table["solver"] == "nuclear"]
    assert refused["error"].iloc[0] == ("SolverRefused: The 'nuclear' solver cannot solve this problem: the "
                                        "nuclear-norm form needs a learnable classifier, not 'fixed-etf'.")
    good = table[table["outcome"] == "ok"]
    assert len(good) == 3 and good["error"].isna().all()
    np.testing.assert_allclose(good["classifier_minority_cos"], -1 / 9, atol=1e-12)


def test_failed_cells_rerun_only_when_asked(tmp_path, monkeypatch):
    grid = small_grid(d=[5], loss=["ce"], seed=[0])
    run_sweep(grid, tmp_path, progress=False)
    calls = []
    original = sweep_tasks.get_task("solve")
    monkeypatch.setitem(sweep_tasks._TASKS, "solve", lambda spec: calls.append(1) or original(spec))
    run_sweep(grid, tmp_path, progress=False)
    assert calls == []
    run_sweep(grid, tmp_path, progress=False, retry_failed=True)
    assert len(calls) == 3


def test_parallel_workers_give_the_serial_table(tmp_path):
    grid = small_grid(classifier=["learnable"], solver=["nuclear"], loss=["ce"], budget=["class-average"],
                      ratio=[1.0, 3.0, 30.0], seed=[0])
    serial = run_sweep(grid, tmp_path / "serial", progress=False)
    parallel = run_sweep(grid, tmp_path / "parallel", jobs=2, progress=False)
    pd.testing.assert_frame_equal(comparable(parallel), comparable(serial), check_exact=False, rtol=1e-9)
    # [F21]: the minority classifiers have merged by R = 30 at E_W·E_H = 5, K_A = 5
    assert serial["collapse_index"].iloc[-1] < 1e-6 < serial["collapse_index"].iloc[1]


def test_jobs_must_be_positive(tmp_path):
    with pytest.raises(LPMInputError, match=r"The 'jobs' parameter must be an int >= 1. Got 0 instead."):
        run_sweep(small_grid(), tmp_path, jobs=0)
