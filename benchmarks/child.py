"""Run one measurement in a fresh interpreter and read its peak memory (shared by the benchmarks).

A fresh process per measurement keeps imports, caches and allocator state of
one measurement out of the next, and ``os.wait4`` gives the child's own peak
resident memory (``ru_maxrss``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_child(code: str, args: list[str], timeout: float, poll: float = 0.05) -> dict:
    """Run ``python -c code *args`` with the checkout first on PYTHONPATH. Returns the JSON object of
    the child's last stdout line plus ``peak_rss_mib``; or ``{"timed_out": True, "timeout_s": …}``
    when it ran past ``timeout`` seconds (it is killed); or ``{"failed": <stderr tail>}``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        began = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, stdout=out, stderr=err,
                                text=True)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - began > timeout:
                proc.kill()
                os.wait4(proc.pid, 0)
                return {"timed_out": True, "timeout_s": timeout}
            time.sleep(poll)
        out.seek(0), err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            return {"failed": err.read()[-1500:]}
        return {**json.loads(out.read().strip().splitlines()[-1]), "peak_rss_mib": usage.ru_maxrss / 1024}
