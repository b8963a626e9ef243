"""Collapse metrics: one definition for the simulator and for deep runs (theory.md §8).

Inputs are class means μ_k (K×d), classifier rows w_k (K×d) and, where
available, the within-class covariance Σ_W (d×d) (from
:class:`lpm.core.geometry.streaming.ClassStats` for deep runs).

Centre. Cosines and NC metrics use centred means μ_k − μ_G. ``center`` picks
μ_G: ``"class-means"`` (unweighted mean of the class means; the default,
under which a simplex ETF stays exactly an ETF whatever the counts),
``"global"`` (count-weighted mean of all samples: the class counts are then
required) or ``"none"``.

Standard deviations are population ones (ddof = 0) throughout, covariances
divide by the number of samples; the one exception is :func:`unc3`'s
variance, which follows the NC library it reproduces (ddof = 1).

Norm-aware collapse (theory.md §4.3). A cosine between near-zero vectors is
noise, so group cosines only use vectors whose norm exceeds ``norm_tol`` times
the mean norm over all classes (``None`` when fewer than two remain), and

    collapse_index = mean_{k<k' minority} ‖v_k − v_k'‖ / (mean_j ‖v_j‖ · sqrt(2K/(K−1)))

is 1 for a simplex ETF with equal norms and 0 when the minority vectors
merge, and stays defined when minority norms go to 0 because the scale is the
mean norm over every class.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import LPMInputError
from .distances import gram_distance_to_etf, unit_rows
from .streaming import as_float_array, finite_or_none

CENTERS = ("class-means", "global", "none")


def centre_means(means, counts=None, center: str = "class-means") -> np.ndarray:
    """Return μ_k − μ_G for the chosen centre (see module docstring)."""
    M = as_float_array(means)
    if center == "none":
        return M
    if center == "global":
        if counts is None:
            raise LPMInputError("counts", None, "the class counts (K,) when center='global' (the count-weighted "
                                                "mean of all samples); use center='class-means' for the unweighted "
                                                "mean of the class means")
        c = as_float_array(counts)
        return M - (c @ M) / c.sum()
    if center == "class-means":
        return M - M.mean(axis=0)
    raise ValueError(f"center must be one of {CENTERS}, got {center!r}")


#: Σ_B eigenvalues below this fraction of the largest are treated as merged directions
#: (singular values of M̃ below 1e-3 of the largest): NC1 then reads the within-class spread
#: in the directions in which the classes are told apart (theory.md §8.1)
NC1_RANK_RTOL = 1e-6


def pinv_rank_rtol(num_classes: int, dim: int) -> float:
    """The relative cut-off on Σ_B's eigenvalues of a full Moore–Penrose pseudo-inverse:
    max(K, d)·ε (for d ≥ K the default of ``torch.linalg.pinv`` on the d×d matrix Σ_B), so that
    only numerically zero eigenvalues are dropped (theory.md §8.1)."""
    return max(int(num_classes), int(dim)) * float(np.finfo(np.float64).eps)


def between_class_basis(centred_means, rank_rtol: float = NC1_RANK_RTOL) -> tuple[np.ndarray, np.ndarray]:
    """(V, s): the right singular vectors (r×d) and singular values of M̃ whose
    Σ_B = M̃ᵀM̃/K eigenvalue s²/K is at least ``rank_rtol`` times the largest —
    the directions in which classes are told apart (theory.md §8.1)."""
    M = as_float_array(centred_means)
    _, s, Vt = np.linalg.svd(M, full_matrices=False)
    keep = s**2 >= rank_rtol * max(s.max(initial=0.0), 1e-300) ** 2
    keep &= s > 0
    return Vt[keep], s[keep]


def nc1(within_cov, centred_means, rank_rtol: float = NC1_RANK_RTOL, basis=None) -> float:
    """NC1 = (1/K) tr(Σ_W Σ_B^†), Σ_B = (1/K) M̃ᵀM̃, via the SVD of M̃ (theory.md §8.1).

    With M̃ = U S Vᵀ, tr(Σ_W Σ_B^†) = Σ_j (K/s_j²) v_jᵀ Σ_W v_j over the
    directions of :func:`between_class_basis` (pass it as ``basis`` to reuse
    it): a relative rank cut-off on Σ_B's spectrum, so that nearly merged class
    means (eigenvalues below ``rank_rtol``·λ_max) do not make NC1 blow up.
    Each term is clipped at 0 (Σ_W is PSD), so the value is never negative.
    NaN when no direction is left.
    """
    V, s = between_class_basis(centred_means, rank_rtol) if basis is None else basis
    if not len(s):
        return float("nan")
    K = as_float_array(centred_means).shape[0]
    quad = np.sum((V @ as_float_array(within_cov)) * V, axis=1)   # v_jᵀ Σ_W v_j
    return float(np.sum(np.maximum(quad, 0.0) * K / s**2) / K)


def nc1_trace_quotient(within_cov, centred_means) -> float:
    """tr(Σ_W) / tr(Σ_B), Σ_B = (1/K) M̃ᵀM̃ — the trace quotient of [Tirer et al. 2023] that the
    ``neural-collapse`` library calls ``covariance_ratio(..., metric="quotient")`` (theory.md §8.1).
    No inverse, hence no rank cut-off; NaN when the class means coincide."""
    C = as_float_array(centred_means)
    between = float(np.einsum("kd,kd->", C, C)) / C.shape[0]
    return float(np.trace(as_float_array(within_cov)) / between) if between > 0 else float("nan")


def cdnv(means, class_variances) -> float:
    """Class-distance normalised variance [Galanti et al. 2022], averaged over the pairs i < j:

        CDNV = mean_{i<j} (σ_i² + σ_j²) / (2 ‖μ_i − μ_j‖²),   σ_k² = tr Cov_k = E_k ‖h − μ_k‖²

    (σ_k² with ddof = 0; the means need no centring). ``inf`` when two means coincide."""
    M, v = as_float_array(means), as_float_array(class_variances).ravel()
    K = M.shape[0]
    if K < 2:
        return float("nan")
    i, j = np.triu_indices(K, 1)
    d2 = pair_distances(M) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (v[i] + v[j]) / (2.0 * d2)
    return float(np.mean(ratio))


def unc3(centred_means, W) -> dict[str, float | None]:
    """Uniform duality, UNC3 [Wu & Papyan 2024] (theory.md §8.3).

    ``unc3_dot_var``: the variance over classes of s_k = w_k·μ̃_k with ddof = 1, as the
    ``neural-collapse`` library reports it (``similarities(W, M, m_G).var()``);
    ``unc3_cos_cv``: std/mean (ddof = 0) of cos(w_k, μ̃_k), a scale-free companion defined here.
    Both are 0 when every class mean is aligned with its classifier row to the same degree."""
    C, W = as_float_array(centred_means), as_float_array(W)
    dots = np.sum(W * C, axis=1)
    cos = np.sum(unit_rows(W) * unit_rows(C), axis=1)
    mean_cos = float(cos.mean())
    return {"unc3_dot_var": float(np.var(dots, ddof=1)) if len(dots) > 1 else None,
            "unc3_cos_cv": float(cos.std() / abs(mean_cos)) if abs(mean_cos) > 1e-300 else None}


def gnc2(centred_means) -> dict[str, float | None]:
    """Hyperspherical uniformity, GNC2 [Liu et al. 2023; Wu & Papyan 2024] (theory.md §8.2).

    With u_k = μ̃_k/‖μ̃_k‖, the logarithmic inverse-distance kernel log(1/‖u_i − u_j‖) over the
    pairs i < j: ``gnc2`` is its variance (ddof = 0; what the ``neural-collapse`` library's
    ``kernel_stats(M, m_G, log_kernel)[1]`` reports; 0 for a simplex ETF, whose points are
    equidistant), ``gnc2_log_kernel_mean`` its mean (the logarithmic energy per pair; the ETF
    minimises it, at −½ log(2K/(K−1))). ``inf`` when two directions coincide."""
    U = unit_rows(as_float_array(centred_means))
    K = U.shape[0]
    if K < 2:
        return {"gnc2": None, "gnc2_log_kernel_mean": None}
    if len(np.unique(U, axis=0)) < K:           # two identical directions: the kernel is infinite
        return {"gnc2": float("inf"), "gnc2_log_kernel_mean": float("inf")}
    dist = pair_distances(U)
    with np.errstate(divide="ignore"):
        kernel = -np.log(dist)
    if not np.all(np.isfinite(kernel)):
        return {"gnc2": float("inf"), "gnc2_log_kernel_mean": float("inf")}
    return {"gnc2": float(np.var(kernel)), "gnc2_log_kernel_mean": float(np.mean(kernel))}


def _pair_cos(V: np.ndarray, idx, norm_tol: float, scale: float):
    """Cosines over pairs within ``idx`` whose norms exceed norm_tol·scale."""
    idx = np.asarray(idx)
    idx = idx[np.linalg.norm(V[idx], axis=1) > norm_tol * scale]
    if len(idx) < 2:
        return np.array([])
    U = unit_rows(V[idx])
    G = U @ U.T
    return G[np.triu_indices(len(idx), 1)]


def _cross_cos(V: np.ndarray, a, b, norm_tol: float, scale: float):
    norms = np.linalg.norm(V, axis=1)
    a = np.asarray(a)[norms[a] > norm_tol * scale]
    b = np.asarray(b)[norms[b] > norm_tol * scale]
    if len(a) == 0 or len(b) == 0:
        return np.array([])
    return (unit_rows(V[a]) @ unit_rows(V[b]).T).ravel()


def _mean(x) -> float | None:
    return float(np.mean(x)) if len(x) else None


def _std(x) -> float | None:
    return float(np.std(x)) if len(x) else None


#: largest number of float64 entries a block of exact row differences may hold (32 MB)
_BLOCK_ENTRIES = 1 << 22


def pair_distances(V) -> np.ndarray:
    """‖v_i − v_j‖ over the pairs i < j of the rows of V (m×d), in ``np.triu_indices(m, 1)`` order.

    The distances come from the Gram matrix of the rows centred at their mean (distances do
    not change), ‖v_i − v_j‖² = ‖v_i‖² + ‖v_j‖² − 2 v_iᵀv_j (O(m²) memory), except for pairs so
    close that this would cancel (squared distance below 1e-6 of the squared centred norms):
    those are recomputed from the exact differences, a block at a time."""
    U = as_float_array(V)
    if len(U) < 2:
        return np.zeros(0)
    U = U - U.mean(axis=0)
    sq = np.einsum("ij,ij->i", U, U)
    i, j = np.triu_indices(len(U), 1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * (U @ U.T))[i, j]
    dist = np.sqrt(np.maximum(d2, 0.0))
    close = np.flatnonzero(d2 <= 1e-6 * (sq[i] + sq[j]))
    block = max(1, _BLOCK_ENTRIES // max(U.shape[1], 1))
    for start in range(0, len(close), block):
        pairs = close[start:start + block]
        dist[pairs] = np.linalg.norm(U[i[pairs]] - U[j[pairs]], axis=1)
    return dist


def mean_pairwise_distance(V: np.ndarray) -> float:
    """Mean of ‖v_i − v_j‖ over the pairs i < j of the rows of V (m×d).

    Identical rows (a merged group, as the solvers return it) are counted
    once with their multiplicity: their pairs contribute exactly 0. Among the
    distinct rows, distances come from :func:`pair_distances`.
    """
    m = len(V)
    if m < 2:
        return 0.0
    U, multiplicity = np.unique(V, axis=0, return_counts=True)
    if len(U) < 2:
        return 0.0
    i, j = np.triu_indices(len(U), 1)
    weight = multiplicity[i] * multiplicity[j].astype(np.float64)
    return float(np.dot(weight, pair_distances(U)) / (m * (m - 1) / 2))


def collapse_index(V, group) -> float | None:
    """Norm-aware collapse index of the rows ``group`` of V (theory.md §8.6):
    mean pairwise ‖v_k − v_k'‖ over the group / (mean norm of all rows · sqrt(2K/(K−1))).
    1 for a simplex ETF with equal norms, 0 when the rows merge — or shrink:
    it counts a group whose norms go to 0 as collapsed."""
    V = as_float_array(V)
    K = V.shape[0]
    group = np.asarray(group)
    if len(group) < 2:
        return None
    scale = np.linalg.norm(V, axis=1).mean() * np.sqrt(2 * K / (K - 1))
    if scale <= 1e-300:
        return None
    return mean_pairwise_distance(V[group]) / scale


def angle_collapse_index(V, group, norm_tol: float = 1e-4) -> float | None:
    """Angle-only collapse index (theory.md §8.6): the same mean distance over the
    unit vectors of the group's rows, mean_{k<k'} ‖u_k − u_k'‖ / sqrt(2K/(K−1)),
    so that shrinking alone does not count. Rows with norm ≤ ``norm_tol`` times
    the mean row norm have no direction and are left out (``None`` when fewer
    than two remain). 1 for a simplex ETF, 0 for merged directions."""
    V = as_float_array(V)
    K = V.shape[0]
    norms = np.linalg.norm(V, axis=1)
    group = np.asarray(group)
    group = group[norms[group] > norm_tol * max(norms.mean(), 1e-300)]
    if len(group) < 2:
        return None
    return mean_pairwise_distance(unit_rows(V[group])) / np.sqrt(2 * K / (K - 1))


def _equiangle(V, norm_tol, scale):
    K = V.shape[0]
    c = _pair_cos(V, np.arange(K), norm_tol, scale)
    return _std(c), (float(np.mean(np.abs(c + 1.0 / (K - 1)))) if len(c) else None)


def _equinorm(V) -> float | None:
    n = np.linalg.norm(V, axis=1)
    return float(n.std() / n.mean()) if n.mean() > 1e-300 else None


def measure(means, W, *, counts=None, within_cov=None, balanced_within_cov=None, class_variances=None,
            majority: int | None = None, minority=None, groups=None, center: str = "class-means",
            norm_tol: float = 1e-4) -> dict[str, Any]:
    """Every collapse metric of theory.md §8 as one flat, JSON-safe dict.

    means, W: (K, d). within_cov: (d, d) or None (NC1 then None).
    NC1 comes twice: ``nc1`` with the rank cut-off :data:`NC1_RANK_RTOL` (its rank ``nc1_rank``)
    and ``nc1_pinv`` with the full pseudo-inverse (``nc1_pinv_rank``); the balanced forms alike.
    class_variances: (K,) tr Cov_k (ddof = 0) for CDNV, or None (CDNV then None).
    counts: (K,) samples per class; required with ``center="global"``.
    majority: K_A — classes [0, K_A) majority, the rest minority; or
    minority: the minority class indices themselves (any set; the rest are the majority).
    groups: (ids (K,), names) from :func:`class_groups`, for head/medium/tail.
    """
    M, W = as_float_array(means), as_float_array(W)
    K = M.shape[0]
    C = centre_means(M, counts, center)
    out: dict[str, Any] = {"center": center}
    full = between_class_basis(C, pinv_rank_rtol(K, M.shape[1]))      # one SVD for both bases
    cut = full[1] ** 2 >= NC1_RANK_RTOL * max(full[1].max(initial=0.0), 1e-300) ** 2
    basis = (full[0][cut], full[1][cut])
    for name, cov in (("nc1", within_cov), ("nc1_balanced", balanced_within_cov)):
        out[name] = None if cov is None else finite_or_none(nc1(cov, C, basis=basis))
        out[f"{name}_pinv"] = None if cov is None else finite_or_none(nc1(cov, C, basis=full))
        out[f"{name}_trace_quotient"] = None if cov is None else finite_or_none(nc1_trace_quotient(cov, C))
    out["nc1_rank"] = len(basis[1])
    out["nc1_pinv_rank"] = len(full[1])
    out["cdnv"] = None if class_variances is None else finite_or_none(cdnv(M, class_variances))
    out["nc2"] = gram_distance_to_etf(C)
    out["nc2_classifier"] = gram_distance_to_etf(W)
    out["nc2_equinorm_features"] = _equinorm(C)
    out["nc2_equinorm_classifier"] = _equinorm(W)
    sF, sW = np.linalg.norm(C, axis=1).mean(), np.linalg.norm(W, axis=1).mean()
    out["nc2_equiangle_std_features"], out["nc2_equiangle_features"] = _equiangle(C, norm_tol, sF)
    out["nc2_equiangle_std_classifier"], out["nc2_equiangle_classifier"] = _equiangle(W, norm_tol, sW)
    nW, nC = np.linalg.norm(W), np.linalg.norm(C)
    out["nc3"] = float(np.linalg.norm(W / max(nW, 1e-300) - C / max(nC, 1e-300)))
    out.update({k: finite_or_none(v) for k, v in {**gnc2(C), **unc3(C, W)}.items()})
    out.update(_y22_statistics(C, W, norm_tol, sF, sW))
    if minority is None and majority is not None:
        minority = np.arange(majority, K)
    if minority is not None:
        out.update(minority_geometry(M, W, minority, counts=counts, center=center, norm_tol=norm_tol))
    if groups is not None:
        ids, names = groups
        out.update(_group_metrics(M, C, W, {n: np.flatnonzero(ids == g) for g, n in enumerate(names)},
                                  norm_tol, sF, sW, cross=False))
    return out


def minority_geometry(means, W, minority, *, counts=None, center: str = "class-means",
                      norm_tol: float = 1e-4) -> dict[str, Any]:
    """The majority/minority part of :func:`measure`: group cosines and norms, the cross cosine,
    both collapse indices of the classifier and of the (centred) means, and the norm ratios."""
    M, W = as_float_array(means), as_float_array(W)
    K = M.shape[0]
    C = centre_means(M, counts, center)
    sF, sW = np.linalg.norm(C, axis=1).mean(), np.linalg.norm(W, axis=1).mean()
    minority = np.asarray(minority, dtype=int)
    rest = np.setdiff1d(np.arange(K), minority)
    out = _group_metrics(M, C, W, {"majority": rest, "minority": minority}, norm_tol, sF, sW)
    out["collapse_index"] = collapse_index(W, minority)
    out["feature_collapse_index"] = collapse_index(C, minority)
    out["angle_collapse_index"] = angle_collapse_index(W, minority, norm_tol)
    out["feature_angle_collapse_index"] = angle_collapse_index(C, minority, norm_tol)
    out["classifier_norm_ratio"] = _ratio(W, rest, minority)
    out["feature_norm_ratio"] = _ratio(M, rest, minority)
    return out


def _ratio(V, majority, minority) -> float | None:
    """Mean row norm of the minority over that of the majority (``None`` if either is empty)."""
    n = np.linalg.norm(V, axis=1)
    if not len(majority) or not len(minority) or n[majority].mean() <= 1e-300:
        return None
    return float(n[minority].mean() / n[majority].mean())


def _group_metrics(M, C, W, named, norm_tol, sF, sW, cross: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, idx in named.items():
        out[f"classifier_{name}_cos"] = _mean(_pair_cos(W, idx, norm_tol, sW))
        out[f"feature_{name}_cos"] = _mean(_pair_cos(C, idx, norm_tol, sF))
        out[f"classifier_{name}_norm"] = float(np.linalg.norm(W[idx], axis=1).mean()) if len(idx) else None
        out[f"feature_{name}_norm"] = float(np.linalg.norm(M[idx], axis=1).mean()) if len(idx) else None
    if cross and len(named) == 2:
        a, b = named.values()
        out["classifier_cross_cos"] = _mean(_cross_cos(W, a, b, norm_tol, sW))
        out["feature_cross_cos"] = _mean(_cross_cos(C, a, b, norm_tol, sF))
    return out


def _y22_statistics(C, W, norm_tol, sF, sW) -> dict[str, Any]:
    """[Y22]'s per-epoch statistics (theory.md §8) on centred means C and W."""
    K = C.shape[0]
    iu = np.triu_indices(K, 1)
    UC, UW = unit_rows(C), unit_rows(W)
    cos_mw = (UC @ UW.T)[iu]
    self_cos = np.sum(UC * UW, axis=1)
    cm, cw = _pair_cos(C, np.arange(K), norm_tol, sF), _pair_cos(W, np.arange(K), norm_tol, sW)
    gap = np.linalg.norm(C / max(np.linalg.norm(C), 1e-300) - W / max(np.linalg.norm(W), 1e-300)) ** 2
    return {
        "y22_cos_means_mean": _mean(cm), "y22_cos_means_std": _std(cm),
        "y22_cos_classifiers_mean": _mean(cw), "y22_cos_classifiers_std": _std(cw),
        "y22_cos_means_classifiers_mean": _mean(cos_mw), "y22_cos_means_classifiers_std": _std(cos_mw),
        "y22_self_cos_mean": _mean(self_cos), "y22_self_cos_std": _std(self_cos),
        "y22_gap": float(gap),
    }


