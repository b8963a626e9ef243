"""The count-aware losses and class weights (theory.md §14): hand-computed values, exact
reductions to CE, refusals, the weight normalisation, re-sampling == re-weighting, and the
symmetry reduction of the grouped engine with per-problem parameters."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lpm import Problem
from lpm.core.errors import LPMInputError
from lpm.core.losses import (DEFAULT_HYPERPARAMETERS, LOSS_FAMILIES, LOSS_HYPERPARAMETERS, LOSSES, bind_loss,
                             get_loss)
from lpm.core.solvers import get_solver
from lpm.core.weighting import CLASS_WEIGHTS, class_weights, sampling_weights

CE = LOSSES["ce"]
L2, L5 = np.log(2.0), np.log(5.0)


# ------------------------------------------------------------------ hand-computed points (K = 2)
# with two classes CE(x, y) = log(1 + exp(x_other − x_y)) and its x-gradient is ±σ(x_other − x_y)
@pytest.mark.parametrize("name, counts, params, z, y, value, grad", [
    # la, π = (3/4, 1/4), τ = 1, z = 0: x = log π, value log(1 + 3), gradient p − e_1 = (3/4, −3/4)
    ("la", (3.0, 1.0), {"tau": 1.0}, (0.0, 0.0), 1, np.log(4.0), (0.75, -0.75)),
    # cdt, a = (1, 2) (γ = ½, n_max/n = 4): x = (2, 1), value log(1 + e), gradient (e/(1+e), −½ e/(1+e))
    ("cdt", (4.0, 1.0), {"gamma": 0.5}, (2.0, 2.0), 1, np.log1p(np.e), (np.e / (1 + np.e), -0.5 * np.e / (1 + np.e))),
    # ldam, Δ ∝ n^{-1/4} = (½, 1)·0.5: label 0 loses 0.25, value log(1 + e^{0.25})
    ("ldam", (16.0, 1.0), {"margin": 0.5}, (0.0, 0.0), 0, np.log1p(np.exp(0.25)),
     (-1 / (1 + np.exp(-0.25)), 1 / (1 + np.exp(-0.25)))),
    # vs, Δ = (1, ½) (γ = ½), π = (4/5, 1/5), τ = 1, z = (1, 2): x = (1 + log ⅘, 1 + log ⅕),
    # value log(1 + 4), gradient Δ ⊙ (p − e_1) = (⅘, −½·⅘)
    ("vs", (4.0, 1.0), {"gamma": 0.5, "tau": 1.0}, (1.0, 2.0), 1, L5, (0.8, -0.4)),
])
def test_count_aware_losses_at_hand_computed_points(name, counts, params, z, y, value, grad):
    loss = bind_loss(name, counts, **params)
    Z, Y = np.array([z]), np.array([y])
    v, G = loss.value_grad(Z, Y)
    np.testing.assert_allclose(v, [value], rtol=1e-14)
    np.testing.assert_allclose(G, [grad], rtol=1e-14, atol=1e-16)
    tv = loss.torch_value(torch.tensor(Z), torch.tensor(Y))
    np.testing.assert_allclose(tv.numpy(), [value], rtol=1e-14)
    np.testing.assert_allclose(loss.torch_grad(torch.tensor(Z), torch.tensor(Y)).numpy(), [grad], rtol=1e-14,
                               atol=1e-16)


@pytest.mark.parametrize("name", list(LOSS_FAMILIES))
def test_gradient_matches_finite_differences_of_the_value(name):
    rng = np.random.default_rng(7)
    counts = (100.0, 30.0, 30.0, 4.0, 1.0)
    loss = bind_loss(name, counts)
    Z, y = rng.standard_normal((5, 5)) * 2, rng.permutation(5)
    _, G = loss.value_grad(Z, y)
    eps = 1e-6
    for i, j in [(0, 0), (1, 3), (4, 4), (2, 0)]:
        E = np.zeros_like(Z)
        E[i, j] = eps
        fd = (loss.value_grad(Z + E, y)[0][i] - loss.value_grad(Z - E, y)[0][i]) / (2 * eps)
        np.testing.assert_allclose(G[i, j], fd, rtol=1e-7, atol=1e-9)


def test_curvature_bound_is_half_the_largest_squared_scale():
    """cdt γ = ½ with n = (16, 4, 1): scales 1/a = (1, ½, ¼) → c = ½; vs γ = 1: (1, ¼, 1/16) → ½; the bound
    is attained along the worst direction of a point with uniform softmax (two classes: ¼·‖s ⊙ v‖²)."""
    for name, params in (("cdt", {"gamma": 0.5}), ("vs", {"gamma": 1.0, "tau": 0.0})):
        loss = bind_loss(name, (16.0, 4.0, 1.0), **params)
        assert loss.curvature() == 0.5
    loss = bind_loss("cdt", (1.0, 1.0), gamma=2.0)
    H = np.stack([loss.hvp(np.zeros((1, 2)), np.array([0]), np.eye(2)[j:j + 1])[0] for j in range(2)])
    assert np.linalg.eigvalsh(H).max() == pytest.approx(0.5)  # (1, −1)/√2: Var = ½


# ------------------------------------------------------------------ exact reductions to CE
def _same_as_ce(loss, Z, y):
    v, G = loss.value_grad(Z, y)
    v0, G0 = CE.value_grad(Z, y)
    np.testing.assert_array_equal(v, v0)
    np.testing.assert_array_equal(G, G0)
    V = np.random.default_rng(1).standard_normal(Z.shape)
    np.testing.assert_array_equal(loss.hvp(Z, y, V), CE.hvp(Z, y, V))
    np.testing.assert_array_equal(loss.torch_value(torch.tensor(Z), torch.tensor(y)).numpy(),
                                  CE.torch_value(torch.tensor(Z), torch.tensor(y)).numpy())


@pytest.mark.parametrize("name, params", [("la", {"tau": 0.0}), ("cdt", {"gamma": 0.0}),
                                          ("ldam", {"margin": 0.0}), ("vs", {"gamma": 0.0, "tau": 0.0})])
def test_each_loss_at_neutral_hyperparameters_is_ce_bit_for_bit(name, params):
    Z = np.random.default_rng(0).standard_normal((4, 4)) * 3
    _same_as_ce(bind_loss(name, (90.0, 9.0, 3.0, 1.0), **params), Z, np.arange(4))


@pytest.mark.parametrize("name", ["la", "cdt", "vs"])
def test_la_cdt_and_vs_at_equal_counts_are_ce_bit_for_bit_for_any_hyperparameter(name):
    """Equal counts: log π_j is one constant (CE ignores it; the shift is centred to exactly 0) and
    (n_j/n_max)^γ = 1 exactly."""
    Z = np.random.default_rng(2).standard_normal((5, 5)) * 3
    params = {p: 1.5 for p in LOSS_HYPERPARAMETERS[name]}
    _same_as_ce(bind_loss(name, (7.0,) * 5, **params), Z, np.arange(5))


def test_ldam_at_equal_counts_is_ce_with_one_margin_not_ce():
    """LDAM keeps a margin at equal counts: every class loses the same Δ = margin on its own logit."""
    Z = np.random.default_rng(3).standard_normal((4, 4))
    y = np.arange(4)
    v = bind_loss("ldam", (5.0,) * 4, margin=0.5).value_grad(Z, y)[0]
    np.testing.assert_allclose(v, CE.value_grad(Z - 0.5 * np.eye(4), y)[0], rtol=1e-15)
    assert np.all(v > CE.value_grad(Z, y)[0])


def test_balanced_problems_of_la_cdt_vs_have_the_ce_optimum():
    for name in ("la", "cdt", "vs"):
        p = Problem.from_counts([3.0] * 6, loss=name)
        np.testing.assert_array_equal(p.logit_objective(np.eye(6))[1], p.replace(loss="ce", tau=None, gamma=None)
                                      .logit_objective(np.eye(6))[1])


# ------------------------------------------------------------------ binding and validation
def test_bind_loss_fills_published_defaults_and_refuses_what_a_loss_does_not_take():
    assert DEFAULT_HYPERPARAMETERS == {"la": {"tau": 1.0}, "cdt": {"gamma": 0.2}, "ldam": {"margin": 0.5},
                                       "vs": {"gamma": 0.3, "tau": 1.0}}
    assert bind_loss("ldam", (16.0, 1.0)).margin.max() == 0.5
    assert bind_loss("ce", (5.0, 1.0)) is CE and bind_loss("mse", (5.0, 1.0)) is LOSSES["mse"]
    with pytest.raises(LPMInputError) as info:
        bind_loss("la", (5.0, 1.0), gamma=0.5)
    assert str(info.value) == ("The 'gamma' parameter must be left unset for the loss 'la' (it takes tau; gamma is "
                               "for 'cdt', 'vs'). Got 0.5 instead.")
    with pytest.raises(LPMInputError) as info:
        bind_loss("ce", (5.0, 1.0), margin=1.0)
    assert str(info.value) == ("The 'margin' parameter must be left unset for the loss 'ce' (it has no "
                               "hyperparameters; margin is for 'ldam'). Got 1.0 instead.")
    with pytest.raises(LPMInputError, match="'tau' parameter must be a number >= -10 and <= 10. Got -11"):
        bind_loss("vs", (5.0, 1.0), tau=-11)
    with pytest.raises(LPMInputError, match="'gamma' parameter must be a number >= -2 and <= 2. Got 3"):
        bind_loss("cdt", (5.0, 1.0), gamma=3)
    with pytest.raises(LPMInputError, match="bind the count-aware ones with bind_loss"):
        get_loss("la")


def test_problem_carries_the_hyperparameters_and_refuses_the_others():
    p = Problem.from_profile(K=4, ratio=10, loss="vs", class_weights="class-balanced")
    d = p.describe()
    assert (d["tau"], d["gamma"], d["margin"], d["class_weights"], d["beta"]) == (1.0, 0.3, None, "class-balanced",
                                                                               0.9999)
    assert p == Problem.from_profile(K=4, ratio=10, loss="vs", tau=1.0, gamma=0.3, class_weights="class-balanced",
                                     beta=0.9999)
    with pytest.raises(LPMInputError, match="The 'tau' parameter must be left unset for the loss 'cdt'"):
        Problem.from_profile(K=4, ratio=10, loss="cdt", tau=1.0)
    with pytest.raises(LPMInputError) as info:
        Problem.from_profile(K=4, ratio=10, beta=0.99)
    assert str(info.value) == ("The 'beta' parameter must be left unset unless class_weights='class-balanced'. "
                               "Got 0.99 instead.")
    with pytest.raises(LPMInputError, match="'class_weights' parameter must be one of 'none', 'inverse'"):
        Problem.from_profile(K=4, ratio=10, class_weights="focal")
    assert p.loss_fn.params == {"gamma": 0.3, "tau": 1.0}


# ------------------------------------------------------------------ class weights
def test_class_weights_at_hand_computed_counts():
    n = np.array([6.0, 3.0, 1.0])  # π = (0.6, 0.3, 0.1)
    np.testing.assert_allclose(class_weights("inverse", n), [1 / 1.8, 2 / 1.8, 6 / 1.8], rtol=1e-15)  # Σπ/n·c = 1
    np.testing.assert_allclose(sampling_weights("inverse", n), [1 / 3] * 3, rtol=1e-15)
    raw = 1 / np.sqrt(n)
    np.testing.assert_allclose(class_weights("sqrt", n), raw / (0.1 * n @ raw), rtol=1e-14)
    raw = (1 - 0.5) / (1 - 0.5**n)  # β = ½: (½/(63/64), ½/(7/8), 1)
    np.testing.assert_allclose(class_weights("class-balanced", n, 0.5), raw / (0.1 * n @ raw), rtol=1e-14)
    for scheme in CLASS_WEIGHTS:
        w = class_weights(scheme, n, 0.9 if scheme == "class-balanced" else None)
        assert (n / n.sum()) @ w == pytest.approx(1.0, abs=1e-15)
    # β → 0 gives no re-weighting, β → 1 inverse frequency
    np.testing.assert_allclose(class_weights("class-balanced", n, 1e-12), [1, 1, 1], rtol=1e-10)
    np.testing.assert_allclose(class_weights("class-balanced", n, 1 - 1e-12), class_weights("inverse", n), rtol=1e-6)


def test_resampling_equals_reweighting_in_the_objective():
    """Counts (6, 3, 2); class-balanced sampling (inverse scheme: q = ⅓ each) over an epoch of 18 draws
    shows each sample of class k t_k = (1, 2, 3) times. The epoch's mean loss over the per-sample
    features, and the weight-decay penalty of those features, equal the re-weighted model's objective."""
    counts = np.array([6.0, 3.0, 2.0])
    q = sampling_weights("inverse", counts)
    t = q * 18 / counts
    np.testing.assert_allclose(t, [1.0, 2.0, 3.0], rtol=1e-14)
    rng = np.random.default_rng(4)
    W, H = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    for loss in ("ce", "la", "ldam"):
        p = Problem.from_counts(counts, loss=loss, class_weights="inverse", budget="weight-decay", lambda_W=1e-2,
                                lambda_H=1e-3)
        L = p.loss_fn.value_grad(H @ W.T, np.arange(3))[0]
        epoch = sum(counts[k] * t[k] * L[k] for k in range(3)) / 18      # every draw, with its duplicates
        penalty = 0.5 * 1e-3 * float(counts @ np.sum(H**2, axis=1)) + 0.5 * 1e-2 * float(np.sum(W**2))
        assert p.objective(W, H) == pytest.approx(epoch + penalty, rel=1e-14)
        np.testing.assert_allclose(p.weights, q, rtol=1e-15)


