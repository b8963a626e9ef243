"""Atomic writes: a crash never leaves a half-written result file."""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np

from .errors import LPMInputError


@contextmanager
def _temporary_beside(path: Path):
    """A fresh temporary name in ``path``'s folder (the file exists, empty), removed
    again if the block fails; the block renames it into place when it succeeds."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_atomic(path: Path | str, write: Callable[[BinaryIO], Any], durable: bool = True) -> None:
    """Call ``write(fh)`` on a temporary file in the same folder, fsync, then
    rename it onto ``path``: readers see the old file or the whole new one.
    ``durable=False`` skips the fsync, for files that are cheap to remake: a
    crash of the process still leaves the old file or the new one, but after
    a power cut the new one may be empty (its reader must treat that as absent)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _temporary_beside(path) as tmp:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; use the usual mode
        os.replace(tmp, path)


def copy_atomic(source: Path | str, target: Path | str) -> None:
    """Make ``target`` a complete copy of ``source``, atomically: a hard link (or,
    on file systems without links, a copy) under a temporary name, then a rename."""
    source, target = Path(source), Path(target)
    with _temporary_beside(target) as tmp:
        os.unlink(tmp)
        try:
            os.link(source, tmp)
        except OSError:  # file systems without hard links
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)


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


def check_output_path(name: str, path: Path | str, kind: str) -> Path:
    """Refuse, before any work, an output path that cannot be written.

    ``kind`` is ``"file"`` or ``"folder"``. The path may exist (a folder is
    reused: sweeps resume in it; a file is replaced atomically) or not;
    missing parent folders are created when the first result is written, as
    ``mkdir -p`` would. Refused, as an :class:`LPMInputError` naming the
    option ``name``: an existing path of the other kind, a regular file where
    a folder must be, and a folder that cannot be written to (probed by
    creating and removing a temporary file, which is right for root and
    read-only file systems too). Nothing is created.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if kind == "file" and path.is_dir():
            raise LPMInputError(name, str(path), "a file path, not an existing folder")
        if kind == "folder" and not path.is_dir():
            raise LPMInputError(name, str(path), "a folder, not an existing file")
    folder = path if kind == "folder" else path.parent
    existing = folder
    while not existing.exists() and not existing.is_symlink():
        existing = existing.parent
    if not existing.is_dir():
        raise LPMInputError(name, str(path), f"a path whose parents are folders ('{existing}' is not a folder)")
    try:
        times = os.stat(existing)
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".lpm-write-check-")
        os.close(fd)
        os.unlink(probe)
        os.utime(existing, ns=(times.st_atime_ns, times.st_mtime_ns))  # the probe leaves no trace
    except OSError as exc:
        raise LPMInputError(name, str(path), f"a path in a folder you can write to ('{existing}': "
                                             f"{exc.strerror or exc})") from None
    return path
