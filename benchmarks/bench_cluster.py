"""The overhead of the Dask executor: one sweep on `--cluster local:2` against `--jobs 2`.

The sweep: the 41 ratios of [F21] (K = 10, K_A = 5, E_H = 5, E_W = 1,
R = 10^{0.1 i}) × 4 solvers (auto, nuclear, convex, gradient) × 3 seeds = 492
cells; the gradient solver runs ``--gradient-steps`` steps (default 300: its
default of 3000 would make this a benchmark of torch, not of the executor).
Both run end to end as `lpm sweep` subprocesses into fresh folders, interleaved,
``--repeat`` times; the script prints the medians, their ratio, and whether the
two tables are equal value for value (time columns aside).

Run:  .venv/bin/python benchmarks/bench_cluster.py [--repeat 2] [--gradient-steps 300]
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIME_COLUMNS = {"cell_time_s", "time_s"}


def sweep_args(steps: int) -> list[str]:
    return ["sweep", "--K", "10", "--majority", "5", "--ratio-range", "1:1e4:41", "--solver",
            "auto,nuclear,convex,gradient", "--seeds", "0,1,2", "--setting", f"gradient.steps={steps}",
            "--setting", "gradient.record_every=50", "--no-progress"]


def table(folder: Path) -> list[dict]:
    with open(folder / "results.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in csv.DictReader(fh)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--gradient-steps", type=int, default=300)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "lpm", *sweep_args(args.gradient_steps)]
    modes = {"--jobs 2": ["--jobs", "2"], "--cluster local:2": ["--cluster", "local:2"]}
    times: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.repeat):
            for mode, extra in modes.items():
                out = Path(tmp) / f"{mode.split()[-1].replace(':', '-')}-{run}"
                began = time.perf_counter()
                res = subprocess.run([*command, *extra, "-o", str(out)], env=env, capture_output=True, text=True)
                times[mode].append(time.perf_counter() - began)
                if res.returncode != 0:
                    raise SystemExit(f"{mode} failed:\n{res.stderr}")
        equal = table(Path(tmp) / "2-0") == table(Path(tmp) / "local-2-0")
        cells = len(table(Path(tmp) / "2-0"))
    pool, dask = statistics.median(times["--jobs 2"]), statistics.median(times["--cluster local:2"])
    print(f"machine: {os.cpu_count()} cores; {cells} cells; {args.repeat} interleaved runs each, medians")
    print(f"  lpm sweep --jobs 2             {pool:8.2f} s")
    print(f"  lpm sweep --cluster local:2    {dask:8.2f} s")
    print(f"  cluster / pool                 {dask / pool:8.3f}")
    print(f"  same results.csv (time columns aside): {equal}")


if __name__ == "__main__":
    main()
