"""Deep training beside the theory: long-tailed data, backbones, heads, losses, tracking.

The deep side of ``lpm``. One call runs a whole experiment::

    from full_model import build_config, train
    result = train(build_config({"dataset": "mnist1d-lt", "ratio": 100, "head": "fixed-etf", "loss": "dr"}))

It writes a run folder (format in :mod:`full_model.run_format`) whose
per-epoch geometry comes from :mod:`lpm.core.geometry`, the same code that
measures layer-peeled solutions, so ``lpm compare`` can place a run beside the
LPM prediction for its own class counts. It imports ``lpm.core`` and never
the solvers. The command line is ``lpm train-deep``.

Names are loaded on first use: ``full_model.config`` (the run schema and its
choices) does not import torch.
"""
from __future__ import annotations

from lpm.core.lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": ".config", "build_config": ".config", "load_config_file": ".config", "BACKBONES": ".config",
    "HEADS": ".config", "DATASETS": ".data", "load_dataset": ".data", "long_tail_counts": ".data",
    "Network": ".models", "build_network": ".models", "FORMAT_VERSION": ".run_format", "DeepRun": ".run_format",
    "load_run": ".run_format", "RunResult": ".train", "resume_config": ".train", "train": ".train",
    "TrainingDiverged": ".errors", "RunWarning": ".errors",
}
__all__ = list(_EXPORTS)


__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
