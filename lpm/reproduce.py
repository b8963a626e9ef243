"""``lpm reproduce NAME``: run the sweep behind a ``sims/NAME.toml`` file and
draw its figure (theory.md §10).

A simulation file is declarative TOML::

    name = "minority-collapse"           # = the file's stem
    title = "..."
    description = "one line for --list"
    runner = "sweep"                     # a registered runner
    plot = "minority_collapse"           # a registered figure (lpm.figures)
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

A runner is ``fn(sim, out_dir, *, smoke, progress, executor, runs_dir) ->
dict[str, DataFrame]`` (tables by name; ``executor`` is an open
:class:`lpm.sweep.Executor`, ``runs_dir`` the declared shared folder for deep
runs or ``None``). The default ``sweep`` runner runs every grid through
:func:`lpm.sweep.run_cells` (checked up front, resumable) in ``out_dir``.
Other runners are registered: ``theory-vs-practice`` and ``classifier-question`` (shipped), and plug-ins
registered in Python with :func:`register_runner` (and figures with
:func:`lpm.figures.register_plot`). A simulation file names registered code
only, never a ``"module:function"`` of its own choosing: sharing a file must
not share the power to run code. The figure is written as
``out_dir/NAME.png`` and ``.pdf`` beside the tables.

A simulation file is checked before anything runs: its keys and their types
here, and every cell of its grids by :func:`lpm.sweep.run_cells` (errors
name the file and the grid).
"""
from __future__ import annotations

import gzip
import hashlib
import inspect
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .core.errors import LPMInputError
from . import __version__
from .core.io import folder_lock, read_structured, write_bytes_atomic, write_json_atomic
from .figures import load_ref
from .sweep import Executor, SweepFailed, as_executor, check_cells, expand, located

RunnerFn = Callable[..., dict[str, pd.DataFrame]]
_RUNNERS: dict[str, RunnerFn] = {}
#: the keys of a simulation file and the TOML type each must have
_TOP_KEYS = {"name": str, "title": str, "description": str, "runner": str, "plot": str, "table": str,
             "plot_options": dict, "grids": list, "smoke": dict, "options": dict}
_TYPE_NAMES = {str: "a string", dict: "a table", list: "an array of tables"}


def register_runner(name: str) -> Callable[[RunnerFn], RunnerFn]:
    def deco(fn: RunnerFn) -> RunnerFn:
        _RUNNERS[name] = fn
        return fn
    return deco


#: runners shipped with lpm outside this module, imported only when a file names them
_BUILTIN_RUNNERS = {"theory-vs-practice": "lpm.compare.practice:run_theory_vs_practice",
                    "classifier-question": "lpm.compare.classifier_question:run_classifier_question"}


def resolve(ref: str, registry: dict[str, Callable], what: str) -> Callable:
    """A registered runner (or the ``module:function`` path of a shipped one). Any other name
    is refused before anything is imported: a simulation file must not be able to run code."""
    if ref in registry:
        return registry[ref]
    shipped = {**_BUILTIN_RUNNERS, **{path: path for path in _BUILTIN_RUNNERS.values()}}
    if ref in shipped:
        found = load_ref(shipped[ref])
        assert found is not None, shipped[ref]
        return found
    allowed = ", ".join(repr(r) for r in sorted({*registry, *_BUILTIN_RUNNERS}))
    raise LPMInputError(what, ref, f"one of {allowed} (plug-ins are registered in Python with "
                                   "lpm.reproduce.register_runner; simulation files cannot name other code)")


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
        unknown = set(overrides) - {g.get("name") for g in self.grids}
        if unknown:  # an override that no grid would take would silently change nothing
            raise LPMInputError("smoke.grids", sorted(map(str, unknown))[0], "the name of a grid of the file: one of "
                                + ", ".join(repr(g.get("name")) for g in self.grids),
                                owner=f"simulation file {self.path.name}")
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


