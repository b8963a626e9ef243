"""`lpm sweep --cluster` against real processes: a `dask scheduler` and two `dask worker`
processes on 127.0.0.1 (random free ports), the sweep run as a subprocess. It gives the
`--jobs 1` table; a worker SIGKILLed mid-sweep loses nothing; a client SIGKILLed
mid-sweep resumes without recomputing a finished cell; a grid of two tiny deep runs
comes back through the cluster. Every process the module starts is stopped at its end,
and every wait is bounded."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from lpm.sweep import Grid, run_cells, train_cells

distributed = pytest.importorskip("distributed", reason="needs the 'distributed' extra (scripts/setup.sh installs it)")

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TIME_COLUMNS = ["cell_time_s", "time_s"]
#: 8 gradient cells of ~0.3 s each (plus torch's import on each worker)
RATIOS, SEEDS, STEPS = "1,10,100,1000", "0,1", 300
SWEEP_ARGS = ["--ratios", RATIOS, "--seeds", SEEDS, "--solver", "gradient", "--setting",
              f"gradient.steps={STEPS}", "--setting", "gradient.record_every=100"]
CELLS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")])
    return env


def dask_command(*args) -> list[str]:
    script = Path(sys.executable).with_name("dask")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "dask", *args]


class Cluster:
    """A scheduler and worker processes started here, and a client to watch them."""

    def __init__(self, tmp: Path):
        self.port, self.logs, self.procs = free_port(), tmp, []
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler = self._start("scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                     "--dashboard-address", "127.0.0.1:0")
        self.workers: dict[int, subprocess.Popen] = {}
        self.client = None

    def _start(self, name: str, *args) -> subprocess.Popen:
        log = open(self.logs / f"{name}-{len(self.procs)}.log", "wb")
        proc = subprocess.Popen(dask_command(name, *args), env=environment(), stdout=log, stderr=subprocess.STDOUT,
                                cwd=self.logs)
        self.procs.append(proc)
        return proc

    def connect(self) -> None:
        self.client = distributed.Client(self.address, timeout=60, set_as_default=False)

    def add_worker(self) -> None:
        """Start one `dask worker` (no nanny: a SIGKILL ends it for good) and wait until it serves."""
        before = set(self.client.scheduler_info()["workers"])
        proc = self._start("worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host",
                           "127.0.0.1", "--memory-limit", "0", "--death-timeout", "60")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            new = set(self.client.scheduler_info()["workers"]) - before
            if new:
                pids = self.client.run(os.getpid, workers=list(new))
                self.workers[next(iter(pids.values()))] = proc
                return
            assert proc.poll() is None, "a dask worker exited at start-up"
            time.sleep(0.2)
        raise TimeoutError("a dask worker did not register within 90 s")

    def kill_worker(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        self.workers.pop(pid).wait(timeout=30)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        c.connect()
        c.add_worker()
        c.add_worker()
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same grid with `--jobs 1`, in this process."""
    from lpm.cli.sweep import build_grid

    grid = build_grid(None, None, "10", None, "step", "learnable", "ce", None, None, "1", "5", None, "gradient",
                      SEEDS, [f"gradient.steps={STEPS}", "gradient.record_every=100"])
    grid = Grid(**{**{k: getattr(grid, k) for k in grid.__dataclass_fields__}, "ratio": [1.0, 10.0, 100.0, 1000.0]})
    out = tmp_path_factory.mktemp("reference")
    run_cells(grid, out, jobs=1, progress=False)
    return comparable(pd.read_csv(out / "results.csv"))


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=[c for c in TIME_COLUMNS if c in table]).reset_index(drop=True)


def sweep(cluster, out: Path, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lpm", "sweep", *SWEEP_ARGS, "--cluster", cluster.address,
                             "-o", str(out), *extra], env=environment(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, err
    return out, err


def wait_for_records(out: Path, count: int, proc: subprocess.Popen, timeout: float = 180) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = sorted((out / "cells").glob("*.json")) if (out / "cells").is_dir() else []
        if len(records) >= count:
            return records
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.05)
    raise TimeoutError(f"fewer than {count} cells finished within {timeout} s")


