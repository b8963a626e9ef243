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

from .problem import Problem, logits_of
from .solution import Certificate


#: unit roundoff of float64
_U = 2.0**-53
#: largest rounding pad, relative to λ_max(AᵀA), that :func:`_spectral_norm` accepts before an SVD
PAD_LIMIT = 1e-10


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

    When these pads exceed ``PAD_LIMIT`` of the value (a matrix of very uneven
    entries), the singular values of A itself are used instead. The pad enters a
    gap as ρ‖A‖₂·pad/(2·value): 1e-10 keeps it near 1e-10 of the objective, and
    the eigensolver's own term alone is n·u ≈ 9e-13 at n = 8142 (where the SVD
    fallback would take minutes).
    """
    if not A.size:
        return 0.0
    m, n = A.shape
    if m < n:
        A = A.T
        m, n = n, m
    top = float(np.linalg.eigvalsh(A.T @ A)[-1])
    gamma = m * _U / (1.0 - m * _U)
    columns, rows = np.zeros(n), np.empty(m)
    for start in range(0, m, 1024):  # |A| by blocks of rows: no second array of A's size
        block = np.abs(A[start:start + 1024])
        columns += block.sum(axis=0)
        rows[start:start + 1024] = block.sum(axis=1)
    absolute = float(columns.max() * rows.max())
    pad = gamma * absolute + n * _U * abs(top)
    if top > 0 and pad <= PAD_LIMIT * top:
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


def nuclear_certificate(problem: Problem, Z: np.ndarray, factors: tuple | None = None) -> Certificate:
    """Frank–Wolfe lower bound f(Z) − ⟨G, Z⟩ − ρ‖G‖₂ on the nuclear ball (module docstring).

    ``factors``: (H, W) with Z = H Wᵀ; then the same bound at a second dual point,
    corrected on Z's singular subspace (:func:`_refined_point`), comes first, and the
    plain one is computed only when that is not already within ``REFINED_ENOUGH``
    (each costs a dense spectral norm): the larger lower bound is returned.
    """
    value, G = problem.logit_objective(Z)
    radius = problem.nuclear_radius
    refined = None
    moved = None if factors is None else _refined_point(problem, Z, G, singular_basis(*factors))
    if moved is not None:
        del G  # recomputed below if the plain bound is needed (at K = 8142 each K×K array is 0.5 GiB)
        value2, G2 = problem.logit_objective(moved)
        lower = value2 - float(np.vdot(G2, moved)) - radius * _spectral_norm(G2)
        del G2, moved
        refined = Certificate(lower_bound=lower, gap=max(value - lower, 0.0), method="nuclear-refined-dual")
        if refined.relative_gap <= REFINED_ENOUGH:
            return refined
        G = problem.logit_objective(Z)[1]
    gap = max(float(np.vdot(G, Z)) + radius * _spectral_norm(G), 0.0)
    plain = Certificate(lower_bound=value - gap, gap=gap, method="nuclear-frank-wolfe")
    return refined if refined is not None and refined.lower_bound > plain.lower_bound else plain


#: a refined certificate this tight is returned without computing the plain one
REFINED_ENOUGH = 1e-6


def singular_basis(H: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(U, s, V) of Z = H Wᵀ from thin QRs and an r×r SVD (no K×K SVD: O(K r²)), singular
    values s (descending) and orthonormal U, V (K×r). Columns zero in both
    factors (a recovered point embedded in d > rank dimensions) are dropped first."""
    used = np.any(H != 0, axis=0) | np.any(W != 0, axis=0)
    H, W = H[:, used], W[:, used]
    Qh, Rh = np.linalg.qr(H)
    Qw, Rw = np.linalg.qr(W)
    u, s, vt = np.linalg.svd(Rh @ Rw.T)
    return Qh @ u, s, Qw @ vt.T


#: a singular value of Z counts as part of its range when the next one is this many times smaller
RANGE_JUMP = 1e3