def _check_types(data: dict, path: Path) -> None:
    owner = f"simulation file {path.name}"
    unknown = set(data) - set(_TOP_KEYS)
    if unknown:
        raise LPMInputError("key", sorted(unknown)[0], "one of " + ", ".join(sorted(_TOP_KEYS)), owner=owner)
    for key, kind in _TOP_KEYS.items():
        if key in data and not isinstance(data[key], kind):
            raise LPMInputError(key, data[key], _TYPE_NAMES[kind], owner=owner)
    tables = [("grids", g) for g in data.get("grids", [])]
    smoke = data.get("smoke", {})
    if set(smoke) - {"grids"}:
        raise LPMInputError("smoke", sorted(smoke), "a table holding only [[smoke.grids]]", owner=owner)
    if not isinstance(smoke.get("grids", []), list):
        raise LPMInputError("smoke.grids", smoke["grids"], "an array of tables", owner=owner)
    tables += [("smoke.grids", g) for g in smoke.get("grids", [])]
    for key, table in tables:
        if not isinstance(table, dict):
            raise LPMInputError(key, table, "an array of tables ([[{}]])".format(key), owner=owner)
        if "name" in table and not isinstance(table["name"], str):
            raise LPMInputError("name", table["name"], "a string", owner=f"a grid of {path.name}")


def load_simulation(path: Path | str) -> Simulation:
    """Read and type-check a simulation file (its grids' cells are checked when it runs)."""
    path = Path(path)
    data = read_structured(path, "simulation file", (".toml",))
    _check_types(data, path)
    return Simulation(name=data.get("name", path.stem), title=data.get("title", path.stem),
                      description=data.get("description", ""), path=path, runner=data.get("runner", "sweep"),
                      plot=data.get("plot", ""), table=data.get("table", "results"),
                      plot_options=data.get("plot_options", {}), grids=data.get("grids", []),
                      smoke_grids=data.get("smoke", {}).get("grids", []), options=data.get("options", {}))


def list_simulations(sims_dir: Path | str | None = None) -> list[Simulation]:
    """Every ``*.toml`` simulation file of ``sims_dir`` (refused: not a folder, or none in it)."""
    folder = Path(sims_dir) if sims_dir else default_sims_dir()
    if not folder.is_dir():
        raise LPMInputError("sims-dir", str(folder), "a folder of simulation files (*.toml)")
    paths = sorted(folder.glob("*.toml"), key=lambda p: p.stem)
    if not paths:
        raise LPMInputError("sims-dir", str(folder), "a folder holding simulation files (*.toml); it has none")
    sims = [load_simulation(p) for p in paths]
    seen: dict[str, Path] = {}
    for sim in sims:  # one name, one file: never two simulations listed (and run) under one name
        if sim.name in seen:
            raise LPMInputError("name", sim.name, f"unique among the simulation files of {folder} (both "
                                                  f"{seen[sim.name].name} and {sim.path.name} use it)",
                                owner=f"simulation file {sim.path.name}")
        seen[sim.name] = sim.path
    return sims


def get_simulation(name: str, sims_dir: Path | str | None = None) -> Simulation:
    sims = {s.name: s for s in list_simulations(sims_dir)}
    if name not in sims:
        allowed = ", ".join(repr(n) for n in sorted(sims)) or "(none found)"
        raise LPMInputError("name", name, f"one of {allowed} (or 'all')", owner="lpm reproduce")
    return sims[name]


