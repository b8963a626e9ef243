"""Deep training beside the theory: long-tailed data, backbones, heads, losses, tracking.

The deep side of ``lpm`` (design.md §6). One call runs a whole experiment::

    from full_model import build_config, train
    result = train(build_config({"dataset": "mnist1d-lt", "ratio": 100, "head": "fixed-etf", "loss": "dr"}))

It writes a run folder (format in :mod:`full_model.run_format`) whose
per-epoch geometry comes from :mod:`lpm.geometry`, the same code that measures
layer-peeled solutions, so ``lpm compare`` can place a run beside the LPM
prediction for its own class counts. The command line is ``lpm train-deep``.
"""
from __future__ import annotations

from .config import TrainConfig, build_config, load_config_file
from .data import DATASETS, load_dataset, long_tail_counts
from .models import BACKBONES, HEADS, Network, build_network
from .run_format import FORMAT_VERSION, DeepRun, load_run
from .train import RunResult, resume_config, train

__all__ = ["TrainConfig", "build_config", "load_config_file", "DATASETS", "load_dataset", "long_tail_counts",
           "BACKBONES", "HEADS", "Network", "build_network", "FORMAT_VERSION", "DeepRun", "load_run",
           "RunResult", "resume_config", "train"]
