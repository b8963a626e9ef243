"""Run a sweep: checked up front, parallel or distributed, resumable, crash-safe.

Layout of ``out_dir`` (tables in :mod:`lpm.sweep.tables`, records and lock in
:mod:`lpm.sweep.folder`)::

    cells/<cell_id>.json   one record per finished cell (ok or error), written
                           atomically by this process the moment it comes back
    results.csv            one row per cell; trajectory.csv, per_class.csv
    sweep.json             provenance: grids, seeds, executor, lpm version,
                           git commit, software and hardware, outcome counts
    runs/                  run folders of deep-run (``train``) cells

Order of work. Every cell is checked without solving (a bad grid value is
refused before anything is written), the folder is checked (a grid that
would drop recorded rows is refused), a remote scheduler is reached (one
that does not answer is refused), and only then is the folder locked and
written. Resume: a cell's identity is the hash of its spec
(:attr:`lpm.sweep.grid.Cell.cell_id`); a rerun skips every cell that has a
record (failed cells too, unless ``retry_failed``), so an interrupted sweep
loses at most the cells in flight, and the tables are rebuilt from the
records on every run (also after Ctrl-C).

Execution. Cells that one batched call can solve are grouped into one unit
(:mod:`lpm.sweep.units`). Light units (milliseconds of work) run in this
process; the rest go to the executor (:mod:`lpm.sweep.executors`), unless
only one heavy unit is left and the executor's workers would first have to
start. Every mode runs cells with one BLAS/torch thread, so the records are
the same to the last digit whichever executor ran them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import LPMInputError
from ..core.io import jsonable, write_json_atomic
from ..core.provenance import now, provenance
from .executors import Executor, InProcess, as_executor
from .folder import check_folder, load_record, locked, remove_stale_temporaries, write_record
from .grid import Cell, expand
from .tables import TABLE_FORMAT, consolidate, read_table
from .tasks import RUN_FOLDER_TASKS
from .units import Unit, check_cells, make_units


@dataclass
class SweepReport:
    """What a sweep did: counts over all its cells, and the cells run now."""

    out_dir: Path
    cells: int
    done: int
    ok: int
    failed: int
    first_error: str | None
    ran: list[str] = field(default_factory=list)
    executor: str = ""

    @property
    def complete(self) -> bool:
        return self.done == self.cells


class SweepFailed(RuntimeError):
    """The cells a result needs failed (their records hold the errors)."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep; the finished cells are recorded and the tables rebuilt."""

    def __init__(self, out_dir: Path, done: int, cells: int):
        super().__init__(f"interrupted with {done} of {cells} cells done in {out_dir}")
        self.out_dir, self.done, self.cells = out_dir, done, cells


def _error_records(unit: Unit, exc: BaseException) -> list[dict]:
    """Error records for the cells of a unit that its executor lost (e.g. it killed every worker it ran on)."""
    return [{"cell_id": Cell(**c).cell_id, **c, "outcome": "error", "row": {}, "tables": {},
             "error": f"{type(exc).__name__}: {exc}", "cell_time_s": None, "finished_at": now()}
            for c in unit.cells]


def _pending(out_dir: Path, cells: list[Cell], retry_failed: bool) -> list[int]:
    todo = []
    for i, cell in enumerate(cells):
        rec = load_record(out_dir, cell)
        if rec is None or (retry_failed and rec["outcome"] == "error"):
            todo.append(i)
    return todo


def _attach_run_files(unit: Unit, runs_dir: Path, shared: bool) -> None:
    """Run-folder units write in place where the workers share the files; else
    they take the run's existing files along (to resume from its checkpoint)."""
    if unit.task not in RUN_FOLDER_TASKS:
        return
    if shared:
        unit.runs_dir = str(runs_dir)
        return
    for cell in unit.cells:
        folder = runs_dir / cell["spec"]["run"]
        if folder.is_dir():
            unit.files.update({p.relative_to(runs_dir).as_posix(): p.read_bytes()
                               for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith(".tmp")})


def _choose(executor: Executor, heavy: list[Unit]) -> Executor:
    """The executor, unless its workers would first have to start for less than two units."""
    if isinstance(executor, InProcess) or not heavy or (len(heavy) < 2 and not executor.started):
        return InProcess()
    return executor


