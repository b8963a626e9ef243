"""Checked, resumable sweeps over layer-peeled problems and deep runs, on one
machine or a Dask cluster.

    grid = Grid(ratio=log_range(1, 1e4, 41), classifier=["learnable"], solver=["nuclear"])
    table = run_sweep(grid, "results/my-sweep")                         # pandas DataFrame
    report = run_cells(grid, "results/my-sweep", executor="local:4")    # no pandas: counts
    run_sweep(grid, "results/my-sweep", executor="tcp://10.0.0.5:8786") # a running Dask scheduler

Every cell is checked before any runs, each cell's record is written the
moment it finishes, the tables are CSV, and a rerun resumes (see
:mod:`lpm.sweep.engine`). Executors: :mod:`lpm.sweep.executors`.
"""
from __future__ import annotations

from .engine import SweepFailed, SweepInterrupted, SweepReport, run_cells, run_sweep
from .executors import DaskExecutor, Executor, InProcess, LocalPool, as_executor, make_executor, usable_cores
from .folder import load_record
from .grid import Cell, Grid, expand, located, log_range, parse_ratio_range
from .tables import TABLE_FORMAT, consolidate, read_table
from .tasks import get_task, register_task
from .train import ensure_run, train_cells
from .units import check_cells, run_cell, single_thread

__all__ = ["Grid", "Cell", "expand", "log_range", "parse_ratio_range", "run_sweep", "run_cells", "run_cell",
           "read_table", "consolidate", "load_record", "register_task", "get_task", "TABLE_FORMAT", "SweepReport",
           "SweepInterrupted", "SweepFailed", "check_cells", "located", "as_executor", "Executor", "InProcess", "LocalPool", "DaskExecutor", "make_executor",
           "usable_cores", "train_cells", "ensure_run", "single_thread"]
