"""Atomic writes: a crash never leaves a half-written result file."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np


def write_atomic(path: Path | str, write: Callable[[BinaryIO], Any], durable: bool = True) -> None:
    """Call ``write(fh)`` on a temporary file in the same folder, fsync, then
    rename it onto ``path``: readers see the old file or the whole new one.
    ``durable=False`` skips the fsync, for files that are cheap to remake: a
    crash of the process still leaves the old file or the new one, but after
    a power cut the new one may be empty (its reader must treat that as absent)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; use the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: Path | str, data: bytes, durable: bool = True) -> None:
    write_atomic(path, lambda fh: fh.write(data), durable)


def write_text_atomic(path: Path | str, text: str, durable: bool = True) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), durable)


def write_json_atomic(path: Path | str, obj: Any, durable: bool = True) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, default=json_default) + "\n", durable)


def json_default(x):
    """``json.dumps`` default: NumPy scalars and arrays as plain Python."""
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def jsonable(value: Any) -> Any:
    """A plain Python scalar for JSON and CSV cells (NumPy scalars unwrapped, NaN/inf → None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
