"""Where users feel speed: every row of the CLI and solver speed table, measured in one run.

Each row is timed as the command a user types (a fresh interpreter, imports included)
and, where a solver is involved, also through the Python API. Rows are compared in
the same run, interleaved, against

* ``old``: the previous revision (git revision ``--baseline``, default d6d4e74, unpacked
  with ``git archive`` into a temporary folder and run with the same interpreter), and
* ``reference``: a script that solves one Gram SDP per ratio with cvxpy (the
  formulation of [F21]; ``benchmarks/bench_sweep_cli.py`` holds it).

Rows:

1. ``lpm --help``;
2. ``lpm simulate --K 10 --ratio 100``;
3. ``lpm sweep --K 10 --ratio-range 1:1e4:41 --solver nuclear`` vs the reference
   (and the largest objective difference, target 1e-6);
4. certified learnable CE, exp profile, R = 100, K = 100 (CLI and API);
5. the same, K = 1000, through the API against the old revision, in seconds, in CPU
   seconds and in dense 1000×1000 SVDs (one SVD is timed in the same interpreter);
   target <= 3 s, <= 17 SVDs, relative gap <= 1e-8;
6. the same for each count-dependent loss ``la``, ``cdt``, ``ldam``, ``vs`` that the
   loss registry holds (skipped otherwise): target <= 1.5x CE's time;
7. the same, K = 1000, step profile;
8. ``lpm compare`` on one K = 1000 run with the ``loss`` budget rule, against the old
   revision (a run folder written here in the documented format, its class means a
   noisy simplex ETF); target <= 15 s;
9. K = 8142, exp, R = 500 (iNaturalist-2018-like counts), CE, API: target <= 10 min,
   <= 8 GiB (``--no-large`` skips it; the old side runs only with ``--full``).

Peak memory is each subprocess's maximum resident set (``wait4``). Times are medians
of ``--repeat`` interleaved runs (rows 5–9 run ``--repeat-large`` times, default 1).
On a shared machine wall times count the other users too: the ratio new/old of one
interleaved run is the number to compare, and the CPU seconds of the solve (process
time) are printed beside the wall seconds.

Run:  .venv/bin/python benchmarks/bench_targets.py [--repeat 3] [--quick] [--full] [--no-large] [--only ROW ...]
      [--out FILE]

``--quick`` skips rows 5–9; ``--only 8`` runs row 8 alone (``--only 5`` runs rows 5 and 6).
``--out`` writes every measurement as JSON (atomically).
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

BASELINE = "d6d4e74"  # the revision before the second-order certificate (2026-12-08); 7631961 before that
REMEDIES = ("la", "cdt", "ldam", "vs")

API = r'''
import json, sys, time
import numpy as np
from lpm.core import losses
from lpm.core.problem import Problem
from lpm.core.solvers import get_solver
K, profile, ratio, loss = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
if loss not in losses.LOSS_NAMES:
    print(json.dumps({"skipped": f"loss '{loss}' is not in this revision's registry"}))
    raise SystemExit
problem = Problem.from_profile(K=K, ratio=ratio, profile=profile, E_W=1.0, E_H=5.0, loss=loss)
A = np.random.default_rng(0).standard_normal((1000, 1000))
began = time.perf_counter()
np.linalg.svd(A)
svd = time.perf_counter() - began
began, cpu = time.perf_counter(), time.process_time()
solution = get_solver("nuclear").run(problem)
seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu_s": cpu, "svd_s": svd, "relative_gap": solution.certificate.relative_gap,
                  "status": solution.status.value, "engine": solution.extra.get("engine", "grouped"),
                  "message": solution.message}))
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
    """Wall time, CPU time (user + system), peak resident memory and stdout of one subprocess."""
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
    return {"seconds": seconds, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_mib": usage.ru_maxrss / 1024,
            "stdout": stdout}  # Linux: KiB


class Side:
    """One side of a comparison: an interpreter with a source tree on its path."""

    def __init__(self, name: str, tree: Path, scratch: Path):
        self.name, self.tree, self.scratch = name, tree, scratch
        scratch.mkdir(parents=True, exist_ok=True)  # rows run alone (--only) start without it
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


def products(result: dict) -> str:
    """The Hessian products a factored solve reports in its message ('?' if none)."""
    import re
    found = re.search(r"(\d+) Hessian products", result.get("message", ""))
    return found.group(1) if found else "?"


def med(runs: list[dict], key: str = "seconds") -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--repeat-large", type=int, default=1, help="runs of rows 5-9")
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the 'old' side")
    parser.add_argument("--quick", action="store_true", help="skip the K = 1000 rows, compare and K = 8142")
    parser.add_argument("--no-large", action="store_true", help="skip K = 8142")
    parser.add_argument("--full", action="store_true", help="also run the old side of K = 8142")
    parser.add_argument("--out", type=Path, help="write the measurements as JSON")
    parser.add_argument("--only", type=int, nargs="+", choices=range(1, 10), metavar="ROW",
                        help="run only these rows (1-9; rows 5 and 6 run together)")
    args = parser.parse_args()
    rows: list[dict] = []

    def row(work, new, other=None, other_name="", target="", note=""):
        entry = {"work": work, "new_s": med(new), "new_peak_mib": max(r["peak_mib"] for r in new),
                 "target": target, "note": note}
        if all("cpu_s" in r for r in new):
            entry["new_cpu_s"] = med(new, "cpu_s")
        if other:
            entry.update({"against": other_name, "other_s": med(other), "ratio": med(other) / med(new)})
            if all("cpu_s" in r for r in other):
                entry["other_cpu_s"] = med(other, "cpu_s")
        rows.append(entry)
        against = f"{other_name} {entry['other_s']:8.3f} s  ratio {entry['ratio']:6.2f}x" if other else " " * 34
        print(f"  {work:<46} new {entry['new_s']:8.3f} s  {against}  peak {entry['new_peak_mib']:6.0f} MiB"
              f"  target {target}{'  ' + note if note else ''}", flush=True)

    def api_runs(side: Side, K: str, profile: str, ratio: str, loss: str) -> dict:
        result = side.python(API, K, profile, ratio, loss)
        return {**json.loads(result["stdout"].strip().splitlines()[-1]), "peak_mib": result["peak_mib"]}

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old_tree = tmp / "old-tree"
        old_tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive.stdout, check=True)
        new, old = Side("new", ROOT, tmp / "work"), Side("old", old_tree, tmp / "work")
        reference_script = tmp / "reference_sdp.py"
        reference_script.write_text(REFERENCE)

        print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, OMP_NUM_THREADS="
              f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; old = {args.baseline}; medians of {args.repeat} "
              f"interleaved runs ({args.repeat_large} for the large rows)", flush=True)
        def want(*numbers: int) -> bool:
            return not args.only or any(n in args.only for n in numbers)

        if want(1):
            n, o = median_runs([lambda: new.lpm("--help", out=False), lambda: old.lpm("--help", out=False)],
                               args.repeat)
            row("lpm --help", n, o, "old", "<= 0.5 s")
        if want(2):
            n, o = median_runs([lambda: new.lpm("simulate", "--K", "10", "--ratio", "100"),
                                lambda: old.lpm("simulate", "--K", "10", "--ratio", "100")], args.repeat)
            row("lpm simulate --K 10 --ratio 100", n, o, "old", "<= 1.0 s")

        if want(3):
            n, ref = median_runs([lambda: new.lpm(*SWEEP),
                                  lambda: run([sys.executable, str(reference_script)], new.env, tmp)], args.repeat)
            ours_csv = Path(new.scratch) / f"new-{new.count}" / "out" / "results.csv"
            with open(ours_csv, newline="") as fh:
                ours = [float(r["objective"]) for r in sorted(csv.DictReader(fh), key=lambda r: float(r["ratio"]))]
            theirs = json.loads(ref[-1]["stdout"])["objectives"]
            worst = max(abs(a - b) for a, b in zip(ours, theirs))
            row("lpm sweep, 41 ratios, K=10, nuclear", n, ref, "reference", ">= 20x vs reference",
                f"|objective diff| <= {worst:.1e} (target 1e-6)")

        if want(4):
            cli = ["simulate", "--K", "100", "--profile", "exp", "--ratio", "100", "--classifier", "learnable"]
            n, o = median_runs([lambda: new.lpm(*cli), lambda: old.lpm(*cli)], args.repeat)
            row("certified CE K=100, exp, R=100, CLI", n, o, "old", "<= 0.2 s, gap <= 1e-8")
            n, o = median_runs([lambda: api_runs(new, "100", "exp", "100", "ce"),
                                lambda: api_runs(old, "100", "exp", "100", "ce")], args.repeat)
            row("certified CE K=100, exp, R=100, API solve", n, o, "old", "<= 0.2 s, gap <= 1e-8",
                f"relative gap {n[-1]['relative_gap']:.1e}, {n[-1]['status']}")

        if not args.quick:
            if want(5, 6):
                n, o = median_runs([lambda: api_runs(new, "1000", "exp", "100", "ce"),
                                    lambda: api_runs(old, "1000", "exp", "100", "ce")], args.repeat_large)
                svd = med(n, "svd_s")
                ce_seconds = med(n)
                row("certified CE K=1000, exp, R=100, API solve", n, o, "old", "<= 3 s (<= 17 SVDs), gap <= 1e-8",
                    f"{ce_seconds / svd:.1f} SVDs (one 1000x1000 SVD {svd:.3f} s here; old "
                    f"{med(o) / med(o, 'svd_s'):.1f} SVDs); CPU s new {med(n, 'cpu_s'):.2f} old "
                    f"{med(o, 'cpu_s'):.2f}; Hessian products new {products(n[-1])} old {products(o[-1])}; "
                    f"relative gap {n[-1]['relative_gap']:.1e}, {n[-1]['status']}, engine {n[-1]['engine']}")
                for loss in REMEDIES:
                    n_loss, o_loss = median_runs([lambda: api_runs(new, "1000", "exp", "100", loss),
                                                  lambda: api_runs(old, "1000", "exp", "100", loss)],
                                                 args.repeat_large)
                    if "skipped" in n_loss[0]:
                        print(f"  certified {loss} K=1000: skipped ({n_loss[0]['skipped']})", flush=True)
                        rows.append({"work": f"certified {loss} K=1000, exp, R=100, API solve", "skipped": True,
                                     "note": n_loss[0]["skipped"]})
                        continue
                    other = None if "skipped" in o_loss[0] else o_loss
                    row(f"certified {loss} K=1000, exp, R=100, API solve", n_loss, other, "old", "<= 1.5x CE's time",
                        note=f"{med(n_loss) / ce_seconds:.2f}x CE's time (CPU "
                             f"{med(n_loss, 'cpu_s') / med(n, 'cpu_s'):.2f}x); Hessian products "
                             f"{products(n_loss[-1])}{' (old ' + products(o_loss[-1]) + ')' if other else ''}; "
                             f"relative gap {n_loss[-1]['relative_gap']:.1e}, {n_loss[-1]['status']}")
            if want(7):
                n, o = median_runs([lambda: api_runs(new, "1000", "step", "100", "ce"),
                                    lambda: api_runs(old, "1000", "step", "100", "ce")], args.repeat_large)
                row("certified CE K=1000, step, R=100, API solve", n, o, "old", "unchanged or better",
                    f"relative gap {n[-1]['relative_gap']:.1e}, engine {n[-1]['engine']}")

            if want(8):
                folder = tmp / "run-K1000"
                new.python(RUN_FOLDER, str(folder))
                n, o = median_runs([lambda: new.lpm("compare", str(folder), "--budget-rule", "loss"),
                                    lambda: old.lpm("compare", str(folder), "--budget-rule", "loss")],
                                   args.repeat_large)
                row("lpm compare, K=1000 run, loss rule", n, o, "old", "<= 15 s",
                    f"CPU s (process) new {med(n, 'cpu_s'):.2f} old {med(o, 'cpu_s'):.2f}")

            if want(9) and not args.no_large:
                fns = [lambda: api_runs(new, "8142", "exp", "500", "ce")]
                if args.full:
                    fns.append(lambda: api_runs(old, "8142", "exp", "500", "ce"))
                runs = median_runs(fns, args.repeat_large)
                row("certified CE K=8142, exp, R=500, API solve", runs[0], runs[1] if args.full else None, "old",
                    "<= 600 s, <= 8 GiB, gap <= 1e-8",
                    f"CPU s {med(runs[0], 'cpu_s'):.1f}; relative gap {runs[0][-1]['relative_gap']:.1e}, "
                    f"{runs[0][-1]['status']}; "
                    f"{runs[0][-1]['message'].split('; ')[1] if '; ' in runs[0][-1]['message'] else ''}")

    if args.out:
        from lpm.core.io import write_text_atomic
        from lpm.core.provenance import provenance
        write_text_atomic(args.out, json.dumps({"rows": rows, "provenance": provenance()}, indent=2, default=str))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
