"""Helpers shared by the CLI commands."""
from __future__ import annotations

import contextlib
from enum import Enum
from typing import Iterator

import typer

from ..core.errors import LPMInputError, SolverFailed
from ..core.problem import BUDGETS


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn an :class:`LPMInputError` into one line on stderr and exit code 2,
    and a :class:`SolverFailed` (no usable optimum) into one line and exit code 1."""
    try:
        yield
    except LPMInputError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2) from None
    except SolverFailed as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None


def parse_float_list(name: str, text: str | None) -> list[float] | None:
    """Parse '1,10,100' into floats, naming the option on failure."""
    if text is None:
        return None
    try:
        return [float(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise LPMInputError(name, text, "a comma-separated list of numbers, e.g. '1,10,100'") from None


def choice_enum(name: str, values) -> type[Enum]:
    """A ``str`` Enum whose members are the library's own choice tuple, so
    that ``--help`` and typer's validation always list what the code accepts.
    Members are reached by value: ``Loss("ce")``."""
    return Enum(name, {v: v for v in values}, type=str)


Budget = choice_enum("Budget", BUDGETS)
