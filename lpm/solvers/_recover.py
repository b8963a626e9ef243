"""Shared pieces of the certifying learnable-classifier back ends.

Logits are stored with one row per class mean (theory.md §4.1, §4.2):

    Z = H Wᵀ,  Z[k, j] = h_kᵀ w_j,   row k = logits of class mean k,

with H, W of shape K×d. The objective is f(Z) = Σ_k p_k L(Z[k, :], k).

* :func:`balanced_factors` turns a K×K logit matrix back into (W, H) with
  the balanced factorisation of theory.md §4.2: for Z = U S Vᵀ,
  H = c⁻¹ U S^{1/2}, W = c V S^{1/2}, c² = sqrt(E_W/E_H), so that
  ‖W‖_F² = c² ‖Z‖_* and ‖H‖_F² = c⁻² ‖Z‖_*: both class-average budgets hold
  whenever ‖Z‖_* ≤ ρ = K·sqrt(E_W E_H).
* :func:`nuclear_certificate` is the Frank–Wolfe bound on the nuclear ball:
  by convexity, for any Z,

      f* ≥ f(Z) + min_{‖Z'‖_* ≤ ρ} ⟨∇f(Z), Z' − Z⟩ = f(Z) − ⟨∇f, Z⟩ − ρ‖∇f‖_2.

  Every learnable-classifier feasible point has ‖H Wᵀ‖_* ≤ ρ, so the bound
  holds for both budget forms (it is tight for the class-average one).
* :func:`gram_certificate` is the Lagrangian bound of the Gram SDP with
  per-sample feature budget diag(X_HH) ≤ E_H, tr(X_WW) ≤ K·E_W: linearise
  f at Z and, for any μ ≥ 0 (K,), ν ≥ 0 with C + diag(μ, ν·1) ⪰ 0,
  C = ½[[0, ∇f], [∇fᵀ, 0]],

      f* ≥ f(Z) − ⟨∇f, Z⟩ − E_H Σ_k μ_k − K E_W ν      (weak duality).
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import eigvalsh, svd, svdvals

from ..losses import loss_and_grad
from ..problem import Problem
from ..solution import Certificate

_NOISE = 1e-12  # relative size of a singular value / eigenvalue treated as rounding


def nuclear_radius(problem: Problem) -> float:
    """ρ = K·sqrt(E_W E_H), the radius of the nuclear-norm ball (theory.md §4.2)."""
    return problem.K * float(np.sqrt(problem.E_W * problem.E_H))


def logit_value_and_grad(problem: Problem, Z: np.ndarray) -> tuple[float, np.ndarray]:
    """f(Z) = Σ_k p_k L(Z[k], k) and its gradient ∂f/∂Z (K×K)."""
    values, G = loss_and_grad(problem.loss, Z, np.arange(problem.K), problem.dr_target)
    p = problem.weights
    return float(p @ values), p[:, None] * G


def _fit_budgets(problem: Problem, W: np.ndarray, H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shrink W and H (never grow) so that rounding cannot break a budget."""
    K = problem.K
    W = W * min(1.0, np.sqrt(K * problem.E_W) / max(np.linalg.norm(W), 1e-300))
    if problem.budget == "per-sample":
        norms = np.linalg.norm(H, axis=1, keepdims=True)
        return W, H * np.minimum(1.0, np.sqrt(problem.E_H) / np.maximum(norms, 1e-300))
    return W, H * min(1.0, np.sqrt(K * problem.E_H) / max(np.linalg.norm(H), 1e-300))


def _embed(A: np.ndarray, d: int) -> np.ndarray:
    """Zero-pad (or cut) the columns of A (K×r) to K×d."""
    out = np.zeros((A.shape[0], d))
    r = min(d, A.shape[1])
    out[:, :r] = A[:, :r]
    return out


