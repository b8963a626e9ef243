"""Plug-ins that the sweep tests hand to other processes by "module:function" name
(the tests put this folder on the PYTHONPATH of Dask workers and of `lpm` subprocesses)."""
from __future__ import annotations


def square_or_fail(spec: dict) -> dict:
    """A task: x² for x >= 0; raises for a negative x (a cell that fails on a worker)."""
    if spec["x"] < 0:
        raise ValueError(f"negative x = {spec['x']}")
    return {"row": {"square": spec["x"] ** 2}}


def objective_plot(table, ax=None):
    """A plot for `lpm reproduce`: the objective against the ratio."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots() if ax is None else (ax.figure, ax)
    ax.plot(table["ratio"], table["objective"], "o")
    ax.set_xlabel("R")
    ax.set_ylabel("objective")
    return fig


def die_once(spec: dict) -> dict:
    """A task whose first run kills its own worker process (as the kernel's OOM killer
    would); every later run succeeds."""
    import os
    import signal
    from pathlib import Path

    marker = Path(spec["marker"])
    if not marker.exists():
        marker.write_text("died once")
        os.kill(os.getpid(), signal.SIGKILL)
    return {"row": {"value": spec["i"]}}
