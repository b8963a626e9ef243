"""Helpers shared by the CLI commands."""
from __future__ import annotations

import contextlib
import os
import tempfile
from enum import Enum
from pathlib import Path
from typing import Iterator

import numpy as np
import typer

from ..core.errors import LPMInputError, SolverFailed
from ..core.problem import BUDGETS


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn failures into one line on stderr: an :class:`LPMInputError` (a
    bad value) exits with code 2; a :class:`SolverFailed` (no usable
    optimum), a numerical failure, running out of memory or an output file
    that cannot be written exit with code 1."""
    try:
        yield
    except LPMInputError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2) from None
    except SolverFailed as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None
    except (np.linalg.LinAlgError, FloatingPointError) as exc:
        typer.echo(f"Error: the computation failed numerically ({exc}); a value may be outside the range "
                   "the solvers handle.", err=True)
        raise typer.Exit(1) from None
    except MemoryError as exc:
        detail = f" ({exc})" if str(exc) else ""
        typer.echo(f"Error: out of memory{detail}; try a smaller problem.", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:  # checked up front, so only a disk filling up or a race lands here
        where = f" {exc.filename}" if exc.filename else ""
        typer.echo(f"Error: cannot write{where}: {exc.strerror or exc}.", err=True)
        raise typer.Exit(1) from None


def check_output(name: str, path: Path | str, kind: str) -> Path:
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
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".lpm-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise LPMInputError(name, str(path), f"a path in a folder you can write to ('{existing}': "
                                             f"{exc.strerror or exc})") from None
    return path


def parse_float_list(name: str, text: str | None) -> list[float] | None:
    """Parse '1,10,100' into floats, naming the option on failure."""
    if text is None:
        return None
    try:
        return [float(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise LPMInputError(name, text, "a comma-separated list of numbers, e.g. '1,10,100'") from None


def parse_counts(name: str, texts: list[str] | str | None) -> list[list[float]] | None:
    """Class-count lists: '500,500,5,5', or several separated by ';' (or given
    as several options); each list has at least two numbers."""
    if texts is None:
        return None
    if isinstance(texts, str):
        texts = [texts]
    lists = []
    for text in texts:
        for part in text.split(";"):
            if not part.strip():
                continue
            values = parse_float_list(name, part)
            if len(values) < 2:
                raise LPMInputError(name, part.strip(), "a comma-separated list of at least 2 class counts, "
                                                         "e.g. '500,500,5,5'")
            lists.append(values)
    if not lists:
        raise LPMInputError(name, ";".join(texts), "one or more lists of class counts, e.g. '500,500,5,5'")
    return lists


def choice_enum(name: str, values) -> type[Enum]:
    """A ``str`` Enum whose members are the library's own choice tuple, so
    that ``--help`` and typer's validation always list what the code accepts.
    Members are reached by value: ``Loss("ce")``."""
    return Enum(name, {v: v for v in values}, type=str)


Budget = choice_enum("Budget", BUDGETS)
