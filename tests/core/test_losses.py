"""The loss registry (theory.md §5–§6): each form's value and gradient pinned at
hand-computed points, and every back end (NumPy, torch, cvxpy) agreeing."""
from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import torch

from lpm.core.losses import (LOSS_NAMES, AffineCrossEntropy, batch_balance_scale, bind_loss, get_loss,
                             released_dr_curvature, released_dr_logit_grad, released_dr_value)

#: counts the count-aware losses are bound to in the generic tests (every loss runs through them)
COUNTS5, COUNTS6 = (50.0, 20.0, 7.0, 3.0, 1.0), (40.0, 40.0, 9.0, 5.0, 2.0, 1.0)


def _bound(name, counts):
    return bind_loss(name, counts)


# ------------------------------------------------------------------ hand-computed DR values
@pytest.mark.parametrize("E_W, E_H, z_y, paper, paper_grad, unscaled, unscaled_grad", [
    # t = sqrt(E_W E_H) = 2: (3 − 2)²/(2·2) = 0.25, (3 − 2)/2 = 0.5; unscaled ½·1² = 0.5, slope 1
    (4.0, 1.0, 3.0, 0.25, 0.5, 0.5, 1.0),
    # t = 3: (1 − 3)²/6 = 2/3, (1 − 3)/3 = −2/3; unscaled ½·4 = 2, slope −2
    (1.0, 9.0, 1.0, 2.0 / 3.0, -2.0 / 3.0, 2.0, -2.0),
])
def test_dr_forms_at_hand_computed_points(E_W, E_H, z_y, paper, paper_grad, unscaled, unscaled_grad):
    t = np.sqrt(E_W * E_H)
    Z = np.array([[0.7, z_y, -1.3]])                      # the label is 1; other logits must not matter
    for name, value, slope in (("dr", paper, paper_grad), ("dr-unscaled", unscaled, unscaled_grad)):
        values, G = get_loss(name).value_grad(Z, np.array([1]), t)
        np.testing.assert_allclose(values, [value], rtol=1e-15)
        np.testing.assert_allclose(G, [[0.0, slope, 0.0]], rtol=1e-15, atol=0)
        tv = get_loss(name).torch_value(torch.tensor(Z), torch.tensor([1]), t)
        torch.testing.assert_close(tv, torch.tensor([value], dtype=torch.float64), rtol=1e-15, atol=0)
    assert get_loss("dr").curvature(t) == pytest.approx(1.0 / t) and get_loss("dr-unscaled").curvature(t) == 1.0


