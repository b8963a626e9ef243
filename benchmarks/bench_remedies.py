"""Certified solves of every long-tail remedy at scale (theory.md §14.5).

For each profile (step, exp), R = 100 and K (default 1000), the ``nuclear`` back end solves
learnable CE, la, cdt, ldam and vs at their defaults and CE with the inverse, sqrt and
class-balanced weights, and prints the certified relative gap, the engine and the wall time.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_remedies.py [--K 1000] [--profiles step,exp]
"""
from __future__ import annotations

import argparse
import time

from lpm import Problem
from lpm.core.solvers import get_solver

CASES = [("ce", "none"), ("la", "none"), ("cdt", "none"), ("ldam", "none"), ("vs", "none"),
         ("ce", "inverse"), ("ce", "sqrt"), ("ce", "class-balanced")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--K", type=int, default=1000)
    parser.add_argument("--ratio", type=float, default=100.0)
    parser.add_argument("--profiles", default="step,exp")
    args = parser.parse_args()
    for profile in args.profiles.split(","):
        for loss, weights in CASES:
            problem = Problem.from_profile(K=args.K, ratio=args.ratio, profile=profile, loss=loss,
                                           class_weights=weights)
            began = time.perf_counter()
            solution = get_solver("nuclear").run(problem)
            print(f"K={args.K} {profile} loss={loss} weights={weights}: {solution.status.value}, relative gap "
                  f"{solution.certificate.relative_gap:.2e}, {time.perf_counter() - began:.1f} s, "
                  f"engine {solution.extra['engine']}", flush=True)


if __name__ == "__main__":
    main()
