"""The vanishing-regularisation limit of the learnable model: a max-margin program (theory.md §15).

As the weight decay of theory.md §9 goes to zero, the normalised minimiser of the
learnable CE model tends to the solution of a nuclear-norm SVM over the class-mean
logits Z (row k = logits of class mean k):

    min_Z  ‖D^{1/2} Z‖_*     s.t.   T_kk Z_kk − T_kj Z_kj ≥ 1   for every k ≠ j,

with D = diag(p_k) the class proportions and T_kj the factor that multiplies
logit j of a class-k sample before the softmax. Plain CE has T = 1 (the SELI
geometry of Thrampoulidis et al. 2022); a class-dependent temperature a_j
(logits z_j/a_j, CDT and the multiplicative part of VS) gives T_kj = 1/a_j; a
per-sample temperature t_k (every logit of a class-k sample divided by t_k, the
label-dependent temperature of Behnia et al. 2023) gives T_kj = 1/t_k; both
together T_kj = 1/(t_k a_j). Additive logit adjustments (LA, LDAM) and class
weights do not survive the limit (theory.md §15.3).

Closed form (theory.md §15.2, any positive counts and temperatures):

    Z* = diag(t ⊙ a) · (I − a aᵀ/‖a‖²),     Y* = D^{1/2} Z* = E (I − a aᵀ/‖a‖²),
    E = diag(√p ⊙ t ⊙ a),

every margin equal to 1, optimal value ‖Y*‖_* = tr((P_a E² P_a)^{1/2}). The
balanced factors Y* = U S Vᵀ, W = V S^{1/2}, H = D^{-1/2} U S^{1/2} give the
classifier Gram W Wᵀ = (P_a E² P_a)^{1/2} and the class-mean Gram
D^{-1/2} (E P_a E)^{1/2} D^{-1/2}; with a = t = 1 these are (P D P)^{1/2} and
D^{-1/2} (D^{1/2} P D^{1/2})^{1/2} D^{-1/2}, P = I − 1 1ᵀ/K.

Certificate (weak duality, valid at any point Z): a point is first scaled so that
its smallest margin is exactly 1 (it is then feasible); for multipliers α_kj ≥ 0
and N_α with (N_α)_kk = T_kk Σ_j α_kj, (N_α)_kj = −T_kj α_kj, the optimal value
is at least Σ α / ‖D^{-1/2} N_α‖₂ (the dual norm of the nuclear norm is the
spectral norm). The multipliers are read from the point's own subgradient,
α_kj = max(0, −(D^{1/2} U Vᵀ)_kj / T_kj), which is exact at the optimum.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import LPMInputError
from .profiles import check_counts
from .solution import Certificate

#: losses whose vanishing-regularisation limit this module solves, and the one loss it solves
#: without further parameters; count-aware losses reach it through :func:`remedy_temperatures`
LIMIT_LOSSES = ("ce",)


def _positive_vector(name: str, values, K: int) -> np.ndarray:
    if values is None:
        return np.ones(K)
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape != (K,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise LPMInputError(name, values, f"{K} finite positive numbers (one per class)")
    return arr


def _weights(weights) -> np.ndarray:
    p = np.asarray(check_counts(weights), dtype=np.float64)
    p = p / p.max()  # no overflow of the sum for huge counts
    return p / p.sum()


def temperature_matrix(K: int, class_temperatures: Sequence[float] | None = None,
                       sample_temperatures: Sequence[float] | None = None) -> np.ndarray:
    """T (K×K): T_kj = 1/(t_k a_j), the factor on logit j of a class-k sample, for class
    temperatures a (logits z_j/a_j) and per-sample temperatures t (logits z/t_y); ``None`` = 1."""
    a = _positive_vector("class_temperatures", class_temperatures, K)
    t = _positive_vector("sample_temperatures", sample_temperatures, K)
    return 1.0 / np.outer(t, a)


def closed_form_logits(weights: Sequence[float], class_temperatures: Sequence[float] | None = None,
                       sample_temperatures: Sequence[float] | None = None) -> np.ndarray:
    """The optimal class-mean logits Z* = diag(t ⊙ a)(I − a aᵀ/‖a‖²) (module docstring).

    ``weights`` only fixes K here: the optimal logits do not depend on the counts."""
    K = len(_weights(weights))
    a = _positive_vector("class_temperatures", class_temperatures, K)
    t = _positive_vector("sample_temperatures", sample_temperatures, K)
    projector = np.eye(K) - np.outer(a, a) / float(a @ a)
    return (t * a)[:, None] * projector


def balanced_factors(weights: Sequence[float], Z: np.ndarray, d: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(W, H), both K×d, with H Wᵀ = Z and ½(‖W‖²_F + Σ_k p_k‖h_k‖²) = ‖D^{1/2} Z‖_*: the SVD
    Y = D^{1/2} Z = U S Vᵀ gives W = V S^{1/2} and H = D^{-1/2} U S^{1/2} (rank ≤ d needed)."""
    p = _weights(weights)
    K = len(p)
    d = K if d is None else int(d)
    root = np.sqrt(p)
    U, S, Vt = np.linalg.svd(root[:, None] * np.asarray(Z, dtype=np.float64))
    rank = int(np.sum(S > 1e-12 * max(S[0], 1e-300)))
    if rank > d:
        raise LPMInputError("d", d, f"an int >= {rank}, the rank of the max-margin logits")
    W = np.zeros((K, d))
    H = np.zeros((K, d))
    scale = np.sqrt(S[:rank])
    W[:, :rank] = Vt[:rank].T * scale
    H[:, :rank] = (U[:, :rank] * scale) / root[:, None]
    return W, H


