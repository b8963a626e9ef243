"""End to end, as a user meets it: `lpm sweep` over the 41 ratios of [F21] against a
reference script that solves one Gram SDP per ratio with cvxpy.

The problem (theory.md §4.1): K = 10, K_A = 5, n_A/n_B = R = 10^{0.1 i}, i = 0…40,
E_H = 5, E_W = 1, and for each R

    minimise  Σ_k p_k CE(X[k, K:], k)   over X ⪰ 0 (2K×2K),
    subject to  tr X_HH ≤ K E_H,  tr X_WW ≤ K E_W,

whose off-diagonal block X_HW = H Wᵀ holds the logits. Both sides run as their own
subprocess (interpreter start-up and imports included), each with a fresh output
folder, interleaved, ``--repeat`` times; the medians are compared. The script also
prints the largest difference between the two sides' objectives (and how far the SDP
solver's points are from feasible, which bounds how far below the optimum its values
can sit), and, to show where the CLI's time goes, the start-up of a bare interpreter
and of ``import lpm.cli``.

Run:  .venv/bin/python benchmarks/bench_sweep_cli.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ["sweep", "--K", "10", "--ratio-range", "1:1e4:41", "--solver", "nuclear", "--no-progress"]

REFERENCE = r'''
import json
import cvxpy as cp
import numpy as np

K, KA, EH, EW = 10, 5, 5.0, 1.0
objectives, violation = [], 0.0
for i in range(41):
    R = 10 ** (0.1 * i)
    counts = np.array([R] * KA + [1.0] * (K - KA))
    p = counts / counts.sum()
    X = cp.Variable((2 * K, 2 * K), PSD=True)
    logits = X[:K, K:]
    loss = sum(p[k] * (cp.log_sum_exp(logits[k, :]) - logits[k, k]) for k in range(K))
    constraints = [cp.trace(X[:K, :K]) <= K * EH, cp.trace(X[K:, K:]) <= K * EW]
    problem = cp.Problem(cp.Minimize(loss), constraints)
    problem.solve()
    objectives.append(problem.value)
    Xv = X.value  # how far the solver's point is from feasible
    violation = max(violation, np.trace(Xv[:K, :K]) - K * EH, np.trace(Xv[K:, K:]) - K * EW,
                    -np.linalg.eigvalsh(Xv).min())
print(json.dumps({"objectives": objectives, "violation": float(violation)}))
'''


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    began = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} … failed:\n{res.stderr}")
    return seconds, res.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    lpm = [sys.executable, "-m", "lpm"]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "reference_sdp.py"
        script.write_text(REFERENCE)
        cli_times, ref_times, bare, imports = [], [], [], []
        reference = None
        for run in range(args.repeat):
            out = Path(tmp) / f"sweep-{run}"  # a fresh folder: every cell is solved
            cli_times.append(timed([*lpm, *SWEEP, "-o", str(out)], env)[0])
            seconds, text = timed([sys.executable, str(script)], env)
            ref_times.append(seconds)
            reference = json.loads(text)
            bare.append(timed([sys.executable, "-c", "pass"], env)[0])
            imports.append(timed([sys.executable, "-c", "import lpm.cli"], env)[0])
        with open(Path(tmp) / "sweep-0" / "results.csv", newline="") as fh:
            rows = sorted(csv.DictReader(fh), key=lambda r: float(r["ratio"]))
    violation, reference = reference["violation"], reference["objectives"]
    ours = [float(r["objective"]) for r in rows]
    bounds = [float(r["lower_bound"]) for r in rows]
    worst = max(abs(a - b) for a, b in zip(ours, reference))
    below = min(ref - low for ref, low in zip(reference, bounds))  # < 0 would contradict our certificate
    gaps = max(float(r["relative_gap"]) for r in rows)
    cli, ref = statistics.median(cli_times), statistics.median(ref_times)
    print(f"machine: {os.cpu_count()} cores; {args.repeat} interleaved runs, medians")
    print(f"  lpm sweep (41 ratios, nuclear, end to end)   {cli:8.3f} s")
    print(f"  reference (41 cvxpy Gram SDPs, end to end)    {ref:8.3f} s")
    print(f"  speed-up of lpm sweep over the reference      {ref / cli:8.1f}x   (target >= 20x)")
    print(f"  largest |objective difference|               {worst:8.1e}   (largest certified relative gap "
          f"{gaps:.1e})")
    print(f"  reference minus our certified lower bounds  >= {below:8.1e}   (the SDP solver's points violate "
          f"the constraints by up to {violation:.1e}, so its values may sit below the optimum)")
    print(f"  where the CLI's time goes: bare interpreter {statistics.median(bare):.3f} s, "
          f"import lpm.cli {statistics.median(imports):.3f} s (start-up included)")


if __name__ == "__main__":
    main()
