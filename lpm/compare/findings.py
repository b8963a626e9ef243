"""The findings page of ``lpm reproduce classifier-question``, written from its tables.

:func:`findings_markdown` turns ``summary.csv`` and ``correlation.csv`` into
the page "Do we need a learnable classifier?": every number on it is read
from the tables, and every sentence that states a direction or a
significance is *derived* from them and carries a machine-readable marker::

    ... is lower than learnable-ce's ... <!-- claim {"type": "difference", ...} -->

:func:`check_claims` reads the markers of a page back and re-derives each
claim from the tables: it returns the claims that no longer hold (a rerun
that reversed a direction, lost a significance, or changed a count), so a
test fails when the page says something its tables do not.

Claim types (``alpha`` = 0.05 unless given):

``difference``   arm − baseline of a metric in one setting: ``direction``
                 ("higher" / "lower" / "equal": the sign of the mean paired
                 difference) and ``significant`` (adjusted p < alpha)
``tally``        over a set of arms and every setting: how many paired
                 differences of a metric are significantly higher, significantly
                 lower, and not significant
``best``         the arm with the highest mean of a metric in one setting
``fitted``       the arms of one setting with a run that did not fit every class
                 on its training set (training accuracy of a class < 0.5)
``correlation``  Spearman's ρ across arms in one setting: ``direction``
                 ("negative" / "positive") and ``significant`` (Holm-adjusted
                 p < alpha), or ``undefined`` (fewer than 3 distinct predictions)
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

import pandas as pd

__all__ = ["ALPHA", "FIXED_ETF_ARMS", "LIMITS", "derive", "findings_markdown", "claims_of", "check_claims",
           "write_findings"]

ALPHA = 0.05
#: the arms whose classifier is not learned
FIXED_ETF_ARMS = ("etf-dr-paper", "etf-dr-released", "etf-ce")
_MARK = re.compile(r"<!-- claim (\{.*?\}) -->")
_LABELS = {"top1": "top-1 accuracy", "balanced": "balanced accuracy", "many": "many-shot accuracy",
           "medium": "medium-shot accuracy", "few": "few-shot accuracy", "ece": "ECE"}
_SETTING = ("dataset", "recipe", "ratio")


def _row(table: pd.DataFrame, claim: dict, arm: str | None = None) -> pd.Series | None:
    t = table
    for key in _SETTING:
        if key in claim:
            t = t[(t[key] == claim[key]) if key != "ratio" else (pd.to_numeric(t[key]) == float(claim[key]))]
    if arm is not None:
        t = t[t["arm"] == arm]
    return t.iloc[0] if len(t) == 1 else None


def _direction(value: float) -> str:
    return "higher" if value > 0 else ("lower" if value < 0 else "equal")


def derive(claim: dict, summary: pd.DataFrame, correlation: pd.DataFrame, alpha: float = ALPHA) -> dict:
    """The claim's checked fields as the tables give them now (same keys as the claim)."""
    kind = claim["type"]
    if kind == "difference":
        row = _row(summary, claim, claim["arm"])
        if row is None or pd.isna(row[f"{claim['metric']}_diff"]):
            return {**claim, "direction": None, "significant": None}
        p = row[f"{claim['metric']}_p_adj"]
        return {**claim, "direction": _direction(float(row[f"{claim['metric']}_diff"])),
                "significant": bool(pd.notna(p) and float(p) < alpha)}
    if kind == "tally":
        t = summary[summary["arm"].isin(claim["arms"])]
        diff, p = pd.to_numeric(t[f"{claim['metric']}_diff"]), pd.to_numeric(t[f"{claim['metric']}_p_adj"])
        significant = p < alpha
        return {**claim, "higher": int(((diff > 0) & significant).sum()),
                "lower": int(((diff < 0) & significant).sum()),
                "not_significant": int((~significant & diff.notna()).sum())}
    if kind == "best":
        t = summary
        for key in _SETTING:
            t = t[(t[key] == claim[key]) if key != "ratio" else (pd.to_numeric(t[key]) == float(claim[key]))]
        values = pd.to_numeric(t[claim["metric"]])
        return {**claim, "arm": None if values.isna().all() else str(t.loc[values.idxmax(), "arm"])}
    if kind == "fitted":
        t = summary
        for key in _SETTING:
            t = t[(t[key] == claim[key]) if key != "ratio" else (pd.to_numeric(t[key]) == float(claim[key]))]
        fitted = t["all_classes_fitted"].astype(str).str.lower() == "true"
        return {**claim, "unfitted_arms": sorted(t.loc[~fitted, "arm"].astype(str))}
    if kind == "correlation":
        row = _row(correlation, claim)
        if row is None or pd.isna(row["spearman_rho"]):
            return {**claim, "direction": "undefined", "significant": None}
        rho, p = float(row["spearman_rho"]), row["p_adjusted"]
        return {**claim, "direction": "negative" if rho < 0 else ("positive" if rho > 0 else "none"),
                "significant": bool(pd.notna(p) and float(p) < alpha)}
    raise ValueError(f"unknown claim type {kind!r}")