def per_class_geometry(means, W, center: str = "class-means", counts=None) -> dict[str, np.ndarray]:
    """Per-class feature/classifier norms and the angle (degrees) between
    each centred mean and its classifier row — for long-tailed profile plots."""
    M, W = as_float_array(means), as_float_array(W)
    C = centre_means(M, counts, center)
    cos = np.clip(np.sum(unit_rows(C) * unit_rows(W), axis=1), -1, 1)
    return {"feature_norm": np.linalg.norm(M, axis=1), "classifier_norm": np.linalg.norm(W, axis=1),
            "angle_deg": np.degrees(np.arccos(cos))}


def measure_solution(solution, center: str = "class-means", **kwargs) -> dict[str, Any]:
    """:func:`measure` for an :class:`lpm.Solution`.

    With per-sample features (each vector of class k standing for n_k/s
    samples) Σ_W = Σ_k p_k Cov_k and Σ_W^bal = (1/K) Σ_k Cov_k come from them;
    for class-mean solvers every sample sits on its class mean (the optimum is
    collapsed, theory.md §4), so both are 0 and NC1 = 0.
    """
    p = solution.problem
    d = solution.H.shape[1]
    if solution.features is not None:
        F, y = as_float_array(solution.features), np.asarray(solution.labels)
        covs = np.stack([np.cov(F[y == k].T, bias=True).reshape(d, d) for k in range(p.K)])  # (K, d, d)
        within, balanced = np.einsum("k,kde->de", p.weights, covs), covs.mean(axis=0)
    else:
        within = balanced = np.zeros((d, d))
    return measure(solution.H, solution.W, counts=np.asarray(p.counts), within_cov=within,
                   balanced_within_cov=balanced, majority=p.majority, center=center, **kwargs)
