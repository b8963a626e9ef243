"""Run a sweep: parallel, resumable, crash-safe.

Layout of ``out_dir`` (all tables are CSV: they open directly in pandas,
polars or a spreadsheet and need no extra dependency)::

    cells/<cell_id>.json   one record per finished cell, written atomically
                           the moment the cell ends (ok or error)
    results.csv            one row per cell: the cell's spec columns, every
                           resolved Problem field, objective, certificate gap,
                           solver, status, times, every geometry metric, and
                           ``error`` (text) for failed cells
    trajectory.csv         long table, one row per recorded solver iteration
    per_class.csv          long table, one row per class of each cell
    sweep.json             provenance: resolved grids, seeds, lpm version,
                           git commit, software and hardware, counts

Resume. A cell's identity is the hash of its resolved spec
(:attr:`lpm.sweep.grid.Cell.cell_id`). Rerunning a sweep skips every cell
whose record exists (failed cells too, unless ``retry_failed``), so an
interrupted sweep loses at most the cells in flight, and the tables are
rebuilt from the records on every run (also after Ctrl-C).

Parallelism uses :class:`concurrent.futures.ProcessPoolExecutor` (workers
from a fork server with lpm preloaded, or spawned; one BLAS/torch thread
each); ``jobs=1`` runs in this process.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.errors import check_number
from ..core.io import jsonable, write_json_atomic, write_text_atomic
from ..core.provenance import now, provenance
from .grid import Cell, expand
from .tasks import flatten_spec, get_task

TABLE_FORMAT = "CSV (comma-separated, header row, one row per cell; long tables one row per iteration/class)"
#: columns copied from a cell's results row onto its long-table rows
_LONG_TABLES = ("trajectory", "per_class")
_KEY_COLUMNS = ("solver", "budget", "majority", "d", "ewh", "E_W", "E_H", "ratio", "K")


def cell_path(out_dir: Path | str, cell: Cell) -> Path:
    return Path(out_dir) / "cells" / f"{cell.cell_id}.json"


def run_cell(cell: Cell) -> dict[str, Any]:
    """Run one cell; an exception becomes an ``error`` record, never a crash."""
    start = time.perf_counter()
    record: dict[str, Any] = {"cell_id": cell.cell_id, **cell.to_dict()}
    try:
        out = get_task(cell.task)(dict(cell.spec))
        record.update(outcome="ok", row=out.get("row", {}), tables=out.get("tables", {}), error=None)
    except Exception as exc:  # recorded, and the sweep goes on
        record.update(outcome="error", row={}, tables={}, error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=8))
    record["cell_time_s"] = time.perf_counter() - start
    record["finished_at"] = now()
    return record


def _execute(cell_dict: dict, out_dir: str) -> tuple[str, str]:
    """Worker entry: run a cell and write its record atomically."""
    cell = Cell(**cell_dict)
    record = run_cell(cell)
    write_json_atomic(cell_path(out_dir, cell), record)
    return cell.cell_id, record["outcome"]


def _init_worker() -> None:
    """One thread per worker: the workers already fill the cores."""
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)  # BLAS pools loaded before this worker was forked
    except ImportError:  # pragma: no cover - ships with scikit-learn
        pass
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def load_record(out_dir: Path | str, cell: Cell) -> dict | None:
    """The stored record of ``cell``, or ``None`` if absent or unreadable."""
    path = cell_path(out_dir, cell)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("task") != cell.task or record.get("spec") != json.loads(json.dumps(cell.spec)):
        return None
    return record


def _pending(out_dir: Path, cells: list[Cell], retry_failed: bool) -> list[Cell]:
    todo = []
    for cell in cells:
        rec = load_record(out_dir, cell)
        if rec is None or (retry_failed and rec["outcome"] == "error"):
            todo.append(cell)
    return todo


def run_sweep(grids, out_dir: Path | str, jobs: int = 1, progress: bool = True,
              retry_failed: bool = False, config: dict | None = None) -> pd.DataFrame:
    """Run every unfinished cell of ``grids`` and return the results table.

    grids: a :class:`lpm.sweep.Grid` (or any object with ``.cells()``), a
    list of them, or a list of cells. ``config`` (JSON-safe) is stored in
    ``sweep.json`` beside the resolved grids. With ``jobs > 1`` a script must
    call this under ``if __name__ == "__main__":`` (workers are not forks).
    """
    jobs = check_number("jobs", jobs, low=1, integer=True)
    out_dir = Path(out_dir)
    (out_dir / "cells").mkdir(parents=True, exist_ok=True)
    cells = expand(grids)
    todo = _pending(out_dir, cells, retry_failed)
    started = now()
    from tqdm.auto import tqdm

    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc=f"sweep {out_dir.name}",
               unit="cell", disable=not progress, leave=False)
    try:
        if jobs == 1 or len(todo) <= 1:
            for cell in todo:
                _execute(cell.to_dict(), str(out_dir))
                bar.update()
        else:
            _run_pool(todo, out_dir, jobs, bar)
    finally:
        bar.close()
        table = consolidate(out_dir, cells)
        _write_provenance(out_dir, grids, cells, table, jobs, started, config, len(todo))
    return table


#: imported once by the fork server, so that workers start without re-importing them
_PRELOAD = ["lpm.sweep.engine"]


def _context():
    """A fork server with lpm preloaded where the OS has one (workers then start
    in well under a second); plain spawn elsewhere. Never a bare fork of this
    process, whose torch/BLAS threads a child must not inherit."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def _run_pool(todo: list[Cell], out_dir: Path, jobs: int, bar) -> None:
    ctx = _context()
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx, initializer=_init_worker)
    try:
        futures = {pool.submit(_execute, c.to_dict(), str(out_dir)): c for c in todo}
        for fut in as_completed(futures):
            try:
                fut.result()
            except BrokenProcessPool:
                raise
            except Exception as exc:  # e.g. a record that cannot be pickled: record it here
                cell = futures[fut]
                write_json_atomic(cell_path(out_dir, cell), {
                    "cell_id": cell.cell_id, **cell.to_dict(), "outcome": "error", "row": {}, "tables": {},
                    "error": f"{type(exc).__name__}: {exc}", "cell_time_s": None, "finished_at": now()})
            bar.update()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def consolidate(out_dir: Path | str, cells: list[Cell]) -> pd.DataFrame:
    """Rebuild ``results.csv`` and the long tables from the cell records."""
    out_dir = Path(out_dir)
    rows, long_tables = [], {}
    for cell in cells:
        rec = load_record(out_dir, cell)
        if rec is None:
            continue
        spec_cols = flatten_spec(rec["spec"])
        row = {"cell_id": cell.cell_id, "task": cell.task, "grid": cell.grid, **spec_cols, **rec["row"],
               "outcome": rec["outcome"], "error": rec["error"], "cell_time_s": rec["cell_time_s"]}
        if rec["outcome"] == "error":
            row["status"] = "error"
        rows.append(row)
        keys = {"cell_id": cell.cell_id, "grid": cell.grid, **spec_cols,
                **{k: rec["row"][k] for k in _KEY_COLUMNS if k in rec["row"]}}
        for name, long_rows in rec.get("tables", {}).items():
            long_tables.setdefault(name, []).extend({**keys, **r} for r in long_rows)
    table = pd.DataFrame(rows)
    write_text_atomic(out_dir / "results.csv", table.to_csv(index=False))
    for name in set(long_tables) | set(_LONG_TABLES):
        path = out_dir / f"{name}.csv"
        if long_tables.get(name):
            write_text_atomic(path, pd.DataFrame(long_tables[name]).to_csv(index=False))
        elif path.exists():  # left from an earlier grid: would be stale
            path.unlink()
    return table


def _write_provenance(out_dir: Path, grids, cells, table, jobs, started, config, ran) -> None:
    grid_list = [grids] if hasattr(grids, "cells") else list(grids)
    outcomes = table["outcome"].value_counts().to_dict() if len(table) else {}
    seeds = sorted({c.spec.get("problem", c.spec).get("seed") for c in cells} - {None}, key=str)
    info = {
        **provenance(),
        "table_format": TABLE_FORMAT,
        "grids": [g.to_dict() for g in grid_list if hasattr(g, "to_dict")],
        "config": config,
        "seeds": [jsonable(s) for s in seeds],
        "cells": len(cells), "cells_run_now": ran,
        "cells_done": int(len(table)), "outcomes": {k: int(v) for k, v in outcomes.items()},
        "jobs": jobs, "started_at": started, "finished_at": now(),
    }
    write_json_atomic(out_dir / "sweep.json", info)


def read_table(out_dir: Path | str, name: str = "results") -> pd.DataFrame:
    """Read a consolidated table (``results``, ``trajectory`` or ``per_class``);
    an empty frame if the sweep wrote none of that kind."""
    path = Path(out_dir) / f"{name}.csv"
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
