"""Collapse thresholds: the phase diagram of theory.md §10.5 and §9's formulas.

**LPM threshold R*** (theory.md §4.3). For the learnable CE layer-peeled model
with a step profile, the minority classifiers merge exactly beyond a finite
ratio R*. Two independent definitions are computed from certified solves:

* *index*: bisection in log R on "collapsed" := norm-aware collapse index
  (:func:`lpm.geometry.collapse_index` of the minority rows of W) below
  ``index_threshold`` (default 1e-3);
* *KKT* *(derived)*: in the nuclear form (theory.md §4.2) with logit matrix
  Z = W H̄ᵀ and gradient G = ∂f/∂Z (column k: p_k (softmax(z_k) − e_k)), the
  optimality condition is −G ∈ λ ∂‖Z‖_* with λ = ‖G‖₂. At a point whose
  minority rows are merged, G has singular value exactly p_B on the
  minority-centred subspace, so the merged point is optimal iff
  p_B ≤ λ. Below R* the same singular value equals λ and is p_B(1 − (s_kk −
  s_jk)) < p_B. Hence R*_KKT is the root of  log(λ(R)/p_B(R)) = 0, found by
  Brent's method in log R.

**Regularised UFM** (theory.md §9):

    min_{W,H} (1/N) Σ_k n_k L(W h_k, k) + (λ_W/2)‖W‖²_F + (λ_H/2) Σ_k n_k ‖h_k‖²

(features collapsed to class means, which is optimal by Jensen). Theory.md
§9 predicts, for CE with two groups, minority collapse iff n_B ≤ N² λ_W λ_H,
and for MSE that class k vanishes iff n_k ≤ N² λ_W λ_H. With the step counts
n_A = R, n_B = 1 (N = K_A R + K_B) both give R*_formula = (1/sqrt(λ_W λ_H) −
K_B)/K_A. :func:`solve_regularised` checks this by L-BFGS on the factored
(W, H) objective — not on the nuclear reduction the formula was derived from.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.optimize import brentq, minimize

from .errors import check_number
from .geometry import collapse_index
from .losses import loss_and_grad
from .sweep.grid import Cell, as_tuple, canonical_float
from .sweep.tasks import jsonable, register_task

#: the stated definition of "collapsed" for the index threshold
DEFAULT_INDEX_THRESHOLD = 1e-3
#: every classifier row below this norm: the regularised solution is 0 and
#: the collapse index (a ratio of norms) is undefined
VANISHED = 1e-4


# ------------------------------------------------------------ LPM threshold
def lpm_problem(K: int, majority: int, ratio: float, ewh: float):
    """Learnable CE LPM with step profile, E_W = 1, E_H = E_W·E_H product."""
    from .problem import Problem

    return Problem.from_profile(K=K, ratio=ratio, profile="step", majority=majority, classifier="learnable",
                                loss="ce", E_W=1.0, E_H=ewh, budget="class-average")


def kkt_collapse_margin(solution) -> float:
    """log(λ / p_B): ≥ 0 iff merged minority classifiers satisfy the KKT
    conditions (see module docstring). Needs a learnable CE step problem."""
    p = solution.problem
    Z = solution.W @ solution.H.T  # (K×K), column k = logits of class mean k
    P = np.exp(Z - Z.max(axis=0, keepdims=True))
    P /= P.sum(axis=0, keepdims=True)
    G = (P - np.eye(p.K)) * p.weights[None, :]
    lam = np.linalg.norm(G, 2)
    return float(math.log(lam / p.weights[p.majority]))


def _bisect_log(collapsed, lo: float, hi: float, log10_tol: float) -> tuple[float, float]:
    """Shrink [lo, hi] (lo not collapsed, hi collapsed) to width log10_tol."""
    while math.log10(hi / lo) > log10_tol:
        mid = math.sqrt(lo * hi)
        if collapsed(mid):
            hi = mid
        else:
            lo = mid
    return lo, hi


def collapse_threshold(K: int, majority: int, ewh: float, solver: str = "nuclear",
                       settings: Mapping[str, Any] | None = None, bracket: Sequence[float] = (1.0, 1e6),
                       index_threshold: float = DEFAULT_INDEX_THRESHOLD, log10_tol: float = 0.01) -> dict:
    """R* by index bisection and by the KKT root, for one (K, K_A, E_W·E_H).

    Returns a flat dict; a threshold is ``None`` when the bracket's upper end
    is not yet collapsed (or its lower end already is).
    """
    from .solvers import get_solver

    engine = get_solver(solver, **dict(settings or {}))
    solves: dict[float, Any] = {}

    def solution(R: float):
        if R not in solves:
            solves[R] = engine.run(lpm_problem(K, majority, R, ewh))
        return solves[R]

    def index(R: float) -> float:
        value = collapse_index(solution(R).W, np.arange(majority, K))
        return 0.0 if value is None else value

    lo, hi = float(bracket[0]), float(bracket[1])
    out: dict[str, Any] = {"index_at_lo": index(lo), "index_at_hi": index(hi)}
    r_index = None
    if out["index_at_lo"] >= index_threshold > out["index_at_hi"]:
        a, b = _bisect_log(lambda R: index(R) < index_threshold, lo, hi, log10_tol)
        r_index = math.sqrt(a * b)
    n_index = len(solves)
    margin = lambda t: kkt_collapse_margin(solution(10.0**t))  # noqa: E731
    r_kkt = None
    m_lo, m_hi = margin(math.log10(lo)), margin(math.log10(hi))
    if m_lo < 0 <= m_hi:
        r_kkt = 10.0 ** brentq(margin, math.log10(lo), math.log10(hi), xtol=log10_tol / 10)
    statuses = {s.status.value for s in solves.values()}
    worst_gap = max((s.certificate.relative_gap or 0.0) for s in solves.values())
    out.update(ratio_star_index=r_index, ratio_star_kkt=r_kkt, kkt_margin_at_lo=m_lo, kkt_margin_at_hi=m_hi,
               solves_index=n_index, solves_total=len(solves), solver_statuses=",".join(sorted(statuses)),
               worst_relative_gap=worst_gap)
    return out


@dataclass(frozen=True)
class ThresholdGrid:
    """Grid of the ``threshold`` task: R* over K, K_A and E_W·E_H."""

    K: Sequence[int] = (10,)
    majority: Sequence[int] = (5,)
    ewh: Sequence[float] = (5.0,)
    solver: str = "nuclear"
    solver_settings: Mapping[str, Any] = field(default_factory=dict)
    bracket: Sequence[float] = (1.0, 1e6)
    index_threshold: float = DEFAULT_INDEX_THRESHOLD
    log10_tol: float = 0.01
    name: str = "threshold"

    task = "threshold"

    def __post_init__(self):
        for name in ("K", "majority", "ewh"):
            object.__setattr__(self, name, as_tuple(name, getattr(self, name)))
        check_number("index_threshold", self.index_threshold, low=0, low_open=True)
        check_number("log10_tol", self.log10_tol, low=0, low_open=True)

    def cells(self) -> list[Cell]:
        common = {"solver": self.solver, "settings": dict(self.solver_settings),
                  "bracket": [float(b) for b in self.bracket], "index_threshold": float(self.index_threshold),
                  "log10_tol": float(self.log10_tol)}
        return [Cell("threshold", {"K": K, "majority": KA, "ewh": canonical_float(e), **common}, self.name)
                for K in self.K for KA in self.majority for e in self.ewh]

    def to_dict(self) -> dict:
        return {"task": self.task, **asdict(self)}


@register_task("threshold")
def threshold_cell(spec: dict) -> dict:
    K = check_number("K", spec["K"], low=3, integer=True)
    KA = check_number("majority", spec["majority"], low=1, high=K - 2, integer=True)
    ewh = check_number("ewh", spec["ewh"], low=0, low_open=True)
    found = collapse_threshold(K, KA, ewh, spec["solver"], spec["settings"], spec["bracket"],
                               spec["index_threshold"], spec["log10_tol"])
    row = {"K": K, "majority": KA, "majority_fraction": KA / K, "ewh": ewh,
           "bracket_low": float(spec["bracket"][0]), "bracket_high": float(spec["bracket"][1]),
           **{k: jsonable(v) for k, v in found.items()}}
    found_both = row["ratio_star_index"] is not None and row["ratio_star_kkt"] is not None
    row["status"] = "ok" if found_both else "outside-bracket"
    return {"row": row, "tables": {}}


# ------------------------------------------------------- regularised UFM
def regularised_threshold(K: int, majority: int, lam: float) -> float:
    """R*_formula = (1/sqrt(λ_W λ_H) − K_B) / K_A for step counts n_A = R, n_B = 1."""
    return (1.0 / math.sqrt(lam) - (K - majority)) / majority


def solve_regularised(counts: Sequence[float], lam_W: float, lam_H: float, loss: str = "ce",
                      seed: int = 0, d: int | None = None, gtol: float = 1e-11) -> dict:
    """Minimise the regularised UFM (module docstring) by L-BFGS over (W, H).

    counts: n_k (K,); W, H: K×d. Returns W, H, the objective and the final
    gradient norm (a stationarity check).
    """
    n = np.asarray(counts, dtype=np.float64)
    K = len(n)
    d = K if d is None else d
    N, y = n.sum(), np.arange(K)

    def fun(x):
        W, H = x[: K * d].reshape(K, d), x[K * d:].reshape(K, d)
        values, G = loss_and_grad(loss, H @ W.T, y, 1.0)  # row k: logits of class k
        dZ = (n / N)[:, None] * G
        f = (n / N) @ values + 0.5 * lam_W * np.sum(W**2) + 0.5 * lam_H * np.sum(n[:, None] * H**2)
        gW = dZ.T @ H + lam_W * W
        gH = dZ @ W + lam_H * n[:, None] * H
        return f, np.concatenate([gW.ravel(), gH.ravel()])

    x0 = 0.1 * np.random.default_rng(seed).standard_normal(2 * K * d)
    res = minimize(fun, x0, jac=True, method="L-BFGS-B",
                   options={"maxiter": 20000, "maxcor": 30, "gtol": gtol, "ftol": 1e-15})
    W, H = res.x[: K * d].reshape(K, d), res.x[K * d:].reshape(K, d)
    return {"W": W, "H": H, "objective": float(res.fun), "grad_norm": float(np.linalg.norm(res.jac)),
            "iterations": int(res.nit), "message": str(res.message)}


@dataclass(frozen=True)
class RegularisedGrid:
    """Grid of the ``regularised`` task: loss × K × K_A × λ_W λ_H × R."""

    loss: Sequence[str] = ("ce", "mse")
    K: Sequence[int] = (10,)
    majority: Sequence[int] = (5,)
    lam: Sequence[float] = (1e-4,)
    ratio: Sequence[float] = (10.0, 100.0)
    lam_split: float = 1.0  # λ_W / λ_H; only the product should matter
    seed: int = 0
    name: str = "regularised"

    task = "regularised"

    def __post_init__(self):
        for name in ("loss", "K", "majority", "lam", "ratio"):
            object.__setattr__(self, name, as_tuple(name, getattr(self, name)))

    def cells(self) -> list[Cell]:
        return [Cell("regularised", {"loss": loss, "K": K, "majority": KA, "lam": canonical_float(lam),
                                     "ratio": canonical_float(R), "lam_split": float(self.lam_split),
                                     "seed": self.seed}, self.name)
                for loss in self.loss for K in self.K for KA in self.majority for lam in self.lam for R in self.ratio]

    def to_dict(self) -> dict:
        return {"task": self.task, **asdict(self)}


@register_task("regularised")
def regularised_cell(spec: dict) -> dict:
    from .profiles import step_counts

    K, KA, lam, R = spec["K"], spec["majority"], spec["lam"], spec["ratio"]
    counts = step_counts(K, R, KA)  # n_A = R, n_B = 1
    lam_W = math.sqrt(lam * spec["lam_split"])
    lam_H = lam / lam_W
    sol = solve_regularised(counts, lam_W, lam_H, spec["loss"], spec["seed"])
    N = float(sum(counts))
    w_norms = np.linalg.norm(sol["W"], axis=1)
    vanished = bool(w_norms.max() < VANISHED)
    row = {"loss": spec["loss"], "K": K, "majority": KA, "ratio": R, "lam": lam, "lam_W": lam_W, "lam_H": lam_H,
           "N": N, "n_minority": 1.0, "N2_lam": N * N * lam,
           "ratio_star_formula": regularised_threshold(K, KA, lam),
           "predicted_collapse": bool(1.0 <= N * N * lam),
           "predicted_majority_vanish": bool(R <= N * N * lam),  # MSE: class k vanishes iff n_k <= N² λ
           "all_vanished": vanished,
           "collapse_index": None if vanished else jsonable(collapse_index(sol["W"], np.arange(KA, K))),
           "minority_norm": float(w_norms[KA:].mean()), "majority_norm": float(w_norms[:KA].mean()),
           "objective": sol["objective"], "grad_norm": sol["grad_norm"], "iterations": sol["iterations"],
           "status": "ok"}
    return {"row": row, "tables": {}}
