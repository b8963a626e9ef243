"""The ``train`` task: one deep run (:mod:`full_model`) as a sweep cell.

A cell's spec is ``{"run": NAME, "config": {TrainConfig settings}}`` (no
``out``: where the run folder lives is not part of its identity). The run
folder is ``RUNS/NAME``, where ``RUNS`` is

* the sweep's runs folder itself, when the worker sees this machine's files
  (in-process, ``--jobs``, ``local:N``) or when the user declares a runs
  folder that every worker reaches (a shared file system, ``runs_dir``);
* otherwise a scratch folder on the worker: the client sends the run's
  existing files along (so an interrupted run resumes from its checkpoint),
  and the worker sends every file of the finished folder back in the
  record, which the client writes under its own runs folder.

:func:`ensure_run` trains, resumes or reuses one run folder: a finished run
(``summary.json`` records the requested epochs) is reused as it is, a run
with a checkpoint is resumed (so more epochs extend it, and settings that
differ from the saved run are refused by :func:`full_model.train.resume_config`),
anything else is trained from scratch.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..core.errors import LPMInputError
from .grid import Cell
from .tasks import Plan, register_task

#: settings that never enter a train cell's identity (where and how it is shown)
LOCAL_SETTINGS = ("out", "progress")


def ensure_run(settings: dict[str, Any], threads: int | None = None) -> dict[str, Any]:
    """Train, resume or reuse the run in ``settings['out']``; return what was done and how long it took."""
    from full_model.config import build_config
    from full_model.train import resume_config, train  # imports torch (seconds): only deep runs need it

    if threads:
        import torch

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


def train_cells(runs: list[dict[str, Any]], grid: str = "train") -> list[Cell]:
    """One ``train`` cell per TrainConfig dict; each dict's ``out`` names the run folder."""
    cells = []
    for settings in runs:
        if not settings.get("out"):
            raise LPMInputError("out", settings.get("out"), "the run folder of every deep run")
        config = {k: v for k, v in settings.items() if k not in LOCAL_SETTINGS}
        cells.append(Cell("train", {"run": Path(settings["out"]).name, "config": config}, grid))
    return cells


def check_train_cell(spec: dict) -> Plan:
    """The run name is a plain folder name and the settings build a valid TrainConfig."""
    from full_model.config import build_config

    run = spec.get("run")
    if not isinstance(run, str) or not run or run in (".", "..") or "/" in run or "\\" in run:
        raise LPMInputError("run", run, "a plain folder name for the run")
    if not isinstance(spec.get("config"), dict):
        raise LPMInputError("config", spec.get("config"), "a table of TrainConfig settings", owner=f"run '{run}'")
    build_config({**spec["config"], "out": run})
    return Plan()


@register_task("train", check=check_train_cell, run_folders=True)
def train_cell(spec: dict, runs_dir: Path) -> dict:
    """Train (or resume, or reuse) the run ``runs_dir/spec['run']``."""
    settings = {**spec["config"], "out": str(Path(runs_dir) / spec["run"]), "progress": False}
    done = ensure_run(settings)
    summary_path = Path(settings["out"]) / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    row = {**done, **{k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool)) or v is None}}
    return {"row": row, "tables": {}}
