"""Collapse geometry: one definition for the simulator and for deep runs (theory.md §8).

Inputs are class means μ_k (K×d), classifier rows w_k (K×d) and, where
available, the within-class covariance Σ_W (d×d). Deep runs feed batches to
:class:`ClassStats`, :class:`ClassificationStats` and
:class:`NearestMeanAgreement`, so no run ever holds all its features at once.

Centre. Cosines and NC metrics use centred means μ_k − μ_G. ``center`` picks
μ_G: ``"class-means"`` (unweighted mean of the class means; the default,
under which a simplex ETF stays exactly an ETF whatever the counts),
``"global"`` (count-weighted mean of all samples) or ``"none"``.

Norm-aware collapse (theory.md §4.3). A cosine between near-zero vectors is
noise, so group cosines only use vectors whose norm exceeds ``norm_tol`` times
the mean norm over all classes (``None`` when fewer than two remain), and

    collapse_index = mean_{k<k' minority} ‖v_k − v_k'‖ / (mean_j ‖v_j‖ · sqrt(2K/(K−1)))

is 1 for a simplex ETF with equal norms and 0 when the minority vectors
merge, and stays defined when minority norms go to 0 because the scale is the
mean norm over every class.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .etf import etf_gram

CENTERS = ("class-means", "global", "none")


def _np(x) -> np.ndarray:
    """Accept numpy arrays or torch tensors; return float64 numpy."""
    if hasattr(x, "detach"):
        x = x.detach().to("cpu").double().numpy()
    return np.asarray(x, dtype=np.float64)


def _labels(y) -> np.ndarray:
    if hasattr(y, "detach"):
        y = y.detach().to("cpu").numpy()
    return np.asarray(y).astype(np.int64).ravel()


def _none_if_nan(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# ---------------------------------------------------------------- streaming
class ClassStats:
    """Streaming class means and within-class covariance, in float64.

    Uses per-class shifts c_k (the first sample seen of class k) so that

        N Σ_W = Σ_i (h_i − c_{y_i})(h_i − c_{y_i})ᵀ − Σ_k n_k (μ_k − c_k)(μ_k − c_k)ᵀ

    avoids the cancellation of raw second moments. Memory: K×d + d×d.
    """

    def __init__(self, num_classes: int, dim: int):
        self.K, self.d = int(num_classes), int(dim)
        self.counts = np.zeros(self.K)
        self._shift = np.zeros((self.K, self.d))
        self._has_shift = np.zeros(self.K, dtype=bool)
        self._sum = np.zeros((self.K, self.d))       # Σ (h − c_y)
        self._scatter = np.zeros((self.d, self.d))   # Σ (h − c_y)(h − c_y)ᵀ

    def update(self, features, labels) -> None:
        H, y = _np(features), _labels(labels)
        for k in np.unique(y):
            if not self._has_shift[k]:
                self._shift[k] = H[np.argmax(y == k)]
                self._has_shift[k] = True
        D = H - self._shift[y]
        np.add.at(self._sum, y, D)
        self.counts += np.bincount(y, minlength=self.K)
        self._scatter += D.T @ D

    @property
    def num_samples(self) -> int:
        return int(self.counts.sum())

    @property
    def means(self) -> np.ndarray:
        n = np.maximum(self.counts, 1)[:, None]
        return self._shift + self._sum / n

    @property
    def global_mean(self) -> np.ndarray:
        return (self.counts @ self.means) / max(self.num_samples, 1)

    @property
    def within_cov(self) -> np.ndarray:
        n = np.maximum(self.counts, 1)[:, None]
        mean_shift = self._sum / n
        S = self._scatter - (self.counts[:, None] * mean_shift).T @ mean_shift
        S = 0.5 * (S + S.T) / max(self.num_samples, 1)
        return S


class ClassificationStats:
    """Streaming accuracy, per-class and group accuracy, and ECE (15 bins)."""

    def __init__(self, num_classes: int, groups: tuple[np.ndarray, tuple[str, ...]] | None = None, bins: int = 15):
        self.K, self.bins = int(num_classes), bins
        self.groups = groups
        self.correct = np.zeros(self.K)
        self.total = np.zeros(self.K)
        self.bin_count = np.zeros(bins)
        self.bin_conf = np.zeros(bins)
        self.bin_correct = np.zeros(bins)

    def update(self, logits, labels) -> None:
        Z, y = _np(logits), _labels(labels)
        Z = Z - Z.max(axis=1, keepdims=True)
        P = np.exp(Z)
        P /= P.sum(axis=1, keepdims=True)
        conf, pred = P.max(axis=1), P.argmax(axis=1)
        hit = (pred == y).astype(np.float64)
        np.add.at(self.correct, y, hit)
        np.add.at(self.total, y, 1.0)
        b = np.minimum((conf * self.bins).astype(int), self.bins - 1)
        np.add.at(self.bin_count, b, 1.0)
        np.add.at(self.bin_conf, b, conf)
        np.add.at(self.bin_correct, b, hit)

    def result(self) -> dict[str, Any]:
        n = self.total.sum()
        per_class = np.where(self.total > 0, self.correct / np.maximum(self.total, 1), np.nan)
        ece = float(np.abs(self.bin_conf - self.bin_correct).sum() / max(n, 1))
        out: dict[str, Any] = {
            "accuracy": float(self.correct.sum() / max(n, 1)),
            "per_class_accuracy": [_none_if_nan(a) for a in per_class],
            "ece": ece,
        }
        if self.groups is not None:
            ids, names = self.groups
            for g, name in enumerate(names):
                mask = ids == g
                tot = self.total[mask].sum()
                out[f"{name}_accuracy"] = float(self.correct[mask].sum() / tot) if tot else None
        return out


class NearestMeanAgreement:
    """NC4: fraction of samples where argmax logits ≠ the nearest class mean."""

    def __init__(self, means):
        self.means = _np(means)
        self.disagree = 0
        self.total = 0

    def update(self, features, logits) -> None:
        H, Z = _np(features), _np(logits)
        d2 = (H**2).sum(1)[:, None] - 2 * H @ self.means.T + (self.means**2).sum(1)[None, :]
        self.disagree += int((d2.argmin(axis=1) != Z.argmax(axis=1)).sum())
        self.total += H.shape[0]

    def result(self) -> float | None:
        return self.disagree / self.total if self.total else None


def class_groups(num_classes: int | None = None, counts=None, scheme: str = "index"):
    """Head/medium/tail group ids (K,) and names (theory.md §7).

    ``index``: [0,3)/[3,7)/[7,10) for 10 classes, [0,36)/[36,71)/[71,100) for
    100, and the same proportions otherwise. ``count``: many (>100),
    medium (20–100), few (<20) samples.
    """
    if scheme == "count":
        c = np.asarray(counts, dtype=np.float64)
        ids = np.where(c > 100, 0, np.where(c >= 20, 1, 2))
        return ids, ("many", "medium", "few")
    K = int(num_classes if num_classes is not None else len(counts))
    if K == 10:
        edges = (3, 7)
    elif K == 100:
        edges = (36, 71)
    else:
        edges = (round(0.36 * K), round(0.71 * K))
    idx = np.arange(K)
    return np.where(idx < edges[0], 0, np.where(idx < edges[1], 1, 2)), ("head", "medium", "tail")


# ---------------------------------------------------------------- metrics
def centre_means(means, counts=None, center: str = "class-means") -> np.ndarray:
    """Return μ_k − μ_G for the chosen centre (see module docstring)."""
    M = _np(means)
    if center == "none":
        return M
    if center == "global":
        c = np.ones(len(M)) if counts is None else _np(counts)
        return M - (c @ M) / c.sum()
    if center == "class-means":
        return M - M.mean(axis=0)
    raise ValueError(f"center must be one of {CENTERS}, got {center!r}")


def nc1(within_cov, centred_means, rel_tol: float = 1e-10) -> float:
    """NC1 = (1/K) tr(Σ_W Σ_B^†), Σ_B = (1/K) M̃ᵀM̃, via the SVD of M̃.

    With M̃ = U S Vᵀ, tr(Σ_W Σ_B^†) = Σ_j (K/s_j²) v_jᵀ Σ_W v_j over s_j above
    ``rel_tol``·s_max; each term is clipped at 0 (Σ_W is PSD), so the value
    can never come out negative as naive pseudo-inverses have.
    """
    M = _np(centred_means)
    K = M.shape[0]
    _, s, Vt = np.linalg.svd(M, full_matrices=False)
    keep = s > rel_tol * max(s.max(initial=0.0), 1e-300)
    if not keep.any():
        return float("nan")
    V = Vt[keep]
    quad = np.einsum("jd,de,je->j", V, _np(within_cov), V)
    return float(np.sum(np.maximum(quad, 0.0) * K / s[keep] ** 2) / K)


def _unit(V: np.ndarray) -> np.ndarray:
    return V / np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-300)


def _pair_cos(V: np.ndarray, idx, norm_tol: float, scale: float):
    """Cosines over pairs within ``idx`` whose norms exceed norm_tol·scale."""
    idx = np.asarray(idx)
    idx = idx[np.linalg.norm(V[idx], axis=1) > norm_tol * scale]
    if len(idx) < 2:
        return np.array([])
    U = _unit(V[idx])
    G = U @ U.T
    return G[np.triu_indices(len(idx), 1)]


def _cross_cos(V: np.ndarray, a, b, norm_tol: float, scale: float):
    norms = np.linalg.norm(V, axis=1)
    a = np.asarray(a)[norms[a] > norm_tol * scale]
    b = np.asarray(b)[norms[b] > norm_tol * scale]
    if len(a) == 0 or len(b) == 0:
        return np.array([])
    return (_unit(V[a]) @ _unit(V[b]).T).ravel()


def _mean(x) -> float | None:
    return float(np.mean(x)) if len(x) else None


def _std(x) -> float | None:
    return float(np.std(x)) if len(x) else None


def collapse_index(V, group, scale_all: bool = True) -> float | None:
    """mean pairwise ‖v_k − v_k'‖ over ``group`` / (mean norm of all rows · sqrt(2K/(K−1)))."""
    V = _np(V)
    K = V.shape[0]
    group = np.asarray(group)
    if len(group) < 2:
        return None
    scale = np.linalg.norm(V, axis=1).mean() * np.sqrt(2 * K / (K - 1))
    if scale <= 1e-300:
        return None
    D = V[group][:, None, :] - V[group][None, :, :]
    dist = np.linalg.norm(D, axis=2)[np.triu_indices(len(group), 1)]
    return float(dist.mean() / scale)


