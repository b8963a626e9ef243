"""Where users feel speed: every row of the CLI and solver speed table, measured in one run.

Each row is timed as the command a user types (a fresh interpreter, imports included)
and, where a solver is involved, also through the Python API. Rows are compared in
the same run against

* ``old``: the project as it stood before the redesign (git revision ``--baseline``,
  unpacked with ``git archive`` into a temporary folder and run with the same
  interpreter), and
* ``reference``: a script that solves one Gram SDP per ratio with cvxpy (the
  formulation of [F21]; ``benchmarks/bench_sweep_cli.py`` holds it).

Rows:

1. ``lpm --help``;
2. ``lpm simulate --K 10 --ratio 100``;
3. ``lpm sweep --K 10 --ratio-range 1:1e4:41 --solver nuclear`` vs the reference
   (and the largest objective difference, target 1e-6);
4. certified learnable CE, exp profile, R = 100, K = 100 (CLI and API);
5. the same, K = 1000 (the old side takes ~6 min: only with ``--full``);
6. the same, K = 1000, step profile;
7. ``lpm compare`` on one K = 1000 run with the ``loss`` budget rule (a run folder
   written here in the documented format, its class means a noisy simplex ETF).

Peak memory is each subprocess's maximum resident set (``wait4``). Times are medians
of ``--repeat`` interleaved runs (the K = 1000 rows and compare run once).

Run:  .venv/bin/python benchmarks/bench_targets.py [--repeat 3] [--quick] [--full] [--out FILE]

``--quick`` skips rows 5–7. ``--out`` writes every measurement as JSON (atomically).
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
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_sweep_cli import REFERENCE, SWEEP  # noqa: E402  (the reference SDP script and the sweep command)

BASELINE = "177a96b"  # the last revision before the redesign (2026-11-26)

API = r'''
import json, sys, time
from lpm.core.problem import Problem
from lpm.core.solvers import get_solver
K, profile = int(sys.argv[1]), sys.argv[2]
problem = Problem.from_profile(K=K, ratio=100.0, profile=profile, E_W=1.0, E_H=5.0)
began = time.perf_counter()
solution = get_solver("nuclear").run(problem)
seconds = time.perf_counter() - began
print(json.dumps({"seconds": seconds, "relative_gap": solution.certificate.relative_gap,
                  "status": solution.status.value, "engine": solution.extra.get("engine", "grouped")}))
'''

RUN_FOLDER = r'''
import json, sys
from pathlib import Path
import numpy as np
from lpm.core.etf import simplex_etf
from lpm.core.geometry import measure
from lpm.core.profiles import profile_counts

folder, K, d = Path(sys.argv[1]), 1000, 1024
counts = profile_counts("exp", K, 256.0, None, 1280)  # the shape of ImageNet-LT
rng = np.random.default_rng(0)
M = simplex_etf(K, d, seed=0).T                       # K×d, unit rows
means = 3.0 * M + 0.05 * rng.standard_normal((K, d))
W = M + 0.05 * rng.standard_normal((K, d))
folder.mkdir(parents=True)
config = {"format_version": 1,
          "config": {"dataset": "synthetic", "ratio": 256.0, "head": "learnable", "loss": "ce", "head_seed": 0,
                     "normalize_features": False, "center": "class-means", "weight_decay": 5e-4},
          "data": {"name": "synthetic", "num_classes": K, "train_counts": [float(c) for c in counts],
                   "profile": {"profile": "exp", "ratio": 256.0, "n_max": 1280}, "majority": None,
                   "group_scheme": "index", "groups": [0] * 390 + [1] * 445 + [2] * 165,
                   "group_names": ["head", "medium", "tail"]},
          "model": {"backbone": "none", "head": "learnable", "feature_dim": d}}
(folder / "config.json").write_text(json.dumps(config))
(folder / "metrics.jsonl").write_text(json.dumps({"epoch": 1, **measure(means, W)}) + "\n")
(folder / "summary.json").write_text(json.dumps({"epochs": 1, "last_test_accuracy": None}))
ones = np.ones(K)
np.savez(folder / "final_geometry.npz", format_version=np.int64(1), class_means=means, classifier=W,
         class_counts=np.asarray(counts, float), train_counts=np.asarray(counts), within_class_cov=np.zeros((d, d)),
         feature_dim=np.int64(d), num_classes=np.int64(K), epoch=np.int64(1), head=np.str_("learnable"),
         loss=np.str_("ce"), dr_form=np.str_("paper"), dataset=np.str_("synthetic"), center=np.str_("class-means"),
         train_per_class_accuracy=ones, test_per_class_accuracy=ones)
'''


def run(cmd: list[str], env: dict, cwd: Path) -> dict:
    """Wall time, peak resident memory and stdout of one subprocess."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        began = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (peak memory)
        seconds = time.perf_counter() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"`{' '.join(cmd[2:8])} …` failed with status {proc.returncode}:\n{stderr[-2000:]}")
    return {"seconds": seconds, "peak_mib": usage.ru_maxrss / 1024, "stdout": stdout}  # Linux: KiB