def balanced_factors(problem: Problem, Z: np.ndarray, rank_tol: float = 1e-9) -> tuple[np.ndarray, np.ndarray, str]:
    """(W, H, note) with H Wᵀ ≈ Z, both K×d, both class-average budgets met.

    Singular values are scaled down, if rounding put ‖Z‖_* above ρ, and cut
    to the top d when rank(Z) > d (the note then says so; the caller's
    certificate stays honest because it is evaluated at the returned point).
    """
    U, s, Vt = svd(Z, lapack_driver="gesdd")
    # Rounding leaves ~1e-16 singular values whose square roots (~1e-8) would
    # tilt the factors; drop them (Z moves by ≤ 1e-12·‖Z‖_2, and the caller
    # certifies the returned point itself).
    s = np.where(s > _NOISE * s[0], s, 0.0)
    rho = nuclear_radius(problem)
    s = s * min(1.0, rho / max(s.sum(), 1e-300))
    rank = int(np.sum(s > rank_tol * max(s[0], 1e-300)))
    note = ""
    if rank > problem.d:
        note = (f"rank(Z) = {rank} exceeds d = {problem.d}; kept the top {problem.d} "
                "singular values, so the point may be suboptimal (see the gap)")
    c = (problem.E_W / problem.E_H) ** 0.25
    root = np.sqrt(s)
    H = _embed(U * (root / c), problem.d)
    W = _embed(Vt.T * (root * c), problem.d)
    W, H = _fit_budgets(problem, W, H)
    return W, H, note


def gram_factors(problem: Problem, X: np.ndarray, rank_tol: float = 1e-7) -> tuple[np.ndarray, np.ndarray, str]:
    """(W, H, note) from a 2K×2K Gram matrix X ≈ [H; W][H; W]ᵀ.

    X = Q Λ Qᵀ; the factor is Q Λ₊^{1/2}, its first K rows H and last K rows
    W. Components beyond d are dropped (the note then says rank(X) > d).
    """
    K = problem.K
    lam, Q = np.linalg.eigh(0.5 * (X + X.T))
    lam, Q = lam[::-1], Q[:, ::-1]
    lam = np.where(lam > _NOISE * max(lam[0], 0.0), lam, 0.0)
    rank = int(np.sum(lam > rank_tol * max(lam[0], 1e-300)))
    note = ""
    if rank > problem.d:
        note = (f"rank(X) = {rank} exceeds d = {problem.d}; kept the top {problem.d} "
                "eigen-components, so the point may be suboptimal (see the gap)")
    F = _embed(Q * np.sqrt(lam), problem.d)  # (2K×d)
    W, H = _fit_budgets(problem, F[K:], F[:K])
    return W, H, note


def nuclear_certificate(problem: Problem, Z: np.ndarray) -> Certificate:
    """Frank–Wolfe lower bound f(Z) − ⟨∇f, Z⟩ − ρ‖∇f‖_2 (module docstring)."""
    value, G = logit_value_and_grad(problem, Z)
    gap = float(np.sum(G * Z) + nuclear_radius(problem) * svdvals(G, check_finite=False)[0])
    gap = max(gap, 0.0)
    return Certificate(lower_bound=value - gap, gap=gap, method="nuclear-frank-wolfe")


def gram_certificate(problem: Problem, Z: np.ndarray, mu: np.ndarray | None, nu: float | None) -> Certificate:
    """Lagrangian lower bound for the per-sample Gram SDP (module docstring).

    ``mu``, ``nu`` are the solver's multipliers of diag(X_HH) ≤ E_H and
    tr(X_WW) ≤ K·E_W (``None`` → 0). They are made dual feasible by adding
    the smallest shift t·I that makes C + diag(μ, ν·1) ⪰ 0, so the bound is
    rigorous whatever the solver returned.
    """
    K = problem.K
    value, G = logit_value_and_grad(problem, Z)
    mu = np.zeros(K) if mu is None else np.clip(np.asarray(mu, dtype=np.float64).reshape(K), 0.0, None)
    nu = 0.0 if nu is None else max(float(nu), 0.0)
    S = np.zeros((2 * K, 2 * K))
    S[:K, K:], S[K:, :K] = 0.5 * G, 0.5 * G.T
    S[np.arange(K), np.arange(K)] = mu
    S[np.arange(K, 2 * K), np.arange(K, 2 * K)] = nu
    # smallest t ≥ 0 with S + t·I ⪰ 0, padded against the eigensolver's rounding
    shift = max(0.0, -float(eigvalsh(S, subset_by_index=[0, 0])[0])) * (1 + 1e-9)
    mu, nu = mu + shift, nu + shift
    bound = value - float(np.sum(G * Z)) - problem.E_H * float(mu.sum()) - K * problem.E_W * nu
    gap = max(value - bound, 0.0)
    return Certificate(lower_bound=value - gap, gap=gap, method="gram-lagrangian")
