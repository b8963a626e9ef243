"""Optimality certificates that need no external solver.

For a fixed classifier the class-mean problem is convex in H (K×d):

    f(H) = Σ_k p_k L(W h_k, k),   H ∈ C,

with C the per-sample ball (‖h_k‖ ≤ sqrt(E_H) for every k) or the
class-average ball (Σ_k ‖h_k‖² ≤ K·E_H). Convexity gives, for any feasible H,

    f* ≥ f(H) + min_{H'∈C} ⟨∇f(H), H' − H⟩ = f(H) − gap_FW(H),

the Frank–Wolfe gap, whose linear minimisation over C is closed-form. The
bound also holds for the per-sample problem, whose optimum equals the
class-mean one (Jensen), so it certifies gradient runs on per-sample features.
"""
from __future__ import annotations

import numpy as np

from .losses import loss_and_grad
from .problem import Problem
from .solution import Certificate


def _grad_H(problem: Problem, W: np.ndarray, H: np.ndarray) -> tuple[float, np.ndarray]:
    values, G_logits = loss_and_grad(problem.loss, H @ W.T, np.arange(problem.K), problem.dr_target)
    p = problem.weights
    return float(p @ values), (p[:, None] * G_logits) @ W  # (K×d)


def project_features(problem: Problem, H: np.ndarray) -> np.ndarray:
    """Nearest point of the feature budget set (per-sample or class-average ball)."""
    H = np.asarray(H, dtype=np.float64)
    if problem.budget == "per-sample":
        r = np.sqrt(problem.E_H)
        norms = np.linalg.norm(H, axis=1, keepdims=True)
        return H * np.minimum(1.0, r / np.maximum(norms, 1e-300))
    radius = np.sqrt(problem.K * problem.E_H)
    total = np.linalg.norm(H)
    return H if total <= radius else H * (radius / total)


def fixed_classifier_certificate(problem: Problem, H: np.ndarray, W: np.ndarray | None = None) -> Certificate:
    """Frank–Wolfe lower bound and KKT residual for a fixed-classifier point H."""
    assert problem.fixed, "certificate applies to fixed classifiers"
    W = problem.fixed_classifier if W is None else W
    H = project_features(problem, H)
    value, G = _grad_H(problem, W, H)
    if problem.budget == "per-sample":
        r = np.sqrt(problem.E_H)
        gap = float(np.sum(G * H) + r * np.linalg.norm(G, axis=1).sum())
        # KKT: g_k = −2 μ_k h_k with μ_k ≥ 0 (and μ_k = 0 off the sphere).
        kkt = _ball_kkt(G, H, r)
    else:
        radius = np.sqrt(problem.K * problem.E_H)
        gap = float(np.sum(G * H) + radius * np.linalg.norm(G))
        kkt = _ball_kkt(G.reshape(1, -1), H.reshape(1, -1), radius)
    gap = max(gap, 0.0)
    return Certificate(lower_bound=value - gap, gap=gap, kkt_residual=kkt, method="frank-wolfe")


def _ball_kkt(G: np.ndarray, H: np.ndarray, radius: float) -> float:
    """Residual of g = −λ h, λ ≥ 0 (λ = 0 unless ‖h‖ = radius), row by row."""
    res = 0.0
    for g, h in zip(G, H):
        nh = np.linalg.norm(h)
        if nh < radius * (1 - 1e-9):
            res = max(res, float(np.linalg.norm(g)))
            continue
        u = h / nh
        radial = float(g @ u)
        res = max(res, float(np.linalg.norm(g - radial * u)), max(radial, 0.0))
    return res
