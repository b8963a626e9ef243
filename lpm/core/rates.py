"""How fast first-order methods approach the fixed-ETF optimum: CE against DR (theory.md §12).

Setting: per-sample budget ‖h‖ = sqrt(E_H), fixed simplex-ETF classifier
W = sqrt(E_W)·Mᵀ, d = K, step η = lr/L with L = c‖W‖₂² (the loss's own 1/L
step, :mod:`lpm.core.solvers.gradient`); P = E_W·E_H.

* **CE, linear.** The slowest direction leaves the span of the ETF (it exists
  because d = K > K − 1). Along it the loss is log(1 + (K−1) e^{−a cos θ}),
  a = sqrt(P)·K/(K−1), so its curvature in the angle is a·(1 − p_y) with
  1 − p_y = (K−1)e^{−a}/(1 + (K−1)e^{−a}), and each step divides the angle by
  1 + η μ, η μ = 2·lr·(1 − p_y)/sqrt(P): θ_t ≈ θ_0 (1 + η μ)^{−t}. The rate
  collapses like e^{−sqrt(P)} as the budget grows.
* **DR, sublinear.** The loss is quartic in the angle at the optimum (its
  gradient is a pure pull along w_y), so θ_t ≈ c̄/sqrt(β t) with
  β = lr·(K−1)/K, whatever E_W and E_H.

:func:`predicted_crossover` solves t_CE(P) = t_DR for the budget P* beyond
which DR reaches a target angle first.
"""
from __future__ import annotations

import math

import numpy as np


def ce_wrong_class_mass(ewh: float, num_classes: int) -> float:
    """1 − p_y at Theorem 1's optimum: (K−1)e^{−a}/(1 + (K−1)e^{−a}), a = sqrt(P)·K/(K−1)."""
    K = num_classes
    z = (K - 1) * math.exp(-math.sqrt(ewh) * K / (K - 1))
    return z / (1.0 + z)


def ce_rate(ewh: float, num_classes: int, lr: float = 1.0) -> float:
    """ln(1 + ημ): the per-step decrease of ln θ for CE on the per-sample sphere."""
    return math.log1p(2.0 * lr * ce_wrong_class_mass(ewh, num_classes) / math.sqrt(ewh))


def ce_iterations(ewh: float, num_classes: int, target: float, start: float, lr: float = 1.0) -> float:
    """t_CE = ln(θ_0/θ*)/rate: iterations for CE's angle to fall from ``start`` to ``target``."""
    return math.log(start / target) / ce_rate(ewh, num_classes, lr)


def fitted_start(ewh: float, num_classes: int, target: float, iterations: float, lr: float = 1.0) -> float:
    """The initial amplitude θ_0 that makes :func:`ce_iterations` equal a measured count."""
    return target * math.exp(iterations * ce_rate(ewh, num_classes, lr))


def predicted_crossover(num_classes: int, target: float, start: float, dr_iterations: float,
                        lr: float = 1.0, bracket: tuple[float, float] = (0.1, 1e4)) -> float | None:
    """The budget P* where t_CE(P*) = t_DR (``dr_iterations``, constant in P), by bisection in
    log P; ``None`` when the two do not cross inside ``bracket``."""
    gap = lambda p: ce_iterations(p, num_classes, target, start, lr) - dr_iterations  # noqa: E731  increasing
    lo, hi = bracket
    if not gap(lo) < 0 < gap(hi):
        return None
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if gap(mid) < 0 else (lo, mid)
        if hi / lo < 1 + 1e-12:
            break
    return math.sqrt(lo * hi)


def crossing(x, first, second) -> float | None:
    """The x at which the positive curve ``second`` overtakes ``first`` (log second − log first
    turns from negative to positive), interpolated linearly in log x and log y; ``None``
    without such a change. With first = t_DR and second = t_CE it is the measured crossover."""
    x, a, b = (np.asarray(v, dtype=float) for v in (x, first, second))
    diff = np.log(b) - np.log(a)
    for i in range(len(x) - 1):
        if diff[i] < 0 <= diff[i + 1]:
            w = diff[i] / (diff[i] - diff[i + 1])
            return float(math.exp(math.log(x[i]) + w * (math.log(x[i + 1]) - math.log(x[i]))))
    return None
