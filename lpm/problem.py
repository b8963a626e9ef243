"""The one description of a layer-peeled problem (theory.md §4–§5).

A :class:`Problem` is immutable and validated when it is built. Every
solver, sweep cell and deep-run overlay starts from one.

Objective, with p_k = n_k/N the class proportions and h_k the class means
(collapse onto means never hurts a convex loss, by Jensen):

    min  Σ_k p_k · L(W h_k, k)

subject to, for the classifier,
    learnable:          (1/K) Σ_k ‖w_k‖² ≤ E_W
    fixed-etf:          W = sqrt(E_W) · Mᵀ   (M a seeded simplex ETF, §2)
    fixed-random:       W has seeded Gaussian rows rescaled to ‖w_k‖² = E_W
and, for the features,
    per-sample:         ‖h_{k,i}‖² ≤ E_H for every sample          [Y22]
    class-average:      (1/K) Σ_k (1/n_k) Σ_i ‖h_{k,i}‖² ≤ E_H       [F21]
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np

from .errors import LPMInputError, check_choice, check_number
from .etf import simplex_etf
from .profiles import check_counts, profile_counts

CLASSIFIERS = ("learnable", "fixed-etf", "fixed-random")
LOSSES = ("ce", "dr", "mse")
BUDGETS = ("per-sample", "class-average")
DEFAULT_BUDGET = {"learnable": "class-average", "fixed-etf": "per-sample", "fixed-random": "per-sample"}


@dataclass(frozen=True)
class Problem:
    """A validated layer-peeled model.

    Attributes
    ----------
    counts:     class counts n_k (K numbers; only n_k/N enters the model).
    d:          feature dimension (defaults to K).
    classifier: ``learnable``, ``fixed-etf`` or ``fixed-random``.
    loss:       ``ce`` (cross-entropy), ``dr`` (dot regression, theory.md §5:
                ½(w_yᵀh − sqrt(E_W E_H))²) or ``mse`` (½‖Wh − e_y‖²).
    E_W, E_H:   norm budgets.
    budget:     ``per-sample`` or ``class-average`` (default: the paper's form
                for the classifier mode).
    majority:   K_A; classes 0…K_A−1 are the majority, the rest the minority
                (for metrics). Defaults to K//2.
    seed:       seeds the fixed classifier (ETF rotation or random draw).
    profile, ratio: how the counts were made (provenance only).
    """

    counts: tuple[float, ...]
    d: int | None = None
    classifier: str = "learnable"
    loss: str = "ce"
    E_W: float = 1.0
    E_H: float = 5.0
    budget: str | None = None
    majority: int | None = None
    seed: int = 0
    profile: str = "explicit"
    ratio: float | None = None

    def __post_init__(self):
        counts = check_counts(self.counts)
        K = len(counts)
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("counts", counts)
        check_choice("classifier", self.classifier, CLASSIFIERS)
        check_choice("loss", self.loss, LOSSES)
        set_("E_W", check_number("E_W", self.E_W, low=0, low_open=True))
        set_("E_H", check_number("E_H", self.E_H, low=0, low_open=True))
        set_("budget", DEFAULT_BUDGET[self.classifier] if self.budget is None
             else check_choice("budget", self.budget, BUDGETS))
        d = K if self.d is None else check_number("d", self.d, low=1, integer=True)
        if self.classifier == "fixed-etf" and d < K - 1:
            raise LPMInputError("d", d, f"an int >= K-1 = {K - 1} for a fixed simplex ETF with K={K}")
        set_("d", d)
        KA = K // 2 if self.majority is None else check_number("majority", self.majority, low=1, high=K - 1, integer=True)
        set_("majority", KA)
        set_("seed", check_number("seed", self.seed, low=0, integer=True))
        if self.ratio is not None:
            set_("ratio", check_number("ratio", self.ratio, low=1))

    # ----------------------------------------------------------- builders
    @classmethod
    def from_profile(cls, K: int = 10, ratio: float = 100.0, profile: str = "step",
                     majority: int | None = None, n_max: float | None = None, **kwargs) -> "Problem":
        """Build from a named profile: ``step`` (K_A = ``majority``) or ``exp``."""
        counts = profile_counts(profile, K, ratio, majority, n_max)
        if profile == "exp" and majority is None:
            majority = check_number("K", K, low=2, integer=True) // 2
        return cls(counts=counts, majority=majority, profile=profile, ratio=float(ratio), **kwargs)

    @classmethod
    def from_counts(cls, counts: Sequence[float], **kwargs) -> "Problem":
        return cls(counts=tuple(counts), profile="explicit", **kwargs)

    def replace(self, **changes) -> "Problem":
        return dataclasses.replace(self, **changes)

    # ----------------------------------------------------------- derived
    @property
    def K(self) -> int:
        return len(self.counts)

    @property
    def num_classes(self) -> int:
        return self.K

    @cached_property
    def weights(self) -> np.ndarray:
        """Class proportions p_k = n_k / N, shape (K,)."""
        c = np.asarray(self.counts, dtype=np.float64)
        return c / c.sum()

    @property
    def minority(self) -> np.ndarray:
        """Indices of the minority classes K_A … K−1."""
        return np.arange(self.majority, self.K)

    @property
    def majority_classes(self) -> np.ndarray:
        return np.arange(self.majority)

    @property
    def fixed(self) -> bool:
        return self.classifier != "learnable"

    @property
    def dr_target(self) -> float:
        """The DR target value sqrt(E_W · E_H) (theory.md §5)."""
        return float(np.sqrt(self.E_W * self.E_H))

    @cached_property
    def fixed_classifier(self) -> np.ndarray | None:
        """The fixed W (K×d) for fixed modes, ``None`` for ``learnable``."""
        if self.classifier == "fixed-etf":
            return np.sqrt(self.E_W) * simplex_etf(self.K, self.d, self.seed).T
        if self.classifier == "fixed-random":
            rng = np.random.default_rng(self.seed)
            W = rng.standard_normal((self.K, self.d))
            return np.sqrt(self.E_W) * W / np.linalg.norm(W, axis=1, keepdims=True)
        return None

    def describe(self) -> dict:
        """Plain-dict form of every field (for tables and JSON)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["counts"] = list(self.counts)
        out["K"] = self.K
        return out

    def __hash__(self):
        return hash(tuple(getattr(self, f.name) for f in dataclasses.fields(self)))