def gram_distance_to_etf(V) -> float:
    """‖G/‖G‖_F − G_ETF/‖G_ETF‖_F‖_F for G = V Vᵀ (V: K×d, centred means or W)."""
    V = _np(V)
    G = V @ V.T
    E = etf_gram(V.shape[0])
    return float(np.linalg.norm(G / max(np.linalg.norm(G), 1e-300) - E / np.linalg.norm(E)))


def _equiangle(V, norm_tol, scale):
    K = V.shape[0]
    c = _pair_cos(V, np.arange(K), norm_tol, scale)
    return _std(c), (float(np.mean(np.abs(c + 1.0 / (K - 1)))) if len(c) else None)


def _equinorm(V) -> float | None:
    n = np.linalg.norm(V, axis=1)
    return float(n.std() / n.mean()) if n.mean() > 1e-300 else None


def measure(means, W, *, counts=None, within_cov=None, majority: int | None = None,
            groups=None, center: str = "class-means", norm_tol: float = 1e-4) -> dict[str, Any]:
    """Every collapse metric of theory.md §8 as one flat, JSON-safe dict.

    means, W: (K, d). within_cov: (d, d) or None (NC1 then None).
    majority: K_A — classes [0, K_A) majority, the rest minority.
    groups: (ids (K,), names) from :func:`class_groups`, for head/medium/tail.
    """
    M, W = _np(means), _np(W)
    K = M.shape[0]
    C = centre_means(M, counts, center)
    out: dict[str, Any] = {"center": center}
    out["nc1"] = None if within_cov is None else _none_if_nan(nc1(within_cov, C))
    out["nc2"] = gram_distance_to_etf(C)
    out["nc2_classifier"] = gram_distance_to_etf(W)
    out["nc2_equinorm_features"] = _equinorm(C)
    out["nc2_equinorm_classifier"] = _equinorm(W)
    sF, sW = np.linalg.norm(C, axis=1).mean(), np.linalg.norm(W, axis=1).mean()
    out["nc2_equiangle_std_features"], out["nc2_equiangle_features"] = _equiangle(C, norm_tol, sF)
    out["nc2_equiangle_std_classifier"], out["nc2_equiangle_classifier"] = _equiangle(W, norm_tol, sW)
    nW, nC = np.linalg.norm(W), np.linalg.norm(C)
    out["nc3"] = float(np.linalg.norm(W / max(nW, 1e-300) - C / max(nC, 1e-300)))
    out.update(_y22_statistics(C, W, norm_tol, sF, sW))
    if majority is not None:
        out.update(_group_metrics(M, C, W, {"majority": np.arange(majority), "minority": np.arange(majority, K)},
                                  norm_tol, sF, sW))
        out["collapse_index"] = collapse_index(W, np.arange(majority, K))
        out["feature_collapse_index"] = collapse_index(C, np.arange(majority, K))
        out["classifier_norm_ratio"] = _ratio(W, majority)
        out["feature_norm_ratio"] = _ratio(M, majority)
    if groups is not None:
        ids, names = groups
        out.update(_group_metrics(M, C, W, {n: np.flatnonzero(ids == g) for g, n in enumerate(names)},
                                  norm_tol, sF, sW, cross=False))
    return out


