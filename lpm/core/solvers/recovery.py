"""Turning a convex solver's matrix back into (W, H) (theory.md §4.1, §4.2, §9.1).

Logits are stored with one row per class mean: Z = H Wᵀ, Z[k, j] = h_kᵀ w_j.

* :func:`balanced_factors`: for Z = U S Vᵀ, H = c⁻¹ U S^{1/2}, W = c V S^{1/2}
  with c² = sqrt(E_W/E_H), so that ‖W‖_F² = c² ‖Z‖_* and ‖H‖_F² = c⁻² ‖Z‖_*:
  both class-average budgets hold whenever ‖Z‖_* ≤ ρ = K·sqrt(E_W E_H).
* :func:`gram_factors`: from the 2K×2K Gram matrix of the SDP.
* :func:`penalised_factors`: the weight-decay model, Y = D^{1/2} Z = U S Vᵀ,
  H = D^{-1/2} (λ_W/λ_H)^{1/4} U S^{1/2}, W = (λ_H/λ_W)^{1/4} V S^{1/2}, for
  which (λ_W/2)‖W‖² + (λ_H/2)Σ_k n_k‖h_k‖² = sqrt(λ_W λ_H)‖Y‖_*.

Certificates are not here: :mod:`lpm.core.certificates` evaluates them at
the returned point, so a rounding in the recovery can never make one unsafe.
"""
from __future__ import annotations

import numpy as np

from ..certificates import singular_basis
from ..problem import Problem

_NOISE = 1e-12  # relative size of a singular value / eigenvalue treated as rounding


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


def _split_spectrum(problem: Problem, M: np.ndarray, c: float, radius: float | None = None,
                    rank_tol: float = 1e-9) -> tuple[np.ndarray, np.ndarray, str]:
    """(A, B, note) with A Bᵀ ≈ M, A = U S^{1/2}/c and B = V S^{1/2}·c, both K×d.

    Rounding leaves ~1e-16 singular values whose square roots (~1e-8) would
    tilt the factors, so they are dropped (M moves by ≤ 1e-12·‖M‖₂; callers
    certify the returned point itself). With ``radius`` the spectrum is scaled
    down if rounding put ‖M‖_* above it. Singular values beyond d are cut (the
    note then says so).
    """
    U, s, Vt = np.linalg.svd(M)
    return _split(problem, U, s, Vt.T, c, radius, rank_tol)


def _split(problem: Problem, U: np.ndarray, s: np.ndarray, V: np.ndarray, c: float, radius: float | None,
           rank_tol: float) -> tuple[np.ndarray, np.ndarray, str]:
    top = s[0] if s.size else 0.0
    s = np.where(s > _NOISE * top, s, 0.0)
    if radius is not None:
        s = s * min(1.0, radius / max(s.sum(), 1e-300))
    rank = int(np.sum(s > rank_tol * max(top, 1e-300)))
    note = ""
    if rank > problem.d:
        note = (f"rank(Z) = {rank} exceeds d = {problem.d}; kept the top {problem.d} "
                "singular values, so the point may be suboptimal (see the gap)")
    root = np.sqrt(s)
    return _embed(U * (root / c), problem.d), _embed(V * (root * c), problem.d), note


