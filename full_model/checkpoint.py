"""Atomic checkpoints that resume a run exactly, and load without running code.

A checkpoint holds the model (with the fixed classifier buffer), optimiser
and scheduler states, the number of finished epochs, the resolved config,
the metrics rows so far, the divergence threshold, and every random state:
torch (CPU and CUDA), ``numpy.random``, ``random`` and the run's data-order
generator. Restoring them all makes the continued run draw exactly the
numbers an uninterrupted run would have drawn.

Safety: everything is stored as tensors and plain Python values (the
``numpy.random`` state as a tensor and ints), so :func:`load` reads with
``torch.load(..., weights_only=True)``, whose unpickler builds tensors and
plain containers only; a file that asks for anything else (a crafted pickle
calling ``os.system``, say) is refused before any of it runs.

Keeping a good checkpoint: :func:`save_atomic` writes the new file under a
temporary name and renames it onto ``checkpoint.pt`` only once complete;
just before, the checkpoint being replaced is kept as ``checkpoint.prev.pt``
(a hard link, or a copy where links are not supported), so a damaged
``checkpoint.pt`` still leaves the epoch before it. Both cost the disk space
of two checkpoints.
"""
from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import torch

from lpm.core.errors import LPMInputError
from lpm.core.io import copy_atomic, write_atomic

from . import run_format as rf

#: version of the checkpoint's own layout (1: full pickles, no longer read)
CHECKPOINT_VERSION = 2
REQUIRED = ("checkpoint_version", "epoch", "model", "optimizer", "scheduler", "rng", "config", "metrics")


def save_atomic(obj, path) -> None:
    """Keep the current ``path`` as ``checkpoint.prev.pt``, then ``torch.save`` through
    :func:`lpm.core.io.write_atomic` (temporary file, fsync, rename)."""
    path = Path(path)
    if path.is_file():
        copy_atomic(path, path.with_name(rf.PREVIOUS_CHECKPOINT_FILE))
    write_atomic(path, lambda fh: torch.save(obj, fh))


def capture_rng(data_rng: np.random.Generator) -> dict:
    """Every random state as tensors and plain values (loadable with ``weights_only=True``)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"name": name, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "python": random.getstate(), "data": data_rng.bit_generator.state}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict, data_rng: np.random.Generator) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    data_rng.bit_generator.state = state["data"]
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load(path, device="cpu") -> dict:
    """Read a checkpoint onto the CPU with ``weights_only=True``; ``load_state_dict`` then copies
    onto the model's device (RNG states must stay CPU tensors, so ``device`` is not used here).

    A truncated, corrupt, foreign or unsafe file raises one :class:`LPMInputError` naming the file,
    what is wrong, and how to recover.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _bad(path, "holds objects other than tensors and plain values, so it was not written by this "
                         f"version of lpm and is not loaded, since that could run code ({_first_line(exc)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError, AttributeError,
            TypeError) as exc:
        raise _bad(path, f"is truncated or corrupt ({type(exc).__name__}: {_first_line(exc)})") from None
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED):
        raise _bad(path, "is not an lpm checkpoint (keys missing)")
    if state["checkpoint_version"] != CHECKPOINT_VERSION:
        raise _bad(path, f"has checkpoint_version {state['checkpoint_version']!r}, this lpm reads "
                         f"{CHECKPOINT_VERSION}")
    return state


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():  # torch's weights_only message opens with advice; keep the reason
        if "GLOBAL" in line or "Unsupported" in line:
            return line.strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _bad(path: Path, problem: str) -> LPMInputError:
    previous = path.with_name(rf.PREVIOUS_CHECKPOINT_FILE)
    if path.name != previous.name and previous.is_file():
        recovery = (f"the previous checkpoint is kept at '{previous}': rename it to {path.name} to resume from "
                    "the epoch before, or delete the run folder and start again")
    else:
        recovery = "delete it (or the run folder) and start the run again"
    return LPMInputError("out", str(path.parent), f"a run folder with a readable {path.name} to resume "
                                                  f"({path.name} {problem}; {recovery})")
