"""What a result table needs beside it to be trusted later: the package
version, git commit, software versions and hardware it was made with."""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

_PACKAGES = ("numpy", "scipy", "torch", "cvxpy", "pandas", "matplotlib")


def git_state(path: Path | str | None = None) -> dict[str, Any]:
    """Commit hash and dirty flag (any change to a tracked file, or a new file that git does not
    ignore) of the checkout holding ``path`` (the lpm package by default), from one ``git status``;
    ``None`` values outside a git checkout."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        res = subprocess.run(["git", "-C", str(where), "status", "--porcelain=v2", "--branch"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    lines = res.stdout.splitlines() if res.returncode == 0 else []
    commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), None)
    if commit is None or commit == "(initial)":
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": any(not line.startswith("#") for line in lines)}


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def hardware() -> dict[str, Any]:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count()
    return {"machine": platform.machine(), "processor": platform.processor() or None,
            "cpu_count": os.cpu_count(), "usable_cpus": cpus, "platform": platform.platform(),
            "node": platform.node()}


def provenance() -> dict[str, Any]:
    """A JSON-safe record of the software and hardware behind a result."""
    from .. import __version__

    return {
        "lpm_version": __version__,
        "git": git_state(),
        "python": sys.version.split()[0],
        "packages": {name: _version(name) for name in _PACKAGES},
        "hardware": hardware(),
        "written_at": now(),
    }


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