# ---------------------------------------------------------------- grids
def build_grid(spec: dict):
    """A grid object from one ``[[grids]]`` table (``task`` picks the type)."""
    from .sweep.grid import ConvergenceGrid, Grid, RegularisedGrid, ThresholdGrid, TuningGrid, log_range

    types = {"solve": Grid, "threshold": ThresholdGrid, "regularised": RegularisedGrid,
             "convergence": ConvergenceGrid, "tuning": TuningGrid}
    spec = dict(spec)
    task = spec.pop("task", "solve")
    if task not in types:
        raise LPMInputError("task", task, "one of " + ", ".join(repr(t) for t in types), owner="grid")
    if "ratio_range" in spec:
        span = spec.pop("ratio_range")
        if not isinstance(span, list) or len(span) != 3:
            raise LPMInputError("ratio_range", span, "[START, STOP, NUM], e.g. [1, 1e4, 41]")
        spec["ratio"] = log_range(*span)
    try:
        return types[task](**spec)
    except TypeError as exc:  # unknown key
        raise LPMInputError("grid", sorted(spec), f"keys of a '{task}' grid ({exc})") from None


def checked_grids(sim: Simulation, smoke: bool = False) -> list:
    """The grids of ``sim``, every cell checked; an error names the file and the grid."""
    grids = []
    for spec in sim.grid_specs(smoke):
        with located(f"simulation file {sim.path.name}, grid '{spec.get('name', '?')}'"):
            grid = build_grid(spec)
            check_cells(expand(grid))
        grids.append(grid)
    return grids


def check_simulation(sim: Simulation, smoke: bool = False) -> None:
    """Everything that can be checked before ``sim`` runs: its runner, its plot and,
    for the ``sweep`` runner, every cell of its grids."""
    from .figures import get_plot

    owner = f"simulation file {sim.path.name}"
    with located(owner):
        runner = resolve(sim.runner, _RUNNERS, "runner")
        plot = get_plot(sim.plot)
    check_plot_options(plot, sim)
    if runner is _RUNNERS["sweep"]:
        if sim.options:
            raise LPMInputError("options", sorted(sim.options), "left out with the 'sweep' runner, which reads no "
                                                                "options (they are for plug-in runners)", owner)
        if sim.table not in SWEEP_TABLES:
            raise LPMInputError("table", sim.table, "one of " + ", ".join(repr(t) for t in SWEEP_TABLES)
                                + " (the tables of the 'sweep' runner)", owner)
        checked_grids(sim, smoke)


#: the tables that the ``sweep`` runner returns
SWEEP_TABLES = ("results", "trajectory", "per_class")


def check_plot_options(plot: Callable, sim: Simulation) -> None:
    """Refuse ``plot_options`` that the plot function does not take, before any cell runs."""
    try:
        signature = inspect.signature(plot)
    except (TypeError, ValueError):  # pragma: no cover - a builtin without a signature
        return
    try:
        signature.bind(None, **sim.plot_options)
    except TypeError:
        taken = [p.name for p in list(signature.parameters.values())[1:]
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "ax"]
        unknown = sorted(set(sim.plot_options) - set(taken)) or sorted(sim.plot_options)
        raise LPMInputError("plot_options", unknown[0], f"options of the '{sim.plot}' figure: "
                            + (", ".join(taken) or "none"), owner=f"simulation file {sim.path.name}") from None


@register_runner("sweep")
def run_sweep_runner(sim: Simulation, out_dir: Path, *, smoke: bool = False, progress: bool = True,
                     executor: Executor | None = None, runs_dir: Path | None = None) -> dict[str, pd.DataFrame]:
    """Run (or resume) every grid of ``sim`` as one sweep in ``out_dir``."""
    from .sweep import read_table, run_cells

    report = run_cells(checked_grids(sim, smoke), out_dir, executor=executor, progress=progress,
                       config={"simulation": sim.name, "file": str(sim.path), "smoke": smoke})
    if report.done and report.failed == report.done:
        raise SweepFailed(f"simulation '{sim.name}': all {report.failed} cells failed; the first: "
                          f"{report.first_error} (records in {Path(out_dir) / 'cells'})")
    return {name: read_table(out_dir, name) for name in ("results", "trajectory", "per_class")}


# ---------------------------------------------------------------- reproduce
#: the drawn table, written beside each figure (see :func:`reproduce`)
FIGURE_TABLE = "figure_table.csv.gz"


