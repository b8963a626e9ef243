"""``lpm reproduce NAME``: run the sweep behind a ``sims/NAME.toml`` file and
draw its figure (theory.md §10).

A simulation file is declarative TOML::

    name = "minority-collapse"           # = the file's stem
    title = "..."
    description = "one line for --list"
    runner = "sweep"                     # registered runner, or "module:function"
    plot = "minority_collapse"           # lpm.figures name, or "module:function"
    table = "results"                    # table handed to the plot function
    [[grids]]                            # one or more grids (a sweep)
    task = "solve"                       # solve | threshold | regularised
    name = "certified"
    ratio_range = [1, 1e4, 41]           # or ratio = [...]
    classifier = ["learnable"]
    ...
    [[smoke.grids]]                      # reduced grid for tests: overrides
    name = "certified"                   # the grid of that name, key by key
    ratio = [1, 100, 1e4]

A runner is ``fn(sim, out_dir, *, smoke, jobs, progress) -> dict[str,
DataFrame]`` (tables by name). The default ``sweep`` runner runs every grid
through :func:`lpm.sweep.run_sweep` (resumable) in ``out_dir``. Other files
(e.g. a later ``theory-vs-practice.toml``) plug in with
:func:`register_runner` or a ``"module:function"`` path. The figure is
written as ``out_dir/NAME.png`` and ``.pdf`` beside the tables.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from .core.errors import LPMInputError
from .core.io import write_json_atomic
from .figures import load_ref

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

RunnerFn = Callable[..., dict[str, pd.DataFrame]]
_RUNNERS: dict[str, RunnerFn] = {}
_TOP_KEYS = {"name", "title", "description", "runner", "plot", "table", "plot_options", "grids", "smoke", "options"}


def register_runner(name: str) -> Callable[[RunnerFn], RunnerFn]:
    def deco(fn: RunnerFn) -> RunnerFn:
        _RUNNERS[name] = fn
        return fn
    return deco


def resolve(ref: str, registry: dict[str, Callable], what: str) -> Callable:
    """A registered name, or a ``"package.module:function"`` path."""
    if ref in registry:
        return registry[ref]
    found = load_ref(ref) if ":" in ref else None
    if found is not None:
        return found
    allowed = ", ".join(repr(r) for r in sorted(registry)) + ", or 'module:function'"
    raise LPMInputError(what, ref, f"one of {allowed}")


@dataclass
class Simulation:
    """A parsed ``sims/*.toml`` file."""

    name: str
    title: str
    description: str
    path: Path
    runner: str = "sweep"
    plot: str = ""
    table: str = "results"
    plot_options: dict = field(default_factory=dict)
    grids: list[dict] = field(default_factory=list)
    smoke_grids: list[dict] = field(default_factory=list)
    options: dict = field(default_factory=dict)

    def grid_specs(self, smoke: bool = False) -> list[dict]:
        """The grid tables, with the smoke overrides applied by grid name."""
        if not smoke:
            return [dict(g) for g in self.grids]
        overrides = {g.get("name"): g for g in self.smoke_grids}
        specs = []
        for grid in self.grids:
            change = overrides.get(grid.get("name"), {})
            if {"ratio", "ratio_range"} & set(change):  # either form replaces both
                grid = {k: v for k, v in grid.items() if k not in ("ratio", "ratio_range")}
            specs.append({**grid, **change})
        return specs


def default_sims_dir() -> Path:
    """``$LPM_SIMS_DIR``, else the shipped simulation files (:func:`lpm.sims_dir`)."""
    from . import sims_dir

    env = os.environ.get("LPM_SIMS_DIR")
    return Path(env) if env else sims_dir()


def load_simulation(path: Path | str) -> Simulation:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LPMInputError("simulation file", str(path), f"a readable TOML file ({exc})") from None
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise LPMInputError("key", sorted(unknown)[0], "one of " + ", ".join(sorted(_TOP_KEYS)),
                            owner=f"simulation file {path.name}")
    return Simulation(name=data.get("name", path.stem), title=data.get("title", path.stem),
                      description=data.get("description", ""), path=path, runner=data.get("runner", "sweep"),
                      plot=data.get("plot", ""), table=data.get("table", "results"),
                      plot_options=data.get("plot_options", {}), grids=data.get("grids", []),
                      smoke_grids=data.get("smoke", {}).get("grids", []), options=data.get("options", {}))


def list_simulations(sims_dir: Path | str | None = None) -> list[Simulation]:
    folder = Path(sims_dir) if sims_dir else default_sims_dir()
    return [load_simulation(p) for p in sorted(folder.glob("*.toml"))]


def get_simulation(name: str, sims_dir: Path | str | None = None) -> Simulation:
    sims = {s.name: s for s in list_simulations(sims_dir)}
    if name not in sims:
        allowed = ", ".join(repr(n) for n in sorted(sims)) or "(none found)"
        raise LPMInputError("name", name, f"one of {allowed} (or 'all')", owner="lpm reproduce")
    return sims[name]


# ---------------------------------------------------------------- grids
def build_grid(spec: dict):
    """A grid object from one ``[[grids]]`` table (``task`` picks the type)."""
    from .sweep.grid import Grid, RegularisedGrid, ThresholdGrid, log_range

    types = {"solve": Grid, "threshold": ThresholdGrid, "regularised": RegularisedGrid}
    spec = dict(spec)
    task = spec.pop("task", "solve")
    if task not in types:
        raise LPMInputError("task", task, "one of " + ", ".join(repr(t) for t in types), owner="grid")
    if "ratio_range" in spec:
        spec["ratio"] = log_range(*spec.pop("ratio_range"))
    try:
        return types[task](**spec)
    except TypeError as exc:  # unknown key
        raise LPMInputError("grid", sorted(spec), f"keys of a '{task}' grid ({exc})") from None


@register_runner("sweep")
def run_sweep_runner(sim: Simulation, out_dir: Path, *, smoke: bool = False, jobs: int = 1,
                     progress: bool = True) -> dict[str, pd.DataFrame]:
    """Run (or resume) every grid of ``sim`` as one sweep in ``out_dir``."""
    from .sweep import read_table, run_sweep

    grids = [build_grid(g) for g in sim.grid_specs(smoke)]
    run_sweep(grids, out_dir, jobs=jobs, progress=progress,
              config={"simulation": sim.name, "file": str(sim.path), "smoke": smoke})
    return {name: read_table(out_dir, name) for name in ("results", "trajectory", "per_class")}


# ---------------------------------------------------------------- reproduce
@dataclass
class Reproduction:
    name: str
    out_dir: Path
    figures: list[Path]
    tables: dict[str, pd.DataFrame]
    seconds: float


def reproduce(name: str, out: Path | str | None = None, *, smoke: bool = False, jobs: int = 1,
              progress: bool = True, sims_dir: Path | str | None = None) -> Reproduction:
    """Run the sweep behind ``sims/NAME.toml`` (resuming) and draw its figure.

    Output folder: ``out`` or ``results/NAME`` (``results/NAME-smoke`` for the
    reduced grid). Writes the tables, ``NAME.png``, ``NAME.pdf`` and
    ``figure.json`` (what drew it and how long it took).
    """
    import matplotlib.pyplot as plt

    from .figures import get_plot
    from .figures.style import save_figure

    sim = get_simulation(name, sims_dir)
    out_dir = Path(out) if out is not None else Path("results") / (sim.name + ("-smoke" if smoke else ""))
    runner = resolve(sim.runner, _RUNNERS, "runner")
    plot = get_plot(sim.plot)
    start = time.perf_counter()
    tables = runner(sim, out_dir, smoke=smoke, jobs=jobs, progress=progress)
    if sim.table not in tables or tables[sim.table].empty:
        raise RuntimeError(f"simulation '{sim.name}' produced no '{sim.table}' table in {out_dir}")
    fig = plot(tables[sim.table], **sim.plot_options)
    figures = save_figure(fig, out_dir / sim.name)
    plt.close(fig)
    seconds = time.perf_counter() - start
    write_json_atomic(out_dir / "figure.json", {"simulation": sim.name, "title": sim.title, "plot": sim.plot,
                                                "table": sim.table, "smoke": smoke, "seconds": seconds,
                                                "figures": [p.name for p in figures]})
    return Reproduction(sim.name, out_dir, figures, tables, seconds)
