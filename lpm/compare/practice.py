"""Runner of ``sims/theory-vs-practice.toml``: train deep runs, then compare them with the LPM.

The simulation file declares the runs as grids (one per head × loss pairing)::

    runner = "theory-vs-practice"   # registered in lpm.reproduce
    [options.train]          # TrainConfig settings shared by every run
    dataset = "mnist1d-lt"
    epochs = 100
    [options.compare]        # keyword arguments of lpm.compare.compare_runs
    curve_points = 9
    [[grids]]
    name = "learnable-ce"    # names the run folders
    head = "learnable"
    loss = "ce"
    ratio = [1, 10, 100]     # one run per ratio (and per seed in ``seed``)

Every grid key other than ``name``, ``ratio`` and ``seed`` is a
:class:`full_model.config.TrainConfig` setting and wins over ``[options.train]``;
``[[smoke.grids]]`` entries override a grid of the same name for ``--smoke``.

Each run is a ``train`` cell of the sweep engine (:mod:`lpm.sweep.train`), so
the runs go through the same executors (``--jobs``, ``--cluster``) and resume
rules as every other grid: a run with a record in ``OUT/cells`` is done; a
finished run folder (its ``summary.json`` records the requested epochs) is
reused as it is; a run with a checkpoint is resumed (so more epochs extend
it); anything else is trained. Settings that differ from a saved run are
refused by :func:`full_model.train.resume_config`.

Runs live in ``RUNS/NAME_R<ratio>_seed<seed>``, ``RUNS`` = ``OUT/runs`` or
the declared shared ``runs_dir``. The comparison is written to
``OUT/compare`` (:func:`lpm.compare.write_report`; the smoke run skips the
per-run figures) and ``OUT/practice.json`` records what was done with each
run and how long it took.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.errors import LPMInputError, check_number
from ..core.io import write_json_atomic
from ..sweep import SweepFailed, check_cells, ensure_run, load_record, located, run_cells, train_cells

__all__ = ["run_settings", "ensure_run", "run_theory_vs_practice"]

_GRID_ONLY = ("name", "ratio", "seed")


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def run_settings(sim, out_dir: Path, smoke: bool = False, runs_dir: Path | None = None) -> list[dict[str, Any]]:
    """One TrainConfig dict per run declared by ``sim`` (``out`` set to its folder
    under ``runs_dir``, default ``out_dir/runs``)."""
    shared = dict(sim.options.get("train", {}))
    root = Path(runs_dir) if runs_dir is not None else Path(out_dir) / "runs"
    runs = []
    for spec in sim.grid_specs(smoke):
        if "name" not in spec or "ratio" not in spec:
            raise LPMInputError("grid", sorted(spec), "a table with 'name' and 'ratio' (and TrainConfig settings)",
                                owner=f"simulation file {sim.path.name}")
        settings = {**shared, **{k: v for k, v in spec.items() if k not in _GRID_ONLY}}
        for ratio in _as_list(spec["ratio"]):
            for seed in _as_list(spec.get("seed", settings.get("seed", 0))):
                with located(f"simulation file {sim.path.name}, grid '{spec['name']}'"):
                    ratio, seed = check_number("ratio", ratio, low=1), check_number("seed", seed, low=0, integer=True)
                folder = root / f"{spec['name']}_R{ratio:g}_seed{seed}"
                runs.append({**settings, "ratio": ratio, "seed": seed, "out": str(folder)})
    return runs


def run_theory_vs_practice(sim, out_dir: Path, *, smoke: bool = False, progress: bool = True, executor=None,
                           runs_dir: Path | None = None) -> dict[str, pd.DataFrame]:
    """Train (or reuse) the runs of ``sim`` on ``executor``, compare them with the LPM,
    and return the tables ``collapse`` (runs and LPM curves against R), ``distances``
    and ``history``."""
    from .report import compare_runs, summary_lines, write_report

    out_dir = Path(out_dir)
    began = time.perf_counter()
    runs = run_settings(sim, out_dir, smoke, runs_dir)
    cells = train_cells(runs, grid=sim.name)
    with located(f"simulation file {sim.path.name}"):
        check_cells(cells)
    report = run_cells(cells, out_dir, executor=executor, runs_dir=runs_dir, progress=progress,
                       config={"simulation": sim.name, "file": str(sim.path), "smoke": smoke})
    if report.failed:
        raise SweepFailed(f"simulation '{sim.name}': {report.failed} of {report.cells} deep runs failed; the "
                          f"first: {report.first_error} (records in {out_dir / 'cells'})")
    ran = set(report.ran)
    done = [_action(load_record(out_dir, cell), cell.cell_id in ran) for cell in cells]
    trained = time.perf_counter() - began
    compare = compare_runs([r["out"] for r in runs], **sim.options.get("compare", {}))
    files = write_report(compare, out_dir / "compare", per_run_figures=not smoke)
    record = {"simulation": sim.name, "smoke": smoke, "executor": report.executor, "runs": done,
              "training_seconds": trained, "total_seconds": time.perf_counter() - began,
              "summary": summary_lines(compare), "files": [str(p.relative_to(out_dir)) for p in files]}
    write_json_atomic(out_dir / "practice.json", record)
    if progress:
        print("\n".join(record["summary"]))
    return {"collapse": compare.collapse, "distances": compare.distances, "history": compare.history}


def _action(record: dict, ran_now: bool) -> dict[str, Any]:
    """What was done with one run in this call (a run recorded earlier was reused)."""
    row = record["row"]
    if not ran_now:
        return {"run": row["run"], "action": "reused", "seconds": 0.0}
    return {"run": row["run"], "action": row["action"], "seconds": row["seconds"]}
