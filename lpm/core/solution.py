"""The one result type every solver returns."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .problem import Problem


class Status(str, enum.Enum):
    OPTIMAL = "optimal"                    # certified: gap within tolerance
    OPTIMAL_INACCURATE = "optimal_inaccurate"  # solver finished, certificate loose
    STOPPED = "stopped"                    # iteration/time limit, no proof
    FAILED = "failed"


@dataclass(frozen=True)
class Certificate:
    """Proof of (near-)optimality.

    ``lower_bound`` is a value no feasible point can beat; ``gap`` is
    objective − lower_bound (≥ 0 up to rounding). ``kkt_residual`` is the
    norm of the violated first-order conditions, where defined.
    """

    lower_bound: float | None = None
    gap: float | None = None
    kkt_residual: float | None = None
    method: str = ""

    @property
    def relative_gap(self) -> float | None:
        if self.gap is None or self.lower_bound is None:
            return None
        return self.gap / max(1.0, abs(self.lower_bound))


@dataclass
class Trajectory:
    """Values recorded every few iterations of an iterative solver."""

    iteration: list[int] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)

    def record(self, it: int, **values: float) -> None:
        self.iteration.append(int(it))
        for k, v in values.items():
            self.values.setdefault(k, []).append(float(v))

    def as_dict(self) -> dict[str, list]:
        return {"iteration": list(self.iteration), **{k: list(v) for k, v in self.values.items()}}


@dataclass
class Solution:
    """What a solver found.

    W: classifier (K×d). H: class-mean features (K×d).
    features/labels: per-sample features (m×d) and labels (m,), where solved.
    """

    problem: Problem
    W: np.ndarray
    H: np.ndarray
    objective: float
    solver: str
    status: Status
    certificate: Certificate = field(default_factory=Certificate)
    features: np.ndarray | None = None
    labels: np.ndarray | None = None
    iterations: int = 0
    time_s: float = 0.0
    message: str = ""
    trajectory: Trajectory | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def gap(self) -> float | None:
        return self.certificate.gap

    def summary(self) -> dict:
        return {
            "solver": self.solver,
            "status": self.status.value,
            "objective": float(self.objective),
            "lower_bound": self.certificate.lower_bound,
            "gap": self.certificate.gap,
            "kkt_residual": self.certificate.kkt_residual,
            "iterations": self.iterations,
            "time_s": self.time_s,
            "message": self.message,
        }
