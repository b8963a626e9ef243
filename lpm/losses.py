"""Loss functions on logits, in NumPy (theory.md §4–§5).

Every function takes logits ``Z`` of shape (m, K) and labels ``y`` of shape
(m,), and returns per-row losses (m,) and, with ``grad=True``, the gradient
with respect to ``Z`` as well.

* ``ce``  : log Σ_j exp(z_j) − z_y
* ``dr``  : ½ (z_y − target)², target = sqrt(E_W E_H)         (Y22, Thm 2)
* ``mse`` : ½ ‖z − e_y‖²
"""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, softmax


def loss_and_grad(name: str, Z: np.ndarray, y: np.ndarray, target: float = 1.0):
    Z = np.asarray(Z, dtype=np.float64)
    rows = np.arange(Z.shape[0])
    if name == "ce":
        value = logsumexp(Z, axis=1) - Z[rows, y]
        G = softmax(Z, axis=1)
        G[rows, y] -= 1.0
    elif name == "dr":
        r = Z[rows, y] - target
        value = 0.5 * r**2
        G = np.zeros_like(Z)
        G[rows, y] = r
    elif name == "mse":
        E = Z.copy()
        E[rows, y] -= 1.0
        value = 0.5 * (E**2).sum(axis=1)
        G = E
    else:
        raise ValueError(f"unknown loss {name!r}")
    return value, G


def class_mean_objective(problem, W: np.ndarray, H: np.ndarray) -> float:
    """Σ_k p_k L(W h_k, k) for class means H (K×d) and classifier W (K×d)."""
    y = np.arange(problem.K)
    value, _ = loss_and_grad(problem.loss, H @ W.T, y, problem.dr_target)
    return float(problem.weights @ value)