def margins(T: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """m_kj = T_kk Z_kk − T_kj Z_kj (K×K, the diagonal set to +inf)."""
    M = T * Z
    out = np.diag(M)[:, None] - M
    np.fill_diagonal(out, np.inf)
    return out


def objective(weights: Sequence[float], W: np.ndarray, H: np.ndarray) -> float:
    """½(‖W‖²_F + Σ_k p_k ‖h_k‖²), the max-margin objective of a factored point."""
    p = _weights(weights)
    return 0.5 * (float(np.sum(W**2)) + float(p @ np.sum(H**2, axis=1)))


def certificate(weights: Sequence[float], T: np.ndarray, Z: np.ndarray,
                alpha: np.ndarray | None = None) -> tuple[Certificate, float]:
    """The dual bound of the module docstring at the logits Z, and the factor 1/min margin
    that makes Z feasible. ``alpha`` (K×K, e.g. a solver's multipliers) is tried beside the
    point's own subgradient multipliers; the better bound is kept."""
    p = _weights(weights)
    root = np.sqrt(p)
    Z = np.asarray(Z, dtype=np.float64)
    smallest = float(margins(T, Z).min())
    if not smallest > 0:
        return Certificate(method="max-margin dual", kkt_residual=float("inf")), float("nan")
    scale = 1.0 / smallest
    Y = root[:, None] * Z * scale
    U, S, Vt = np.linalg.svd(Y)
    value = float(S.sum())
    rank = int(np.sum(S > 1e-9 * S[0]))
    DG = root[:, None] * (U[:, :rank] @ Vt[:rank])  # D^{1/2} times a subgradient of ‖·‖_* at Y
    off = ~np.eye(len(p), dtype=bool)
    candidates = [np.where(off, np.maximum(-DG / T, 0.0), 0.0)]
    if alpha is not None:
        candidates.append(np.where(off, np.maximum(np.asarray(alpha, dtype=np.float64), 0.0), 0.0))
    best, best_kkt = -np.inf, np.inf
    for A in candidates:
        N = -T * A
        np.fill_diagonal(N, np.diag(T) * A.sum(axis=1))
        norm = float(np.linalg.svd(N / root[:, None], compute_uv=False)[0])
        if norm <= 0:
            continue
        bound = float(A.sum()) / norm
        if bound > best:
            best = bound
            # stationarity D^{1/2} G = N_α (α scaled to dual feasibility) and complementary slackness
            m = np.where(off, margins(T, Z * scale), 1.0)
            slack = float(np.max(A / norm * (m - 1.0)))
            best_kkt = max(float(np.abs(DG - N / norm).max()), slack)
    if not np.isfinite(best):
        return Certificate(method="max-margin dual", kkt_residual=float("inf")), scale
    return Certificate(lower_bound=best, gap=max(value - best, 0.0), kkt_residual=best_kkt,
                       method="max-margin dual"), scale


def seli_grams(weights: Sequence[float], class_temperatures: Sequence[float] | None = None,
               sample_temperatures: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The closed-form Gram matrices (W Wᵀ, H Hᵀ) of the balanced factors of Z*:
    (P_a E² P_a)^{1/2} and D^{-1/2} (E P_a E)^{1/2} D^{-1/2} (module docstring)."""
    p = _weights(weights)
    K = len(p)
    a = _positive_vector("class_temperatures", class_temperatures, K)
    t = _positive_vector("sample_temperatures", sample_temperatures, K)
    E = np.sqrt(p) * t * a
    Pa = np.eye(K) - np.outer(a, a) / float(a @ a)
    classifier = _psd_sqrt(Pa @ np.diag(E**2) @ Pa)
    inner = _psd_sqrt(E[:, None] * Pa * E[None, :])
    features = inner / np.sqrt(np.outer(p, p))
    return classifier, features


def _psd_sqrt(A: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh(0.5 * (A + A.T))
    w = np.where(w > 1e-13 * max(w[-1], 0.0), w, 0.0)  # the null direction's rounding would add sqrt(1e-17)
    return (V * np.sqrt(w)) @ V.T


def problem_temperatures(problem) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(class temperatures, per-sample temperatures) of a ``max-margin`` problem's loss in the limit:
    :func:`remedy_temperatures` of its loss, counts and ``gamma`` (a field of problems whose loss
    takes one); no loss of the registry sets per-sample temperatures."""
    return remedy_temperatures(problem.loss, problem.counts, getattr(problem, "gamma", None)), None


def remedy_temperatures(loss: str, counts: Sequence[float], gamma: float | None = None) -> np.ndarray | None:
    """The class temperatures a_j of a count-aware loss in the vanishing-regularisation limit
    (theory.md §15.3): ``cdt`` divides logit j by a_j = (n_max/n_j)^γ; ``vs`` multiplies it by
    Δ_j = (n_j/n_max)^γ, the same a_j, and its additive τ log π_j vanishes in the limit; ``la``
    and ``ldam`` only add to the logits, so their limit is plain CE's (``None``); so is ``ce``'s."""
    n = np.asarray(check_counts(counts), dtype=np.float64)
    if loss in ("ce", "la", "ldam"):
        return None
    if loss in ("cdt", "vs"):
        if gamma is None or not np.isfinite(gamma):
            raise LPMInputError("gamma", gamma, f"a finite number (the exponent of the '{loss}' temperatures)")
        return (n.max() / n) ** float(gamma)
    raise LPMInputError("loss", loss, "one of ce, la, ldam, cdt, vs (losses with a max-margin limit)")
