"""Statistics over seeds: intervals, paired comparisons between arms, corrections.

Deep results vary with the seed, so a claim such as "the fixed ETF has lower
few-shot accuracy than learnable + CE" needs a measured spread and a test.
Everything here works on plain arrays or on a tidy table with one row per
(setting, arm, seed):

* :func:`mean_interval`: the mean with a two-sided Student-t interval,
  mean ± t_{1−α/2, n−1} · s/√n (s with ddof = 1);
* :func:`paired_difference`: arm − baseline over seeds that both have (the
  same data order and initialisation where the arms allow), its t interval,
  and the paired t-test (``scipy.stats.ttest_rel``) or the Wilcoxon
  signed-rank test (``scipy.stats.wilcoxon``);
* :func:`adjust_p_values`: Holm's step-down correction (family-wise error,
  Holm 1979) or Benjamini–Hochberg (false discovery rate,
  ``scipy.stats.false_discovery_control``);
* :func:`compare_arms`: every arm against a baseline within each setting,
  corrected over the whole family of comparisons;
* :func:`rank_correlation`: Spearman's ρ and its p-value
  (``scipy.stats.spearmanr``), e.g. the LPM's predicted minority geometry
  against the measured few-shot accuracy across arms.

Conventions: intervals are 95 % unless stated; fewer than two values give a
NaN interval (a single seed has no spread), never a zero-width one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from ..core.errors import LPMInputError, check_choice, check_number

TESTS = ("t", "wilcoxon")
CORRECTIONS = ("holm", "bh", "none")


@dataclass(frozen=True)
class Interval:
    """A mean with its two-sided Student-t interval over ``n`` values."""

    mean: float
    low: float
    high: float
    std: float          # sample standard deviation (ddof = 1)
    n: int
    confidence: float

    def as_dict(self, prefix: str = "") -> dict:
        return {f"{prefix}{k}": v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class PairedDifference:
    """arm − baseline over the paired seeds, with a test of "no difference"."""

    difference: Interval
    statistic: float
    p_value: float
    test: str


def _values(name: str, values) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(x)):
        raise LPMInputError(name, list(values), "finite numbers")
    return x


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean ± t_{(1+c)/2, n−1}·s/√n of ``values`` (NaN bounds for n < 2)."""
    from scipy import stats

    confidence = check_number("confidence", confidence, low=0, high=0.999999, low_open=True)
    x = _values("values", values)
    n = len(x)
    if n == 0:
        raise LPMInputError("values", [], "at least one number")
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, float("nan"), float("nan"), float("nan"), n, confidence)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / np.sqrt(n)
    return Interval(mean, float(mean - half), float(mean + half), std, n, confidence)


def paired_difference(arm: Sequence[float], baseline: Sequence[float], test: str = "t",
                      confidence: float = 0.95) -> PairedDifference:
    """Compare paired values (same seeds, same order): the interval of arm − baseline
    and the p-value of the paired test (two-sided). NaN p-value for fewer than 2 pairs
    or, for the t-test, when every difference is equal (no spread to test against)."""
    from scipy import stats

    check_choice("test", test, TESTS)
    a, b = _values("arm", arm), _values("baseline", baseline)
    if len(a) != len(b):
        raise LPMInputError("arm", len(a), f"as many values as the baseline ({len(b)}), paired by seed")
    diff = a - b
    interval = mean_interval(diff, confidence)
    if len(diff) < 2 or (test == "t" and np.ptp(diff) == 0):
        return PairedDifference(interval, float("nan"), float("nan"), test)
    if test == "t":
        result = stats.ttest_rel(a, b)
    elif np.all(diff == 0):
        return PairedDifference(interval, 0.0, 1.0, test)
    else:
        result = stats.wilcoxon(a, b)
    return PairedDifference(interval, float(result.statistic), float(result.pvalue), test)


def adjust_p_values(p_values: Sequence[float], method: str = "holm") -> np.ndarray:
    """Multiple-comparison adjusted p-values (NaN entries are left out of the family
    and stay NaN). ``holm``: p_(i) ↦ max_{j≤i} min(1, (m − j + 1) p_(j));
    ``bh``: Benjamini–Hochberg; ``none``: unchanged."""
    from scipy import stats

    check_choice("method", method, CORRECTIONS)
    p = np.asarray(p_values, dtype=np.float64).ravel()
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise LPMInputError("p_values", p.tolist(), "numbers in [0, 1]")
    q = p[ok]
    if method == "none" or len(q) == 0:
        out[ok] = q
    elif method == "bh":
        out[ok] = stats.false_discovery_control(q, method="bh")
    else:
        order = np.argsort(q)
        m = len(q)
        stepped = np.minimum(1.0, (m - np.arange(m)) * q[order])
        adjusted = np.empty(m)
        adjusted[order] = np.maximum.accumulate(stepped)
        out[ok] = adjusted
    return out


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Spearman's ρ between ``x`` and ``y`` and its two-sided p-value."""
    from scipy import stats

    a, b = _values("x", x), _values("y", y)
    if len(a) != len(b) or len(a) < 3:
        raise LPMInputError("x", len(a), f"at least 3 values, as many as y ({len(b)})")
    result = stats.spearmanr(a, b)
    return float(result.statistic), float(result.pvalue)


def compare_arms(table, metric: str, baseline: str, arm: str = "arm", seed: str = "seed",
                 by: Sequence[str] = (), test: str = "t", correction: str = "holm",
                 confidence: float = 0.95):
    """Every arm against ``baseline`` within each group of ``by`` columns.

    ``table`` is a pandas DataFrame with one row per (group, arm, seed). Arms are
    paired with the baseline on the seeds both have. Returns one row per (group, arm ≠
    baseline): the arm's and the baseline's mean, the paired difference with its
    interval, n, the test's p-value and the p-value adjusted over the whole family.
    """
    import pandas as pd

    missing = [c for c in (metric, arm, seed, *by) if c not in table.columns]
    if missing:
        raise LPMInputError("table", missing, f"columns of the table ({', '.join(map(str, table.columns))})")
    rows = []
    groups = table.groupby(list(by), sort=True, dropna=False) if by else [((), table)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        base = group[group[arm] == baseline].set_index(seed)[metric]
        if base.index.has_duplicates:
            raise LPMInputError(seed, base.index[base.index.duplicated()].tolist(), "one row per (group, arm, seed)")
        for name, rows_of_arm in group[group[arm] != baseline].groupby(arm, sort=False):
            values = rows_of_arm.set_index(seed)[metric]
            common = base.index.intersection(values.index).sort_values()
            if len(common) == 0:
                continue
            result = paired_difference(values.loc[common], base.loc[common], test, confidence)
            d = result.difference
            rows.append({**dict(zip(by, key)), arm: name, "metric": metric, "baseline": baseline,
                         "arm_mean": float(values.loc[common].mean()), "baseline_mean": float(base.loc[common].mean()),
                         "difference": d.mean, "difference_low": d.low, "difference_high": d.high, "n": d.n,
                         "test": test, "p_value": result.p_value})
    out = pd.DataFrame(rows)
    if len(out):
        out["p_adjusted"] = adjust_p_values(out["p_value"].to_numpy(), correction)
        out["correction"] = correction
    return out
