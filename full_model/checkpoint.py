"""Atomic checkpoints that resume a run exactly.

A checkpoint holds the model (with the fixed classifier buffer), optimiser
and scheduler states, the number of finished epochs, the best test accuracy
so far, the resolved config, and every random state: torch (CPU and CUDA),
``numpy.random``, ``random`` and the run's data-order generator. Restoring
them all makes the continued run draw exactly the numbers an uninterrupted
run would have drawn.
"""
from __future__ import annotations

import random

import numpy as np
import torch

from lpm.core.io import write_atomic


def save_atomic(obj, path) -> None:
    """``torch.save`` through :func:`lpm.core.io.write_atomic` (temporary file, fsync, rename)."""
    write_atomic(path, lambda fh: torch.save(obj, fh))


def capture_rng(data_rng: np.random.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
             "data": data_rng.bit_generator.state}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict, data_rng: np.random.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    data_rng.bit_generator.state = state["data"]
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load(path, device="cpu") -> dict:
    """Read a checkpoint onto the CPU; ``load_state_dict`` then copies onto the model's device.

    RNG states must stay CPU tensors, so nothing is mapped to ``device`` here (the argument is
    kept for callers that name it). The file stores numpy and python RNG states, so it is a full
    pickle: load only checkpoints you wrote.
    """
    return torch.load(path, map_location="cpu", weights_only=False)
