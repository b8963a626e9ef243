"""Theory beside practice (theory.md §10.7): a deep run's geometry next to the
layer-peeled model's optimum for the same class counts.

For each run folder written by ``lpm train-deep``:

1. :func:`load_run_geometry` reads its class counts, final class means and
   classifier, head, loss and per-epoch metrics (:mod:`.runs`);
2. :func:`problem_for_run` builds the :class:`lpm.Problem` with exactly those
   counts, K, d, head (and head seed) and loss, with budgets chosen by a
   stated rule or given (:mod:`.budgets`), and :func:`solve_certified` solves it;
3. :func:`compare_run` measures both geometries with :func:`lpm.geometry.measure`
   and the rotation/scale-invariant Gram distances to the LPM and to the
   simplex ETF;
4. :func:`collapse_table` puts runs at several ratios over the LPM curve for
   their profile (:mod:`.curve`);
5. :func:`compare_runs` / :func:`write_report` do all of it for ``lpm compare``
   (:mod:`.report`).

:func:`lpm.compare.practice.run_theory_vs_practice` is the runner of
``sims/theory-vs-practice.toml`` (it trains the runs, then compares).
"""
from __future__ import annotations

from .budgets import BUDGET_RULES, Budgets, budgets_for_run, logits_product, problem_for_run, solve_certified
from .core import (COMPARED_METRICS, GROUPINGS, RunComparison, compare_run, cosine_matrix, etf_reference,
                   geometry_distances, gram_distance, group_history)
from .curve import CURVE_METRICS, collapse_curve, collapse_table, curve_ratios
from .report import ComparisonReport, compare_runs, default_out_dir, summary_lines, write_report
from .runs import RUN_LOSSES, RunGeometry, load_run_geometry

__all__ = ["BUDGET_RULES", "COMPARED_METRICS", "CURVE_METRICS", "GROUPINGS", "RUN_LOSSES", "Budgets", "ComparisonReport",
           "RunComparison", "RunGeometry", "budgets_for_run", "collapse_curve", "collapse_table", "compare_run",
           "compare_runs", "cosine_matrix", "curve_ratios", "default_out_dir", "etf_reference", "geometry_distances",
           "gram_distance", "group_history", "load_run_geometry", "logits_product", "problem_for_run", "solve_certified",
           "summary_lines", "write_report"]
