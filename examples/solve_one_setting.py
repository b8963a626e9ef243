"""Solve one setting of the layer-peeled model through the Python API.

A learnable classifier with cross-entropy beside a fixed simplex-ETF classifier with DR, for the
same step-imbalanced class counts (K = 10, 5 majority classes, R = 100): each solve returns a
certificate of global optimality, and the geometry shows minority collapse for the first and
none for the second (docs/theory.md §4.3, §5).

    python examples/solve_one_setting.py [RATIO]
"""
import sys

from lpm import Problem, solve
from lpm.core.geometry import measure_solution

ratio = float(sys.argv[1]) if len(sys.argv) > 1 else 100.0
for classifier, loss in (("learnable", "ce"), ("fixed-etf", "dr")):
    problem = Problem.from_profile(K=10, ratio=ratio, profile="step", majority=5,
                                   classifier=classifier, loss=loss, E_W=1, E_H=5)
    solution = solve(problem)  # the fastest back end that certifies this problem
    metrics = measure_solution(solution)
    print(f"{classifier} + {loss}: solver {solution.solver}, status {solution.status.value}, "
          f"objective {solution.objective:.4g}, certified gap {solution.certificate.gap:.1e}")
    print(f"  minority classifier cosine {metrics['classifier_minority_cos']:+.4f}, "
          f"collapse index {metrics['collapse_index']:.4f} (1 = ETF, 0 = merged)")