def _refined_point(problem: Problem, Z: np.ndarray, G: np.ndarray, basis: tuple,
                   row_scale: np.ndarray | None = None, level: float | None = None):
    """Logits Z' = Z + D whose gradient is a better dual point than G = ∇f(Z).

    At the optimum Z* = U Σ Vᵀ the dual point Γ* (G*, or D^{-1/2}G* under weight
    decay) has all r singular values on Z's range equal to λ: Uᵀ Γ* V = −λ I.
    Near it, Γ = Γ* + E splits that cluster, which costs the Frank–Wolfe bound a
    term of first order in E; the bound's own error in the primal is of second
    order. Only the symmetric part of the r×r block Uᵀ E V matters at first
    order, and only up to a multiple of I, so the dual point is moved by
    Δ = U (−λ I − sym(Uᵀ Γ V)) Vᵀ: the gradient at Z + D with ∇²f(Z)[D] = Δ
    (row by row, :meth:`lpm.core.losses.Loss.solve_hessian`), which keeps the
    point a gradient, hence in the conjugate's domain whatever D is. λ is the
    mean of the block's diagonal (ball) or ``level`` = μ (weight decay).
    ``basis``: (U, s, V) of the matrix whose dual point Γ is (:func:`singular_basis`).
    ``row_scale``: Γ = G / row_scale (weight decay: sqrt n_k). The lower bound is
    evaluated afresh at Z', so it stays rigorous; D is clipped to |D| ≤ 1 so that
    tiny softmax entries cannot throw Z' far away. Returns Z' or ``None``
    (a loss without :meth:`~lpm.core.losses.Loss.solve_hessian`, or no range).
    """
    U, s, V = basis
    if not s.size or not s[0] > 0 or not np.all(problem.weights > 0):
        return None
    cut = np.flatnonzero(s[:-1] > RANGE_JUMP * s[1:])
    r = int(cut[0]) + 1 if cut.size else int(np.sum(s > 0))
    U, V = U[:, :r], V[:, :r]
    Gamma = G if row_scale is None else G / row_scale[:, None]
    block = U.T @ (Gamma @ V)
    block = 0.5 * (block + block.T)
    shift = -float(np.trace(block)) / r if level is None else float(level)
    M = -shift * np.eye(r) - block
    change = U @ (M @ V.T)  # the wanted change of Γ
    if row_scale is not None:
        change *= row_scale[:, None]
    change /= problem.weights[:, None]  # of each row's loss gradient
    D = problem.loss_fn.solve_hessian(Z, np.arange(problem.K), change, problem.dr_target)
    if D is None:
        return None
    np.clip(D, -1.0, 1.0, out=D)
    D += Z
    return D


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
    """Lower bound of the learnable weight-decay model at (W, H) (module docstring),
    the larger of the bounds at ∇f(Z) and at a refined dual point (:func:`_refined_point`)."""
    assert problem.regularised and not problem.fixed
    Z = logits_of(H, W)
    value, G = problem.logit_objective(Z)
    mu = float(np.sqrt(problem.lambda_W * problem.lambda_H))
    root = np.sqrt(np.asarray(problem.counts, dtype=np.float64))
    basis = singular_basis(root[:, None] * H, W)  # of Y = D^{1/2} Z
    penalty = mu * float(basis[1].sum())
    radius = (value + penalty) / mu  # ‖Y*‖_* ≤ F(Y)/μ because f ≥ 0
    lower = value - float(np.sum(G * Z)) + radius * min(0.0, mu - _spectral_norm(G / root[:, None]))
    method = "penalised-nuclear"
    moved = _refined_point(problem, Z, G, basis, row_scale=root, level=mu)
    del G
    if moved is not None:
        value2, G2 = problem.logit_objective(moved)
        lower2 = value2 - float(np.sum(G2 * moved)) + radius * min(0.0, mu - _spectral_norm(G2 / root[:, None]))
        if lower2 > lower:
            lower, method = lower2, "penalised-nuclear-refined-dual"
    objective = problem.objective(W, H)  # ≥ F(Y): equal for a balanced factorisation
    return Certificate(lower_bound=lower, gap=max(objective - lower, 0.0), method=method)
