"""The ``lpm`` command line: a thin layer over the library.

Each command lives in its own module with a ``register(app)`` function, so
that every command is a few lines of option parsing around a library call.

Commands are loaded on demand: ``lpm --help`` reads :data:`COMMANDS` and
imports no command module (so neither numpy nor the solvers), and ``lpm
simulate`` imports ``lpm.cli.simulate`` alone.

Every error is one line on stderr, ``Error: …``: the parser's (a missing
option, a bad choice, an unknown option) and the library's
(:class:`lpm.core.errors.LPMInputError`) exit with status 2, runtime failures
with status 1. Help is plain text that reads well at 80 columns.

Faults are handled here once for every command (:func:`run_one_line`): a
closed standard output (``| head``) ends a command quietly, a full one is one
error line; SIGTERM stops a command as Ctrl-C does; warnings are one line; and
no exception reaches the user as a traceback (docs/faults.md).
"""
from __future__ import annotations

import contextlib
import importlib
import os
import re
import signal
import sys
import threading
import warnings
from difflib import get_close_matches
from types import SimpleNamespace

import typer
from typer.core import TyperCommand, TyperGroup

from .. import __version__
from ..core.errors import LPMInputError, StdoutFailed, show_warning_one_line

#: command name → (module in this package, one-line summary for ``lpm --help``)
COMMANDS = {
    "simulate": ("simulate", "Solve one setting, learnable + CE beside fixed ETF + DR."),
    "sweep": ("sweep", "Solve a grid of settings into a CSV table (resumable)."),
    "reproduce": ("reproduce", "Run a simulation file's sweep and draw its figure."),
    "train-deep": ("train_deep", "Train a network on long-tailed data, track collapse."),
    "compare": ("compare", "Set deep runs beside the layer-peeled optimum."),
    "plot": ("plot", "Draw any sweep table: a column against another."),
}

# the click that typer runs on (vendored inside typer since typer 0.26, before that the click package)
_click_exceptions = importlib.import_module(typer.BadParameter.__module__)
_ClickException = _click_exceptions.ClickException
_NoArgsIsHelp = getattr(_click_exceptions, "NoArgsIsHelpError", None)


def one_line(exc: BaseException) -> str:
    """The parser's message as one line, without pydantic's 'Value error, ' prefix."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    return " ".join(message.replace("Value error, ", "").split())


_NO_BREAK = "\u2011"  # a non-breaking hyphen, while text is wrapped


def _glue(text: str) -> str:
    return re.sub(r"(?<=\w)-(?=\w)", _NO_BREAK, text)


def _split_term(term: str, width: int, indent: int) -> str:
    """An option's name and metavar on several lines if it is wider than the
    help, broken only after the '|' or ',' of a choice list."""
    if len(term) <= width:
        return term
    lines = [""]
    for piece in re.split(r"(?<=[|,])", term):
        if lines[-1].strip() and len(lines[-1]) + len(piece) > width:
            lines.append("    ")
        lines[-1] += piece
    return ("\n" + " " * indent).join(lines)


class HelpFormatter(typer.Context.formatter_class):
    """Click's help formatter, except that words are never broken at their
    hyphens ('class-average', 'fixed-etf' stay whole at any width) and a long
    choice list wraps between its choices."""

    def write_text(self, text: str) -> None:
        super().write_text(_glue(text))

    def write_dl(self, rows, *args, **kwargs) -> None:
        width = self.width - self.current_indent
        rows = [(_split_term(_glue(a), width, self.current_indent), _glue(b)) for a, b in rows]
        super().write_dl(rows, *args, **kwargs)

    def getvalue(self) -> str:
        return super().getvalue().replace(_NO_BREAK, "-")


class Context(typer.Context):
    formatter_class = HelpFormatter


class Command(TyperCommand):
    """A command whose usage line names its arguments plainly (``RUN_DIR...``)
    and whose help never breaks a word at a hyphen."""

    context_class = Context

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                continue
            name = (param.metavar or param.name or "").upper() + ("..." if param.nargs != 1 else "")
            pieces.append(name if param.required else f"[{name}]")
        return pieces


class LazyGroup(TyperGroup):
    """The ``lpm`` group: commands imported when used, errors as one line."""

    context_class = Context

    def list_commands(self, ctx) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx, name: str):
        if name not in self.commands and name in COMMANDS:
            self.commands[name] = load_command(name)
        return self.commands.get(name)

    def format_commands(self, ctx, formatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, summary) for name, (_, summary) in COMMANDS.items()])

    def resolve_command(self, ctx, args):
        if args and args[0] not in COMMANDS and not args[0].startswith("-"):
            close = get_close_matches(args[0], list(COMMANDS))
            hint = f" Did you mean {close[0]!r}?" if close else ""
            ctx.fail(f"No such command {args[0]!r}; the commands are {', '.join(COMMANDS)}.{hint}")
        return super().resolve_command(ctx, args)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        code = run_one_line(super().main, args=args, prog_name=prog_name, complete_var=complete_var, **extra)
        if standalone_mode:
            sys.exit(code)
        return code


def run_one_line(main, **kwargs) -> int:
    """Run a click ``main`` in non-standalone mode; print any error as one line; return the exit code.

    Around the command: standard output is guarded (:class:`_GuardedStream`:
    a reader that closed the pipe, as ``| head`` does, ends the command
    quietly with status 0; any other failure to write it, such as ``>
    /dev/full``, is one ``Error:`` line and status 1); SIGTERM is handled as
    Ctrl-C is (the command stops its workers and says how to resume; status
    143); a warning prints as one ``Warning:`` line; and an unexpected
    exception prints as one line too (``LPM_DEBUG=1`` shows its traceback).
    """
    with _stdout_guarded() as guard, _sigterm_as_interrupt() as term, _one_line_warnings():
        try:
            code = _run(main, **kwargs)
            guard.flush()
        except StdoutFailed as exc:
            code = guard.failed(exc)
        if code == 130 and term.received:
            code = 143
    return code


def _run(main, **kwargs) -> int:
    try:
        rv = main(standalone_mode=False, **kwargs)
    except StdoutFailed:
        raise
    except LPMInputError as exc:  # raised outside a command's user_errors() block
        typer.echo(f"Error: {exc}", err=True)
        return 2
    except _ClickException as exc:
        if _NoArgsIsHelp is not None and isinstance(exc, _NoArgsIsHelp):
            typer.echo(exc.format_message())  # bare `lpm`: the help, on stdout
            return 0
        typer.echo(f"Error: {one_line(exc)}", err=True)
        return exc.exit_code
    except typer.Abort:
        typer.echo("Error: aborted.", err=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - the last net: one line, never a traceback
        if os.environ.get("LPM_DEBUG"):
            raise
        text = " ".join(str(exc).split()) or "no message"
        typer.echo(f"Error: unexpected failure ({type(exc).__name__}: {text}); set LPM_DEBUG=1 to see where.",
                   err=True)
        return 1
    code = rv if isinstance(rv, int) else 0
    if code == 130 and not _interrupt_reported():  # typer turns Ctrl-C into exit code 130
        typer.echo("Interrupted.", err=True)
    return code


class _GuardedStream:
    """A stream whose write failures become :class:`StdoutFailed` (never an
    ``OSError`` that a command would report as a file it could not write)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, data):
        try:
            return self._stream.write(data)
        except OSError as exc:
            raise StdoutFailed(exc) from None

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        try:
            self._stream.flush()
        except OSError as exc:
            raise StdoutFailed(exc) from None

    @property
    def buffer(self):
        return _GuardedStream(self._stream.buffer)

    def __getattr__(self, name):
        return getattr(self._stream, name)


