"""Runner of ``sims/theory-vs-practice.toml``: train deep runs, then compare them with the LPM.

The simulation file declares the runs as grids (one per head × loss pairing)::

    runner = "lpm.compare.practice:run_theory_vs_practice"
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

Runs live in ``OUT/runs/NAME_R<ratio>_seed<seed>``. A finished run (its
``summary.json`` records the requested epochs) is reused as it is; a run with a
checkpoint is resumed (so more epochs extend it); anything else is trained.
Settings that differ from a saved run are refused by
:func:`full_model.train.resume_config`. The comparison is written to
``OUT/compare`` (:func:`lpm.compare.write_report`; the smoke run skips the
per-run figures) and ``OUT/practice.json`` records the wall time of each run.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.errors import LPMInputError
from ..core.io import write_json_atomic

_GRID_ONLY = ("name", "ratio", "seed")


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def run_settings(sim, out_dir: Path, smoke: bool = False) -> list[dict[str, Any]]:
    """One TrainConfig dict per run declared by ``sim`` (``out`` set to its folder)."""
    shared = dict(sim.options.get("train", {}))
    runs = []
    for spec in sim.grid_specs(smoke):
        if "name" not in spec or "ratio" not in spec:
            raise LPMInputError("grid", sorted(spec), "a table with 'name' and 'ratio' (and TrainConfig settings)",
                                owner=f"simulation file {sim.path.name}")
        settings = {**shared, **{k: v for k, v in spec.items() if k not in _GRID_ONLY}}
        for ratio in _as_list(spec["ratio"]):
            for seed in _as_list(spec.get("seed", settings.get("seed", 0))):
                folder = Path(out_dir) / "runs" / f"{spec['name']}_R{float(ratio):g}_seed{int(seed)}"
                runs.append({**settings, "ratio": float(ratio), "seed": int(seed), "out": str(folder)})
    return runs


def ensure_run(settings: dict[str, Any], threads: int | None = None) -> dict[str, Any]:
    """Train, resume or reuse the run in ``settings['out']``; return what was done and how long it took."""
    import torch

    from full_model.config import build_config
    from full_model.train import resume_config, train

    if threads:
        torch.set_num_threads(threads)
    folder, began = Path(settings["out"]), time.perf_counter()
    if (folder / "checkpoint.pt").is_file():
        config = resume_config(folder, settings)
        summary = folder / "summary.json"
        if summary.is_file() and json.loads(summary.read_text()).get("epochs") == config.epochs:
            return {"run": folder.name, "action": "reused", "seconds": 0.0}
        train(config, resume=True)
        action = "resumed"
    else:
        train(build_config(settings))
        action = "trained"
    return {"run": folder.name, "action": action, "seconds": time.perf_counter() - began}


def train_all(runs: list[dict[str, Any]], jobs: int = 1) -> list[dict[str, Any]]:
    """:func:`ensure_run` for every run; ``jobs`` > 1 trains in spawned processes, one thread each."""
    if jobs <= 1 or len(runs) <= 1:
        return [ensure_run(r) for r in runs]
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        return list(pool.map(ensure_run, runs, [1] * len(runs)))


def run_theory_vs_practice(sim, out_dir: Path, *, smoke: bool = False, jobs: int = 1,
                           progress: bool = True) -> dict[str, pd.DataFrame]:
    """Train (or reuse) the runs of ``sim``, compare them with the LPM, and return the tables
    ``collapse`` (runs and LPM curves against R), ``distances`` and ``history``."""
    from .report import compare_runs, summary_lines, write_report

    out_dir = Path(out_dir)
    began = time.perf_counter()
    runs = [{**r, "progress": bool(progress) and jobs <= 1} for r in run_settings(sim, out_dir, smoke)]
    done = train_all(runs, jobs)
    trained = time.perf_counter() - began
    report = compare_runs([r["out"] for r in runs], **sim.options.get("compare", {}))
    files = write_report(report, out_dir / "compare", per_run_figures=not smoke)
    record = {"simulation": sim.name, "smoke": smoke, "jobs": jobs, "runs": done,
              "training_seconds": trained, "total_seconds": time.perf_counter() - began,
              "summary": summary_lines(report), "files": [str(p.relative_to(out_dir)) for p in files]}
    write_json_atomic(out_dir / "practice.json", record)
    if progress:
        print("\n".join(record["summary"]))
    return {"collapse": report.collapse, "distances": report.distances, "history": report.history}
