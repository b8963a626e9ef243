"""CPU throughput of ResNet-32 training and evaluation on CIFAR-shaped data.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_deep_cpu.py [--steps 8 --repeats 3]

Model: ResNet-32 (option A, 16/32/64) + fixed-ETF head, DR in its released
form, batch 128, crop-flip and mixup done by the run's own loader
(:mod:`full_model.bench`). Evaluation: eval-mode forward of features and
logits at batch 512. Prints JSON with mean ± std over the repeats (n given).

Measured results are reported with the hardware they came from in the
project's notes; CPU numbers vary strongly with other load on the machine.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "2")


def main() -> None:
    from full_model.bench import main as bench_main

    args = sys.argv[1:]
    if not any(a.startswith("--threads") for a in args):
        args = ["--threads", os.environ["OMP_NUM_THREADS"], *args]
    bench_main(["--device", "cpu", *args])


if __name__ == "__main__":
    main()
