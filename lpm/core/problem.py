"""The one description of a layer-peeled problem (theory.md §4, §5, §9).

A :class:`Problem` is immutable and validated when it is built. Every
solver, sweep cell and deep-run overlay starts from one.

Objective, with p_k = π_k ω_k the class weights (π_k = n_k/N the class
proportions, ω_k = 1 unless ``class_weights`` says otherwise, theory.md §14)
and h_k the class means (collapse onto means never hurts a convex loss, by
Jensen; with class-sampling probabilities q, ``sampling``, p_k ∝ q_k ω_k);
L is the loss bound to the counts (``la``, ``cdt``, ``ldam``, ``vs``
depend on them):

    min  Σ_k p_k · L(W h_k, k)          (+ the weight-decay terms below)

subject to, for the classifier,
    learnable:          (1/K) Σ_k ‖w_k‖² ≤ E_W
    fixed-etf:          W = sqrt(E_W) · Mᵀ   (M a seeded simplex ETF, §2)
    fixed-random:       W = sqrt(E_W) · seeded Gaussian rows of unit norm
and the feature budget form (``budget``)
    per-sample:         ‖h_{k,i}‖² ≤ E_H for every sample          [Y22]
    class-average:      (1/K) Σ_k (1/n_k) Σ_i ‖h_{k,i}‖² ≤ E_H       [F21]
    weight-decay:       no constraint; the objective gains
                        (λ_W/2)‖W‖²_F (learnable only) + (λ_H/2) Σ_k n_k ‖h_k‖²
                        (theory.md §9: mean loss, penalty summed over
                        samples, so the absolute counts n_k matter).
    max-margin:         the weight-decay form's limit as λ → 0, normalised
                        (learnable only): min ½(‖W‖²_F + Σ_k p_k ‖h_k‖²)
                        s.t. every margin (W h_k)_k − (W h_k)_j ≥ 1
                        (theory.md §15; no E_W, E_H or λ enters).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np

from .errors import LPMInputError, check_choice, check_number, check_seed
from .etf import random_unit_rows, simplex_etf
from .losses import LOSS_NAMES, Loss, bind_loss, check_hyperparameters
from .profiles import check_counts, check_ratio, profile_counts
from .weighting import CLASS_WEIGHTS, check_beta, check_sampling, objective_weights

CLASSIFIERS = ("learnable", "fixed-etf", "fixed-random")
BUDGETS = ("per-sample", "class-average", "weight-decay", "max-margin")
#: losses whose vanishing-regularisation limit the ``max-margin`` budget solves (theory.md §15.3)
MAX_MARGIN_LOSSES = ("ce", "la", "ldam", "cdt", "vs")  # each has a max-margin limit (theory.md §15.3)
DEFAULT_BUDGET = {"learnable": "class-average", "fixed-etf": "per-sample", "fixed-random": "per-sample"}
#: the range of E_W, E_H, λ_W, λ_H accepted: at sqrt(E_W E_H) ≈ 1e3 the CE loss already underflows
#: to 0 in double precision, products beyond ~1e16 overflow the SVDs of the solvers, and DR's
#: 1/sqrt(E_W E_H) overflows for budgets near 1e-300
MIN_BUDGET, MAX_BUDGET = 1e-8, 1e8



def logits_of(H: np.ndarray, W: np.ndarray) -> np.ndarray:
    """H Wᵀ over the columns that are not zero in both (a recovered point is embedded in
    d ≥ rank dimensions; at K = 8142 the full product would cost a K³ multiply)."""
    used = np.any(H != 0, axis=0) | np.any(W != 0, axis=0)
    if used.all():
        return H @ W.T
    return H[:, used] @ W[:, used].T

@dataclass(frozen=True)
class Problem:
    """A validated layer-peeled model.

    Attributes
    ----------
    counts:     class counts n_k (K numbers; only n_k/N enters the model).
    d:          feature dimension (defaults to K).
    classifier: ``learnable``, ``fixed-etf`` or ``fixed-random``.
    loss:       a name of :data:`lpm.core.losses.LOSSES`: ``ce``, ``dr`` (the
                paper's dot regression (w_yᵀh − t)²/(2t), t = sqrt(E_W E_H),
                theory.md §5), ``dr-unscaled`` or ``mse``.
    E_W, E_H:   norm budgets (E_W also scales a fixed classifier; neither
                enters the weight-decay form otherwise).
    budget:     ``per-sample``, ``class-average``, ``weight-decay`` or
                ``max-margin`` (default: the paper's form for the classifier mode).
    lambda_W, lambda_H: weight-decay coefficients (``weight-decay`` only;
                λ_W for learnable classifiers).
    majority:   K_A; classes 0…K_A−1 are the majority, the rest the minority
                (for metrics). Defaults to K//2.
    seed:       seeds the fixed classifier (ETF rotation or random draw).
    profile, ratio: how the counts were made (provenance only).
    tau, gamma, margin: hyperparameters of the count-aware losses ``la``
                (τ), ``cdt`` (γ), ``ldam`` (largest margin) and ``vs`` (γ, τ)
                (theory.md §14); ``None`` takes the published default, and a
                hyperparameter the loss does not use is refused.
    class_weights: ``none``, ``inverse``, ``sqrt`` or ``class-balanced``
                (:mod:`lpm.core.weighting`); ``beta`` is the class-balanced β.
    sampling:   class-sampling probabilities q (K numbers, normalised to sum 1;
                equal for equal counts) of a re-sampled run: the objective's
                weights become q_k ω_k, normalised (re-sampling is re-weighting
                in the LPM, theory.md §14). ``None``: instance sampling, q = π.
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
    lambda_W: float | None = None
    lambda_H: float | None = None
    tau: float | None = None
    gamma: float | None = None
    margin: float | None = None
    class_weights: str = "none"
    beta: float | None = None
    sampling: tuple[float, ...] | None = None

    def __post_init__(self):
        counts = check_counts(self.counts)
        K = len(counts)
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("counts", counts)
        check_choice("classifier", self.classifier, CLASSIFIERS)
        check_choice("loss", self.loss, LOSS_NAMES)
        params = check_hyperparameters(self.loss, tau=self.tau, gamma=self.gamma, margin=self.margin)
        for name in ("tau", "gamma", "margin"):
            set_(name, params.get(name))
        check_choice("class_weights", self.class_weights, CLASS_WEIGHTS)
        set_("beta", check_beta(self.class_weights, self.beta))
        set_("sampling", check_sampling(self.sampling, counts))
        set_("E_W", check_number("E_W", self.E_W, low=MIN_BUDGET, high=MAX_BUDGET))
        set_("E_H", check_number("E_H", self.E_H, low=MIN_BUDGET, high=MAX_BUDGET))
        set_("budget", DEFAULT_BUDGET[self.classifier] if self.budget is None
             else check_choice("budget", self.budget, BUDGETS))
        d = K if self.d is None else check_number("d", self.d, low=1, integer=True)
        if self.classifier == "fixed-etf" and d < K - 1:
            raise LPMInputError("d", d, f"an int >= K-1 = {K - 1} for a fixed simplex ETF with K={K}")
        set_("d", d)
        KA = K // 2 if self.majority is None else check_number("majority", self.majority, low=1, high=K - 1, integer=True)
        set_("majority", KA)
        set_("seed", check_seed("seed", self.seed))
        if self.ratio is not None:
            set_("ratio", check_ratio(self.ratio))
        self._check_weight_decay(set_)
        self._check_max_margin()

    def _check_max_margin(self) -> None:
        if self.budget != "max-margin":
            return
        if self.classifier != "learnable":
            raise LPMInputError("classifier", self.classifier, "'learnable' with budget='max-margin' (the limit of "
                                                               "the learnable weight-decay model, theory.md §15)")
        if self.loss not in MAX_MARGIN_LOSSES:
            names = ", ".join(repr(n) for n in MAX_MARGIN_LOSSES)
            raise LPMInputError("loss", self.loss, ("one of " if len(MAX_MARGIN_LOSSES) > 1 else "") + names
                                + " with budget='max-margin' (losses with a max-margin limit, theory.md §15.3)")
        if self.d < self.K - 1:
            raise LPMInputError("d", self.d, f"an int >= K-1 = {self.K - 1} with budget='max-margin' (the rank of "
                                             f"the max-margin logits)")

    def _check_weight_decay(self, set_) -> None:
        if self.budget != "weight-decay":
            for name in ("lambda_W", "lambda_H"):
                if getattr(self, name) is not None:
                    raise LPMInputError(name, getattr(self, name), "left unset unless budget='weight-decay'")
            return
        if not math.isfinite(sum(self.counts)):  # this form reads absolute counts: their sum enters the objective
            raise LPMInputError("counts", list(self.counts), "counts whose total is finite with budget='weight-decay' "
                                                             "(this form reads absolute counts)")
        if self.loss.startswith("dr"):
            raise LPMInputError("loss", self.loss, "'ce' or 'mse' with budget='weight-decay' (DR's target "
                                                   "sqrt(E_W E_H) is set by the norm budgets, theory.md §5)")
        needed = ("lambda_W", "lambda_H") if self.classifier == "learnable" else ("lambda_H",)
        for name in needed:
            if getattr(self, name) is None:
                raise LPMInputError(name, None, f"a number >= {MIN_BUDGET:g} and <= {MAX_BUDGET:g}, given with "
                                                f"budget='weight-decay' (the weight-decay coefficient)")
            set_(name, check_number(name, getattr(self, name), low=MIN_BUDGET, high=MAX_BUDGET))
        if self.classifier != "learnable" and self.lambda_W is not None:
            raise LPMInputError("lambda_W", self.lambda_W, f"left unset for the fixed classifier "
                                                          f"'{self.classifier}' (W is not trained)")

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
        """The objective's class weights p_k = π_k ω_k (sum 1), shape (K,): the class
        proportions π_k = n_k / N times the class weights ω_k of ``class_weights``
        (:mod:`lpm.core.weighting`; ω = 1, so p = π, for ``none``). With ``sampling`` = q,
        q_k ω_k normalised. In the ``max-margin`` limit p = π whatever the weights and sampler:
        a weight (or re-sampling) shifts every margin by a constant, which vanishes after
        normalisation, and D = diag(π) is the weight-decay form's feature penalty Σ_k n_k‖h_k‖²,
        which neither changes (theory.md §14.4, §15.3)."""
        if self.budget == "max-margin":
            return objective_weights("none", self.counts)
        return objective_weights(self.class_weights, self.counts, self.beta, self.sampling)

    @property
    def hyperparameters(self) -> dict:
        """The loss's hyperparameters that apply (e.g. {'tau': 1.0} for ``la``), with β
        for class-balanced weights."""
        out = {name: getattr(self, name) for name in ("tau", "gamma", "margin") if getattr(self, name) is not None}
        if self.beta is not None:
            out["beta"] = self.beta
        return out

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

    @property
    def nuclear_radius(self) -> float:
        """ρ = K·sqrt(E_W E_H): the nuclear-norm ball of the learnable LPM (theory.md §4.2)."""
        return self.K * self.dr_target

    @cached_property
    def loss_fn(self) -> Loss:
        """The registered loss bound to this problem's counts and hyperparameters
        (:func:`lpm.core.losses.bind_loss`)."""
        return bind_loss(self.loss, self.counts, tau=self.tau, gamma=self.gamma, margin=self.margin)

    @property
    def regularised(self) -> bool:
        return self.budget == "weight-decay"

    def budget_parameters(self) -> dict[str, float]:
        """The budget numbers that enter this problem, in display order: E_W and E_H under a
        norm budget; λ_W and λ_H for a learnable classifier under weight decay (E_W, E_H unused);
        E_W (the fixed classifier's scale) and λ_H for a fixed one under weight decay; none in the
        max-margin limit (theory.md §15)."""
        if self.budget == "max-margin":
            return {}
        if not self.regularised:
            return {"E_W": self.E_W, "E_H": self.E_H}
        if self.fixed:
            return {"E_W": self.E_W, "lambda_H": self.lambda_H}
        return {"lambda_W": self.lambda_W, "lambda_H": self.lambda_H}

    def budget_text(self, tex: bool = False) -> str:
        """:meth:`budget_parameters` as one label, e.g. ``E_W=1, E_H=5`` or ``λ_W=0.0005, λ_H=0.0005``
        (``tex=True``: matplotlib mathtext, e.g. ``$\\lambda_W$=0.0005``)."""
        names = ({"E_W": "$E_W$", "E_H": "$E_H$", "lambda_W": "$\\lambda_W$", "lambda_H": "$\\lambda_H$"} if tex
                 else {"E_W": "E_W", "E_H": "E_H", "lambda_W": "λ_W", "lambda_H": "λ_H"})
        if self.budget == "max-margin":
            return "max-margin limit (vanishing weight decay: no E_W, E_H or lambda)"
        return ", ".join(f"{names[k]}={v:.3g}" for k, v in self.budget_parameters().items())

    @cached_property
    def fixed_classifier(self) -> np.ndarray | None:
        """The fixed W (K×d) for fixed modes, ``None`` for ``learnable``."""
        if self.classifier == "fixed-etf":
            return np.sqrt(self.E_W) * simplex_etf(self.K, self.d, self.seed).T
        if self.classifier == "fixed-random":
            return np.sqrt(self.E_W) * random_unit_rows(self.K, self.d, self.seed)
        return None

    # ----------------------------------------------------------- objective
    def logit_objective(self, Z: np.ndarray) -> tuple[float, np.ndarray]:
        """f(Z) = Σ_k p_k L(Z[k, :], k) and ∂f/∂Z (K×K; row k = logits of class mean k)."""
        values, G = self.loss_fn.value_grad(Z, np.arange(self.K), self.dr_target)
        p = self.weights
        G *= p[:, None]  # in place: every loss returns a fresh gradient array
        return float(p @ values), G

    def objective(self, W: np.ndarray, H: np.ndarray) -> float:
        """The objective at classifier W and class means H (both K×d), with the
        weight-decay terms for ``budget='weight-decay'``; for ``budget='max-margin'`` the
        max-margin objective ½(‖W‖²_F + Σ_k p_k ‖h_k‖²) (theory.md §15)."""
        if self.budget == "max-margin":
            return 0.5 * (float(np.sum(W**2)) + float(self.weights @ np.sum(H**2, axis=1)))
        value = self.logit_objective(logits_of(H, W))[0]
        if self.regularised:
            n = np.asarray(self.counts)
            value += 0.5 * self.lambda_H * float(n @ np.sum(H**2, axis=1))
            if not self.fixed:
                value += 0.5 * self.lambda_W * float(np.sum(W**2))
        return value

    def memory_bytes(self) -> int:
        """About the peak memory of one solve and its geometry: 10 float64 arrays of
        K × max(K, d) (measured for the nuclear and analytic solvers at K = 1000–2000)."""
        return 10 * 8 * self.K * max(self.K, self.d)

    def describe(self) -> dict:
        """Plain-dict form of every field (for tables and JSON)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["counts"] = list(self.counts)
        out["sampling"] = None if self.sampling is None else list(self.sampling)
        out["K"] = self.K
        return out

    def __hash__(self):
        return hash(tuple(getattr(self, f.name) for f in dataclasses.fields(self)))