def workers_of(out: Path) -> dict[str, str]:
    return {p.stem: json.loads(p.read_text())["worker"] for p in (out / "cells").glob("*.json")}


def test_cluster_sweep_gives_the_jobs_1_table(cluster, reference, tmp_path):
    out = tmp_path / "cluster"
    _, err = finish(sweep(cluster, out, "--progress"))
    pd.testing.assert_frame_equal(comparable(pd.read_csv(out / "results.csv")), reference, check_exact=True)
    pids = {int(w.rsplit(":", 1)[1]) for w in workers_of(out).values()}
    assert pids <= set(cluster.workers)  # every cell ran on a dask worker process
    for record in (out / "cells").glob("*.json"):  # workers started without any *_NUM_THREADS
        assert json.loads(record.read_text())["threads"] == {"blas": 1, "torch": 1}
    assert err.count("Dask dashboard: http://127.0.0.1:") == 1
    assert re.search(rf"sweep cluster: +[1-9]\d?%\|.*\| [1-9]/{CELLS} \[", err)  # the bar counts the cells


def test_a_worker_killed_mid_sweep_loses_nothing(cluster, reference, tmp_path):
    out = tmp_path / "killed-worker"
    proc = sweep(cluster, out)
    assert len(wait_for_records(out, 2, proc)) < CELLS
    victim = min(cluster.workers)
    cluster.kill_worker(victim)
    finish(proc)
    table = pd.read_csv(out / "results.csv")
    assert len(table) == CELLS and table["cell_id"].is_unique and set(table["outcome"]) == {"ok"}
    assert len(list((out / "cells").glob("*.json"))) == CELLS and not list((out / "cells").glob(".*"))
    pd.testing.assert_frame_equal(comparable(table), reference, check_exact=True)
    survivor = {w for w in workers_of(out).values() if int(w.rsplit(":", 1)[1]) != victim}
    assert survivor  # the rest (the killed worker's cell too) ran on the other worker
    cluster.add_worker()  # two workers again for the next tests


def test_a_client_killed_mid_sweep_resumes_without_recomputing(cluster, reference, tmp_path):
    out = tmp_path / "killed-client"
    proc = sweep(cluster, out)
    wait_for_records(out, 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    before = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    assert 2 <= len(before) < CELLS
    finish(sweep(cluster, out))
    after = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    assert len(after) == CELLS and {name: after[name] for name in before} == before  # none recomputed
    info = json.loads((out / "sweep.json").read_text())
    assert info["cells_run_now"] == CELLS - len(before)
    pd.testing.assert_frame_equal(comparable(pd.read_csv(out / "results.csv")), reference, check_exact=True)


TINY_RUN = {"dataset": "synthetic-lt", "n_max": 40, "epochs": 2, "track_every": 1, "batch_size": 64,
            "warmup_epochs": 0, "mixup_alpha": 0.0, "device": "cpu", "figures": False}


def test_two_tiny_deep_runs_come_back_from_the_cluster(cluster, tmp_path):
    out = tmp_path / "deep"
    runs = [{**TINY_RUN, "ratio": ratio, "out": str(out / "runs" / f"tiny_R{ratio:g}")} for ratio in (4.0, 20.0)]
    cells = train_cells(runs)
    report = run_cells(cells, out, executor=cluster.address, progress=False)
    assert (report.ok, report.failed) == (2, 0), report.first_error
    for run in runs:  # the workers wrote in scratch folders and sent every file back
        folder = Path(run["out"])
        for name in ("config.json", "metrics.jsonl", "final_geometry.npz", "summary.json", "checkpoint.pt"):
            assert (folder / name).is_file(), (folder, name)
        assert json.loads((folder / "summary.json").read_text())["epochs"] == 2
    records = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert {r["row"]["action"] for r in records} == {"trained"}
    assert {int(r["worker"].rsplit(":", 1)[1]) for r in records} <= set(cluster.workers)
    # the records gone but the runs kept: the workers get the finished runs along and reuse them
    shutil.rmtree(out / "cells")
    again = run_cells(cells, out, executor=cluster.address, progress=False)
    assert again.ok == 2
    assert {json.loads(p.read_text())["row"]["action"] for p in (out / "cells").glob("*.json")} == {"reused"}