def _mark(claim: dict) -> str:
    return f"<!-- claim {json.dumps(claim, sort_keys=True)} -->"


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _interval(row: pd.Series, col: str) -> str:
    return f"{_fmt(float(row[col]))} [{_fmt(float(row[col + '_low']))}, {_fmt(float(row[col + '_high']))}]"


def _setting_name(dataset: str, recipe: str, ratio: float) -> str:
    return f"{dataset}, R = {float(ratio):g}, {recipe} recipe"


def findings_markdown(summary: pd.DataFrame, correlation: pd.DataFrame, *, baseline: str = "learnable-ce",
                      source: str, scope: str, alpha: float = ALPHA, metrics=("balanced", "few", "ece"),
                      figure: str | None = None) -> str:
    """The findings page: ``source`` names the tables it was written from, ``scope`` says in one
    paragraph what was run (data sets, seeds, network sizes, and what the run was not)."""
    lines = ["# Do we need a learnable classifier?", "",
             f"*Written by `lpm.compare.findings.findings_markdown` from `{source}`; every number below is "
             f"read from that table, and every sentence stating a direction or a significance carries a "
             f"marker that `tests/figures/test_classifier_question.py` checks against it.*", "",
             "## What was run", "", scope, "",
             "To reproduce: `lpm reproduce classifier-question` (resumable: finished runs and their comparisons "
             "are reused), then `python -m lpm.compare.findings results/classifier-question "
             "docs/classifier-question.md \"SCOPE\"` writes this page from the new tables.", ""]
    if figure:
        lines += [f"![Each arm against {baseline}, and its minority geometry beside its LPM optimum]({figure})", ""]
    lines += [
             f"Every arm is compared with **{baseline}** as a paired difference over seeds (the same seed "
             "gives the same data subset, data order and backbone initialisation), with a 95 % t interval, a "
             f"paired t-test and Holm's correction over every arm and setting of each metric; "
             f"\"significant\" means Holm-adjusted p < {alpha:g}.", ""]
    arms = [a for a in dict.fromkeys(summary["arm"]) if a != baseline]
    etf = [a for a in arms if a in FIXED_ETF_ARMS]
    remedies = [a for a in arms if a not in FIXED_ETF_ARMS]
    lines += ["## Where the fixed ETF helps and where it hurts", ""]
    for group, label in ((etf, "fixed-ETF arms"), (remedies, "learnable arms with a remedy")):
        if not group:
            continue
        for metric in metrics:
            claim = derive({"type": "tally", "metric": metric, "arms": group}, summary, correlation, alpha)
            total = claim["higher"] + claim["lower"] + claim["not_significant"]
            name = _LABELS[metric][0].upper() + _LABELS[metric][1:]
            lines.append(f"- {name}, {label} ({', '.join(group)}) against {baseline}, "
                         f"over {total} (arm, setting) pairs: {claim['higher']} significantly higher, "
                         f"{claim['lower']} significantly lower, {claim['not_significant']} not significant. "
                         + _mark(claim))
        lines.append("")
    settings = summary[list(_SETTING)].drop_duplicates().sort_values(list(_SETTING)).to_numpy().tolist()
    for dataset, recipe, ratio in settings:
        lines += [f"### {_setting_name(dataset, recipe, ratio)}", ""]
        rows = summary[(summary["dataset"] == dataset) & (summary["recipe"] == recipe)
                       & (pd.to_numeric(summary["ratio"]) == float(ratio))]
        fitted = derive({"type": "fitted", "dataset": dataset, "recipe": recipe, "ratio": float(ratio)}, summary,
                        correlation, alpha)
        unfitted = fitted["unfitted_arms"]
        fitted_text = ("Every run of every arm fitted every class on its training set. " if not unfitted else
                       f"Arms with a run that left a class unfitted (training accuracy < 0.5): {', '.join(unfitted)}. ")
        lines += ["| arm | n | " + " | ".join(_LABELS[m] for m in ("top1",) + tuple(metrics))
                  + " | minority cos: run | minority cos: LPM |",
                  "|---|---|" + "---|" * (1 + len(metrics)) + "---|---|"]
        for _, r in rows.iterrows():
            cells = " | ".join(_interval(r, m) for m in ("top1",) + tuple(metrics))
            lines.append(f"| {r['arm']} | {int(r['n'])} | " + cells
                         + f" | {_interval(r, 'run_classifier_minority_cos')} | "
                         f"{_fmt(float(r['lpm_classifier_minority_cos']))} |")
        lines += ["", "Mean [95 % t interval] over seeds. " + fitted_text + _mark(fitted), ""]
        for arm in etf + remedies:
            r = rows[rows["arm"] == arm]
            if r.empty:
                continue
            r = r.iloc[0]
            for metric in metrics[:2]:
                claim = derive({"type": "difference", "metric": metric, "dataset": dataset, "recipe": recipe,
                                "ratio": float(ratio), "arm": arm}, summary, correlation, alpha)
                if claim["direction"] is None:
                    continue
                sig = "significant" if claim["significant"] else "not significant"
                lines.append(f"- {arm}: {_LABELS[metric]} {claim['direction']} than {baseline}'s by "
                             f"{_fmt(abs(float(r[f'{metric}_diff'])))} (difference "
                             f"{_fmt(float(r[f'{metric}_diff']))} [{_fmt(float(r[f'{metric}_diff_low']))}, "
                             f"{_fmt(float(r[f'{metric}_diff_high']))}], adjusted p = "
                             f"{_fmt(float(r[f'{metric}_p_adj']))}: {sig}). " + _mark(claim))
        best = derive({"type": "best", "metric": "few", "dataset": dataset, "recipe": recipe,
                       "ratio": float(ratio)}, summary, correlation, alpha)
        lines += [f"- Highest mean few-shot accuracy: {best['arm']}. " + _mark(best), ""]
    lines += ["## Does the geometry predict which remedy helps the minority?", "",
              "For each run, `lpm compare` solves the layer-peeled model for the run's own class counts, head "
              "and loss and measures the minority classifier cosine of the optimum (the run's few-shot "
              "classes; higher = more collapsed). Across arms, Spearman's ρ between that predicted cosine "
              "(mean over seeds) and the measured few-shot accuracy; the theory predicts ρ < 0. p-values are "
              "Holm-adjusted over the settings. Arms whose runs give the LPM the same problem (the same counts, head "
              "and loss, when the reference does not see a sampler or a second stage) share one prediction; the "
              "column 'distinct predictions' counts the different ones.", "",
              "| setting | arms | distinct predictions | ρ | p (adjusted) |", "|---|---|---|---|---|"]
    sentences = []
    for _, c in correlation.iterrows():
        lines.append(f"| {_setting_name(c['dataset'], c['recipe'], c['ratio'])} | {int(c['arms'])} | "
                     f"{int(c['distinct_predictions'])} | {_fmt(float(c['spearman_rho']))} | "
                     f"{_fmt(float(c['p_adjusted']))} |")
        claim = derive({"type": "correlation", "dataset": c["dataset"], "recipe": c["recipe"],
                        "ratio": float(c["ratio"])}, summary, correlation, alpha)
        where = _setting_name(c["dataset"], c["recipe"], c["ratio"])
        if claim["direction"] == "undefined":
            text = f"- {where}: no rank correlation (fewer than 3 arms with distinct predictions)."
        else:
            text = (f"- {where}: ρ is {claim['direction']} "
                    f"({'significant' if claim['significant'] else 'not significant'}).")
        sentences.append(text + " " + _mark(claim))
    lines += [""] + sentences + ["", "## What these data sets and network sizes cannot tell", "",
                                     LIMITS, ""]
    return "\n".join(lines)


