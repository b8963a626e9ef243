"""A sweep's output folder: cell records, its lock, and what may be written into it.

* ``cells/<cell_id>.json``: one record per finished cell, written atomically
  by the client (workers never write here). A record is the commit mark of
  its cell: a rerun skips every cell that has one.
* ``.lock``: held (``flock``) by the one process that writes the folder; a
  second sweep into it is refused while the first runs, naming the holder.
  The kernel drops the lock when its holder dies, however it dies; the file
  is removed when the sweep ends (stopped, failed or done), so only a killed
  sweep leaves it, unlocked and harmless.
* A folder holding records of cells that the new grid does not contain is
  refused: rebuilding its tables would silently drop those rows. A grid that
  extends the recorded one (more ratios, seeds, ...) is accepted.
* Temporary files (``.NAME.*.tmp``) left by a process killed while writing
  are removed when the next sweep takes the lock.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path, PurePosixPath
from typing import Iterator

from ..core.errors import LPMInputError
from ..core.io import LOCK_FILE, folder_lock, write_bytes_atomic, write_json_atomic
from .grid import Cell

__all__ = ["LOCK_FILE", "cell_path", "check_folder", "load_record", "locked", "recorded_ids",
           "remove_stale_temporaries", "write_record"]


def cell_path(out_dir: Path | str, cell: Cell | str) -> Path:
    cell_id = cell if isinstance(cell, str) else cell.cell_id
    return Path(out_dir) / "cells" / f"{cell_id}.json"


def load_record(out_dir: Path | str, cell: Cell) -> dict | None:
    """The stored record of ``cell``, or ``None`` if absent or unreadable."""
    try:
        record = json.loads(cell_path(out_dir, cell).read_text())
    except (OSError, ValueError):
        return None
    if record.get("task") != cell.task or record.get("spec") != json.loads(json.dumps(cell.spec)):
        return None
    return record


def recorded_ids(out_dir: Path | str) -> set[str]:
    folder = Path(out_dir) / "cells"
    return {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()


def check_folder(out_dir: Path | str, cells: list[Cell]) -> None:
    """Refuse an output folder that would lose rows (read-only: writes nothing)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LPMInputError("out", str(out_dir), "a folder (this is a file)")
    foreign = recorded_ids(out_dir) - {c.cell_id for c in cells}
    if foreign:
        raise LPMInputError("out", str(out_dir), f"a new folder or one holding this sweep: it holds {len(foreign)} "
                            "finished cells of another grid, whose rows this grid's tables would drop (use "
                            "another folder, extend the old grid, or delete the folder)")


@contextlib.contextmanager
def locked(out_dir: Path) -> Iterator[None]:
    """Create ``out_dir`` and hold its lock for the block (one writer at a time):
    :func:`lpm.core.io.folder_lock`, which removes the lock file again when the block ends."""
    with folder_lock(out_dir, "out", "sweep"):
        yield


def remove_stale_temporaries(*folders: Path) -> int:
    """Delete ``.NAME.*.tmp`` files that a killed writer left (call under the lock)."""
    removed = 0
    for folder in folders:
        if folder.is_dir():
            for path in folder.glob(".*.tmp"):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed += 1
    return removed


def write_record(out_dir: Path, record: dict, runs_dir: Path | None = None) -> None:
    """Write a record sent back by a worker: first the run files it carries
    (under ``runs_dir``), then the record itself, the cell's commit mark.

    The record is renamed into place but not fsynced: a crash of this process
    leaves it whole or absent, and a record emptied by a power cut reads as
    absent (:func:`load_record`), so its cell is simply run again."""
    files = record.pop("files", None) or {}
    for rel, data in files.items():
        path = PurePosixPath(rel)
        if runs_dir is None or path.is_absolute() or ".." in path.parts:
            raise ValueError(f"a worker sent back a file outside the runs folder: {rel!r}")
        write_bytes_atomic(runs_dir / path, data)
    write_json_atomic(cell_path(out_dir, record["cell_id"]), record, durable=False)