def test_resampled_counts_give_the_reweighted_optimum_under_the_norm_budgets():
    """Under the class-average budgets only proportions enter: CE on a data set whose counts are
    proportional to the sampling probabilities q has the CE re-weighted problem's optimum (value
    and geometry), for every scheme."""
    counts = (50.0, 50.0, 10.0, 2.0)
    for scheme in ("inverse", "sqrt", "class-balanced"):
        weighted = get_solver("nuclear").run(Problem.from_counts(counts, class_weights=scheme))
        q = sampling_weights(scheme, counts)
        sampled = get_solver("nuclear").run(Problem.from_counts(tuple(1000 * q)))
        assert weighted.objective == pytest.approx(sampled.objective, abs=1e-9)
        Zw, Zs = weighted.H @ weighted.W.T, sampled.H @ sampled.W.T
        np.testing.assert_allclose(Zw, Zs, atol=1e-4)
    assert not np.allclose(Zw, get_solver("nuclear").run(Problem.from_counts(counts)).H
                           @ get_solver("nuclear").run(Problem.from_counts(counts)).W.T, atol=1e-2)


# ------------------------------------------------------------------ symmetry reduction with per-problem parameters
def test_a_batched_ratio_path_matches_solving_each_problem_alone():
    """The grouped engine batches a sweep path with one loss name; each problem keeps its own
    count-dependent parameters (per-problem rows), so batch and single solves agree."""
    solver = get_solver("nuclear", engine="grouped")
    path = [Problem.from_profile(K=8, ratio=R, loss=loss, class_weights=w)
            for R in (3.0, 30.0, 300.0) for loss, w in (("vs", "none"), ("cdt", "class-balanced"))]
    together = solver.solve_path(path)
    for problem, solution in zip(path, together):
        alone = solver.run(problem)
        assert solution.certificate.relative_gap <= 1e-9
        assert solution.objective == pytest.approx(alone.objective, abs=1e-9)


