"""How the certified learnable-CE solve grows with K: time and peak memory, step and exp profiles.

Each point is one solve of the nuclear solver (learnable classifier, CE, class-average budgets
E_W = 1, E_H = 5, ratio ``--ratio``; the step profile with half the classes in the majority)
in a fresh interpreter, so that its peak resident memory (``wait4``) is its own. Recorded per
point: wall seconds, CPU seconds of the solve (process time: on a shared machine the wall time
also counts the other users, CPU time does not), peak MiB, relative gap, engine, the solver's
summary (rank, Newton steps, Hessian products). A point that exceeds ``--timeout`` is recorded
as such and ends that profile (larger K would too).

The figure (``--figure``, default docs/figures/benchmarks/growth.png) is log–log: CPU seconds and peak
memory against K, one curve per profile, each with its fitted exponent (least squares of
log y on log K over the points with K >= ``--fit-from``, default 300: below it fixed
costs dominate).

Run:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_growth.py            # K = 10 ... 8142
    .venv/bin/python benchmarks/bench_growth.py --K 10 30 100 300 1000 --out results/growth.json
    .venv/bin/python benchmarks/bench_growth.py --plot results/growth.json   # figure only
    .venv/bin/python benchmarks/bench_growth.py --K 8142 --ratio 500 --profiles exp --out results/growth-8142.json
    .venv/bin/python benchmarks/bench_growth.py --plot results/growth.json --merge results/growth-8142.json
    .venv/bin/python benchmarks/bench_growth.py --backend torch --device cuda

K = 8142 (the iNaturalist 2018 class count) takes minutes on one core and needs a few GiB.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from child import run_child  # benchmarks/child.py (run as python benchmarks/NAME.py)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_K = (10, 30, 100, 300, 1000, 2000, 4000, 8142)

CHILD = r'''
import json, sys, time
from lpm.core.problem import Problem
from lpm.core.solvers import get_solver
K, profile, ratio, backend, device = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
extra = {"majority": K // 2} if profile == "step" else {}
problem = Problem.from_profile(K=K, ratio=ratio, profile=profile, E_W=1.0, E_H=5.0, **extra)
settings = {} if backend == "numpy" else {"backend": backend, "device": device}
wall, cpu = time.perf_counter(), time.process_time()
solution = get_solver("nuclear", **settings).run(problem)
print(json.dumps({"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                  "relative_gap": solution.certificate.relative_gap, "status": solution.status.value,
                  "engine": solution.extra.get("engine"), "message": solution.message}))
'''


def measure(K: int, profile: str, ratio: float, backend: str, device: str, timeout: float) -> dict:
    """One solve in a fresh interpreter: its own numbers and its peak resident memory."""
    result = run_child(CHILD, [K, profile, ratio, backend, device], timeout)
    if "peak_rss_mib" in result:
        result["peak_mib"] = result.pop("peak_rss_mib")
    return {"K": K, "profile": profile, "ratio": ratio, **result}


def fit_exponent(K, y, fit_from: float) -> float | None:
    """Slope of log y against log K over the points with K >= fit_from (None below 2 points)."""
    K, y = np.asarray(K, float), np.asarray(y, float)
    use = (K >= fit_from) & (y > 0)
    if use.sum() < 2:
        return None
    return float(np.polyfit(np.log(K[use]), np.log(y[use]), 1)[0])


def figure(data: dict, path: Path, fit_from: float) -> dict:
    """The log–log figure; returns the fitted exponents per profile and quantity."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    exponents: dict = {}
    default_ratio = data.get("meta", {}).get("ratio")
    meta_threads = data.get("meta", {}).get("threads")
    curves = sorted({(p["profile"], p.get("ratio", default_ratio)) for p in data["points"] if "cpu_s" in p},
                    key=lambda c: (c[0] != "exp", c[1] or 0))
    for profile, ratio in curves:
        marker = "o" if profile == "exp" else "s"
        points = sorted((p for p in data["points"] if p["profile"] == profile and "cpu_s" in p
                         and p.get("ratio", default_ratio) == ratio), key=lambda p: p["K"])
        K = [p["K"] for p in points]
        name = f"{profile}, R={ratio:g}" if ratio is not None else profile
        threads = {p.get("threads") for p in points} - {None, meta_threads}
        if threads:  # a merged point measured with another number of BLAS threads
            name += f" ({', '.join(map(str, sorted(threads)))} threads)"
        for ax, key, label in ((axes[0], "cpu_s", "CPU seconds of the solve"), (axes[1], "peak_mib", "peak MiB")):
            y = [p[key] for p in points]
            slope = fit_exponent(K, y, fit_from)
            exponents.setdefault(name, {})[key] = slope
            text = name + (f": ~K^{slope:.2f}" if slope is not None else "")
            ax.loglog(K, y, marker=marker, linestyle="-" if len(K) > 1 else "none", label=text)
            ax.set_xlabel("K (classes)")
            ax.set_ylabel(label)
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(title=f"fit over K >= {fit_from:g}")
    meta = data.get("meta", {})
    fig.suptitle(f"certified learnable CE, backend {meta.get('backend', 'numpy')}, "
                 f"{meta.get('threads', '?')} BLAS thread(s)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return exponents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--K", type=int, nargs="+", default=list(DEFAULT_K))
    parser.add_argument("--profiles", nargs="+", default=["exp", "step"], choices=["exp", "step"])
    parser.add_argument("--ratio", type=float, default=100.0)
    parser.add_argument("--backend", default="numpy", choices=["numpy", "torch"])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per solve")
    parser.add_argument("--fit-from", type=float, default=300.0)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "growth.json")
    parser.add_argument("--figure", type=Path, default=ROOT / "docs" / "figures" / "benchmarks" / "growth.png")
    parser.add_argument("--plot", type=Path, help="only draw the figure from this JSON")
    parser.add_argument("--merge", type=Path, nargs="+", default=[],
                        help="add the points of these JSON files (e.g. a K = 8142 run at another ratio)")
    args = parser.parse_args()

    if args.plot:
        data = json.loads(args.plot.read_text())
    else:
        data = {"meta": {"ratio": args.ratio, "backend": args.backend, "device": args.device,
                         "threads": os.environ.get("OMP_NUM_THREADS", "all"), "cores": os.cpu_count(),
                         "load": os.getloadavg()[0]}, "points": []}
        for profile in args.profiles:
            for K in sorted(args.K):
                point = measure(K, profile, args.ratio, args.backend, args.device, args.timeout)
                data["points"].append(point)
                if "cpu_s" in point:
                    print(f"{profile:4s} K={K:5d}  cpu {point['cpu_s']:9.2f} s  wall {point['wall_s']:9.2f} s  "
                          f"peak {point['peak_mib']:7.0f} MiB  gap {point['relative_gap']:.1e}  {point['engine']}",
                          flush=True)
                else:
                    print(f"{profile:4s} K={K:5d}  {'timed out' if point.get('timed_out') else 'failed'}", flush=True)
                    break
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(data, indent=2))
    for extra in args.merge:
        other = json.loads(extra.read_text())
        ratio, threads = other.get("meta", {}).get("ratio"), other.get("meta", {}).get("threads")
        data["points"].extend({"ratio": ratio, "threads": threads, **p, "merged_from": str(extra)}
                              for p in other["points"])
    exponents = figure(data, args.figure, args.fit_from)
    data["exponents"] = exponents
    if not args.plot:
        args.out.write_text(json.dumps(data, indent=2))
    for profile, values in exponents.items():
        print(f"fitted exponents ({profile}): " + ", ".join(f"{k} ~ K^{v:.2f}" for k, v in values.items()
                                                              if v is not None))
    print(f"wrote {args.figure}" if args.plot else f"wrote {args.out} and {args.figure}")


if __name__ == "__main__":
    main()