#: what the demonstration's scale leaves open (stated on every page)
LIMITS = ("The networks are small (32-dimensional features; a 3-layer 1-D CNN on MNIST-1D, a 2-layer MLP on "
          "digits), trained for 60 or 100 epochs on a few hundred to two thousand samples, with K = 10 classes. "
          "The few-shot group is 3 classes with a handful of training samples each, so its accuracy rests on "
          "those 3 classes and its intervals are wide. Nothing here says how the arms rank "
          "on CIFAR- or ImageNet-scale data with deep residual networks, where feature learning, augmentation "
          "and far longer schedules change how much a fixed head constrains the backbone; and the remedies' "
          "hyperparameters (τ, LDAM's margin, the DRW epoch, the cRT schedule) are the published defaults, "
          "not tuned here. A direction that is not significant is not evidence of no effect: 5 seeds detect "
          "only differences several times larger than the seed-to-seed spread.")


def write_findings(results_dir, page, *, scope: str, baseline: str = "learnable-ce") -> list[str]:
    """Write the findings page ``page`` from ``results_dir/summary.csv`` and ``correlation.csv``
    (the page names the tables by their path relative to the page's folder); return its claims' failures
    on a re-check (empty when the page is consistent with its tables)."""
    from pathlib import Path

    from ..core.io import write_text_atomic

    results_dir, page = Path(results_dir), Path(page)
    summary = pd.read_csv(results_dir / "summary.csv")
    correlation = pd.read_csv(results_dir / "correlation.csv")
    try:
        source = str((results_dir / "summary.csv").resolve().relative_to(page.parent.resolve().parent))
    except ValueError:
        source = str(results_dir / "summary.csv")
    figure = results_dir / "classifier-question.png"
    try:
        shown = str(figure.resolve().relative_to(page.parent.resolve())) if figure.is_file() else None
    except ValueError:
        shown = str(figure)
    text = findings_markdown(summary, correlation, baseline=baseline, source=source, scope=scope, figure=shown)
    write_text_atomic(page, text)
    return [f"{a} != {b}" for a, b in check_claims(text, summary, correlation)]


