"""Train two tiny networks and set them beside the layer-peeled model.

Trains a learnable head with CE and a fixed simplex-ETF head with DR on a small long-tailed set of
Gaussian clusters (synthetic-lt, R = 10, a few seconds on a CPU), then solves the layer-peeled
model for each run's own class counts and writes the comparison (distances.csv, heatmaps) as
`lpm compare` does. For real data and longer runs see `lpm train-deep` with no arguments.

    python examples/train_and_compare.py [OUT]   (default: runs/example)
"""
import sys
from pathlib import Path

from full_model import build_config, train
from lpm.compare import compare_runs, summary_lines, write_report

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/example")
common = {"dataset": "synthetic-lt", "ratio": 10, "n_max": 60, "epochs": 20, "warmup_epochs": 0,
          "mixup_alpha": 0.0, "track_every": 5, "device": "cpu", "progress": False, "figures": False}
runs = []
for head, loss in (("learnable", "ce"), ("fixed-etf", "dr")):
    result = train(build_config({**common, "head": head, "loss": loss, "out": str(out / f"{head}-{loss}")}))
    print(f"{head} + {loss}: last test accuracy {result.last_test_accuracy:.3f} ({result.run_dir})")
    runs.append(result.run_dir)
report = compare_runs(runs, budget_rule="weight-decay", minority_below=20)
write_report(report, out / "compare", per_run_figures=False)
print("\n".join(summary_lines(report)))
