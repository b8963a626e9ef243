"""Sweep grids: declarative Cartesian products that expand into cells.

A *cell* is one unit of work: a registered task name plus a JSON-safe spec.
Its identity is a hash of that pair, so the same cell always lands in the
same result file and a rerun of a sweep skips it (see :mod:`lpm.sweep.engine`).

:class:`ThresholdGrid` (task ``threshold``: R* over K, K_A and E_W·E_H) and
:class:`RegularisedGrid` (task ``regularised``: the weight-decay model over
loss, K, K_A, λ_Wλ_H and R) are the grids of the phase diagram.

:class:`Grid` is the grid of the ``solve`` task: every combination of
imbalance ratio R, K, K_A (``majority``), profile, classifier mode, loss,
budget form, norm budgets, feature dimension, solver and seed becomes one
:class:`lpm.Problem` solved by one back end (theory.md §3–§5).

Norm budgets. For the learnable LPM only the product E_W·E_H matters
(theory.md §4.2). Give ``ewh`` (a list of products) to sweep it: each cell
then uses E_W = 1 and E_H = product. Otherwise ``E_W`` and ``E_H`` are swept
as separate axes.
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..core.errors import LPMInputError, check_number
from ..core.profiles import check_counts, check_ratio
from ..core.thresholds import DEFAULT_INDEX_THRESHOLD

#: bump when the meaning of a cell spec changes, so old result files are not reused
CELL_FORMAT = 1


def canonical_float(x: float) -> float:
    """12 significant digits: the same ratio written two ways hashes the same."""
    return float(f"{float(x):.12g}")


def log_range(start: float, stop: float, num: int) -> list[float]:
    """``num`` log-spaced values from ``start`` to ``stop`` inclusive, e.g.
    ``log_range(1, 1e4, 41)`` is R = 10^{0.1 i}, i = 0…40."""
    start = check_number("ratio range start", start, low=0, low_open=True)
    stop = check_number("ratio range stop", stop, low=start)
    num = check_number("ratio range count", num, low=1, integer=True)
    if num == 1:
        return [canonical_float(start)]
    return [canonical_float(v) for v in np.logspace(math.log10(start), math.log10(stop), num)]


def parse_ratio_range(text: str) -> list[float]:
    """Parse ``'START:STOP:NUM'`` (e.g. ``'1:1e4:41'``) into :func:`log_range`."""
    parts = text.split(":")
    try:
        start, stop, num = float(parts[0]), float(parts[1]), float(parts[2])
        if len(parts) != 3:
            raise ValueError
    except (ValueError, IndexError):
        raise LPMInputError("ratio-range", text, "START:STOP:NUM with log-spaced NUM values, e.g. '1:1e4:41'") from None
    return log_range(start, stop, num)


@dataclass(frozen=True)
class Cell:
    """One unit of sweep work: ``task`` applied to ``spec`` (JSON-safe dict)."""

    task: str
    spec: Mapping[str, Any]
    grid: str = ""  # label of the grid that made it (not part of the identity)

    @property
    def cell_id(self) -> str:
        """First 16 hex digits of sha256 over the canonical JSON of (task, spec)."""
        text = json.dumps({"format": CELL_FORMAT, "task": self.task, "spec": self.spec},
                          sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "spec": dict(self.spec), "grid": self.grid}


@contextlib.contextmanager
def located(where: str) -> Iterator[None]:
    """Lead the message of an :class:`LPMInputError` raised in the block with
    where the bad value was found (e.g. "simulation file x.toml, grid 'a'")."""
    try:
        yield
    except LPMInputError as exc:
        exc.args = (f"{where}: {exc}",)
        raise


def as_tuple(name: str, value) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        value = (value,)
    value = tuple(value)
    if not value:
        raise LPMInputError(name, list(value), "a non-empty list")
    return value


@dataclass(frozen=True)
class Grid:
    """Cartesian grid of the ``solve`` task (one row per cell and seed).

    Every axis is a sequence; a scalar is taken as a one-element list.
    ``counts`` (a list of count lists, e.g. a real data set's) replaces the
    ``ratio``, ``K`` and ``profile`` axes: each list is one class-size setting.
    ``solver_settings`` maps a solver name to the settings it gets (e.g.
    ``{"gradient": {"steps": 2000}}``); a seed goes to the problem (fixed
    classifier draw) and, when the solver has a ``seed`` setting, to it too.
    ``lambda_W`` and ``lambda_H`` are the weight-decay coefficients of the
    cells whose budget is ``weight-decay`` (theory.md §9; fixed classifiers
    take no ``lambda_W``); other cells ignore them.
    ``tau``, ``gamma``, ``margin`` are axes of the count-aware losses
    (theory.md §14): each applies to the losses that take it (``None``: the
    published default) and the other losses' cells ignore it; an axis that no
    loss of the grid takes is refused. ``class_weights`` is an axis of class
    weighting schemes, ``beta`` that of the class-balanced β (refused when the
    grid has no ``class-balanced`` scheme). Unset values stay out of the cell
    spec, so cells without them keep their identities.
    """

    ratio: Sequence[float] = (100.0,)
    K: Sequence[int] = (10,)
    majority: Sequence[int | None] = (None,)
    profile: Sequence[str] = ("step",)
    classifier: Sequence[str] = ("learnable",)
    loss: Sequence[str] = ("ce",)
    budget: Sequence[str | None] = (None,)
    ewh: Sequence[float] | None = None
    E_W: Sequence[float] = (1.0,)
    E_H: Sequence[float] = (5.0,)
    d: Sequence[int | None] = (None,)
    solver: Sequence[str] = ("auto",)
    seed: Sequence[int] = (0,)
    counts: Sequence[Sequence[float]] | None = None
    lambda_W: Sequence[float | None] = (None,)
    lambda_H: Sequence[float | None] = (None,)
    tau: Sequence[float | None] = (None,)
    gamma: Sequence[float | None] = (None,)
    margin: Sequence[float | None] = (None,)
    class_weights: Sequence[str] = ("none",)
    beta: Sequence[float | None] = (None,)
    solver_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    name: str = "grid"

    task = "solve"

    def __post_init__(self):
        for f in fields(self):
            if f.name in ("solver_settings", "name", "counts") or (f.name == "ewh" and self.ewh is None):
                continue
            object.__setattr__(self, f.name, as_tuple(f.name, getattr(self, f.name)))
        if self.counts is not None:
            lists = as_tuple("counts", self.counts)
            object.__setattr__(self, "counts", tuple(tuple(canonical_float(c) for c in check_counts(one))
                                                     for one in lists))
        object.__setattr__(self, "ratio", tuple(canonical_float(check_ratio(r)) for r in self.ratio))
        self._check_remedy_axes()
        if not isinstance(self.solver_settings, Mapping):
            raise LPMInputError("solver_settings", self.solver_settings, "a mapping from solver name to settings")
        for name, settings in self.solver_settings.items():  # settings nobody would use are a mistake
            if name not in self.solver:
                raise LPMInputError("setting", name, "a solver of this grid: one of "
                                    + ", ".join(repr(s) for s in self.solver))
            if not isinstance(settings, Mapping):
                raise LPMInputError("setting", settings, f"a table of settings for the solver '{name}'")
        if "weight-decay" not in self.budget:  # weight decays that no cell of this grid would read
            for name in ("lambda_W", "lambda_H"):
                given = [v for v in getattr(self, name) if v is not None]
                if given:
                    raise LPMInputError(name, given[0], "given only when the budget forms include "
                                                        "'weight-decay' (--budget weight-decay)")

    def _check_remedy_axes(self) -> None:
        from ..core.losses import LOSS_HYPERPARAMETERS  # the registry, read only to validate axes

        for name in ("tau", "gamma", "margin"):
            values = [v for v in getattr(self, name) if v is not None]
            if values and not any(name in LOSS_HYPERPARAMETERS.get(loss, ()) for loss in self.loss):
                takers = [loss for loss, takes in LOSS_HYPERPARAMETERS.items() if name in takes]
                raise LPMInputError(name, values[0] if len(values) == 1 else values,
                                    "left unset unless the losses include one that takes it ("
                                    + ", ".join(repr(t) for t in takers) + ")")
        if any(v is not None for v in self.beta) and "class-balanced" not in self.class_weights:
            values = [v for v in self.beta if v is not None]
            raise LPMInputError("beta", values[0] if len(values) == 1 else values,
                                "left unset unless class_weights include 'class-balanced'")

    def _remedies(self, loss: str) -> list[dict[str, Any]]:
        """The hyperparameters and class weights of one loss's cells: the axes the loss
        takes (others ignored), × the weighting schemes (β only for class-balanced); unset
        values are left out of the spec."""
        from ..core.losses import LOSS_HYPERPARAMETERS

        def num(v):  # numbers canonical; anything else goes on to the Problem's check
            return canonical_float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

        takes = LOSS_HYPERPARAMETERS.get(loss, ())
        axes = [[(name, num(v)) for v in dict.fromkeys(getattr(self, name))] if name in takes else [(name, None)]
                for name in ("tau", "gamma", "margin")]
        weightings = []
        for scheme in dict.fromkeys(self.class_weights):
            betas = dict.fromkeys(num(b) for b in self.beta) if scheme == "class-balanced" else (None,)
            weightings += [(scheme, b) for b in betas]
        out = []
        for combo in itertools.product(*axes):
            for scheme, beta in weightings:
                extra = {k: v for k, v in combo if v is not None}
                if scheme != "none":
                    extra["class_weights"] = scheme
                if beta is not None:
                    extra["beta"] = beta
                out.append(extra)
        return out

    def _budgets(self) -> list[tuple[float, float]]:
        if self.ewh is not None:
            return [(1.0, canonical_float(check_number("ewh", p, low=0, low_open=True))) for p in self.ewh]
        return [(canonical_float(w), canonical_float(h)) for w in self.E_W for h in self.E_H]

    def _sizes(self) -> list[dict[str, Any]]:
        """The class-size settings: explicit count lists, or K × profile × ratio."""
        if self.counts is not None:
            return [{"counts": list(c)} for c in self.counts]
        return [{"K": K, "profile": prof, "ratio": ratio}
                for K, prof, ratio in itertools.product(self.K, self.profile, self.ratio)]

    def cells(self) -> list[Cell]:
        """Expand the grid in a fixed order (seed varies fastest)."""
        out = []
        axes = itertools.product(self.majority, self.classifier, self.loss, self.budget, self._budgets(), self.d,
                                 self.solver, self._sizes(), self.seed)
        seen = set()
        for KA, clf, loss, budget, (ew, eh), d, solver, sizes, seed in axes:
            problem = {**sizes, "majority": KA, "classifier": clf, "loss": loss, "budget": budget,
                       "E_W": ew, "E_H": eh, "d": d, "seed": seed}
            if budget == "max-margin":  # no norm budget enters the limit (theory.md §15): one cell per setting
                del problem["E_W"], problem["E_H"]
            for decay in self._decays(budget, clf):
                for remedy in self._remedies(loss):
                    spec = {"problem": {**problem, **decay, **remedy}, "solver": solver,
                            "settings": dict(self.solver_settings.get(solver, {}))}
                    key = json.dumps(spec, sort_keys=True, default=str)
                    if key in seen:
                        continue
                    seen.add(key)
                    out.append(Cell("solve", spec, self.name))
        return out

    def _decays(self, budget: str | None, classifier: str) -> list[dict[str, Any]]:
        """The weight-decay coefficients of one cell: none unless its budget is
        ``weight-decay`` (so other cells keep their identities), else λ_W × λ_H
        (λ_H only for fixed classifiers)."""
        if budget != "weight-decay":
            return [{}]
        def lam(v):  # numbers canonical; anything else goes on to the Problem's check
            return canonical_float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
        W = (None,) if classifier != "learnable" else tuple(dict.fromkeys(lam(w) for w in self.lambda_W))
        return [{"lambda_W": w, "lambda_H": h} if w is not None else {"lambda_H": h}
                for w in W for h in dict.fromkeys(lam(h) for h in self.lambda_H)]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, **asdict(self)}


@dataclass(frozen=True)
class ThresholdGrid:
    """Grid of the ``threshold`` task: R* over K, K_A and E_W·E_H."""

    K: Sequence[int] = (10,)
    majority: Sequence[int] = (5,)
    ewh: Sequence[float] = (5.0,)
    solver: str = "nuclear"
    solver_settings: Mapping[str, Any] = field(default_factory=dict)
    bracket: Sequence[float] = (1.0, 1e6)
    index_threshold: float = DEFAULT_INDEX_THRESHOLD
    log10_tol: float = 0.01
    name: str = "threshold"

    task = "threshold"

    def __post_init__(self):
        for name in ("K", "majority", "ewh"):
            object.__setattr__(self, name, as_tuple(name, getattr(self, name)))
        check_number("index_threshold", self.index_threshold, low=0, low_open=True)
        check_number("log10_tol", self.log10_tol, low=0, low_open=True)

    def cells(self) -> list[Cell]:
        common = {"solver": self.solver, "settings": dict(self.solver_settings),
                  "bracket": [float(b) for b in self.bracket], "index_threshold": float(self.index_threshold),
                  "log10_tol": float(self.log10_tol)}
        return [Cell("threshold", {"K": K, "majority": KA, "ewh": canonical_float(e), **common}, self.name)
                for K in self.K for KA in self.majority for e in self.ewh]

    def to_dict(self) -> dict:
        return {"task": self.task, **asdict(self)}


@dataclass(frozen=True)
class RegularisedGrid:
    """Grid of the ``regularised`` task: loss × K × K_A × λ_W λ_H × R."""

    loss: Sequence[str] = ("ce", "mse")
    K: Sequence[int] = (10,)
    majority: Sequence[int] = (5,)
    lam: Sequence[float] = (1e-4,)
    ratio: Sequence[float] = (10.0, 100.0)
    lam_split: float = 1.0  # λ_W / λ_H; only the product should matter
    solver: str = "nuclear"
    name: str = "regularised"

    task = "regularised"

    def __post_init__(self):
        for name in ("loss", "K", "majority", "lam", "ratio"):
            object.__setattr__(self, name, as_tuple(name, getattr(self, name)))

    def cells(self) -> list[Cell]:
        return [Cell("regularised", {"loss": loss, "K": K, "majority": KA, "lam": canonical_float(lam),
                                     "ratio": canonical_float(R), "lam_split": float(self.lam_split),
                                     "solver": self.solver}, self.name)
                for loss in self.loss for K in self.K for KA in self.majority for lam in self.lam for R in self.ratio]

    def to_dict(self) -> dict:
        return {"task": self.task, **asdict(self)}


@dataclass(frozen=True)
class ConvergenceGrid:
    """Grid of the ``convergence`` task (theory.md §10.8, §12): for each form (``ce``, ``dr``,
    ``dr-released``) × E_W·E_H (``ewh``, E_W = 1) × budget form × R × step multiplier ``lr`` × seed,
    the iterations the gradient solver needs to bring the mean angle of the class means to the
    fixed-ETF optimum below each of ``thresholds`` (at most ``steps``), with the mean angle measured
    both on class means and on every feature vector. ``ewh_for`` gives a form its own list of budgets
    (DR's counts do not depend on E_W·E_H, theory.md §12). ``samples_per_class`` (s) is an axis too:
    averaging s vectors shrinks DR's class-mean angle, not its per-sample one (theory.md §12)."""

    form: Sequence[str] = ("ce", "dr", "dr-released")
    ewh: Sequence[float] = (0.5, 5.0, 50.0)
    ewh_for: Mapping[str, Sequence[float]] = field(default_factory=dict)
    budget: Sequence[str] = ("per-sample",)
    ratio: Sequence[float] = (1.0,)
    lr: Sequence[float] = (1.0,)
    seed: Sequence[int] = (0,)
    K: int = 10
    majority: int = 5
    thresholds: Sequence[float] = (1e-2, 1e-4)
    steps: int = 20000
    samples_per_class: Sequence[int] = (4,)
    name: str = "convergence"

    task = "convergence"

    def __post_init__(self):
        for name in ("form", "ewh", "budget", "ratio", "lr", "seed", "thresholds", "samples_per_class"):
            object.__setattr__(self, name, as_tuple(name, getattr(self, name)))
        if not isinstance(self.ewh_for, Mapping):
            raise LPMInputError("ewh_for", self.ewh_for, "a table from form to a list of E_W*E_H products")

    def cells(self) -> list[Cell]:
        common = {"K": self.K, "majority": self.majority, "steps": self.steps,
                  "thresholds": [float(t) for t in self.thresholds]}
        out = []
        for form in self.form:
            budgets = as_tuple("ewh_for", self.ewh_for.get(form, self.ewh))
            for budget, ratio, lr, ewh, seed, s in itertools.product(self.budget, self.ratio, self.lr, budgets,
                                                                     self.seed, self.samples_per_class):
                spec = {"form": form, "ewh": canonical_float(ewh), "budget": budget,
                        "ratio": canonical_float(ratio), "lr": canonical_float(lr), "seed": seed, **common}
                if s != 4:  # cells at the default keep their identities (and resume)
                    spec["samples_per_class"] = s
                out.append(Cell("convergence", spec, self.name))
        return out

    def to_dict(self) -> dict:
        return {"task": self.task, **asdict(self)}


@dataclass(frozen=True)
class TuningGrid:
    """Grid of the ``tuning`` task (theory.md §14.7): for each loss × R × budget form, the value of
    the loss's hyperparameter ``parameter`` of ``tune`` (``la``: τ, ``cdt`` and ``vs``: γ) at which the
    learnable geometry is closest to the simplex ETF, searched over ``bounds`` by certified solves
    (:func:`lpm.core.tuning.closest_to_etf`). ``lambda_W``/``lambda_H`` are the weight-decay
    coefficients of the ``weight-decay`` budget form."""

    tune: Mapping[str, str] = field(default_factory=lambda: {"la": "tau", "cdt": "gamma", "vs": "gamma"})
    bounds: Mapping[str, Sequence[float]] = field(default_factory=lambda: {"tau": [-2.0, 2.0],
                                                                           "gamma": [-1.0, 1.0]})
    ratio: Sequence[float] = (10.0, 100.0)
    budget: Sequence[str] = ("class-average",)
    K: int = 10
    majority: int = 5
    E_W: float = 1.0
    E_H: float = 5.0
    lambda_W: float | None = None
    lambda_H: float | None = None
    points: int = 9
    xatol: float = 1e-3
    name: str = "tuning"

    task = "tuning"

    def __post_init__(self):
        for name in ("ratio", "budget"):
            object.__setattr__(self, name, as_tuple(name, getattr(self, name)))
        if not isinstance(self.tune, Mapping) or not self.tune:
            raise LPMInputError("tune", self.tune, "a table from loss to the hyperparameter searched, e.g. "
                                                   "{ la = 'tau' }")
        if not isinstance(self.bounds, Mapping):
            raise LPMInputError("bounds", self.bounds, "a table from hyperparameter to [low, high]")

    def cells(self) -> list[Cell]:
        out = []
        for loss, parameter in self.tune.items():
            for budget in self.budget:
                decay = ({"lambda_W": self.lambda_W, "lambda_H": self.lambda_H} if budget == "weight-decay" else {})
                for R in self.ratio:
                    spec = {"loss": loss, "parameter": parameter,
                            "bounds": [float(b) for b in self.bounds.get(parameter, (-1.0, 1.0))],
                            "ratio": canonical_float(R), "budget": budget, "K": self.K, "majority": self.majority,
                            "E_W": float(self.E_W), "E_H": float(self.E_H), "points": self.points,
                            "xatol": float(self.xatol), **decay}
                    out.append(Cell("tuning", spec, self.name))
        return out

    def to_dict(self) -> dict:
        return {"task": self.task, **asdict(self)}


def expand(grids) -> list[Cell]:
    """Cells of one grid, a list of grids, or a list of cells; duplicates dropped."""
    if hasattr(grids, "cells"):
        grids = [grids]
    cells: list[Cell] = []
    for g in grids:
        cells.extend([g] if isinstance(g, Cell) else g.cells())
    seen, unique = set(), []
    for c in cells:
        if c.cell_id not in seen:
            seen.add(c.cell_id)
            unique.append(c)
    return unique
