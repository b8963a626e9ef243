"""Units of work: the cells one worker call runs, and the worker side of the engine.

The client checks every cell (:func:`lpm.sweep.tasks.check_cell`), then
groups them into :class:`Unit` objects: the cells that one batched call can
solve (same task and batch key, e.g. nuclear problems of one K and one set of
settings) form one unit; every other cell is a unit of its own. An executor
runs :func:`run_unit` somewhere (this process, a local worker process, a Dask
worker) and hands the records back; only the client writes files.

A unit is ``light`` when all its cells are (milliseconds of work): the
engine then runs it in this process rather than start workers for it.

Threads. Cells run with one BLAS/OpenMP/torch thread in every execution
mode: the workers already fill the cores, and a many-threaded BLAS on
small matrices is slower than one thread even alone. :func:`single_thread`
applies that in this process (and undoes it afterwards);
:func:`limit_threads` makes it permanent in a worker process. Each record
says how many threads its cell saw (``threads``).
"""
from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..core.provenance import now
from .grid import Cell
from .tasks import RUN_FOLDER_TASKS, Plan, check_cell, get_batch, get_task

#: environment variables that BLAS and OpenMP libraries (and torch) read when they load
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass
class Unit:
    """Cells that one worker call runs (several only when one batched call solves them)."""

    task: str
    cells: list[dict]                # Cell.to_dict() of each cell
    light: bool = False
    #: run-folder tasks: the runs folder the worker writes into (shared with this
    #: machine), or None: the worker uses a scratch folder and sends the files back
    runs_dir: str | None = None
    #: with runs_dir None: the run's existing files (paths relative to the runs folder)
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.cells)


def check_cells(cells: list[Cell]) -> list[Plan]:
    """Check every cell without solving it (raises the first :class:`LPMInputError`)."""
    return [check_cell(cell.task, dict(cell.spec)) for cell in cells]


def make_units(cells: list[Cell], plans: list[Plan]) -> list[Unit]:
    """Group cells that share a task and a batch key into one unit when the
    group is light (one batched call, milliseconds); others run one per unit
    (a heavy group gains nothing from batching and would hold one worker)."""
    groups: dict[tuple, list[tuple[Cell, Plan]]] = {}
    units = []
    for cell, plan in zip(cells, plans):
        if plan.batch is not None and plan.light and get_batch(cell.task) is not None:
            groups.setdefault((cell.task, plan.batch), []).append((cell, plan))
        else:
            units.append(Unit(cell.task, [cell.to_dict()], light=plan.light))
    for (task, _), members in groups.items():
        units.append(Unit(task, [c.to_dict() for c, _ in members], light=True))
    return units


# ------------------------------------------------------------------ threads
def thread_counts() -> dict[str, int | None]:
    """Threads a cell sees now: the largest BLAS/OpenMP pool loaded, and torch's (None if not loaded)."""
    blas = None
    try:
        from threadpoolctl import threadpool_info

        blas = max((int(lib.get("num_threads") or 1) for lib in threadpool_info()), default=None)
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        pass
    torch = sys.modules.get("torch")
    return {"blas": blas, "torch": torch.get_num_threads() if torch is not None else None}


def _limit_loaded(threads: int):
    """Limit the BLAS/OpenMP pools loaded now; returns a handle that restores them."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return None
    return threadpool_limits(threads)


_LIMITED: list[bool] = []


def limit_threads() -> None:
    """One thread from now on in this (worker) process: the environment for
    libraries loaded later, the pools loaded already, torch if loaded. The
    pools are limited once per process (the environment covers later loads)."""
    if not _LIMITED:
        os.environ.update({name: "1" for name in THREAD_VARIABLES})
        _limit_loaded(1)
        _LIMITED.append(True)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """One thread inside the block (in this process), as before it afterwards.
    A library first loaded inside the block (e.g. torch) keeps one thread."""
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: "1" for name in THREAD_VARIABLES})
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    limits = _limit_loaded(1)
    try:
        if torch is not None:
            torch.set_num_threads(1)
        yield
    finally:
        if limits is not None:
            limits.restore_original_limits()
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# ------------------------------------------------------------------ worker side
def _record(cell: Cell, result: Any, seconds: float, threads: dict) -> dict[str, Any]:
    """A cell's record from its task's result, or from the exception it raised."""
    record: dict[str, Any] = {"cell_id": cell.cell_id, **cell.to_dict()}
    if isinstance(result, BaseException):
        record.update(outcome="error", row={}, tables={}, error=f"{type(result).__name__}: {result}",
                      traceback="".join(traceback.format_exception(type(result), result, result.__traceback__,
                                                                   limit=8)))
    else:
        record.update(outcome="ok", row=result.get("row", {}), tables=result.get("tables", {}), error=None)
    record.update(cell_time_s=seconds, finished_at=now(), worker=f"{socket.gethostname()}:{os.getpid()}",
                  threads=threads)
    return record


def _call(fn, *args):
    try:
        return fn(*args)
    except Exception as exc:  # recorded, and the sweep goes on
        return exc


def run_cell(cell: Cell, runs_dir: Path | None = None) -> dict[str, Any]:
    """Run one cell; an exception becomes an ``error`` record, never a crash."""
    start = time.perf_counter()
    fn = get_task(cell.task)
    result = _call(fn, dict(cell.spec), runs_dir) if cell.task in RUN_FOLDER_TASKS else _call(fn, dict(cell.spec))
    return _record(cell, result, time.perf_counter() - start, thread_counts())


def run_unit(unit: Unit) -> list[dict[str, Any]]:
    """Run the cells of ``unit`` (batched where it was planned) and return one record per cell."""
    cells = [Cell(**c) for c in unit.cells]
    if unit.task in RUN_FOLDER_TASKS:
        return [_run_folder_cell(unit, cell) for cell in cells]
    batch = get_batch(unit.task)
    if len(cells) == 1 or batch is None:
        return [run_cell(cell) for cell in cells]
    start = time.perf_counter()
    results = _call(batch, [dict(c.spec) for c in cells])
    if isinstance(results, BaseException):
        results = [results] * len(cells)
    share, threads = (time.perf_counter() - start) / len(cells), thread_counts()
    return [_record(cell, result, share, threads) for cell, result in zip(cells, results)]


def _run_folder_cell(unit: Unit, cell: Cell) -> dict[str, Any]:
    """A run-folder cell in the shared runs folder, or in a scratch folder whose files go back in the record."""
    if unit.runs_dir is not None:
        return run_cell(cell, Path(unit.runs_dir))
    with tempfile.TemporaryDirectory(prefix="lpm-runs-") as scratch:
        root = Path(scratch)
        for rel, data in unit.files.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        record = run_cell(cell, root)
        folder = root / cell.spec["run"]
        record["files"] = {p.relative_to(root).as_posix(): p.read_bytes()
                           for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith(".tmp")}
    return record