class _StdoutGuard:
    def __init__(self, stream):
        self.stream = stream

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as exc:
            raise StdoutFailed(exc) from None
        except ValueError:  # closed by the caller
            pass

    def failed(self, exc: StdoutFailed) -> int:
        """Silence standard output for good (the interpreter flushes it at exit) and return the code."""
        try:
            fd = self.stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)
        except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is both
            pass
        if exc.broken_pipe:
            return 0  # the reader stopped reading (`| head`): normal use
        typer.echo(f"Error: {exc}.", err=True)
        return 1


@contextlib.contextmanager
def _stdout_guarded():
    original = sys.stdout
    sys.stdout = _GuardedStream(original)
    try:
        yield _StdoutGuard(original)
    finally:
        sys.stdout = original


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be: the same clean-up runs."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    state = SimpleNamespace(received=False)
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum, frame):
        state.received = True
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield state
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _one_line_warnings():
    """Warnings (NumPy's RuntimeWarnings included) as one ``Warning:`` line each, never with source lines."""
    previous = warnings.showwarning
    warnings.showwarning = show_warning_one_line
    try:
        yield
    finally:
        warnings.showwarning = previous


def _interrupt_reported() -> bool:
    """Whether the command that ran has said how it was interrupted (only loaded commands can have)."""
    common = sys.modules.get(f"{__name__}._common")
    return bool(common and common.INTERRUPT_REPORTED)


def load_command(name: str):
    """Import ``lpm.cli.<module>`` and build its click command."""
    module = importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")
    sub = typer.Typer(rich_markup_mode=None, add_completion=False, pretty_exceptions_enable=False)
    module.register(sub)
    [info] = sub.registered_commands
    if info.cls in (None, TyperCommand):  # typer's default class
        info.cls = Command
    info.short_help = info.short_help or COMMANDS[name][1]
    command = typer.main.get_command(sub)
    command.name = name
    return command


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lpm {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="lpm",
    cls=LazyGroup,
    epilog="Run 'lpm COMMAND --help' for a command's options.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                       help="Print the version and exit.")) -> None:
    """Layer-peeled models of neural collapse under class imbalance: solve, sweep, reproduce, train, compare."""


def main(argv: list[str] | None = None, prog_name: str | None = None) -> None:
    """Console entry point (``lpm``)."""
    app(args=argv, prog_name=prog_name)