@dataclass
class Reproduction:
    name: str
    out_dir: Path
    figures: list[Path]
    tables: dict[str, pd.DataFrame]
    seconds: float
    #: cells of the sweep that failed (their records hold the errors), and the first error
    failed: int = 0
    first_error: str | None = None


def reproduce(name: str, out: Path | str | None = None, *, smoke: bool = False, jobs: int | None = None,
              executor: Any = None, runs_dir: Path | str | None = None, progress: bool = True,
              sims_dir: Path | str | None = None) -> Reproduction:
    """Run the sweep behind ``sims/NAME.toml`` (resuming) and draw its figure.

    Output folder: ``out`` or ``results/NAME`` (``results/NAME-smoke`` for the
    reduced grid). Writes the tables, ``NAME.png``, ``NAME.pdf``, the drawn
    table as ``figure_table.csv.gz`` and ``figure.json`` (what drew it, how long
    it took, and SHA-256 hashes of the simulation file and of the drawn table). Cells run on
    ``executor`` (see :func:`lpm.sweep.run_cells`), else on ``jobs`` local
    processes (default: one per usable core); ``runs_dir`` is a folder for
    deep runs that every worker reaches.
    """
    import matplotlib
    import matplotlib.pyplot as plt

    from .figures import get_plot
    from .figures.style import save_figure

    sim = get_simulation(name, sims_dir)
    out_dir = Path(out) if out is not None else Path("results") / (sim.name + ("-smoke" if smoke else ""))
    runner = resolve(sim.runner, _RUNNERS, "runner")
    plot = get_plot(sim.plot)
    check_plot_options(plot, sim)
    engine, owned = as_executor(executor, jobs)
    start = time.perf_counter()
    try:
        tables = runner(sim, out_dir, smoke=smoke, progress=progress, executor=engine.open(),
                        runs_dir=None if runs_dir is None else Path(runs_dir))
    finally:
        if owned:
            engine.close()
    failed, first_error = _failures(out_dir)
    if sim.table not in tables or tables[sim.table].empty:
        detail = f"; the first cell error: {first_error}" if first_error else ""
        raise SweepFailed(f"simulation '{sim.name}' produced no '{sim.table}' table in {out_dir}{detail}")
    with folder_lock(out_dir, "out", "simulation"):  # one process draws into the folder at a time
        fig = plot(tables[sim.table], **sim.plot_options)
        figures = save_figure(fig, out_dir / sim.name)
        plt.close(fig)
        seconds = time.perf_counter() - start
        table_text = tables[sim.table].to_csv(index=False)
        # the table the figure was drawn from, as CSV (gzip without a time stamp, so equal tables give equal
        # bytes): with figure.json's hashes it lets a copied figure be checked against its table and sims file
        write_bytes_atomic(out_dir / FIGURE_TABLE, gzip.compress(table_text.encode(), mtime=0))
        write_json_atomic(out_dir / "figure.json", {
            "simulation": sim.name, "title": sim.title, "plot": sim.plot, "table": sim.table, "smoke": smoke,
            "seconds": seconds, "figures": [p.name for p in figures], "failed_cells": failed,
            "simulation_sha256": hashlib.sha256(sim.path.read_bytes()).hexdigest(), "table_file": FIGURE_TABLE,
            "table_sha256": hashlib.sha256(table_text.encode()).hexdigest(),
            "matplotlib": matplotlib.__version__, "lpm": __version__})
    return Reproduction(sim.name, out_dir, figures, tables, seconds, failed, first_error)


def _failures(out_dir: Path) -> tuple[int, str | None]:
    """Failed cells and the first error, from the sweep's ``sweep.json`` (none if it wrote none)."""
    try:
        info = json.loads((Path(out_dir) / "sweep.json").read_text())
    except (OSError, ValueError):
        return 0, None
    return int(info.get("outcomes", {}).get("error", 0)), info.get("first_error")
