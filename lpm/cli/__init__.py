"""The ``lpm`` command line: a thin layer over the library.

Each command lives in its own module with a ``register(app)`` function, so
that every command is a few lines of option parsing around a library call.
User mistakes (:class:`lpm.core.errors.LPMInputError`) print one line and exit 2.
"""
from __future__ import annotations

import importlib
import sys

import typer

from ..core.errors import LPMInputError

app = typer.Typer(
    name="lpm",
    help="Layer-peeled models of neural collapse under class imbalance: solve, sweep, reproduce, train, compare.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@app.callback()
def _root() -> None:
    """Layer-peeled models of neural collapse under class imbalance."""


_COMMAND_MODULES = ("simulate", "sweep", "reproduce", "train_deep", "compare")
for _name in _COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as exc:  # command not built yet
        if exc.name != f"{__name__}.{_name}":
            raise
        continue
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, turning input errors into one line."""
    try:
        app(args=argv, standalone_mode=True)
    except LPMInputError as exc:
        typer.echo(f"Error: {exc}", err=True)
        sys.exit(2)
