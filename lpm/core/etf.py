"""Simplex equiangular tight frames (theory.md §2).

A simplex ETF with K vertices in R^d is the d×K matrix

    M = sqrt(K/(K-1)) · U (I_K − 1 1ᵀ/K),   Uᵀ U = I_K,

whose columns m_k have unit norm, pairwise inner product −1/(K−1) and sum 0.
For d = K−1 the same frame is written in an orthonormal basis of 1^⊥.
The same construction is used by the simulator and by the deep heads of
``full_model`` so that a fixed classifier means one thing everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import LPMInputError, check_number


def random_orthonormal(d: int, k: int, seed: int | None) -> np.ndarray:
    """Uniform (Haar) random d×k matrix with orthonormal columns.

    Q factor of a Gaussian matrix with column signs fixed by sign(diag R),
    which makes the draw uniform on the Stiefel manifold.
    """
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((d, k)))
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    return q * signs


def simplex_etf(num_classes: int, dim: int | None = None, seed: int | None = 0) -> np.ndarray:
    """Return a simplex ETF ``M`` of shape (dim, num_classes), float64.

    ``dim`` defaults to ``num_classes``; it may be as small as K−1.
    ``seed=None`` gives the canonical, unrotated frame; an integer seed draws
    a uniform random rotation of it.
    """
    K = check_number("K", num_classes, low=2, integer=True)
    d = K if dim is None else check_number("d", dim, low=1, integer=True)
    if d < K - 1:
        raise LPMInputError("d", d, f"an int >= K-1 = {K - 1} for a simplex ETF with K={K}")
    centre = np.eye(K) - np.ones((K, K)) / K
    if d >= K:
        U = np.eye(d, K) if seed is None else random_orthonormal(d, K, seed)
        return np.sqrt(K / (K - 1)) * U @ centre
    # d == K-1: coordinates in an orthonormal basis B (K×(K-1)) of 1^⊥.
    B = np.linalg.svd(centre)[0][:, : K - 1]  # singular values 1 (×K−1) and 0 (along 1)
    R = np.eye(K - 1) if seed is None else random_orthonormal(K - 1, K - 1, seed)
    return np.sqrt(K / (K - 1)) * R @ B.T @ centre


def random_unit_rows(num_classes: int, dim: int, seed: int | None = 0) -> np.ndarray:
    """K×d matrix of seeded Gaussian rows rescaled to unit norm: the
    ``fixed-random`` classifier (times sqrt(E_W)), for the simulator and the
    deep heads alike."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((num_classes, dim))
    return W / np.linalg.norm(W, axis=1, keepdims=True)


def etf_gram(num_classes: int) -> np.ndarray:
    """The K×K Gram matrix of a unit simplex ETF: 1 on the diagonal, −1/(K−1) off it."""
    K = num_classes
    return (K * np.eye(K) - np.ones((K, K))) / (K - 1)


@dataclass(frozen=True)
class ETFReport:
    """How far a d×K matrix is from a simplex ETF (all errors are max-abs)."""

    norm_error: float
    cosine_error: float
    sum_error: float

    @property
    def worst(self) -> float:
        return max(self.norm_error, self.cosine_error, self.sum_error)

    def ok(self, tol: float = 1e-8) -> bool:
        return self.worst <= tol


def check_etf(M: np.ndarray, scale: float | None = 1.0) -> ETFReport:
    """Measure the ETF properties of the columns of ``M`` (d×K).

    ``scale`` is the expected column norm; ``None`` accepts any common norm
    (the mean column norm is used).
    """
    M = np.asarray(M, dtype=np.float64)
    K = M.shape[1]
    norms = np.linalg.norm(M, axis=0)
    s = norms.mean() if scale is None else scale
    gram = (M.T @ M) / max(s * s, 1e-300)
    off = gram[~np.eye(K, dtype=bool)]
    return ETFReport(
        norm_error=float(np.abs(norms - s).max() / max(s, 1e-300)),
        cosine_error=float(np.abs(off + 1.0 / (K - 1)).max()),
        sum_error=float(np.linalg.norm(M.sum(axis=1)) / max(s, 1e-300)),
    )
