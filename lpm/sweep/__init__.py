"""Parallel, resumable sweeps over layer-peeled problems (design.md "Sweeps").

    grid = Grid(ratio=log_range(1, 1e4, 41), classifier=["learnable"], solver=["nuclear"])
    table = run_sweep(grid, "results/my-sweep", jobs=2)     # pandas DataFrame

Each cell's record is written the moment it finishes, the tables are CSV,
and a rerun resumes (see :mod:`lpm.sweep.engine`).
"""
from __future__ import annotations

from .engine import TABLE_FORMAT, consolidate, load_record, read_table, run_cell, run_sweep
from .grid import Cell, Grid, expand, log_range, parse_ratio_range
from .tasks import get_task, register_task

__all__ = ["Grid", "Cell", "expand", "log_range", "parse_ratio_range", "run_sweep", "run_cell", "read_table",
           "consolidate", "load_record", "register_task", "get_task", "TABLE_FORMAT"]