def balanced_factors(problem: Problem, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """(W, H, note) with H Wᵀ ≈ Z, both K×d, both class-average budgets met
    (c² = sqrt(E_W/E_H); module docstring)."""
    c = (problem.E_W / problem.E_H) ** 0.25
    H, W, note = _split_spectrum(problem, Z, c, radius=problem.nuclear_radius)
    W, H = _fit_budgets(problem, W, H)
    return W, H, note


def balanced_factors_of(problem: Problem, A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """:func:`balanced_factors` of Z = A Bᵀ given by factors (K×r, r ≤ K), in
    O(K r²): the factored engine's matrix never needs a K×K SVD."""
    if A.shape[1] == 0:
        return balanced_factors(problem, np.zeros((problem.K, problem.K)))
    c = (problem.E_W / problem.E_H) ** 0.25
    H, W, note = _split(problem, *singular_basis(A, B), c, problem.nuclear_radius, 1e-9)
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


def penalised_factors_of(problem: Problem, A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """:func:`penalised_factors` of Z = D^{-1/2} Y given Y = D^{1/2} Z = A Bᵀ by its
    factors (K×r), in O(K r²)."""
    if A.shape[1] == 0:
        return penalised_factors(problem, np.zeros((problem.K, problem.K)))
    root = np.sqrt(np.asarray(problem.counts, dtype=np.float64))
    c = (problem.lambda_H / problem.lambda_W) ** 0.25
    H_scaled, W, note = _split(problem, *singular_basis(A, B), c, None, 1e-9)
    return W, H_scaled / root[:, None], note


def penalised_factors(problem: Problem, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """(W, H, note) of the weight-decay model with H Wᵀ ≈ Z, balanced so that the
    penalty equals sqrt(λ_W λ_H)·‖D^{1/2} Z‖_* (module docstring)."""
    root = np.sqrt(np.asarray(problem.counts, dtype=np.float64))
    c = (problem.lambda_H / problem.lambda_W) ** 0.25
    H_scaled, W, note = _split_spectrum(problem, root[:, None] * Z, c)
    return W, H_scaled / root[:, None], note


#: the largest K·d² for which :func:`polish_fixed_weight_decay` forms the dense per-class Hessians
_POLISH_MAX_WORK = 5e7


def polish_fixed_weight_decay(problem: Problem, H: np.ndarray, max_steps: int = 30) -> tuple[np.ndarray, str]:
    """Newton steps on the fixed-classifier weight-decay model, from the convex solver's H.

    The model separates over classes (theory.md §9.1): class k minimises
    f_k(h) = p_k L(W h, k) + (λ_H/2) n_k ‖h‖², which is smooth and
    λ_H n_k-strongly convex, so damped Newton converges quadratically from
    any start and f(H) − f* ≤ ‖∇f‖²/(2 λ_H n_k) bounds how far the point is
    from the minimiser: ‖h_k − h_k*‖ ≤ ‖∇f_k‖/(λ_H n_k). An interior-point
    solution is only as close to the minimiser as the square root of its
    gap allows (about 1e-5 in the angles, depending on the back end's
    release); these steps bring it to rounding. A step is kept only when it
    lowers f_k. Returns the polished H and a note ("" when nothing changed).
    """
    W, K, d = problem.fixed_classifier, problem.K, H.shape[1]
    if K * d * d > _POLISH_MAX_WORK:
        return H, ""
    loss, target = problem.loss_fn, problem.dr_target
    p, n = problem.weights, np.asarray(problem.counts, dtype=np.float64)
    lam = problem.lambda_H * n                                     # (K,) strong-convexity moduli
    eye = np.eye(K)

    def value_grad(k: int, h: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        z = (W @ h)[None]                                          # (1, K) logits of class mean k
        v, g = loss.value_grad(z, np.array([k]), target)
        return p[k] * v[0] + 0.5 * lam[k] * h @ h, p[k] * (W.T @ g[0]) + lam[k] * h, z

    H = np.array(H, dtype=np.float64)
    moved = 0
    for k in range(K):
        h = H[k]
        f, g, z = value_grad(k, h)
        previous = np.inf
        for _ in range(max_steps):
            logit_hessian = loss.hvp(np.repeat(z, K, axis=0), np.full(K, k), eye.copy(), target)  # (K, K)
            hessian = p[k] * W.T @ logit_hessian @ W + lam[k] * np.eye(d)
            step = np.linalg.solve(hessian, g)
            decrement = float(g @ step)
            if not np.isfinite(decrement) or decrement <= 0.0:
                break
            t, improved = 1.0, False
            while t > 1e-8:
                f_new, g_new, z_new = value_grad(k, h - t * step)
                if f_new <= f - 0.25 * t * decrement:
                    h, f, g, z, improved = h - t * step, f_new, g_new, z_new, True
                    break
                t *= 0.5
            if not improved:
                break
            moved += 1
            size = float(np.linalg.norm(step))
            if size > 0.5 * previous:
                break  # steps no longer shrink: h is at the rounding level of its gradient
            previous = size
        H[k] = h
    return H, (f"polished by {moved} Newton steps on the separable strongly convex model" if moved else "")
