"""``lpm compare``'s whole job: several runs beside their LPM predictions, written to one folder.

Files written to the output folder (tables are CSV, figures PNG + PDF, every
file atomically):

``distances.csv``          one row per run: the LPM reference objective
                           (``reference``: loss, hyperparameters, class weights,
                           sampler; ``reference_source``: how the run's settings,
                           stage and deferred re-weighting became it), budgets and
                           how they were chosen,
                           the LPM's solver and certificate, the Gram distances
                           of the run to the LPM optimum (``dist_lpm_*``) and to
                           the simplex ETF (``dist_etf_*``), and run/LPM metrics
``summary.csv``            mean, std and n over the runs (seeds) of each data set,
                           head, loss, LPM reference and ratio, for the main columns
``collapse_vs_ratio.csv``  the long table behind ``collapse_vs_ratio.png``
                           (figure drawn when a run family spans >= 2 ratios)
``groups_history.csv``     per-epoch group cosines and relative norms of every run
``groups_reference.csv``   the LPM's values for the same groups
``RUN_cosines.png|pdf``    class-mean and classifier cosine matrices, run vs LPM
``RUN_groups.png|pdf``     group cosines and norms over epochs, LPM as reference lines
``distances.png|pdf``      distance to the LPM vs distance to the ETF, per run
``compare.json``           options; per run the Problem, how its budgets were
                           chosen, the solver's summary and the distances;
                           provenance (lpm version, git commit, software, hardware)
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..core.errors import LPMInputError, check_number
from ..core.io import write_json_atomic, write_text_atomic
from ..core.provenance import provenance
from ..figures import compare as figs
from ..figures.style import save_figure
from .budgets import check_options
from .classes import FITTED_ABOVE
from .core import RunComparison, compare_run, group_history
from .curve import collapse_table
from .runs import RunGeometry, load_run_geometry


@dataclass
class ComparisonReport:
    """Everything ``lpm compare`` computes; :func:`write_report` only writes it."""

    comparisons: list[RunComparison]
    distances: pd.DataFrame
    collapse: pd.DataFrame
    history: pd.DataFrame
    reference: pd.DataFrame
    options: dict = field(default_factory=dict)

    @property
    def has_ratio_figure(self) -> bool:
        return not self.collapse.empty and (self.collapse["source"] == "lpm").any()


def _unique_names(runs: Sequence[RunGeometry]) -> list[RunGeometry]:
    """Copies named so that each is a unique, file-name-safe stem (``a``, ``a-2``, …)."""
    seen: dict[str, int] = {}
    out = []
    for run in runs:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", run.name) or "run"
        seen[base] = seen.get(base, 0) + 1
        out.append(dataclasses.replace(run, name=base if seen[base] == 1 else f"{base}-{seen[base]}"))
    return out


def compare_runs(runs: Sequence[RunGeometry | str | Path], *, E_W: float | None = None, E_H: float | None = None,
                 budget: str | None = None, budget_rule: str = "norms", method: str = "auto",
                 center: str | None = None, grouping: str = "auto", curve_points: int = 9,
                 lambda_W: float | None = None, lambda_H: float | None = None, minority_below: float | None = None,
                 fitted_above: float = FITTED_ABOVE) -> ComparisonReport:
    """Load each run (a folder or a :class:`RunGeometry`), solve its LPM, and build every table."""
    if not runs:
        raise LPMInputError("run_dirs", [], "at least one run folder written by `lpm train-deep`")
    check_options(budget_rule, lambda_W, lambda_H)
    loaded = _unique_names([r if isinstance(r, RunGeometry) else load_run_geometry(r) for r in runs])
    check_options(budget_rule, lambda_W, lambda_H, E_W, E_H, [r.head for r in loaded])
    check_number("curve_points", curve_points, low=2, integer=True)
    classes = {"minority_below": minority_below, "fitted_above": fitted_above}
    comparisons = [compare_run(r, E_W=E_W, E_H=E_H, budget=budget, budget_rule=budget_rule, method=method,
                               center=center, grouping=grouping, lambda_W=lambda_W, lambda_H=lambda_H, **classes)
                   for r in loaded]
    histories, references = zip(*(group_history(c) for c in comparisons))
    options = {"E_W": E_W, "E_H": E_H, "budget": budget, "budget_rule": budget_rule, "solver": method,
               "center": center, "groups": grouping, "curve_points": curve_points, "lambda_W": lambda_W,
               "lambda_H": lambda_H, **classes}
    return ComparisonReport(comparisons, pd.DataFrame([c.row() for c in comparisons]),
                            collapse_table(comparisons, curve_points, method, E_W, E_H, minority_below),
                            pd.concat(histories, ignore_index=True), pd.concat(references, ignore_index=True),
                            options)


#: columns of ``summary.csv``: mean ± std over the runs (seeds) of each family and ratio
SUMMARY_COLUMNS = ("last_test_accuracy", "last_test_balanced_accuracy", "last_test_ece", "E_W_times_E_H",
                   "run_collapse_index", "lpm_collapse_index",
                   "run_classifier_minority_cos", "lpm_classifier_minority_cos", "run_classifier_norm_ratio",
                   "lpm_classifier_norm_ratio", "dist_lpm_joint", "dist_etf_joint", "dist_lpm_classifier",
                   "dist_etf_classifier", "dist_lpm_means", "dist_etf_means")


def summarize(distances: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and n of :data:`SUMMARY_COLUMNS` per data set, head, loss, LPM reference and ratio."""
    keys = ["dataset", "head", "loss", "reference", "ratio"]
    t = distances.copy()
    t["ratio"] = t["ratio"].fillna(-1.0)  # runs without a ratio form their own group
    cols = [c for c in SUMMARY_COLUMNS if c in t]
    t[cols] = t[cols].apply(pd.to_numeric, errors="coerce")
    grouped = t.groupby(keys, sort=True)
    out = grouped[cols].agg(["mean", "std"])
    out.columns = [f"{c}_{stat}" for c, stat in out.columns]
    out.insert(0, "n", grouped.size())
    out = out.reset_index()
    out["ratio"] = out["ratio"].where(out["ratio"] >= 0)
    return out


