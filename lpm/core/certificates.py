"""Certificates of global optimality (theory.md §11).

A certificate is a lower bound ``lb`` on the optimal value of a problem,
valid whatever produced the point it was computed at; ``gap`` = objective −
lb. Every function here takes the problem and a point, and returns a
:class:`lpm.core.solution.Certificate`. The bounds come from convexity: for
a convex f and any feasible point x, f* ≥ f(x) + min_{x' feasible} ⟨∇f(x), x' − x⟩.

* :func:`fixed_classifier_certificate` — fixed W, problem in H (K×d).
  Per-sample ball ‖h_k‖ ≤ sqrt(E_H) or class-average ball Σ_k‖h_k‖² ≤ K·E_H:
  the linear minimisation over the ball is closed-form (Frank–Wolfe gap).
  Weight decay (λ_H/2)Σ_k n_k‖h_k‖²: minimising the linearisation plus the
  penalty gives f(H) − ⟨∇f, H⟩ − Σ_k ‖g_k‖²/(2λ_H n_k). The bound also holds
  for the per-sample problem, whose optimum equals the class-mean one
  (Jensen), so it certifies solvers that work on per-sample features.
* :func:`nuclear_certificate` — learnable W, budget forms (theory.md §4.2):
  every feasible (W, H) has ‖H Wᵀ‖_* ≤ ρ = K·sqrt(E_W E_H), so with
  f(Z) = Σ_k p_k L(Z[k], k) and G = ∇f(Z),
  f* ≥ f(Z) − ⟨G, Z⟩ − ρ‖G‖₂ (tight for the class-average budget).
* :func:`gram_certificate` — learnable W, per-sample budget, through the
  Lagrangian of the Gram SDP (theory.md §4.1): for μ ≥ 0 (K,), ν ≥ 0 with
  C + diag(μ, ν·1) ⪰ 0, C = ½[[0, G], [Gᵀ, 0]],
  f* ≥ f(Z) − ⟨G, Z⟩ − E_H Σ_k μ_k − K E_W ν. Any multipliers are made dual
  feasible by the smallest shift t·I, so the bound is rigorous whatever a
  solver returned.
* :func:`penalised_nuclear_certificate` — learnable W, weight decay
  (theory.md §9.1–9.2): with Y = D^{1/2} Z (D = diag n_k) the problem is
  F(Y) = f̃(Y) + μ‖Y‖_*, μ = sqrt(λ_W λ_H). Since f ≥ 0, ‖Y*‖_* ≤ B :=
  F(Y)/μ, and F* ≥ f(Z) − ⟨G, Z⟩ + B·min(0, μ − ‖D^{-1/2} G‖₂), which equals
  F at the optimum (there ‖D^{-1/2}G‖₂ = μ and ⟨G, Z⟩ = −μ‖Y‖_*).
"""
from __future__ import annotations

import numpy as np

from .problem import Problem
from .solution import Certificate


#: unit roundoff of float64
_U = 2.0**-53


def _spectral_norm(A: np.ndarray) -> float:
    """An upper bound on the largest singular value, safe against rounding.

    An iterative estimate would under-estimate it and make a bound unsafe, so
    the value comes from a dense symmetric eigensolver on the Gram matrix
    C = fl(AᵀA), about ten times cheaper than the singular values of A, with
    the rounding of both steps added back:

    * forming C: |fl(AᵀA) − AᵀA| ≤ γ_m |A|ᵀ|A| entrywise (m rows, γ_m =
      m·u/(1 − m·u)), so the error has spectral norm ≤ γ_m ‖|A|‖₂² ≤
      γ_m ‖A‖₁‖A‖_∞ (Hölder, both norms exact in O(m·n));
    * the eigensolver is backward stable: its largest eigenvalue is exact
      for C + E with ‖E‖₂ ≤ p·u·‖C‖₂; p = n is taken, far above LAPACK's
      observed constants.

    When these pads exceed 1e-12 of the value (a matrix of very uneven entries),
    the singular values of A itself are used instead, as before.
    """
    if not A.size:
        return 0.0
    m, n = A.shape
    if m < n:
        A = A.T
        m, n = n, m
    top = float(np.linalg.eigvalsh(A.T @ A)[-1])
    gamma = m * _U / (1.0 - m * _U)
    magnitude = np.abs(A)
    absolute = float(magnitude.sum(axis=0).max() * magnitude.sum(axis=1).max())
    del magnitude
    pad = gamma * absolute + n * _U * abs(top)
    if top > 0 and pad <= 1e-12 * top:
        return float(np.sqrt(top + pad))
    return float(np.linalg.svd(A, compute_uv=False)[0])


def _feature_gradient(problem: Problem, W: np.ndarray, H: np.ndarray) -> tuple[float, np.ndarray]:
    """f(H) = Σ_k p_k L(W h_k, k) and ∇_H f (K×d)."""
    value, G = problem.logit_objective(H @ W.T)
    return value, G @ W


def project_features(problem: Problem, H: np.ndarray) -> np.ndarray:
    """Nearest point of the feature budget set (per-sample or class-average ball;
    unchanged under weight decay, which has no constraint)."""
    H = np.asarray(H, dtype=np.float64)
    if problem.budget == "per-sample":
        r = np.sqrt(problem.E_H)
        norms = np.linalg.norm(H, axis=1, keepdims=True)
        return H * np.minimum(1.0, r / np.maximum(norms, 1e-300))
    if problem.budget == "class-average":
        radius = np.sqrt(problem.K * problem.E_H)
        total = np.linalg.norm(H)
        return H if total <= radius else H * (radius / total)
    return H