@pytest.mark.parametrize("name", list(LOSS_FAMILIES))
def test_grouped_and_factored_engines_agree(name):
    """The reduced problem (equal-count classes stored once) and the full factored one reach one optimum."""
    p = Problem.from_counts((30.0, 30.0, 30.0, 6.0, 6.0, 1.0, 1.0, 1.0), loss=name, class_weights="sqrt")
    g = get_solver("nuclear", engine="grouped").run(p)
    f = get_solver("nuclear", engine="factored").run(p)
    assert g.certificate.relative_gap <= 1e-9 and f.certificate.relative_gap <= 1e-9
    assert g.objective == pytest.approx(f.objective, abs=1e-9)


# ------------------------------------------------------------------ the certificate at scale
SCALE_CASES = [(loss, "none") for loss in ("ce", "la", "cdt", "ldam", "vs")] + \
    [("ce", w) for w in ("inverse", "sqrt", "class-balanced")] + [("vs", "class-balanced")]


@pytest.mark.parametrize("K, profile", [(10, "step"), (10, "exp"), (100, "step"), (100, "exp")])
@pytest.mark.parametrize("loss, weights", SCALE_CASES)
def test_nuclear_certifies_every_remedy_like_ce(K, profile, loss, weights):
    """Relative gap ≤ 1e-8 at R = 100, as for CE: step (grouped engine) and exponential (factored
    engine at K = 100) profiles. K = 1000 is measured by hand (theory.md §14.5)."""
    p = Problem.from_profile(K=K, ratio=100, profile=profile, loss=loss, class_weights=weights)
    solution = get_solver("nuclear").run(p)
    assert solution.certificate.relative_gap <= 1e-8
    assert solution.extra["engine"] == ("factored" if (K, profile) == (100, "exp") else "grouped")


@pytest.mark.parametrize("budget, extra", [("weight-decay", {"lambda_H": 1e-2}), ("class-average", {})])
def test_fixed_etf_closed_forms_take_class_weights(budget, extra):
    """Fixed ETF + CE with class weights: the closed forms (one root per class, p_k = π_k ω_k)
    equal the convex solve and carry a zero-gap certificate of their own."""
    p = Problem.from_counts((40.0, 40.0, 8.0, 2.0, 1.0), classifier="fixed-etf", budget=budget,
                            class_weights="inverse", **extra)
    closed = get_solver("analytic").run(p)
    convex = get_solver("convex").run(p)
    assert closed.certificate.gap <= 1e-9
    assert closed.objective == pytest.approx(convex.objective, abs=1e-7)
    norms = np.linalg.norm(closed.H, axis=1)
    if budget == "weight-decay":  # inverse weights: p_k = 1/K, so n_k/p_k = K·n_k and the norms differ
        assert norms.max() / norms.min() > 1.5
