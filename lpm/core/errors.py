"""Input validation with one message shape.

Every user mistake becomes an :class:`LPMInputError` whose text reads

    The 'ratio' parameter must be a number >= 1. Got 0.5 instead.

The CLI prints that line and exits with status 2, without a traceback.
Internal invariants use ``assert`` instead.
"""
from __future__ import annotations

import math
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
    if low is not None and (num < low or (low_open and num == low)):
        raise LPMInputError(name, value, allowed, owner)
    if high is not None and num > high:
        raise LPMInputError(name, value, allowed, owner)
    return int(num) if integer else num


class SolverFailed(RuntimeError):
    """A back end ran but produced no usable optimum (infeasible, unbounded,
    numerical failure): never a silently wrong number."""

    def __init__(self, solver: str, status: str, detail: str = ""):
        self.solver, self.status = solver, status
        extra = f": {detail}" if detail else ""
        super().__init__(f"The '{solver}' solver failed with status '{status}'{extra}.")