def fixed_classifier_certificate(problem: Problem, H: np.ndarray, W: np.ndarray | None = None) -> Certificate:
    """Lower bound and KKT residual for a fixed-classifier point H (module docstring)."""
    assert problem.fixed, "certificate applies to fixed classifiers"
    W = problem.fixed_classifier if W is None else W
    H = project_features(problem, H)
    value, G = _feature_gradient(problem, W, H)
    if problem.regularised:
        scale = problem.lambda_H * np.asarray(problem.counts)[:, None]
        lower = value - float(np.sum(G * H)) - float(np.sum(G**2 / (2 * scale)))
        objective = problem.objective(W, H)
        kkt = float(np.linalg.norm(G + scale * H, axis=1).max())
        return Certificate(lower_bound=lower, gap=max(objective - lower, 0.0), kkt_residual=kkt,
                           method="weight-decay quadratic bound")
    if problem.budget == "per-sample":
        r = np.sqrt(problem.E_H)
        gap = float(np.sum(G * H) + r * np.linalg.norm(G, axis=1).sum())
        kkt = _ball_kkt(G, H, r)  # g_k = −2 μ_k h_k with μ_k ≥ 0 (μ_k = 0 off the sphere)
    else:
        radius = np.sqrt(problem.K * problem.E_H)
        gap = float(np.sum(G * H) + radius * np.linalg.norm(G))
        kkt = _ball_kkt(G.reshape(1, -1), H.reshape(1, -1), radius)
    gap = max(gap, 0.0)
    return Certificate(lower_bound=value - gap, gap=gap, kkt_residual=kkt, method="frank-wolfe")


def _ball_kkt(G: np.ndarray, H: np.ndarray, radius: float) -> float:
    """Residual of g = −λ h, λ ≥ 0 (λ = 0 unless ‖h‖ = radius), row by row."""
    norms = np.linalg.norm(H, axis=1)
    on_sphere = norms >= radius * (1 - 1e-9)
    U = H / np.maximum(norms, 1e-300)[:, None]
    radial = np.sum(G * U, axis=1)
    tangential = np.linalg.norm(G - radial[:, None] * U, axis=1)
    res = np.where(on_sphere, np.maximum(tangential, np.maximum(radial, 0.0)), np.linalg.norm(G, axis=1))
    return float(res.max(initial=0.0))


def nuclear_certificate(problem: Problem, Z: np.ndarray) -> Certificate:
    """Frank–Wolfe lower bound f(Z) − ⟨G, Z⟩ − ρ‖G‖₂ on the nuclear ball (module docstring)."""
    value, G = problem.logit_objective(Z)
    gap = max(float(np.vdot(G, Z)) + problem.nuclear_radius * _spectral_norm(G), 0.0)
    return Certificate(lower_bound=value - gap, gap=gap, method="nuclear-frank-wolfe")


def gram_certificate(problem: Problem, Z: np.ndarray, mu: np.ndarray | None, nu: float | None) -> Certificate:
    """Lagrangian lower bound for the per-sample Gram SDP (module docstring).

    ``mu``, ``nu``: a solver's multipliers of diag(X_HH) ≤ E_H and
    tr(X_WW) ≤ K·E_W (``None`` → 0), made dual feasible here.
    """
    K = problem.K
    value, G = problem.logit_objective(Z)
    mu = np.zeros(K) if mu is None else np.clip(np.asarray(mu, dtype=np.float64).reshape(K), 0.0, None)
    nu = 0.0 if nu is None else max(float(nu), 0.0)
    S = np.zeros((2 * K, 2 * K))
    S[:K, K:], S[K:, :K] = 0.5 * G, 0.5 * G.T
    S[np.arange(K), np.arange(K)] = mu
    S[np.arange(K, 2 * K), np.arange(K, 2 * K)] = nu
    # smallest t ≥ 0 with S + t·I ⪰ 0, padded against the eigensolver's rounding
    shift = max(0.0, -float(np.linalg.eigvalsh(S)[0])) * (1 + 1e-9)
    mu, nu = mu + shift, nu + shift
    bound = value - float(np.sum(G * Z)) - problem.E_H * float(mu.sum()) - K * problem.E_W * nu
    gap = max(value - bound, 0.0)
    return Certificate(lower_bound=value - gap, gap=gap, method="gram-lagrangian")


def penalised_nuclear_certificate(problem: Problem, W: np.ndarray, H: np.ndarray) -> Certificate:
    """Lower bound of the learnable weight-decay model at (W, H) (module docstring)."""
    assert problem.regularised and not problem.fixed
    Z = H @ W.T
    value, G = problem.logit_objective(Z)
    mu = float(np.sqrt(problem.lambda_W * problem.lambda_H))
    root = np.sqrt(np.asarray(problem.counts, dtype=np.float64))
    penalty = mu * float(np.linalg.svd(root[:, None] * Z, compute_uv=False).sum())
    radius = (value + penalty) / mu  # ‖Y*‖_* ≤ F(Y)/μ because f ≥ 0
    lower = value - float(np.sum(G * Z)) + radius * min(0.0, mu - _spectral_norm(G / root[:, None]))
    objective = problem.objective(W, H)  # ≥ F(Y): equal for a balanced factorisation
    return Certificate(lower_bound=lower, gap=max(objective - lower, 0.0), method="penalised-nuclear")
