"""Symmetry-reduced accelerated projected gradient on the nuclear ball.

Problem (theory.md §4.2), for B problems at once that share K, the loss and
the partition of the classes into groups of equal counts:

    min_Z  f(Z) = Σ_k p_k L(Z[k, :], k)   s.t.  ‖Z‖_* ≤ ρ.

Invariant subspace. Classes with equal counts are exchangeable, so f, the
ball and every projected-gradient step commute with permuting them; started
from an invariant point the iterates stay in the subspace (groups a of size
s_a, u_a = 1_a/sqrt(s_a), P_a = diag(1_a) − u_a u_aᵀ)

    Z = Σ_a α_a P_a + Σ_{a,b} R_ab u_a u_bᵀ,      α ∈ R^m, R ∈ R^{m×m}.

P_a and u_a u_bᵀ are mutually orthogonal, ‖P_a‖_F² = s_a − 1, and the
singular values of Z are |α_a| (multiplicity s_a − 1) and those of R. So a
projection costs one m×m SVD and a weighted ℓ1-ball projection, and a class
of group a sees only the logits d_a (own), M_aa (its s_a − 1 classmates) and
M_ab (the s_b classes of group b), M = (R − diag α) / (sqrt(s_a s_b)). One
iteration therefore costs O(B·m³) whatever K is. α_a of a one-class group is
always 0 (P_a = 0).

Algorithm: FISTA with step 1/L, L = max_k p_k · c (c = ½ for CE, the curvature
bound of log-sum-exp; 1 for DR and MSE), O'Donoghue–Candès gradient restarts,
stopped by the Frank–Wolfe gap ⟨G, Z⟩ + ρ‖G‖_2 relative to the bound.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..problem import Problem
from ._recover import nuclear_radius


def group_labels(problem: Problem) -> np.ndarray:
    """Group index of each class: classes with equal counts share a group."""
    return np.unique(np.asarray(problem.counts), return_inverse=True)[1].ravel()


class Reduction:
    """The invariant subspace for a batch of problems with one group layout.

    A point is a pair (alpha (B, m), R (B, m, m)).
    """

    def __init__(self, problems: Sequence[Problem]):
        first = problems[0]
        self.group = group_labels(first)
        assert all(p.K == first.K and p.loss == first.loss and np.array_equal(group_labels(p), self.group)
                   for p in problems), "a batch must share K, the loss and the equal-count groups"
        self.K, self.loss = first.K, first.loss
        m = int(self.group.max()) + 1
        self.size = np.bincount(self.group, minlength=m).astype(np.float64)
        self.mult = self.size - 1.0  # multiplicity of |α_a| among the singular values
        self.has_mult = (self.mult > 0).astype(np.float64)
        self.root = np.sqrt(self.size)
        self.outer = np.outer(self.root, self.root)
        self.others = self.size[None, :] - np.eye(m)  # copies of M_ab in the row of a class of group a
        self.diag = (slice(None), *np.diag_indices(m))
        self.spectrum_weights = np.concatenate((self.mult, np.ones(m)))
        representative = np.unique(self.group, return_index=True)[1]
        self.class_weight = np.stack([p.weights[representative] for p in problems])  # (B, m)
        self.group_weight = self.class_weight * self.size
        self.rho = np.array([nuclear_radius(p) for p in problems])
        self.target = np.array([p.dr_target for p in problems])
        self.lipschitz = self.class_weight.max(axis=1) * (0.5 if self.loss == "ce" else 1.0)

    # ------------------------------------------------------------ mapping
    def to_full(self, alpha: np.ndarray, R: np.ndarray) -> np.ndarray:
        """One problem's Z = diag(α_{g(k)}) + U (R − diag α) Uᵀ (K×K)."""
        M = (R - np.diag(alpha)) / self.outer
        Z = M[self.group][:, self.group]
        Z[np.arange(self.K), np.arange(self.K)] += alpha[self.group]
        return Z

    def from_full(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Orthogonal projection of a K×K Z onto the subspace, as (α, R)."""
        onehot = np.eye(len(self.size))[self.group]  # (K, m)
        R = onehot.T @ Z @ onehot / self.outer
        diag_sum = onehot.T @ np.diag(Z)
        alpha = self.has_mult * (diag_sum - np.diag(R)) / np.maximum(self.mult, 1.0)
        return alpha, R

    def start(self) -> tuple[np.ndarray, np.ndarray]:
        """Z = ρ/(K−1)·(I − 11ᵀ/K), the balanced CE optimum, ‖Z‖_* = ρ."""
        c = self.rho / (self.K - 1)
        eye = np.eye(len(self.size))
        return c[:, None] * self.has_mult, c[:, None, None] * (eye - self.outer / self.K)

    def inner(self, x, y) -> np.ndarray:
        """Frobenius inner products ⟨Z_x, Z_y⟩, shape (B,)."""
        return (self.mult * x[0] * y[0]).sum(axis=-1) + (x[1] * y[1]).sum(axis=(-2, -1))

    # ------------------------------------------------------------ objective
    def value_and_grad(self, alpha: np.ndarray, R: np.ndarray):
        """f (B,) and the coordinates (α_G, R_G) of the full gradient G = ∂f/∂Z.

        With g_own, Γ_ab the derivatives of a group-a class's loss in its own
        logit and in one logit of group b: R_G = p_a sqrt(s_a s_b) Γ_ab +
        diag(p_a δ_a), α_G = p_a δ_a, δ_a = g_own,a − Γ_aa.
        """
        M = R / self.outer
        M[self.diag] -= alpha / self.size
        own = M[self.diag] + alpha
        if self.loss == "ce":
            shift = np.maximum(M.max(axis=-1), own)  # the largest logit each class sees
            E, E_own = np.exp(M - shift[..., None]), np.exp(own - shift)
            total = (self.others * E).sum(axis=-1) + E_own
            loss = shift + np.log(total) - own
            Gamma, g_own = E / total[..., None], E_own / total - 1.0
        elif self.loss == "dr":
            g_own = own - self.target[:, None]
            loss, Gamma = 0.5 * g_own**2, np.zeros_like(M)
        else:  # mse
            g_own = own - 1.0
            loss, Gamma = 0.5 * (g_own**2 + (self.others * M**2).sum(axis=-1)), M
        delta = self.class_weight * (g_own - Gamma[self.diag])
        R_G = self.class_weight[..., None] * self.outer * Gamma
        R_G[self.diag] += delta
        return (self.group_weight * loss).sum(axis=-1), (delta * self.has_mult, R_G)

    def gap(self, x, g) -> np.ndarray:
        """Frank–Wolfe gaps ⟨G, Z⟩ + ρ‖G‖_2, shape (B,)."""
        spectral = np.maximum(np.abs(g[0]).max(axis=-1), np.linalg.svd(g[1], compute_uv=False)[:, 0])
        return self.inner(x, g) + self.rho * spectral

    # ------------------------------------------------------------ projection
    def project(self, alpha: np.ndarray, R: np.ndarray):
        """Euclidean projection onto ‖Z‖_* ≤ ρ: soft-threshold the spectrum at τ."""
        U, s, Vt = np.linalg.svd(R)
        tau = ball_threshold(np.concatenate((np.abs(alpha), s), axis=-1), self.spectrum_weights, self.rho)
        alpha = np.sign(alpha) * np.maximum(np.abs(alpha) - tau[:, None], 0.0)
        return alpha, (U * np.maximum(s - tau[:, None], 0.0)[:, None, :]) @ Vt


def ball_threshold(values: np.ndarray, weights: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """τ_b ≥ 0 with Σ_i w_i (v_bi − τ_b)_+ = radius_b, or 0 inside the ball.

    values (B, n) ≥ 0, weights (n,) ≥ 0 (multiplicities), radius (B,).
    """
    order = np.argsort(-values, axis=-1)
    v, w = np.take_along_axis(values, order, axis=-1), weights[order]
    cum_w = np.cumsum(w, axis=-1)
    tau = (np.cumsum(w * v, axis=-1) - radius[:, None]) / np.maximum(cum_w, 1e-300)
    active = (w > 0) & (v > tau)
    last = active.shape[-1] - 1 - np.argmax(active[:, ::-1], axis=-1)
    tau = np.take_along_axis(tau, last[:, None], axis=-1)[:, 0]
    inside = (values * weights).sum(axis=-1) <= radius
    return np.where(inside, 0.0, np.maximum(tau, 0.0))


def fista(red: Reduction, x, tol: float, max_iter: int, check_every: int):
    """Batched accelerated projected gradient.

    Returns (points (α, R), relative gaps (B,), iterations (B,)); each
    problem's point is frozen at the first check where its relative gap
    gap / max(1, |f − gap|) is ≤ tol.
    """
    x = red.project(*x)
    B = len(red.rho)
    y, t, step = x, np.ones(B), (1.0 / red.lipschitz)
    best = (x[0].copy(), x[1].copy())
    rel_gap, iterations, done = np.full(B, np.inf), np.full(B, max_iter), np.zeros(B, dtype=bool)
    for it in range(1, max_iter + 1):
        _, g = red.value_and_grad(*y)
        z = red.project(y[0] - step[:, None] * g[0], y[1] - step[:, None, None] * g[1])
        if it % check_every == 0 or it == 1 or it == max_iter:
            f_z, g_z = red.value_and_grad(*z)
            gap = red.gap(z, g_z)
            rel = gap / np.maximum(1.0, np.abs(f_z - gap))
            update = ~done & ((rel <= tol) | (it == max_iter))
            best[0][update], best[1][update] = z[0][update], z[1][update]
            rel_gap[update], iterations[update] = rel[update], it
            done |= rel <= tol
            if done.all():
                break
        # restart the momentum of each problem whose step points uphill
        t[red.inner((y[0] - z[0], y[1] - z[1]), (z[0] - x[0], z[1] - x[1])) > 0] = 1.0
        t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        beta = (t - 1.0) / t_next
        y = (z[0] + beta[:, None] * (z[0] - x[0]), z[1] + beta[:, None, None] * (z[1] - x[1]))
        x, t = z, t_next
    return best, rel_gap, iterations
