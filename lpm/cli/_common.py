"""Helpers shared by the CLI commands."""
from __future__ import annotations

import contextlib
from enum import Enum
from typing import Iterator

import numpy as np
import typer

from ..core.errors import FileOperationFailed, LPMInputError, SolverFailed
from ..core.problem import BUDGETS


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn failures into one line on stderr: an :class:`LPMInputError` (a
    bad value) exits with code 2; a :class:`SolverFailed` (no usable
    optimum), a numerical failure, running out of memory or a file that
    cannot be written (:class:`FileOperationFailed`, naming the file and the
    operation) exit with code 1. Standard output failing is not handled here
    (:func:`lpm.cli.run_one_line` does)."""
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
    except FileOperationFailed as exc:  # a write that failed at run time (a full disk): names the file
        typer.echo(f"Error: {exc}.", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:  # checked up front, so only a race or a failing device lands here
        where = f" ({exc.filename})" if exc.filename else ""
        typer.echo(f"Error: a file operation failed{where}: {exc.strerror or exc}.", err=True)
        raise typer.Exit(1) from None


#: help of the executor options that ``lpm sweep`` and ``lpm reproduce`` share
JOBS_HELP = "Local worker processes (default: one per usable core; small, light grids run in this process)."
CLUSTER_HELP = ("Run the cells on Dask: 'local:N' (N workers here) or a scheduler address, e.g. tcp://10.0.0.5:8786 "
                "(needs lpm's 'distributed' extra).")

#: set when a command has already said how it was interrupted (see :func:`interrupted`)
INTERRUPT_REPORTED = False


def interrupted(message: str) -> typer.Exit:
    """Print ``message`` (how much is done, how to resume) and return the exit to raise (code 130);
    the entry point then adds no generic "Interrupted." line."""
    global INTERRUPT_REPORTED
    INTERRUPT_REPORTED = True
    typer.echo(message, err=True)
    return typer.Exit(130)


def parse_float_list(name: str, text: str | None) -> list[float] | None:
    """Parse '1,10,100' into floats, naming the option on failure."""
    if text is None:
        return None
    items = text.replace(" ", "").split(",")
    if items == [""]:
        return []
    if "" in items:  # '5,,5' or '1,10,': a value is missing, never silently dropped
        raise LPMInputError(name, text, "a comma-separated list of numbers without empty entries, e.g. '1,10,100'")
    try:
        return [float(t) for t in items]
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
