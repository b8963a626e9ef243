"""Theory beside practice (theory.md §10.7): a deep run's geometry next to the
layer-peeled model's optimum for the same class counts.

For each run folder written by ``lpm train-deep``:

1. :func:`load_run_geometry` reads its class counts, final class means and
   classifier, head, loss and per-epoch metrics (:mod:`.runs`);
2. :func:`problem_for_run` builds the :class:`lpm.Problem` with exactly those
   counts, K, d, head (and head seed) and loss, with budgets chosen by a
   stated rule or given (:mod:`.budgets`), and :func:`solve_certified` solves it;
3. :func:`compare_run` measures both geometries with :func:`lpm.core.geometry.measure`
   and the rotation/scale-invariant Gram distances to the LPM and to the
   simplex ETF;
4. :func:`collapse_table` puts runs at several ratios over the LPM curve for
   their profile (:mod:`.curve`);
5. :func:`compare_runs` / :func:`write_report` do all of it for ``lpm compare``
   (:mod:`.report`).

:func:`lpm.compare.practice.run_theory_vs_practice` is the runner of
``sims/theory-vs-practice.toml`` (it trains the runs, then compares);
:func:`lpm.compare.classifier_question.run_classifier_question` the runner of
``sims/classifier-question.toml`` (eight arms paired over seeds), whose findings
page :mod:`lpm.compare.findings` writes from its tables. :mod:`.statistics` gives intervals over
seeds and paired, corrected comparisons between arms.
"""
from __future__ import annotations

from ..core.lazy import lazy_exports

_EXPORTS = {
    "BUDGET_RULES": ".budgets", "Budgets": ".budgets", "budgets_for_run": ".budgets", "logits_product": ".budgets",
    "problem_for_run": ".budgets", "solve_certified": ".budgets", "Reference": ".budgets",
    "reference_for_run": ".budgets",
    "COMPARED_METRICS": ".core", "RunComparison": ".core", "compare_run": ".core", "group_history": ".core",
    "CURVE_METRICS": ".curve", "collapse_curve": ".curve", "collapse_table": ".curve", "curve_ratios": ".curve",
    "ComparisonReport": ".report", "compare_runs": ".report", "default_out_dir": ".report", "summary_lines": ".report",
    "write_report": ".report",
    "GROUPINGS": ".runs", "RunGeometry": ".runs", "load_run_geometry": ".runs",
    "adjust_p_values": ".statistics", "compare_arms": ".statistics", "mean_interval": ".statistics",
    "paired_difference": ".statistics", "rank_correlation": ".statistics",
}
__all__ = list(_EXPORTS)


__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
