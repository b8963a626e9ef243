"""The nuclear-norm program with classes grouped by equal counts: symmetry-reduced
accelerated projected gradient (FISTA) on the nuclear ball.

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

Losses. A class of group a sees m + 1 distinct logits: its own, and M_ab
standing for s_b − δ_ab copies; the loss registry evaluates such rows with
``multiplicity`` (:meth:`lpm.core.losses.Loss.value_grad`). A count-aware
loss (theory.md §14) has parameters that depend on the counts only, so all
classes of a group share them and the reduction holds; its per-problem
parameters, laid out on these rows, come from
:meth:`lpm.core.losses.AffineCrossEntropy.grouped` (the batch shares the loss
name, not its parameters).

Algorithm: FISTA with step 1/L, L = max_k p_k · c (c the loss's logit
curvature bound, :meth:`lpm.core.losses.Loss.curvature`), O'Donoghue–Candès
gradient restarts, stopped by the Frank–Wolfe gap ⟨G, Z⟩ + ρ‖G‖_2 relative
to the bound.

Weight decay (theory.md §9.1). The penalised program min_Y f(D^{-1/2} Y) +
μ‖Y‖_*, Y = D^{1/2} Z, μ = sqrt(λ_W λ_H), has the same invariant subspace
(D is constant on each group), so the same coordinates hold Y; the
projection becomes the proximal step (every singular value soft-thresholded
at μ/L) and the row scaling n_k^{-1/2} makes L = c/N for every class. The
stopping gap is that of :func:`lpm.core.certificates.penalised_nuclear_certificate`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..losses import AffineCrossEntropy
from ..problem import Problem


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
        self.K = first.K
        m = int(self.group.max()) + 1
        self.size = np.bincount(self.group, minlength=m).astype(np.float64)
        self.mult = self.size - 1.0  # multiplicity of |α_a| among the singular values
        self.has_mult = (self.mult > 0).astype(np.float64)
        self.root = np.sqrt(self.size)
        self.outer = np.outer(self.root, self.root)
        self.others = self.size[None, :] - np.eye(m)  # copies of M_ab in the row of a class of group a
        self.multiplicity = np.concatenate((self.others, np.ones((m, 1))), axis=1)  # (m, m+1), own logit last
        self.diag = (slice(None), *np.diag_indices(m))
        self.spectrum_weights = np.concatenate((self.mult, np.ones(m)))
        representative = np.unique(self.group, return_index=True)[1]
        # a count-aware loss has its own parameters in each problem (they depend on the counts only, so
        # the classes of a group share them): one loss with per-row, per-problem parameters
        losses = [p.loss_fn for p in problems]
        self.loss = (AffineCrossEntropy.grouped(losses, representative)
                     if isinstance(losses[0], AffineCrossEntropy) else losses[0])
        self.class_weight = np.stack([p.weights[representative] for p in problems])  # (B, m)
        self.group_weight = self.class_weight * self.size
        self.target = np.array([p.dr_target for p in problems])
        self.penalised = first.regularised
        assert all(p.regularised == self.penalised for p in problems), "a batch must share the budget form"
        if self.penalised:  # coordinates of Y = D^{1/2} Z; Z = scale · Y row by row
            counts = np.stack([np.asarray(p.counts, dtype=np.float64)[representative] for p in problems])
            self.scale = 1.0 / np.sqrt(counts)                                     # (B, m)
            self.mu = np.array([np.sqrt(p.lambda_W * p.lambda_H) for p in problems])
            self.rho = np.zeros(len(problems))
            self.lipschitz = (self.class_weight * self.scale**2).max(axis=1) * self.loss.curvature(self.target)
        else:
            self.scale = np.ones_like(self.class_weight)
            self.rho = np.array([p.nuclear_radius for p in problems])
            self.lipschitz = self.class_weight.max(axis=1) * self.loss.curvature(self.target)

    # ------------------------------------------------------------ mapping
    def to_full(self, alpha: np.ndarray, R: np.ndarray) -> np.ndarray:
        """One problem's matrix diag(α_{g(k)}) + U (R − diag α) Uᵀ (K×K): Z, or Y under weight decay."""
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
        """Z = ρ/(K−1)·(I − 11ᵀ/K), the balanced CE optimum, ‖Z‖_* = ρ (0 under weight decay)."""
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
        point = (alpha, R)
        if self.penalised:
            alpha, R = alpha * self.scale, R * self.scale[..., None]
        M = R / self.outer
        M[self.diag] -= alpha / self.size
        own = M[self.diag] + alpha
        m = len(self.size)
        logits = np.concatenate((M, own[..., None]), axis=-1)  # (B, m, m+1)
        loss, grad = self.loss.value_grad(logits, np.full(logits.shape[:-1], m), self.target[:, None],
                                          multiplicity=self.multiplicity)
        Gamma, g_own = grad[..., :m], grad[..., m]
        delta = self.class_weight * (g_own - Gamma[self.diag])
        R_G = self.class_weight[..., None] * self.outer * Gamma
        R_G[self.diag] += delta
        value, grad = (self.group_weight * loss).sum(axis=-1), (delta * self.has_mult, R_G)
        if not self.penalised:
            return value, grad
        grad = (grad[0] * self.scale, grad[1] * self.scale[..., None])  # ∂/∂Y = D^{-1/2} ∂/∂Z
        return value + self.mu * self.nuclear_norm(*point), grad

    def nuclear_norm(self, alpha: np.ndarray, R: np.ndarray) -> np.ndarray:
        return (self.mult * np.abs(alpha)).sum(axis=-1) + np.linalg.svd(R, compute_uv=False).sum(axis=-1)

    def gap(self, x, g) -> np.ndarray:
        """Frank–Wolfe gaps ⟨G, Z⟩ + ρ‖G‖_2 (B,); under weight decay the gap of the
        penalised bound, μ‖Y‖_* + ⟨G, Y⟩ − (F/μ)·min(0, μ − ‖G‖_2)."""
        spectral = np.maximum(np.abs(g[0]).max(axis=-1), np.linalg.svd(g[1], compute_uv=False)[:, 0])
        if not self.penalised:
            return self.inner(x, g) + self.rho * spectral
        value, _ = self.value_and_grad(*x)
        return (self.mu * self.nuclear_norm(*x) + self.inner(x, g)
                - value / self.mu * np.minimum(0.0, self.mu - spectral))

    # ------------------------------------------------------------ projection
    def project(self, alpha: np.ndarray, R: np.ndarray):
        """Euclidean projection onto ‖Z‖_* ≤ ρ: soft-threshold the spectrum at τ (under
        weight decay the proximal step of μ‖Y‖_* for step 1/L: τ = μ/L)."""
        U, s, Vt = np.linalg.svd(R)
        if self.penalised:
            tau = self.mu / self.lipschitz
        else:
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