def _csv(df: pd.DataFrame, path: Path) -> Path:
    write_text_atomic(path, df.to_csv(index=False))
    return path


def write_report(report: ComparisonReport, out_dir: Path | str, per_run_figures: bool = True) -> list[Path]:
    """Write the tables, figures and ``compare.json`` of ``report``; return the paths written.
    ``per_run_figures=False`` skips the two figures per run (cosines, groups)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [_csv(report.distances, out / "distances.csv"), _csv(summarize(report.distances), out / "summary.csv"),
             _csv(report.history, out / "groups_history.csv"),
             _csv(report.reference, out / "groups_reference.csv")]
    if not report.collapse.empty:
        paths.append(_csv(report.collapse, out / "collapse_vs_ratio.csv"))
    drawings = []
    for c in report.comparisons if per_run_figures else ():
        hist, ref = report.history, report.reference
        drawings.append((f"{c.run.name}_cosines", figs.plot_cosine_matrices, (c.cosine_matrices(), _title(c))))
        drawings.append((f"{c.run.name}_groups", figs.plot_group_history,
                         (hist[hist["run"] == c.run.name], ref[ref["run"] == c.run.name])))
    drawings.append(("distances", figs.plot_distances, (report.distances,)))
    if report.has_ratio_figure:
        drawings.append(("collapse_vs_ratio", figs.plot_collapse_vs_ratio, (report.collapse,)))
    for stem, plot, args in drawings:
        fig = plot(*args)
        paths += save_figure(fig, out / stem)
    record = {"options": report.options, "runs": [_run_record(c) for c in report.comparisons],
              "files": [p.name for p in paths], "provenance": provenance()}
    write_json_atomic(out / "compare.json", record)
    return [*paths, out / "compare.json"]


def _title(c: RunComparison) -> str:
    ratio = "" if c.run.ratio is None else f", R = {c.run.ratio:g}"
    return (f"{c.run.name}: {c.run.head} + {c.run.loss.upper()}{ratio}; LPM of {c.reference.label} by "
            f"{c.solution.solver}, {c.problem.budget_text(tex=True)}")


def _run_record(c: RunComparison) -> dict:
    return {"run": c.run.name, "path": str(c.run.path or ""), "reference": c.reference.label,
            "reference_source": c.reference.note, "problem": c.problem.describe(),
            "budget_source": c.budgets.source, "solution": c.solution.summary(),
            "distances": c.distances}


def default_out_dir(first_run: Path | str) -> Path:
    """``compare/`` beside the first run folder."""
    return Path(first_run).resolve().parent / "compare"


def summary_lines(report: ComparisonReport) -> list[str]:
    """Short human-readable lines: how budgets were chosen, and the distances per run."""
    lines = []
    for c in report.comparisons:
        d, s = c.distances, c.solution
        gap = s.certificate.relative_gap
        lines.append(f"{c.run.name}: K={c.run.K} d={c.run.d} {c.run.head}+{c.run.loss.upper()} "
                     f"R={_fmt(c.run.ratio)}; LPM by {s.solver} ({s.status.value}, relative gap {_fmt(gap)})")
        lines.append(f"  LPM reference: {c.reference.label} ({c.reference.note})")
        lines.append(f"  budgets ({c.problem.budget}): {c.budgets.source}")
        evaluation = _evaluation_line(c.run.summary)
        if evaluation:
            lines.append(evaluation)
        roles = c.roles.describe()
        minority_rule, _, fitted_rule = c.roles.rule.partition("; unfitted: ")
        lines.append(f"  minority classes [{roles['minority_classes']}] ({minority_rule.removeprefix('minority: ')})")
        if len(c.roles.unfitted):
            lines.append(f"  warning: unfitted classes [{roles['unfitted_classes']}] ({fitted_rule}); they are "
                         "left out of the minority metrics (the LPM describes the terminal phase), which use "
                         f"classes [{roles['measured_minority_classes']}]")
        lines.append(f"  Gram distance to LPM: means {d['lpm_means']:.4f}, classifier {d['lpm_classifier']:.4f}, "
                     f"joint {d['lpm_joint']:.4f} | to ETF: means {d['etf_means']:.4f}, classifier "
                     f"{d['etf_classifier']:.4f}, joint {d['etf_joint']:.4f}")
        if not c.well_determined:
            lines.append(f"  warning: the LPM optimum is loosely determined here ({s.status.value}, certified gap "
                         f"{_fmt(c.gap_over_objective)} x its objective {_fmt(s.objective)}); its geometry is "
                         "uncertain. Smaller budgets are better conditioned (learnable CE: --budget-rule loss).")
        lines.append(f"  collapse index run {_fmt(c.run_metrics.get('collapse_index'))} vs LPM "
                     f"{_fmt(c.lpm_metrics.get('collapse_index'))}; minority classifier cosine run "
                     f"{_fmt(c.run_metrics.get('classifier_minority_cos'))} vs LPM "
                     f"{_fmt(c.lpm_metrics.get('classifier_minority_cos'))}")
    return lines


def _evaluation_line(summary: dict) -> str | None:
    """The run's test evaluation (last epoch): accuracy, balanced accuracy, many/medium/few-shot accuracy
    with the split used, and ECE; ``None`` for runs written before these were recorded."""
    get = lambda key: summary.get(f"last_test_{key}")  # noqa: E731
    if get("balanced_accuracy") is None:
        return None
    split = (summary.get("last_shot_split") or "").split(" (")[0]
    shots = "/".join(_fmt(get(f"{g}_shot_accuracy")) for g in ("many", "medium", "few"))
    return (f"  test accuracy {_fmt(get('accuracy'))}, balanced {_fmt(get('balanced_accuracy'))}; many/medium/few-shot "
            f"{shots} (split by {split}); ECE {_fmt(get('ece'))} (15 bins)")


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    return f"{x:.4g}"
