"""The factored nuclear engine on a GPU beside the CPU engine: K = 1000 and K = 8142.

Rows (learnable CE, class-average budgets E_W = 1, E_H = 5, exp profile):

* K = 1000, R = 100 (ImageNet-LT-like);
* K = 8142, R = 500 (iNaturalist-2018-like; target on 2 CPU cores: <= 10 min, <= 8 GiB).

Each row is solved by the torch back end on CUDA (float32 Hessian products, float64 gradient
and certificate) and by the NumPy back end on the CPU, each in a fresh interpreter (peak
resident memory from ``wait4``; peak GPU memory from torch). A CPU solve that exceeds
``--cpu-timeout`` is recorded as such. Both certificates are evaluated on the recovered (W, H)
on the CPU in float64; the objectives of the two back ends are compared.

Run (from the repository root):  python benchmarks/gpu_nuclear.py [--out DIR] [--cpu-timeout S]
Writes DIR/nuclear_gpu.json (DIR: $OUT when set, else results/).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from child import run_child  # benchmarks/child.py (run as python benchmarks/NAME.py)

ROOT = Path(__file__).resolve().parents[1]
ROWS = ((1000, 100.0), (8142, 500.0))

CHILD = r'''
import json, sys, time
from lpm.core.problem import Problem
from lpm.core.solvers import get_solver
K, ratio, backend, device = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
problem = Problem.from_profile(K=K, ratio=ratio, profile="exp", E_W=1.0, E_H=5.0)
settings = {"engine": "factored", "backend": backend}
if backend == "torch":
    settings["device"] = device
    import torch
    if device == "cuda":
        torch.zeros(1, device="cuda"); torch.cuda.synchronize()  # context start-up outside the timing
wall, cpu = time.perf_counter(), time.process_time()
solution = get_solver("nuclear", **settings).run(problem)
out = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
       "objective": solution.objective, "relative_gap": solution.certificate.relative_gap,
       "status": solution.status.value, "message": solution.message}
if backend == "torch" and device == "cuda":
    out["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    out["gpu"] = torch.cuda.get_device_name(0)
print(json.dumps(out))
'''


def solve(K: int, ratio: float, backend: str, device: str, timeout: float) -> dict:
    """One solve in a fresh interpreter, with its peak resident memory (``wait4``)."""
    return run_child(CHILD, [K, ratio, backend, device], timeout, poll=0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "results"
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--cpu-timeout", type=float, default=240.0, help="seconds per CPU solve")
    parser.add_argument("--gpu-timeout", type=float, default=420.0, help="seconds per GPU solve")
    parser.add_argument("--K", type=int, nargs="+", default=[K for K, _ in ROWS])
    parser.add_argument("--smoke", action="store_true", help="one small row (K = 100) instead, to check the script")
    args = parser.parse_args()
    rows = ((100, 100.0),) if args.smoke else ROWS
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        import torch
        cuda = torch.cuda.is_available()
        gpu = torch.cuda.get_device_name(0) if cuda else None
    except ImportError:
        cuda, gpu = False, None
    report = {"gpu": gpu, "cpu_cores": os.cpu_count(), "threads": os.environ.get("OMP_NUM_THREADS", "all"),
              "rows": []}
    print(f"GPU: {gpu or 'none (CUDA not available: the torch rows run on the CPU)'}; {os.cpu_count()} CPU cores",
          flush=True)
    for K, ratio in rows:
        if K not in args.K and not args.smoke:
            continue
        entry: dict = {"K": K, "ratio": ratio}
        for name, backend, device, timeout in (("gpu", "torch", "cuda" if cuda else "cpu", args.gpu_timeout),
                                               ("cpu", "numpy", "auto", args.cpu_timeout)):
            result = solve(K, ratio, backend, device, timeout)
            entry[name] = result
            if "wall_s" in result:
                print(f"K={K:5d} R={ratio:g} {name} ({backend}, {device}): {result['wall_s']:8.2f} s, relative gap "
                      f"{result['relative_gap']:.1e}, {result['status']}"
                      f", peak RSS {result['peak_rss_mib']:.0f} MiB"
                      + (f", GPU peak {result['gpu_peak_mib']:.0f} MiB" if "gpu_peak_mib" in result else ""),
                      flush=True)
            else:
                print(f"K={K:5d} R={ratio:g} {name}: " + ("timed out after " + f"{timeout:.0f} s"
                                                         if result.get("timed_out") else "failed"), flush=True)
        if "objective" in entry["gpu"] and "objective" in entry["cpu"]:
            a, b = entry["gpu"]["objective"], entry["cpu"]["objective"]
            entry["relative_objective_difference"] = abs(a - b) / max(abs(b), 1e-300)
            entry["speedup_gpu_over_cpu"] = entry["cpu"]["wall_s"] / entry["gpu"]["wall_s"]
            print(f"  objectives agree to {entry['relative_objective_difference']:.1e}; the torch row takes "
                  f"{1 / entry['speedup_gpu_over_cpu']:.2f}x the CPU row's time", flush=True)
        report["rows"].append(entry)
        (args.out / "nuclear_gpu.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out / 'nuclear_gpu.json'}")


if __name__ == "__main__":
    main()
