"""CE's linear rate on the fixed-ETF sphere and the crossover formula (theory.md §12)."""
import math

import numpy as np
import pytest

from lpm import Problem, get_solver
from lpm.core.rates import ce_rate, ce_wrong_class_mass, crossing, predicted_crossover


@pytest.mark.parametrize("ewh", [5.0, 10.0, 20.0])
def test_ce_late_slope_matches_the_curvature_rate(ewh):
    """The measured late-time slope of ln(mean angle) of gradient descent (own 1/L step) equals
    −ln(1 + 2(1 − p_y)/sqrt(E_W E_H)) to 2 % (d = K: the slow mode leaves the ETF's span)."""
    p = Problem.from_profile(K=10, ratio=1, classifier="fixed-etf", loss="ce", E_W=1.0, E_H=ewh)
    rate = ce_rate(ewh, 10)
    steps = int(14 / rate)
    sol = get_solver("gradient", steps=steps, record_every=1, tol=0.0).run(p)
    angle = np.log(np.asarray(sol.trajectory.values["angle_mean"]))
    late = slice(int(0.6 * len(angle)), len(angle))
    slope = np.polyfit(np.arange(len(angle))[late], angle[late], 1)[0]
    assert slope == pytest.approx(-rate, rel=0.02)


def test_wrong_class_mass_and_rate_by_hand():
    K, P = 10, 4.0                                    # a = 2·10/9
    a = math.sqrt(P) * K / (K - 1)
    z = 9 * math.exp(-a)
    assert ce_wrong_class_mass(P, K) == pytest.approx(z / (1 + z), rel=1e-15)
    assert ce_rate(P, K, lr=1.5) == pytest.approx(math.log(1 + 2 * 1.5 * z / (1 + z) / 2.0), rel=1e-15)


def test_crossing_and_crossover():
    x = [1.0, 10.0, 100.0]
    assert crossing(x, [50, 50, 50], [5, 50, 5000]) == pytest.approx(10.0)
    assert crossing(x, [50, 50, 50], [5, 50 * math.sqrt(10), 5000]) == pytest.approx(10 ** (2 / 3))
    assert crossing(x, [50, 50, 50], [60, 70, 80]) is None              # never below: no crossing
    start = 0.1
    star = predicted_crossover(10, 1e-2, start, dr_iterations=2400.0)
    t_ce = math.log(start / 1e-2) / ce_rate(star, 10)
    assert t_ce == pytest.approx(2400.0, rel=1e-9)
    assert predicted_crossover(10, 1e-2, start, dr_iterations=1.0) is None  # DR faster everywhere
