"""Killing `lpm sweep --jobs 2` or `lpm reproduce --jobs 2` leaves no process behind: workers
notice a dead client and exit (SIGKILL), and SIGTERM is handled as Ctrl-C is (the client stops
its workers, says how to resume, exits 143). The test kills the client mid-sweep and counts
the survivors among every process the client started (workers, fork server, resource tracker)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc"), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
#: cells slow enough (gradient descent, two million steps with no early stop: minutes each) that the
#: pool is busy when the client is killed
SWEEP = ["sweep", "--solver", "gradient", "--ratios", "1,2,3,4,5,6", "--setting", "gradient.steps=2000000",
         "--setting", "gradient.tol=0", "--jobs", "2", "--no-progress"]
SIM = """
name = "slow"
description = "slow gradient cells"
runner = "sweep"
plot = "minority_collapse"
[[grids]]
task = "solve"
name = "g"
ratio = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
classifier = ["learnable"]
solver = ["gradient"]
solver_settings = { gradient = { steps = 2000000, tol = 0 } }
"""


def _ppid(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return None if fields[0] == "Z" else int(fields[1])


def descendants(root: int) -> set[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = _ppid(int(entry))
            if ppid is not None:
                parents[int(entry)] = ppid
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if _ppid(pid) is not None}  # gone, or a zombie waiting to be reaped


def kill_mid_sweep(args: list[str], sig: int, tmp_path: Path) -> tuple[subprocess.Popen, set[int]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "lpm", *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    children: set[int] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        children |= descendants(proc.pid)
        if len(alive(children)) >= 4 and (tmp_path / "out").exists():  # fork server, tracker, 2 workers
            time.sleep(0.5)
            children |= descendants(proc.pid)
            break
        time.sleep(0.1)
    assert proc.poll() is None and len(children) >= 3, f"the pool never started: {proc.communicate()}"
    os.kill(proc.pid, sig)
    return proc, children


def survivors(children: set[int], within: float = 15.0) -> set[int]:
    deadline = time.monotonic() + within
    while alive(children) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive(children)


def _sweep_args(tmp_path):
    return [*SWEEP, "-o", str(tmp_path / "out")]


def _reproduce_args(tmp_path):
    sims = tmp_path / "sims"
    sims.mkdir()
    (sims / "slow.toml").write_text(SIM)
    return ["reproduce", "slow", "--sims-dir", str(sims), "--jobs", "2", "--no-progress", "-o", str(tmp_path / "out")]


@pytest.mark.parametrize("command", [_sweep_args, _reproduce_args], ids=["sweep", "reproduce"])
def test_sigkill_of_the_client_leaves_no_process(command, tmp_path):
    proc, children = kill_mid_sweep(command(tmp_path), signal.SIGKILL, tmp_path)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert survivors(children) == set(), "processes outlived the killed client"


@pytest.mark.parametrize("command", [_sweep_args, _reproduce_args], ids=["sweep", "reproduce"])
def test_sigterm_stops_like_ctrl_c(command, tmp_path):
    proc, children = kill_mid_sweep(command(tmp_path), signal.SIGTERM, tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "run the same command again to resume" in err, err
    assert survivors(children, within=10.0) == set(), "processes outlived the terminated client"
    assert not (tmp_path / "out" / ".lock").exists()  # a clean stop removes its lock
