"""Theorems 1 and 2 of [Y22] in closed form, and the class-average re-allocation."""
import numpy as np
import pytest

from lpm import Problem, Status, get_solver
from lpm.core.solvers.analytic import ce_etf_optimal_loss


@pytest.mark.parametrize("ratio", [1, 10, 1000])
@pytest.mark.parametrize("loss", ["ce", "dr"])
def test_per_sample_optimum_is_scaled_etf(ratio, loss):
    p = Problem.from_profile(K=10, ratio=ratio, classifier="fixed-etf", loss=loss, d=12, seed=2)
    sol = get_solver("analytic").run(p)
    M = p.fixed_classifier.T / np.sqrt(p.E_W)
    np.testing.assert_allclose(sol.H, np.sqrt(p.E_H) * M.T, atol=1e-12)
    expected = ce_etf_optimal_loss(10, 1.0, 5.0) if loss == "ce" else 0.0
    np.testing.assert_allclose(sol.objective, expected, atol=1e-12)
    np.testing.assert_allclose(p.objective(sol.W, sol.H), expected, atol=1e-12)
    assert sol.status is Status.OPTIMAL
    assert sol.certificate.gap <= 1e-12 and sol.certificate.kkt_residual <= 1e-12


def test_closed_form_ce_value():
    # log(1 + (K-1) exp(-sqrt(E_W E_H) K/(K-1))) at K=10, E_W E_H = 5
    np.testing.assert_allclose(ce_etf_optimal_loss(10, 1, 5), np.log1p(9 * np.exp(-np.sqrt(5) * 10 / 9)), rtol=1e-15)


def test_class_average_budget_reallocates_norms_toward_big_classes():
    p = Problem.from_profile(K=10, ratio=100, classifier="fixed-etf", loss="ce", budget="class-average")
    sol = get_solver("analytic").run(p)
    norms = np.linalg.norm(sol.H, axis=1)
    M = p.fixed_classifier.T
    cos = np.sum(sol.H * M.T, axis=1) / (norms * np.linalg.norm(M, axis=0))
    np.testing.assert_allclose(cos, 1.0, atol=1e-12)           # directions stay m_k
    assert norms[:5].min() > 3 * norms[5:].max()              # re-allocated to the majority
    np.testing.assert_allclose((norms**2).mean(), p.E_H, rtol=1e-12)  # budget is tight
    assert sol.certificate.gap <= 1e-10                         # and it is the optimum
    # a perturbation along the budget sphere never improves the objective
    rng = np.random.default_rng(0)
    for _ in range(20):
        H = sol.H + 1e-3 * rng.standard_normal(sol.H.shape)
        H *= np.sqrt(p.K * p.E_H) / np.linalg.norm(H)
        assert p.objective(sol.W, H) >= sol.objective - 1e-12


def test_analytic_refuses_what_it_cannot_solve():
    from lpm.core.errors import SolverRefused
    with pytest.raises(SolverRefused) as err:
        get_solver("analytic").run(Problem.from_profile(classifier="learnable"))
    assert str(err.value) == ("The 'analytic' solver cannot solve this problem: closed forms exist only for the "
                              "fixed-etf classifier, not 'learnable'.")


def test_learnable_dr_is_degenerate():
    """Every class sharing one classifier w and one feature h with w·h = sqrt(E_W E_H)
    reaches DR's optimal value 0 — DR has no push term, hence the fixed ETF."""
    p = Problem.from_profile(K=10, ratio=100, classifier="learnable", loss="dr")
    u = np.zeros(p.d)
    u[0] = 1.0
    W = np.tile(np.sqrt(p.E_W) * u, (p.K, 1))
    H = np.tile(np.sqrt(p.E_H) * u, (p.K, 1))
    assert (np.linalg.norm(W, axis=1) ** 2).mean() <= p.E_W + 1e-12
    assert (np.linalg.norm(H, axis=1) ** 2).mean() <= p.E_H + 1e-12
    assert p.objective(W, H) == pytest.approx(0.0, abs=1e-15)
    from lpm.core.geometry import measure
    m = measure(H, W, majority=p.majority)
    assert m["collapse_index"] == pytest.approx(0.0, abs=1e-12)   # everything merged
