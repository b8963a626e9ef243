"""The sweep's CSV tables, rebuilt from the cell records (no pandas needed to write them).

``results.csv``     one row per cell: the cell's spec columns, the task's row
                    (every resolved Problem field, objective, certificate gap,
                    solver, status, times, every geometry metric), ``outcome``
                    and ``error`` (text) for failed cells
``trajectory.csv``  long table, one row per recorded solver iteration
``per_class.csv``   long table, one row per class of each cell

Columns appear in the order they are first met; a value a row lacks is an
empty field. Numbers are written as Python writes them (the shortest text
that reads back to the same float), so a table read back is exact.
:func:`read_table` returns a pandas DataFrame (pandas is imported only there).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Iterable

from ..core.io import write_text_atomic
from .folder import load_record
from .grid import Cell
from .tasks import flatten_spec

TABLE_FORMAT = "CSV (comma-separated, header row, one row per cell; long tables one row per iteration/class)"
#: long tables every sweep of the ``solve`` task writes (removed when a grid has none)
LONG_TABLES = ("trajectory", "per_class")
#: columns copied from a cell's results row onto its long-table rows
KEY_COLUMNS = ("solver", "budget", "majority", "d", "ewh", "E_W", "E_H", "ratio", "K", "loss", "tau", "gamma", "margin",
               "class_weights", "beta")


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Rows (dicts) as CSV text; the header is the union of their keys in first-seen order."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_field(row.get(c)) for c in columns])
    return buffer.getvalue()


def _field(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if value == value else ""
    return str(value)


def consolidate(out_dir: Path | str, cells: Iterable[Cell]) -> list[dict[str, Any]]:
    """Rebuild ``results.csv`` and the long tables from the records of ``cells``;
    returns the results rows."""
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
                **{k: rec["row"][k] for k in KEY_COLUMNS if k in rec["row"]}}
        for name, long_rows in rec.get("tables", {}).items():
            long_tables.setdefault(name, []).extend({**keys, **r} for r in long_rows)
    write_text_atomic(out_dir / "results.csv", csv_text(rows) if rows else "")
    for name in set(long_tables) | set(LONG_TABLES):
        path = out_dir / f"{name}.csv"
        if long_tables.get(name):
            write_text_atomic(path, csv_text(long_tables[name]))
        elif path.exists():  # left from an earlier grid: would be stale
            path.unlink()
    return rows


def read_table(out_dir: Path | str, name: str = "results"):
    """Read a consolidated table (``results``, ``trajectory`` or ``per_class``) as a
    pandas DataFrame; an empty frame if the sweep wrote none of that kind."""
    import pandas as pd  # the tables are written without pandas; only readers need it

    path = Path(out_dir) / f"{name}.csv"
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
