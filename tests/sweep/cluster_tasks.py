"""A task for the cluster tests, run by Dask workers as ``cluster_tasks:square_or_fail``
(the tests put this folder on the workers' PYTHONPATH)."""
from __future__ import annotations


def square_or_fail(spec: dict) -> dict:
    """x² for x >= 0; raises for a negative x (a cell that fails on a worker)."""
    if spec["x"] < 0:
        raise ValueError(f"negative x = {spec['x']}")
    return {"row": {"square": spec["x"] ** 2}}