def test_released_surrogate_at_a_hand_computed_point():
    """E_W = 1, E_H = 9: h = (0, 3), w_y = (0.6, 0.8): cos θ = 0.8, value ½·1·3·0.2² = 0.06,
    h-gradient ‖w‖(cos θ − 1)·w = −0.2·w — the paper form's gradient (z_y − t)/t·w too."""
    h = torch.tensor([0.0, 3.0], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([0.6, 0.8], dtype=torch.float64)
    dot = h @ w
    value = released_dr_value(dot, h.norm().detach(), w.norm())
    torch.testing.assert_close(value, torch.tensor(0.06, dtype=torch.float64), rtol=1e-14, atol=0)
    value.backward()
    torch.testing.assert_close(h.grad, torch.tensor([-0.12, -0.16], dtype=torch.float64), rtol=1e-14, atol=1e-16)
    logit_slope = released_dr_logit_grad(dot.detach(), h.norm().detach(), w.norm())
    torch.testing.assert_close(logit_slope * w, h.grad)
    paper_slope = get_loss("dr").value_grad(np.array([[float(dot.detach())]]), np.array([0]), 3.0)[1][0, 0]
    np.testing.assert_allclose(paper_slope * w.numpy(), h.grad.numpy(), rtol=1e-14)
    assert released_dr_curvature(9.0) == pytest.approx(get_loss("dr").curvature(3.0))  # 1/3 both


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_released_gradient_equals_paper_gradient_on_the_sphere(seed):
    """With E_W = 1 and ‖h‖ = sqrt(E_H), ‖w‖(cos θ − 1)w = (wᵀh − sqrt(E_H))/sqrt(E_H)·w for any direction."""
    rng = np.random.default_rng(seed)
    E_H = float(rng.uniform(0.5, 20.0))
    w = rng.standard_normal(7)
    w /= np.linalg.norm(w)
    h = rng.standard_normal(7)
    h *= np.sqrt(E_H) / np.linalg.norm(h)
    ht = torch.tensor(h, requires_grad=True)
    wt = torch.tensor(w)
    released_dr_value(ht @ wt, ht.norm().detach(), wt.norm()).backward()
    paper = get_loss("dr").value_grad(np.array([[w @ h]]), np.array([0]), np.sqrt(E_H))[1][0, 0] * w
    np.testing.assert_allclose(ht.grad.numpy(), paper, rtol=1e-12, atol=1e-14)


def test_batch_balance_scale():
    y = torch.tensor([0, 0, 0, 1, 2, 2])
    counts = torch.bincount(y, minlength=4)             # class 3 absent from the batch
    gamma = 6 / 3
    expected = torch.tensor([gamma / 3] * 3 + [gamma / 1] + [gamma / 2] * 2, dtype=torch.float64).sqrt()
    torch.testing.assert_close(batch_balance_scale(y, counts), expected)


# ------------------------------------------------------------------ every loss, every back end
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_numpy_torch_and_cvxpy_forms_agree_and_gradients_are_exact(name):
    loss, t = _bound(name, COUNTS5), 1.7
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((5, 5)) * 2
    y = np.arange(5)
    values, G = loss.value_grad(Z, y, t)
    # torch value and hand-written torch gradient
    Zt = torch.tensor(Z, requires_grad=True)
    tv = loss.torch_value(Zt, torch.tensor(y), t)
    np.testing.assert_allclose(tv.detach().numpy(), values, rtol=1e-12, atol=1e-14)
    tv.sum().backward()
    np.testing.assert_allclose(Zt.grad.numpy(), G, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(loss.torch_grad(torch.tensor(Z), torch.tensor(y), t).numpy(), G, rtol=1e-12,
                               atol=1e-14)
    # cvxpy value at a constant point
    w = rng.uniform(0.1, 1.0, 5)
    np.testing.assert_allclose(loss.cvxpy_value(cp.Constant(Z), w, t).value, w @ values, rtol=1e-9)
    # Hessian-vector products against finite differences of the gradient
    V = rng.standard_normal(Z.shape)
    eps = 1e-6
    fd = (loss.value_grad(Z + eps * V, y, t)[1] - loss.value_grad(Z - eps * V, y, t)[1]) / (2 * eps)
    np.testing.assert_allclose(loss.hvp(Z, y, V, t), fd, rtol=1e-6, atol=1e-8)
    # the curvature bound holds for the Hessian's largest eigenvalue, row by row
    for k in range(5):
        H = np.stack([loss.hvp(Z[k:k + 1], y[k:k + 1], np.eye(5)[j:j + 1], t)[0] for j in range(5)])
        assert np.linalg.eigvalsh(0.5 * (H + H.T)).max() <= loss.curvature(t) + 1e-12


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_multiplicity_counts_copies_of_a_logit(name):
    """A row with logit z_j repeated m_j times equals the expanded row (the grouped solver's form);
    a count-aware loss's copies carry the parameters of the class they copy."""
    loss = _bound(name, (30.0, 5.0, 1.0))
    compact = np.array([[0.3, -0.8, 1.1]])
    multiplicity = np.array([[2.0, 3.0, 1.0]])              # label 2 counts once
    expanded = np.array([[0.3, 0.3, -0.8, -0.8, -0.8, 1.1]])
    big = loss
    if isinstance(loss, AffineCrossEntropy):
        copy = [0, 0, 1, 1, 1, 2]
        big = AffineCrossEntropy(name, "", loss.scale[copy], loss.shift[copy], loss.margin[copy])
    v_c, g_c = loss.value_grad(compact, np.array([2]), 1.4, multiplicity=multiplicity)
    v_e, g_e = big.value_grad(expanded, np.array([5]), 1.4)
    np.testing.assert_allclose(v_c, v_e, rtol=1e-14)
    np.testing.assert_allclose(g_c[0], g_e[0, [0, 2, 5]], rtol=1e-14, atol=1e-16)  # per copy


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_hvp_operator_repeats_hvp_in_place_and_in_float32(name):
    """The factored nuclear solver's products: equal to ``hvp`` (float64, to rounding; float32, to its
    precision), written into the vector passed in, and reusable at one point."""
    loss, t = _bound(name, COUNTS6), 1.7
    rng = np.random.default_rng(5)
    Z = rng.standard_normal((6, 6)) * 2
    y = rng.permutation(6)                                 # labels off the diagonal too
    apply = loss.hvp_operator(Z, y, t)
    for _ in range(2):
        V = rng.standard_normal(Z.shape)
        out = apply(V.copy())
        np.testing.assert_allclose(out, loss.hvp(Z, y, V, t), rtol=1e-13, atol=1e-15)
        V32 = V.astype(np.float32)
        out32 = loss.hvp_operator(Z, y, t, dtype=np.float32)(V32)
        assert out32 is V32 and out32.dtype == np.float32
        np.testing.assert_allclose(out32, loss.hvp(Z, y, V, t), rtol=1e-5, atol=1e-6)