def run_cells(grids, out_dir: Path | str, *, executor: Any = None, jobs: int | None = None,
              runs_dir: Path | str | None = None, progress: bool = True, retry_failed: bool = False,
              config: dict | None = None) -> SweepReport:
    """Run every unfinished cell of ``grids`` into ``out_dir`` and rebuild its tables.

    grids: a :class:`lpm.sweep.Grid` (or any object with ``.cells()``), a list
    of them, or a list of cells. ``executor``: an :class:`lpm.sweep.Executor`,
    ``'local:N'``, a Dask scheduler address, or a ``distributed.Client``;
    without one, ``jobs`` local processes (default one per usable core; small
    and light grids run in this process anyway). ``runs_dir``: where deep-run
    cells keep their run folders (default ``out_dir/runs``); give it when it
    is on a file system that every worker reaches, so that they write there
    directly (otherwise remote workers send each run folder back). ``config``
    (JSON-safe) is stored in ``sweep.json``. Scripts that use process
    workers must call this under ``if __name__ == "__main__":``.
    """
    out_dir = Path(out_dir)
    cells = expand(grids)
    plans = check_cells(cells)
    check_folder(out_dir, cells)
    declared = runs_dir is not None
    runs_dir = Path(runs_dir).resolve() if declared else (out_dir / "runs").resolve()
    if declared and runs_dir.exists() and not runs_dir.is_dir():
        raise LPMInputError("runs-dir", str(runs_dir), "a folder (this is a file)")
    executor, owned = as_executor(executor, jobs)
    try:
        executor.open()
        with locked(out_dir):
            return _run_locked(grids, cells, plans, out_dir, executor, runs_dir, declared, progress, retry_failed,
                               config)
    finally:
        if owned:
            executor.close()


def _run_locked(grids, cells, plans, out_dir, executor, runs_dir, declared, progress, retry_failed, config):
    (out_dir / "cells").mkdir(exist_ok=True)
    todo = _pending(out_dir, cells, retry_failed)
    folders = [runs_dir / cells[i].spec["run"] for i in todo if cells[i].task in RUN_FOLDER_TASKS]
    remove_stale_temporaries(out_dir, out_dir / "cells", *folders)
    units = make_units([cells[i] for i in todo], [plans[i] for i in todo])
    light, heavy = [u for u in units if u.light], [u for u in units if not u.light]
    chosen = _choose(executor, heavy)
    for unit in units:
        _attach_run_files(unit, runs_dir, shared=declared or chosen.shares_files)
    if heavy:
        chosen.start()  # before the progress bar: a cluster prints its dashboard address
    started, ran = now(), []
    bar = _progress_bar(len(cells), len(cells) - len(todo), out_dir.name, progress and bool(heavy))
    interrupted = False
    try:
        for runner, batch in ((InProcess(), light), (chosen, heavy)):
            if not batch:
                continue
            for unit, outcome in runner.run(batch):
                records = outcome if isinstance(outcome, list) else _error_records(unit, outcome)
                for record in records:
                    write_record(out_dir, record, runs_dir)
                    ran.append(record["cell_id"])
                bar.update(len(records))
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        bar.close()
        rows = consolidate(out_dir, cells)
        report = _report(out_dir, cells, rows, ran, chosen)
        _write_provenance(out_dir, grids, cells, report, started, config, executor)
        if interrupted:
            raise SweepInterrupted(out_dir, report.done, report.cells) from None
    return report


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, done: int, name: str, show: bool):
    """A tqdm bar over the cells; none when only light units (milliseconds) run."""
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm  # a tenth of a second to import: only when there is a bar to show

    return tqdm(total=total, initial=done, desc=bar_label(name), unit="cell", leave=False)


def bar_label(folder_name: str) -> str:
    """The progress bar's label: ``sweep NAME`` for the output folder NAME, ``sweep`` alone when the
    folder is itself called ``sweep`` (never "sweep sweep")."""
    return "sweep" if folder_name.lower() in ("sweep", "") else f"sweep {folder_name}"


def _report(out_dir: Path, cells: list[Cell], rows: list[dict], ran: list[str], executor: Executor) -> SweepReport:
    failed = [r for r in rows if r["outcome"] == "error"]
    return SweepReport(out_dir=out_dir, cells=len(cells), done=len(rows), ok=len(rows) - len(failed),
                       failed=len(failed), first_error=failed[0]["error"] if failed else None, ran=ran,
                       executor=executor.describe())


def _write_provenance(out_dir: Path, grids, cells, report: SweepReport, started, config, executor) -> None:
    grid_list = [grids] if hasattr(grids, "cells") else list(grids)
    seeds = sorted({c.spec.get("problem", c.spec).get("seed") for c in cells} - {None}, key=str)
    info = {
        **provenance(),
        "table_format": TABLE_FORMAT,
        "grids": [g.to_dict() for g in grid_list if hasattr(g, "to_dict")],
        "config": config,
        "seeds": [jsonable(s) for s in seeds],
        "cells": report.cells, "cells_run_now": len(report.ran), "cells_done": report.done,
        "outcomes": {k: v for k, v in (("ok", report.ok), ("error", report.failed)) if v},
        "first_error": report.first_error,
        "executor": executor.describe(), "ran_on": report.executor,
        "started_at": started, "finished_at": now(),
    }
    write_json_atomic(out_dir / "sweep.json", info)


def run_sweep(grids, out_dir: Path | str, jobs: int | None = None, progress: bool = True,
              retry_failed: bool = False, config: dict | None = None, *, executor: Any = None,
              runs_dir: Path | str | None = None):
    """:func:`run_cells`, then the results table as a pandas DataFrame (see :func:`run_cells`)."""
    run_cells(grids, out_dir, executor=executor, jobs=jobs, runs_dir=runs_dir, progress=progress,
              retry_failed=retry_failed, config=config)
    return read_table(out_dir)
