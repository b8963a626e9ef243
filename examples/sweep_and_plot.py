"""Sweep the imbalance ratio and plot the result.

Solves the learnable CE layer-peeled model (K = 10, 5 majority classes) at 21 ratios from 1 to
10^4 with the certified nuclear solver, writes the tidy table results.csv, and draws the minority
classifier cosine against R: it rises from the ETF value -1/9 to 1 (merged) at R* ≈ 12.2
(docs/theory.md §4.3). The same as the two commands

    lpm sweep --ratio-range 1:1e4:21 --solver nuclear -o OUT
    lpm plot OUT --x ratio --y classifier_minority_cos --hue solver --logx

    python examples/sweep_and_plot.py [OUT]      (default: results/example-sweep)
"""
import sys

from lpm.figures.table_plot import plot_sweep
from lpm.sweep import Grid, log_range, run_sweep

out = sys.argv[1] if len(sys.argv) > 1 else "results/example-sweep"
grid = Grid(ratio=log_range(1, 1e4, 21), K=[10], majority=[5], classifier=["learnable"], loss=["ce"],
            E_W=[1.0], E_H=[5.0], solver=["nuclear"])
table = run_sweep(grid, out, progress=False)
merged = table[table["classifier_minority_cos"] > 1 - 1e-6]["ratio"]
print(f"{len(table)} certified solves; worst relative gap {table['relative_gap'].max():.1e}")
print(f"first ratio with merged minority classifiers: {merged.min():.4g}")
paths = plot_sweep(out, "ratio", "classifier_minority_cos", hue="solver", logx=True)
print("figure:", ", ".join(str(p) for p in paths))