class Side:
    """One side of a comparison: an interpreter with a source tree on its path."""

    def __init__(self, name: str, tree: Path, scratch: Path):
        self.name, self.tree, self.scratch = name, tree, scratch
        self.env = {**os.environ, "PYTHONPATH": str(tree)}
        self.count = 0

    def lpm(self, *args: str, out: bool = True) -> dict:
        self.count += 1
        folder = self.scratch / f"{self.name}-{self.count}"
        folder.mkdir(parents=True)
        extra = ["-o", str(folder / "out")] if out else []
        return run([sys.executable, "-m", "lpm", *args, *extra], self.env, folder)

    def python(self, code: str, *args: str) -> dict:
        return run([sys.executable, "-c", code, *args], self.env, self.scratch)


def median_runs(fns, repeat: int) -> list[list[dict]]:
    """Run each function ``repeat`` times, interleaved; returns the runs per function."""
    runs: list[list[dict]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            runs[i].append(fn())
    return runs


def med(runs: list[dict], key: str = "seconds") -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the 'old' side")
    parser.add_argument("--quick", action="store_true", help="skip the K = 1000 rows and compare")
    parser.add_argument("--full", action="store_true", help="also run the old side of K = 1000 exp (~6 min)")
    parser.add_argument("--out", type=Path, help="write the measurements as JSON")
    args = parser.parse_args()
    rows: list[dict] = []

    def row(work, new, other=None, other_name="", target="", note=""):
        entry = {"work": work, "new_s": med(new), "new_peak_mib": max(r["peak_mib"] for r in new),
                 "target": target, "note": note}
        if other:
            entry.update({"against": other_name, "other_s": med(other), "ratio": med(other) / med(new)})
        rows.append(entry)
        against = f"{other_name} {entry['other_s']:8.3f} s  ratio {entry['ratio']:7.1f}x" if other else " " * 36
        print(f"  {work:<46} new {entry['new_s']:8.3f} s  {against}  peak {entry['new_peak_mib']:6.0f} MiB"
              f"  target {target}{'  ' + note if note else ''}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old_tree = tmp / "old-tree"
        old_tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive.stdout, check=True)
        new, old = Side("new", ROOT, tmp / "work"), Side("old", old_tree, tmp / "work")
        reference_script = tmp / "reference_sdp.py"
        reference_script.write_text(REFERENCE)

        print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; old = {args.baseline}; "
              f"medians of {args.repeat} interleaved runs", flush=True)
        n, o = median_runs([lambda: new.lpm("--help", out=False), lambda: old.lpm("--help", out=False)], args.repeat)
        row("lpm --help", n, o, "old", "<= 0.5 s")
        # the old CLI had no -o; it wrote nothing for simulate without --json
        n, o = median_runs([lambda: new.lpm("simulate", "--K", "10", "--ratio", "100"),
                            lambda: old.lpm("simulate", "--K", "10", "--ratio", "100", out=False)], args.repeat)
        row("lpm simulate --K 10 --ratio 100", n, o, "old", "<= 1.0 s")

        n, ref = median_runs([lambda: new.lpm(*SWEEP),
                              lambda: run([sys.executable, str(reference_script)], new.env, tmp)], args.repeat)
        ours_csv = Path(new.scratch) / f"new-{new.count}" / "out" / "results.csv"
        with open(ours_csv, newline="") as fh:
            ours = [float(r["objective"]) for r in sorted(csv.DictReader(fh), key=lambda r: float(r["ratio"]))]
        theirs = json.loads(ref[-1]["stdout"])["objectives"]
        worst = max(abs(a - b) for a, b in zip(ours, theirs))
        row("lpm sweep, 41 ratios, K=10, nuclear", n, ref, "reference", ">= 20x vs reference",
            f"|objective diff| <= {worst:.1e} (target 1e-6)")

        cases = [("K=100, exp, R=100", "100", "exp", True)]
        if not args.quick:
            cases += [("K=1000, exp, R=100", "1000", "exp", args.full), ("K=1000, step, R=100", "1000", "step", True)]
        for label, K, profile, with_old in cases:
            cli = ["simulate", "--K", K, "--profile", profile, "--ratio", "100", "--classifier", "learnable"]
            repeat = args.repeat if K == "100" else 1
            fns = [lambda: new.lpm(*cli)] + ([lambda: old.lpm(*cli, out=False)] if with_old else [])
            runs = median_runs(fns, repeat)
            api = median_runs([lambda: new.python(API, K, profile)], repeat)[0]
            facts = json.loads(api[-1]["stdout"])
            target = "<= 0.2 s, gap <= 1e-8" if K == "100" else ("<= 10 s, <= 1 GiB, gap <= 1e-8"
                                                              if profile == "exp" else "unchanged or better")
            row(f"certified CE {label}, CLI", runs[0], runs[1] if with_old else None, "old", target,
                "" if with_old else "old side not run (--full): it took 363 s in the last quiet run")
            row(f"certified CE {label}, API solve", [{"seconds": r and json.loads(r["stdout"])["seconds"],
                                                       "peak_mib": r["peak_mib"]} for r in api], target=target,
                note=f"relative gap {facts['relative_gap']:.1e}, {facts['status']}, engine {facts['engine']}")

        if not args.quick:
            folder = tmp / "run-K1000"
            new.python(RUN_FOLDER, str(folder))
            result = new.lpm("compare", str(folder), "--budget-rule", "loss")
            row("lpm compare, K=1000 run, loss rule", [result], target="<= 60 s")

    if args.out:
        from lpm.core.io import write_text_atomic
        from lpm.core.provenance import provenance
        write_text_atomic(args.out, json.dumps({"rows": rows, "provenance": provenance()}, indent=2, default=str))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
