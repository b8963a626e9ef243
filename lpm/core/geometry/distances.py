"""Distances between geometries, and cosines (theory.md §8.2, §13).

Geometries are defined up to a rotation and a scale, so they are compared
through normalised Gram matrices,

    gram_distance(A, B) = ‖ G(A) − G(B) ‖_F,   G(V) = V Vᵀ / ‖V Vᵀ‖_F,

which lies in [0, √2] and is 0 exactly when A = c·B·Q for a scale c > 0 and
an orthogonal Q. It takes no cosine of a vanishing vector, so it stays
defined when minority norms go to 0. The simplex ETF (Gram matrix
(K·I − 11ᵀ)/(K−1), :func:`lpm.core.etf.etf_gram`) is the usual reference:
:func:`gram_distance_to_etf` is NC2's distance, :func:`etf_reference` a K×K
matrix whose rows realise it. :func:`geometry_distances` compares
(centred means, classifier) pairs: means, classifier, and "joint" (both
stacked after scaling each to unit Frobenius norm, which also sees NC3).
"""
from __future__ import annotations

import numpy as np

from ..etf import etf_gram
from .streaming import as_float_array


def normalised_gram(V) -> np.ndarray:
    """G(V) = V Vᵀ / ‖V Vᵀ‖_F for the rows of V (K×d)."""
    V = as_float_array(V)
    G = V @ V.T
    return G / max(np.linalg.norm(G), 1e-300)


def gram_distance(A, B) -> float:
    """‖G(A) − G(B)‖_F (A, B: K×· of any widths); in [0, √2]."""
    return float(np.linalg.norm(normalised_gram(A) - normalised_gram(B)))


def gram_distance_to_etf(V) -> float:
    """Gram distance of the rows of V (centred means or W) to the simplex ETF."""
    E = etf_gram(as_float_array(V).shape[0])
    return float(np.linalg.norm(normalised_gram(V) - E / np.linalg.norm(E)))


def etf_reference(num_classes: int) -> np.ndarray:
    """K×K matrix whose rows form a unit simplex ETF (Gram matrix :func:`lpm.core.etf.etf_gram`)."""
    vals, vecs = np.linalg.eigh(etf_gram(num_classes))
    return vecs * np.sqrt(np.maximum(vals, 0.0))


def _joint(C: np.ndarray, W: np.ndarray) -> np.ndarray:
    return np.vstack([C / max(np.linalg.norm(C), 1e-300), W / max(np.linalg.norm(W), 1e-300)])


def geometry_distances(C_run, W_run, C_ref, W_ref) -> dict[str, float]:
    """Gram distances of two (centred means, classifier) configurations: means, classifier, joint."""
    C_run, W_run, C_ref, W_ref = (as_float_array(a) for a in (C_run, W_run, C_ref, W_ref))
    return {"means": gram_distance(C_run, C_ref), "classifier": gram_distance(W_run, W_ref),
            "joint": gram_distance(_joint(C_run, W_run), _joint(C_ref, W_ref))}


def unit_rows(V: np.ndarray) -> np.ndarray:
    return V / np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-300)


def cosine_matrix(V, norm_tol: float = 1e-4) -> np.ndarray:
    """K×K cosines of the rows of V; rows with norm ≤ norm_tol·(mean row norm) give NaN (undefined)."""
    V = as_float_array(V)
    n = np.linalg.norm(V, axis=1)
    ok = n > norm_tol * max(n.mean(), 1e-300)
    C = unit_rows(V) @ unit_rows(V).T
    C[~ok, :] = np.nan
    C[:, ~ok] = np.nan
    return C


def max_other_cosine(V, zero_tol: float = 1e-8) -> np.ndarray:
    """Each row's largest cosine with another row (1 means merged); NaN for a
    row of norm ≤ zero_tol·(largest norm), which has no direction."""
    V = as_float_array(V)
    n = np.linalg.norm(V, axis=1)
    G = unit_rows(V) @ unit_rows(V).T
    np.fill_diagonal(G, -np.inf)
    out = G.max(axis=1)
    out[n <= zero_tol * max(n.max(), 1e-300)] = np.nan
    return out
