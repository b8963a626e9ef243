"""Input validation with one message shape.

Every user mistake becomes an :class:`LPMInputError` whose text reads

    The 'ratio' parameter must be a number >= 1. Got 0.5 instead.

The CLI prints that line and exits with status 2, without a traceback.
Internal invariants use ``assert`` instead.
"""
from __future__ import annotations

import math
import os
from typing import Any, Iterable


class LPMInputError(ValueError):
    """A user-supplied value is outside what is allowed."""

    def __init__(self, name: str, value: Any, allowed: str, owner: str | None = None):
        self.name, self.value, self.allowed = name, value, allowed
        where = f" of {owner}" if owner else ""
        super().__init__(f"The '{name}' parameter{where} must be {allowed}. Got {value!r} instead.")


class SolverRefused(LPMInputError):
    """A solver cannot handle the problem it was given."""

    def __init__(self, solver: str, reason: str):
        self.solver, self.reason = solver, reason
        ValueError.__init__(self, f"The '{solver}' solver cannot solve this problem: {reason}.")


def check_choice(name: str, value: Any, choices: Iterable[str], owner: str | None = None) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise LPMInputError(name, value, "one of " + ", ".join(repr(c) for c in choices), owner)
    return value


def check_number(name: str, value: Any, low: float | None = None, high: float | None = None,
                 low_open: bool = False, integer: bool = False, owner: str | None = None):
    """Check ``value`` is a finite number in the given interval; return it."""
    kind = "an int" if integer else "a number"
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    allowed = kind + (" " + " and ".join(parts) if parts else "")
    if isinstance(value, bool):
        raise LPMInputError(name, value, allowed, owner)
    try:
        num = float(value)
    except (TypeError, ValueError):
        raise LPMInputError(name, value, allowed, owner) from None
    if not math.isfinite(num):
        raise LPMInputError(name, value, allowed, owner)
    if integer and num != int(num):
        raise LPMInputError(name, value, allowed, owner)
    if integer and abs(num) > INDEX_MAX:  # beyond what can index or count: never a meaningful size
        raise LPMInputError(name, value, f"{allowed} (and at most 2**63 - 1)", owner)
    if low is not None and (num < low or (low_open and num == low)):
        raise LPMInputError(name, value, allowed, owner)
    if high is not None and num > high:
        raise LPMInputError(name, value, allowed, owner)
    if integer:
        return int(value) if isinstance(value, int) else int(num)
    return num


def check_seed(name: str, value: Any, owner: str | None = None) -> int:
    """A seed: an int in [0, 2**32 - 1] (what every generator of the project accepts)."""
    allowed = f"an int >= 0 and <= {SEED_MAX}"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise LPMInputError(name, value, allowed, owner)
    try:
        seed = check_number(name, value, integer=True, owner=owner)
    except LPMInputError:
        raise LPMInputError(name, value, allowed, owner) from None
    if not 0 <= seed <= SEED_MAX:
        raise LPMInputError(name, value, allowed, owner)
    return seed


class SolverFailed(RuntimeError):
    """A back end ran but produced no usable optimum (infeasible, unbounded,
    numerical failure): never a silently wrong number."""

    def __init__(self, solver: str, status: str, detail: str = ""):
        self.solver, self.status = solver, status
        extra = f": {detail}" if detail else ""
        super().__init__(f"The '{solver}' solver failed with status '{status}'{extra}.")


class FileOperationFailed(RuntimeError):
    """Reading or writing a file failed at run time (a full disk, a vanished
    folder): the message names the operation and the file. Exit code 1."""

    def __init__(self, operation: str, path, error: OSError | str):
        self.operation, self.path = operation, str(path)
        reason = error if isinstance(error, str) else (error.strerror or str(error))
        self.errno = None if isinstance(error, str) else error.errno
        super().__init__(f"cannot {operation} {self.path}: {reason}")


class StdoutFailed(Exception):
    """Writing to standard output failed (``> /dev/full``; a closed pipe is
    ``broken_pipe``). Raised by the command line's stdout guard."""

    def __init__(self, error: OSError):
        self.error = error
        self.broken_pipe = isinstance(error, BrokenPipeError)
        super().__init__(f"cannot write to standard output: {error.strerror or error}")


#: largest integer a size or count may take (what NumPy indexes with), and the largest seed
#: (NumPy's legacy generator and the fixed-classifier draws take 32-bit seeds)
INDEX_MAX = 2**63 - 1
SEED_MAX = 2**32 - 1


def physical_memory() -> int | None:
    """This machine's memory in bytes (``None`` where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def check_fits_in_memory(name: str, value: Any, need: float, what: str, available: int | None = None,
                         owner: str | None = None) -> None:
    """Refuse, before allocating, a size whose estimated memory ``need`` (bytes) exceeds this
    machine's; ``what`` says what needs it (e.g. 'K=5000, d=5000')."""
    available = physical_memory() if available is None else available
    if available is not None and need > available:
        raise LPMInputError(name, value, f"small enough to fit in memory: {what} needs about {need / 2**30:.3g} "
                                         f"GiB, this machine has {available / 2**30:.1f} GiB", owner)


def show_warning_one_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A ``warnings.showwarning`` that prints ``Warning: MESSAGE`` on one line (stderr), without the
    source line and location that Python's default adds."""
    import sys

    text = " ".join(str(message).split())
    try:
        (file or sys.stderr).write(f"Warning: {text}\n")
    except (OSError, ValueError):  # stderr closed: nowhere to warn
        pass
