"""Speed of the certifying learnable-classifier back ends.

Measures, in one run on one machine:

1. The 41-ratio sweep of [F21] (K = 10, step, K_A = 5, E_H = 5, E_W = 1,
   R = 10^{0.1 i}, i = 0…40; theory.md §4.1) by the Gram SDP (``convex``,
   one problem after another) and by ``nuclear`` (``solve_path``, batched;
   and one problem after another), the speed-up, and the largest relative
   difference of the objectives.
2. ``nuclear`` alone for K = 100 and K = 1000 (R = 10, step, K_A = K/2) with
   the certified relative gap.
3. The two engines of ``nuclear`` on the exponential profile (R = 100, every
   count distinct, so the symmetry reduction groups nothing): the grouped
   engine (accelerated projected gradient, a K×K SVD per iteration) against
   the factored one (Burer–Monteiro trust-region Newton), both certified,
   their ratio and objective difference; K from ``--exp-k``. The grouped
   side is skipped above ``--grouped-max-k`` (K = 1000 takes it ~4 minutes
   and ~420 MB).

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_solvers.py [--quick] [--exp-k K ...] [--out FILE]

``--quick`` skips K = 1000. Timings of the fast parts are the best of
``--repeat`` runs (default 3); the SDP sweep runs once. ``--out`` writes the
numbers and their provenance as JSON (atomically).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from lpm.core.problem import Problem
from lpm.core.provenance import provenance
from lpm.core.solvers import get_solver


def fang_sweep() -> list[Problem]:
    return [Problem.from_profile(K=10, ratio=10 ** (0.1 * i), profile="step", majority=5, E_W=1.0, E_H=5.0)
            for i in range(41)]


def best_time(fn, repeat: int):
    """(best wall time over ``repeat`` calls, result of the last call)."""
    best, result = np.inf, None
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - began)
    return best, result


def sweep_benchmark(repeat: int) -> dict:
    problems = fang_sweep()
    convex, nuclear = get_solver("convex"), get_solver("nuclear")
    began = time.perf_counter()
    sdp = [convex.run(p) for p in problems]
    sdp_time = time.perf_counter() - began
    path_time, path = best_time(lambda: nuclear.solve_path(problems), repeat)
    single_time, _ = best_time(lambda: [nuclear.run(p) for p in problems], 1)
    rel = [abs(a.objective - b.objective) / abs(b.objective) for a, b in zip(sdp, path)]
    return {
        "sdp_seconds": sdp_time, "nuclear_path_seconds": path_time, "nuclear_one_by_one_seconds": single_time,
        "speedup_path": sdp_time / path_time, "speedup_one_by_one": sdp_time / single_time,
        "max_relative_objective_difference": max(rel),
        "sdp_max_relative_gap": max(s.certificate.relative_gap for s in sdp),
        "nuclear_max_relative_gap": max(s.certificate.relative_gap for s in path),
        "all_optimal": all(s.status.value == "optimal" for s in sdp + path),
    }


def large_benchmark(K: int, repeat: int, profile: str = "step") -> dict:
    problem = Problem.from_profile(K=K, ratio=10.0, profile=profile, majority=K // 2, E_W=1.0, E_H=5.0)
    seconds, solution = best_time(lambda: get_solver("nuclear").run(problem), repeat)
    return {"K": K, "profile": profile, "seconds": seconds, "relative_gap": solution.certificate.relative_gap,
            "status": solution.status.value, "iterations": solution.iterations, "objective": solution.objective}


def engine_benchmark(K: int, repeat: int, run_grouped: bool) -> dict:
    problem = Problem.from_profile(K=K, ratio=100.0, profile="exp", E_W=1.0, E_H=5.0)
    row: dict = {"K": K}
    sides = ("factored", "grouped") if run_grouped else ("factored",)
    for engine in sides:
        seconds, solution = best_time(lambda: get_solver("nuclear", engine=engine).run(problem),
                                      repeat if engine == "factored" or K <= 100 else 1)
        row[engine] = {"seconds": seconds, "relative_gap": solution.certificate.relative_gap,
                       "status": solution.status.value, "objective": solution.objective}
    if run_grouped:
        row["speedup"] = row["grouped"]["seconds"] / row["factored"]["seconds"]
        row["relative_objective_difference"] = (abs(row["grouped"]["objective"] - row["factored"]["objective"])
                                                / abs(row["grouped"]["objective"]))
    return row


def write_json(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh, indent=2)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip K = 1000")
    parser.add_argument("--repeat", type=int, default=3, help="repeats of the fast timings (best is kept)")
    parser.add_argument("--exp-k", type=int, nargs="+", default=[100, 300],
                        help="K values of the engine comparison on the exponential profile")
    parser.add_argument("--grouped-max-k", type=int, default=300,
                        help="largest K at which the grouped engine is also timed")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()

    sweep = sweep_benchmark(args.repeat)
    print("41-ratio sweep of [F21] (K=10, step, K_A=5, E_H=5, E_W=1):")
    print(f"  Gram SDP (convex, one by one)   {sweep['sdp_seconds']:8.3f} s")
    print(f"  nuclear solve_path (batched)    {sweep['nuclear_path_seconds']:8.3f} s   "
          f"speed-up {sweep['speedup_path']:6.1f}x")
    print(f"  nuclear run (one by one)        {sweep['nuclear_one_by_one_seconds']:8.3f} s   "
          f"speed-up {sweep['speedup_one_by_one']:6.1f}x")
    print(f"  largest relative objective difference {sweep['max_relative_objective_difference']:.2e}; "
          f"largest certified relative gap: SDP {sweep['sdp_max_relative_gap']:.1e}, "
          f"nuclear {sweep['nuclear_max_relative_gap']:.1e}; all optimal: {sweep['all_optimal']}")
    large = []
    for K in (100,) if args.quick else (100, 1000):
        row = large_benchmark(K, args.repeat if K <= 100 else 1)
        large.append(row)
        print(f"nuclear K={K:5d} (R=10, step, K_A={K // 2}): {row['seconds']:7.3f} s, "
              f"relative gap {row['relative_gap']:.1e}, {row['status']}, {row['iterations']} iterations")
    engines = []
    for K in args.exp_k:
        row = engine_benchmark(K, args.repeat if K <= 300 else 1, K <= args.grouped_max_k)
        engines.append(row)
        f = row["factored"]
        line = (f"nuclear K={K:5d} (R=100, exp, all counts distinct): factored {f['seconds']:7.3f} s "
                f"(gap {f['relative_gap']:.1e}, {f['status']})")
        if "grouped" in row:
            g = row["grouped"]
            line += (f", grouped {g['seconds']:7.3f} s (gap {g['relative_gap']:.1e}, {g['status']}): "
                     f"factored {row['speedup']:.1f}x faster, |objective difference| "
                     f"{row['relative_objective_difference']:.1e} (relative)")
        print(line)
    if args.out:
        write_json(args.out, {"sweep": sweep, "large": large, "engines": engines, "provenance": provenance(),
                              "threads": os.environ.get("OMP_NUM_THREADS")})


if __name__ == "__main__":
    main()
