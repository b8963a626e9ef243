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
"""
from __future__ import annotations

import importlib
import re
import sys
from difflib import get_close_matches

import typer
from typer.core import TyperCommand, TyperGroup

from .. import __version__
from ..core.errors import LPMInputError

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
    """Run a click ``main`` in non-standalone mode; print any error as one line; return the exit code."""
    try:
        rv = main(standalone_mode=False, **kwargs)
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
    code = rv if isinstance(rv, int) else 0
    if code == 130 and not _interrupt_reported():  # typer turns Ctrl-C into exit code 130
        typer.echo("Interrupted.", err=True)
    return code


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