def claims_of(markdown: str) -> list[dict[str, Any]]:
    """The claim markers of a findings page, in order."""
    return [json.loads(m) for m in _MARK.findall(markdown)]


def check_claims(markdown: str, summary: pd.DataFrame, correlation: pd.DataFrame,
                 alpha: float = ALPHA) -> list[tuple[dict, dict]]:
    """(claimed, derived now) for every claim of the page that the tables no longer give."""
    wrong = []
    for claim in claims_of(markdown):
        now = derive(claim, summary, correlation, alpha)
        if now != claim:
            wrong.append((claim, now))
    return wrong


def _main(argv=None) -> int:
    """``python -m lpm.compare.findings RESULTS_DIR PAGE SCOPE``: write the page from RESULTS_DIR's
    summary.csv and correlation.csv, SCOPE being the paragraph that says what was run."""
    import sys

    from ..core.errors import LPMInputError

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        print("Usage: python -m lpm.compare.findings RESULTS_DIR PAGE SCOPE", file=sys.stderr)
        return 2
    try:
        wrong = write_findings(argv[0], argv[1], scope=argv[2])
    except (OSError, LPMInputError, KeyError, pd.errors.ParserError) as exc:
        print(f"Error: cannot write the findings page: {exc}", file=sys.stderr)
        return 2
    if wrong:  # cannot happen for a page just derived from its tables; said if it ever does
        print(f"Error: {len(wrong)} claims do not hold on the tables: {wrong[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