def _ratio(V, majority) -> float | None:
    n = np.linalg.norm(V, axis=1)
    big = n[:majority].mean()
    return float(n[majority:].mean() / big) if big > 1e-300 else None


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
    UC, UW = _unit(C), _unit(W)
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
    M, W = _np(means), _np(W)
    C = centre_means(M, counts, center)
    cos = np.clip(np.sum(_unit(C) * _unit(W), axis=1), -1, 1)
    return {"feature_norm": np.linalg.norm(M, axis=1), "classifier_norm": np.linalg.norm(W, axis=1),
            "angle_deg": np.degrees(np.arccos(cos))}


def measure_solution(solution, center: str = "class-means", **kwargs) -> dict[str, Any]:
    """:func:`measure` for an :class:`lpm.Solution`.

    With per-sample features the within-class covariance comes from them;
    for class-mean solvers every sample sits on its class mean (the optimum
    is collapsed, theory.md §4), so Σ_W = 0 and NC1 = 0.
    """
    p = solution.problem
    if solution.features is not None:
        stats = ClassStats(p.K, solution.features.shape[1])
        stats.update(solution.features, solution.labels)
        within = stats.within_cov
    else:
        within = np.zeros((solution.H.shape[1],) * 2)
    return measure(solution.H, solution.W, counts=np.asarray(p.counts), within_cov=within,
                   majority=p.majority, center=center, **kwargs)
