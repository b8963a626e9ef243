"""The one registry of losses (theory.md §4–§6).

A loss L(z, y) acts on one row of logits z ∈ R^K and its label y. Each
registered :class:`Loss` gives, in one place,

* ``value_grad``  — NumPy values (m,) and logit gradients (m, K), optionally
  for logits that stand for several copies (``multiplicity``: the grouped
  nuclear solver sees each distinct logit of a class once);
* ``hvp``         — NumPy Hessian-vector products in the logits, row by row;
  ``hvp_operator`` gives the same products for many vectors at one point,
  in place and optionally in float32 (the factored nuclear solver's
  conjugate gradients);
* ``curvature``   — a bound c on the largest eigenvalue of the logit Hessian,
  which sets every 1/L step size in the project;
* ``torch_value`` / ``torch_grad`` — the same on torch tensors (deep
  training and the gradient solver; no torch import is needed here);
* ``cvxpy_value`` — Σ_k w_k L(Z[k, :], k) as a cvxpy expression (the convex
  solver).

The losses, with t = sqrt(E_W·E_H) the DR target (theory.md §5):

=============  ================================  ==========================
name           L(z, y)                           logit curvature bound c
=============  ================================  ==========================
``ce``         log Σ_j exp(z_j) − z_y            ½
``dr``         (z_y − t)² / (2t)   [Y22, Thm 2]  1/t
``dr-unscaled`` ½ (z_y − t)²                     1
``mse``        ½ ‖z − e_y‖²                      1
=============  ================================  ==========================

``dr`` is the paper's dot-regression loss; ``dr-unscaled`` has the same
minimiser and a gradient t times larger (theory.md §5).

Count-aware losses (theory.md §14), :data:`LOSS_FAMILIES`: each is CE of a
per-class affine map of the logits, L(z, y) = CE(s ⊙ z + b − m_y e_y, y),
with s, b, m set by the class counts (π_j = n_j/N) and hyperparameters:

=========  =====================================================  ================
name       map                                                    defaults
=========  =====================================================  ================
``la``     z_j + τ log π_j                                        τ = 1
``cdt``    z_j / a_j,  a_j = (n_max/n_j)^γ                        γ = 0.2
``ldam``   z − Δ_y e_y,  Δ_j = C n_j^{−1/4}, max Δ = ``margin``    margin = 0.5
``vs``     Δ_j z_j + τ log π_j,  Δ_j = (n_j/n_max)^γ              γ = 0.3, τ = 1
=========  =====================================================  ================

:func:`bind_loss` binds one to counts and hyperparameters and returns an
:class:`AffineCrossEntropy`, which has every method of :class:`Loss` (its
curvature bound is ½ max_j s_j²); the losses above bind to themselves.
:data:`LOSS_HYPERPARAMETERS` says which hyperparameters each loss takes and
:data:`DEFAULT_HYPERPARAMETERS` gives the published defaults.

The released code of [Y22] trains DR through a surrogate in the features
(theory.md §6.1–6.2). It is not a function of the logits alone, so it is
given here as :func:`released_dr_value` and :func:`released_dr_logit_grad`
(torch tensors), with the in-batch class balancing of
:func:`batch_balance_scale`.

Adding a loss means adding one entry to :data:`LOSSES` (or to
:data:`LOSS_FAMILIES` for one with count-dependent parameters); the contract
tests then run it through every back end.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .errors import LPMInputError, check_choice, check_number


def logsumexp(Z: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """log Σ_j w_j exp(z_j) over the last axis, computed stably (w = 1 by default)."""
    shift = Z.max(axis=-1, keepdims=True)
    shift = np.where(np.isfinite(shift), shift, 0.0)
    E = np.exp(Z - shift)
    total = (E if weights is None else weights * E).sum(axis=-1)
    return np.log(total) + shift[..., 0]


def softmax(Z: np.ndarray) -> np.ndarray:
    """Row-wise softmax over the last axis."""
    E = np.exp(Z - Z.max(axis=-1, keepdims=True))
    return E / E.sum(axis=-1, keepdims=True)


def _divide_where_positive(D: np.ndarray, S: np.ndarray) -> np.ndarray:
    """D / S where S > 0 and 0 elsewhere, in place in D (returned)."""
    positive = S > 0
    np.divide(D, S, out=D, where=positive)
    D[~positive] = 0.0
    return D


def _own(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """z_y of each row: Z (..., K), y (...,) → (...,)."""
    return np.take_along_axis(Z, np.asarray(y)[..., None], axis=-1)[..., 0]


def _onehot_like(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    E = np.zeros_like(Z)
    np.put_along_axis(E, np.asarray(y)[..., None], 1.0, axis=-1)
    return E


@dataclass(frozen=True)
class Loss:
    """One loss of a logit row; see the module docstring for the methods."""

    name: str
    description: str

    def curvature(self, target: float = 1.0) -> float:
        raise NotImplementedError

    def value_grad(self, Z, y, target: float = 1.0, multiplicity=None):
        """(values (...,), G (..., K)) for logits Z (..., K) and labels y (...,).

        ``multiplicity`` (broadcastable to Z, default 1) counts how many logits
        each entry of a row stands for (the entry at y must count once). The
        value is the loss of the expanded row; G[j] is the derivative in one
        copy of z_j.
        """
        raise NotImplementedError

    def hvp(self, Z, y, V, target: float = 1.0) -> np.ndarray:
        """Row k: ∇²L(Z[k], y_k) @ V[k]; Z, V of shape (m, K)."""
        raise NotImplementedError

    def hvp_operator(self, Z, y, target: float = 1.0, dtype=np.float64):
        """V ↦ :meth:`hvp` (Z, y, V, target) for many V at one Z.

        What the Hessian needs at Z (the softmax, for CE) is computed once.
        V must have the shape of Z and the given ``dtype`` (float32 for cheap,
        approximate products); it is overwritten with the product, which is
        returned.
        """
        def apply(V: np.ndarray) -> np.ndarray:
            V[...] = self.hvp(Z, y, V, target)
            return V
        return apply

    def solve_hessian(self, Z, y, E, target: float = 1.0):
        """Row by row, a direction D with ∇²L(Z[k])·D[k] = E'[k], where E' is E
        projected (orthogonally) on the range of that Hessian; ``None`` where the
        loss has no cheap solve. Used to move a dual certificate point by a chosen
        first-order change of the gradient (:mod:`lpm.core.certificates`).
        """
        return None

    def torch_value(self, Z, y, target: float = 1.0):
        """Per-row losses (m,) of torch logits Z (m, K) and long labels y (m,)."""
        raise NotImplementedError

    def torch_grad(self, Z, y, target: float = 1.0):
        """Logit gradients (m, K) of :meth:`torch_value`, written out (no autograd)."""
        raise NotImplementedError

    def cvxpy_value(self, Z, weights: np.ndarray, target: float = 1.0):
        """Σ_k weights_k L(Z[k, :], k) for a K×K cvxpy expression Z (labels 0…K−1)."""
        raise NotImplementedError


def _torch_own(Z, y):
    return Z.gather(-1, y.unsqueeze(-1)).squeeze(-1)


def _torch_onehot(Z, y):
    return Z.new_zeros(Z.shape).scatter_(-1, y.unsqueeze(-1), 1.0)


class CrossEntropy(Loss):
    def curvature(self, target: float = 1.0) -> float:
        return 0.5  # the softmax Hessian diag(s) − s sᵀ has eigenvalues ≤ ½

    def value_grad(self, Z, y, target: float = 1.0, multiplicity=None):
        Z = np.asarray(Z, dtype=np.float64)
        shift = Z.max(axis=-1, keepdims=True)
        E = np.subtract(Z, shift)  # one array of Z's size, updated in place (K×K at K = 8142: 0.5 GiB)
        np.exp(E, out=E)
        total = (E if multiplicity is None else multiplicity * E).sum(axis=-1, keepdims=True)
        values = np.log(total[..., 0]) + shift[..., 0] - _own(Z, y)
        E /= total
        index = np.asarray(y)[..., None]
        np.put_along_axis(E, index, np.take_along_axis(E, index, axis=-1) - 1.0, axis=-1)
        return values, E

    def hvp(self, Z, y, V, target: float = 1.0) -> np.ndarray:
        S = softmax(np.asarray(Z, dtype=np.float64))
        return S * V - S * np.sum(S * V, axis=-1, keepdims=True)

    def hvp_operator(self, Z, y, target: float = 1.0, dtype=np.float64):
        S = softmax(np.asarray(Z, dtype=np.float64)).astype(dtype, copy=False)
        scratch = np.empty_like(S)  # reused by every product: no fresh K×K temporaries

        def apply(V: np.ndarray) -> np.ndarray:  # s ⊙ v − s (sᵀv), row by row
            V *= S
            V -= np.multiply(S, V.sum(axis=-1, keepdims=True), out=scratch)
            return V
        return apply

    def solve_hessian(self, Z, y, E, target: float = 1.0):
        # diag(s) − s sᵀ (s > 0) has null space 1 and range 1⊥; on 1⊥ it is inverted by
        # e ↦ e / s:  s ⊙ (e/s) − s·Σ_j e_j = e
        S = softmax(np.asarray(Z, dtype=np.float64))
        D = np.subtract(E, np.mean(E, axis=-1, keepdims=True), dtype=np.float64)
        return _divide_where_positive(D, S)

    def torch_value(self, Z, y, target: float = 1.0):
        import torch.nn.functional as F  # already loaded whenever tensors are passed in

        return F.cross_entropy(Z.reshape(-1, Z.shape[-1]), y.reshape(-1), reduction="none").reshape(y.shape)

    def torch_grad(self, Z, y, target: float = 1.0):
        return Z.softmax(-1) - _torch_onehot(Z, y)

    def cvxpy_value(self, Z, weights, target: float = 1.0):
        import cvxpy as cp  # heavy (≈1.5 s): only the convex solver needs it

        return weights @ (cp.log_sum_exp(Z, axis=1) - cp.diag(Z))


@dataclass(frozen=True)
class DotRegression(Loss):
    """(z_y − t)²/(2t) (``scaled``, the paper's form) or ½(z_y − t)²."""

    scaled: bool = True

    def _factor(self, target):
        return 1.0 / np.asarray(target, dtype=np.float64) if self.scaled else 1.0

    def curvature(self, target=1.0):
        return self._factor(target)

    def value_grad(self, Z, y, target: float = 1.0, multiplicity=None):
        Z = np.asarray(Z, dtype=np.float64)
        r = _own(Z, y) - target               # target may be an array broadcast against the rows
        cr = self._factor(target) * r
        return 0.5 * cr * r, cr[..., None] * _onehot_like(Z, y)

    def hvp(self, Z, y, V, target: float = 1.0) -> np.ndarray:
        E = _onehot_like(np.asarray(Z, dtype=np.float64), y)
        return self._factor(target) * E * np.sum(E * V, axis=-1, keepdims=True)

    def hvp_operator(self, Z, y, target: float = 1.0, dtype=np.float64):
        index, factor = np.asarray(y)[..., None], self._factor(target)

        def apply(V: np.ndarray) -> np.ndarray:  # only the own logit: c·v_y e_y
            own = factor * np.take_along_axis(V, index, axis=-1)[..., 0]
            V.fill(0.0)
            np.put_along_axis(V, index, np.asarray(own, dtype=V.dtype)[..., None], axis=-1)
            return V
        return apply

    def torch_value(self, Z, y, target: float = 1.0):
        return 0.5 * self._factor(target) * (_torch_own(Z, y) - target) ** 2

    def torch_grad(self, Z, y, target: float = 1.0):
        r = _torch_own(Z, y) - target
        return self._factor(target) * r.unsqueeze(-1) * _torch_onehot(Z, y)

    def cvxpy_value(self, Z, weights, target: float = 1.0):
        import cvxpy as cp  # heavy: only the convex solver needs it

        return 0.5 * self._factor(target) * (weights @ cp.square(cp.diag(Z) - target))


class SquaredError(Loss):
    def curvature(self, target: float = 1.0) -> float:
        return 1.0

    def value_grad(self, Z, y, target: float = 1.0, multiplicity=None):
        Z = np.asarray(Z, dtype=np.float64)
        R = Z - _onehot_like(Z, y)
        sq = R**2 if multiplicity is None else multiplicity * R**2
        return 0.5 * sq.sum(axis=-1), R

    def hvp(self, Z, y, V, target: float = 1.0) -> np.ndarray:
        return np.array(V, dtype=np.float64)

    def hvp_operator(self, Z, y, target: float = 1.0, dtype=np.float64):
        return lambda V: V  # the Hessian is the identity

    def torch_value(self, Z, y, target: float = 1.0):
        return 0.5 * ((Z - _torch_onehot(Z, y)) ** 2).sum(-1)

    def torch_grad(self, Z, y, target: float = 1.0):
        return Z - _torch_onehot(Z, y)

    def cvxpy_value(self, Z, weights, target: float = 1.0):
        import cvxpy as cp  # heavy: only the convex solver needs it

        K = len(weights)
        return 0.5 * cp.sum(cp.multiply(np.repeat(np.asarray(weights)[:, None], K, axis=1),
                                        cp.square(Z - np.eye(K))))


#: the losses without parameters, by name
LOSSES: dict[str, Loss] = {
    "ce": CrossEntropy("ce", "cross-entropy"),
    "dr": DotRegression("dr", "dot regression, the paper's form (z_y - t)^2/(2t), t = sqrt(E_W E_H)"),
    "dr-unscaled": DotRegression("dr-unscaled", "dot regression without the 1/t factor, (z_y - t)^2/2",
                                 scaled=False),
    "mse": SquaredError("mse", "squared error to the one-hot label"),
}
#: how a DR loss is optimised: its own gradient (``paper``) or the released surrogate (theory.md §6.1)
DR_VARIANTS: tuple[str, ...] = ("paper", "released")




# ---------------------------------------------------------------- count-aware losses (theory.md §14)
class AffineCrossEntropy(Loss):
    """CE of a per-entry affine map of the logits: L(z, y) = CE(s ⊙ z + b − m_y e_y, y).

    ``scale`` s and ``shift`` b broadcast against the logit rows (shape (K,) for
    rows indexed by class; the grouped nuclear engine builds one with per-row
    entries, :meth:`grouped`); ``margin`` m is indexed by the label. The map is
    affine, so the loss stays convex in z; its logit Hessian is
    diag(s) ∇²CE diag(s), whose eigenvalues are at most ½ max s²
    (vᵀ∇²L v = Var_p(s ⊙ v) ≤ ½‖s ⊙ v‖², p the softmax), the :meth:`curvature` bound.
    ``params`` records the hyperparameters it was bound with (for descriptions).
    """

    def __init__(self, name: str, description: str, scale, shift, margin, params: dict | None = None,
                 curvature_bound=None):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "description", description)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.shift = np.asarray(shift, dtype=np.float64)
        self.margin = np.asarray(margin, dtype=np.float64)
        self.params = dict(params or {})
        self._curvature = (0.5 * float(np.max(self.scale)) ** 2 if curvature_bound is None else curvature_bound)

    def __setattr__(self, key, value):  # the dataclass base is frozen; these fields are set once, here
        object.__setattr__(self, key, value)

    def __repr__(self):
        return f"AffineCrossEntropy({self.name!r}, {self.params})"

    def __eq__(self, other):
        return (isinstance(other, AffineCrossEntropy) and self.name == other.name
                and all(np.array_equal(getattr(self, a), getattr(other, a)) for a in ("scale", "shift", "margin")))

    __hash__ = object.__hash__

    # ------------------------------------------------------------------ the map
    def _logits(self, Z, y) -> np.ndarray:
        """X = s ⊙ Z + b − m_y e_y."""
        X = np.asarray(Z, dtype=np.float64) * self.scale + self.shift
        if self.margin.any():
            y = np.asarray(y)
            own = np.take_along_axis(X, y[..., None], axis=-1) - self.margin[y][..., None]
            np.put_along_axis(X, y[..., None], own, axis=-1)
        return X

    def curvature(self, target: float = 1.0):
        return self._curvature

    @property
    def _unit(self) -> bool:
        """All scales 1 (``la``, ``ldam``): the products by s are skipped."""
        return bool(np.all(self.scale == 1.0))

    def value_grad(self, Z, y, target: float = 1.0, multiplicity=None):
        values, G = _CE.value_grad(self._logits(Z, y), y, multiplicity=multiplicity)
        if not self._unit:
            G *= self.scale
        return values, G

    def hvp(self, Z, y, V, target: float = 1.0) -> np.ndarray:
        return self.scale * _CE.hvp(self._logits(Z, y), y, self.scale * np.asarray(V, dtype=np.float64))

    def hvp_operator(self, Z, y, target: float = 1.0, dtype=np.float64):
        inner = _CE.hvp_operator(self._logits(Z, y), y, dtype=dtype)
        if self._unit:
            return inner
        scale = np.asarray(self.scale, dtype=dtype)  # broadcasts against the rows of V

        def apply(V: np.ndarray) -> np.ndarray:  # s ⊙ ∇²CE (s ⊙ v), in place
            V *= scale
            V = inner(V)
            V *= scale
            return V
        return apply

    def solve_hessian(self, Z, y, E, target: float = 1.0):
        # diag(a)(diag s − s sᵀ)diag(a) (a = scale ≠ 0): null space a⁻¹, range ⟂ a⁻¹;
        # there D = E / (a² s) solves it (CE's solve of a⁻¹ ⊙ E, divided by a)
        inverse = 1.0 / np.asarray(self.scale, dtype=np.float64)
        E = np.asarray(E, dtype=np.float64)
        if inverse.ndim == 1:  # one scale vector for every row
            along = (E @ inverse) / (inverse @ inverse)
        else:
            inverse = np.broadcast_to(inverse, np.shape(Z))
            along = np.sum(E * inverse, axis=-1) / np.sum(inverse**2, axis=-1)
        D = np.array(E, dtype=np.float64)
        D -= along[..., None] * inverse
        S = softmax(self._logits(Z, y))
        S *= self.scale**2
        return _divide_where_positive(D, S)

    def _torch_params(self, Z, y):
        import torch  # already loaded whenever tensors are passed in

        scale = torch.as_tensor(self.scale, dtype=Z.dtype, device=Z.device)
        X = Z * scale + torch.as_tensor(self.shift, dtype=Z.dtype, device=Z.device)
        if self.margin.any():
            margin = torch.as_tensor(self.margin, dtype=Z.dtype, device=Z.device)[y]
            X = X - margin.unsqueeze(-1) * _torch_onehot(Z, y)
        return X, scale

    def torch_value(self, Z, y, target: float = 1.0):
        return _CE.torch_value(self._torch_params(Z, y)[0], y)

    def torch_grad(self, Z, y, target: float = 1.0):
        X, scale = self._torch_params(Z, y)
        return scale * _CE.torch_grad(X, y)

    def cvxpy_value(self, Z, weights, target: float = 1.0):
        import cvxpy as cp  # heavy: only the convex solver needs it

        K = len(weights)
        S = np.broadcast_to(self.scale, (K, K))
        B = np.broadcast_to(self.shift, (K, K)) - np.diag(self.margin[:K])
        X = cp.multiply(S, Z) + B
        return weights @ (cp.log_sum_exp(X, axis=1) - cp.diag(X))

    # ------------------------------------------------------------------ grouped rows
    @staticmethod
    def grouped(losses: Sequence["Loss"], representatives: np.ndarray) -> "AffineCrossEntropy":
        """The losses of a batch of B problems as the grouped nuclear engine sees them.

        Its rows (B, m, m+1) hold, for a class of group a, one logit per group b
        (columns 0…m−1) and its own logit last (label m). Column b takes the
        parameters of group b's representative class, the last column those of
        group a itself, margin included. Parameters depend on counts only, so
        every class of a group shares them (theory.md §14).
        """
        rep = np.asarray(representatives)
        m = len(rep)
        scale, shift = np.empty((len(losses), m, m + 1)), np.empty((len(losses), m, m + 1))
        for b, loss in enumerate(losses):
            s, o, g = loss.scale[rep], loss.shift[rep], loss.margin[rep]
            scale[b, :, :m], shift[b, :, :m] = s[None, :], o[None, :]
            scale[b, :, m], shift[b, :, m] = s, o - g
        curvature = 0.5 * scale.max(axis=(1, 2)) ** 2
        return AffineCrossEntropy(losses[0].name, losses[0].description, scale, shift, np.zeros(m + 1),
                                  curvature_bound=curvature)


_CE = CrossEntropy("ce", "cross-entropy")


def _priors(counts) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64) / max(counts)  # no overflow of the sum for huge counts
    return c / c.sum()


def _centred(shift: np.ndarray) -> np.ndarray:
    """b − max b: CE is unchanged by a constant added to every logit, and a
    constant b (equal counts) becomes exactly 0, so the loss is CE bit for bit."""
    return shift - shift.max()


def _bind_la(counts, tau):
    return np.ones(len(counts)), _centred(tau * np.log(_priors(counts))), np.zeros(len(counts))


def _bind_cdt(counts, gamma):
    n = np.asarray(counts, dtype=np.float64)
    return (n / n.max()) ** gamma, np.zeros(len(n)), np.zeros(len(n))  # 1/a_j = (n_j/n_max)^γ


def _bind_ldam(counts, margin):
    n = np.asarray(counts, dtype=np.float64)
    delta = (n.min() / n) ** 0.25                                      # ∝ n_j^{−1/4}, largest = 1
    return np.ones(len(n)), np.zeros(len(n)), margin * delta


def _bind_vs(counts, gamma, tau):
    n = np.asarray(counts, dtype=np.float64)
    return (n / n.max()) ** gamma, _centred(tau * np.log(_priors(counts))), np.zeros(len(n))


@dataclass(frozen=True)
class LossFamily:
    """A loss with count-dependent parameters; :func:`bind_loss` makes the
    :class:`Loss` for given class counts and hyperparameters."""

    name: str
    description: str
    hyperparameters: tuple[str, ...]
    make: Callable

    def bind(self, counts, **params) -> AffineCrossEntropy:
        scale, shift, margin = self.make(counts, **params)
        text = ", ".join(f"{k}={v:g}" for k, v in params.items())
        return AffineCrossEntropy(self.name, f"{self.description} ({text})", scale, shift, margin, params)


#: the count-aware losses (theory.md §14); each is CE of a per-class affine map of the logits
LOSS_FAMILIES: dict[str, LossFamily] = {
    "la": LossFamily("la", "logit-adjusted CE, logits z_j + tau log pi_j (tau = 1: balanced softmax)",
                     ("tau",), lambda counts, tau: _bind_la(counts, tau)),
    "cdt": LossFamily("cdt", "class-dependent temperatures, logits z_j / a_j, a_j = (n_max/n_j)^gamma",
                      ("gamma",), lambda counts, gamma: _bind_cdt(counts, gamma)),
    "ldam": LossFamily("ldam", "label-distribution-aware margins, CE of z - Delta_y e_y, Delta_j ∝ n_j^(-1/4), "
                               "max Delta_j = margin", ("margin",), lambda counts, margin: _bind_ldam(counts, margin)),
    "vs": LossFamily("vs", "vector scaling, logits Delta_j z_j + tau log pi_j, Delta_j = (n_j/n_max)^gamma",
                     ("gamma", "tau"), lambda counts, gamma, tau: _bind_vs(counts, gamma, tau)),
}

#: every loss the project knows, by name (the CLI and the validation read this)
LOSS_NAMES: tuple[str, ...] = (*LOSSES, *LOSS_FAMILIES)
#: the losses without class-count parameters (what deep training takes: it has no binding to counts yet)
PLAIN_LOSS_NAMES: tuple[str, ...] = tuple(LOSSES)
#: which hyperparameters each loss takes (theory.md §14)
LOSS_HYPERPARAMETERS: dict[str, tuple[str, ...]] = {
    **{name: () for name in LOSSES}, **{name: f.hyperparameters for name, f in LOSS_FAMILIES.items()}}
#: the published defaults (sources in theory.md §14): LA τ = 1 (Menon et al. 2021; balanced softmax,
#: Ren et al. 2020), CDT γ = 0.2 (inside the range Ye et al. 2020 tune over), LDAM largest margin 0.5
#: (Cao et al. 2019), VS γ = 0.3 and τ = 1 (Kini et al. 2021, their released defaults)
DEFAULT_HYPERPARAMETERS: dict[str, dict[str, float]] = {
    "la": {"tau": 1.0}, "cdt": {"gamma": 0.2}, "ldam": {"margin": 0.5}, "vs": {"gamma": 0.3, "tau": 1.0}}
#: the range each hyperparameter is checked against: the published remedies use τ, γ ≥ 0, and the
#: negative values (the opposite adjustment) are allowed for tuning searches (theory.md §14); bounded
#: so that the scales (n_j/n_max)^γ, whose square sets the curvature bound, and the offsets τ log π_j
#: stay far from under- and overflow
HYPERPARAMETER_RANGES: dict[str, tuple[float, float]] = {"tau": (-10.0, 10.0), "gamma": (-2.0, 2.0),
                                                         "margin": (0.0, 10.0)}
HYPERPARAMETER_NAMES: tuple[str, ...] = ("tau", "gamma", "margin")


def check_hyperparameters(loss: str, **given) -> dict[str, float]:
    """The hyperparameters of ``loss``: the given ones checked, the rest the
    published defaults. A hyperparameter that ``loss`` does not take (given, not
    None) raises :class:`LPMInputError`."""
    check_choice("loss", loss, LOSS_NAMES)
    takes = LOSS_HYPERPARAMETERS[loss]
    out = {}
    for name in HYPERPARAMETER_NAMES:
        value = given.get(name)
        if name not in takes:
            if value is not None:
                what = "it takes " + ", ".join(takes) if takes else "it has no hyperparameters"
                users = ", ".join(repr(m) for m in LOSS_NAMES if name in LOSS_HYPERPARAMETERS[m])
                raise LPMInputError(name, value, f"left unset for the loss '{loss}' ({what}; {name} is for {users})")
            continue
        low, high = HYPERPARAMETER_RANGES[name]
        out[name] = (DEFAULT_HYPERPARAMETERS[loss][name] if value is None
                     else check_number(name, value, low=low, high=high))
    return out


def get_loss(name: str) -> Loss:
    """A loss without parameters by name; the count-aware ones need :func:`bind_loss`."""
    check_choice("loss", name, LOSS_NAMES)
    if name in LOSS_FAMILIES:
        raise LPMInputError("loss", name, "a loss without class-count parameters here (one of "
                            + ", ".join(repr(n) for n in LOSSES) + "); bind the count-aware ones with bind_loss")
    return LOSSES[name]


def bind_loss(name: str, counts, *, tau: float | None = None, gamma: float | None = None,
              margin: float | None = None) -> Loss:
    """The registered loss ``name`` bound to class ``counts`` and hyperparameters.

    ``None`` takes the published default (:data:`DEFAULT_HYPERPARAMETERS`); a
    hyperparameter the loss does not use raises :class:`LPMInputError`. The
    losses without parameters (``ce``, ``dr``, ``dr-unscaled``, ``mse``) bind to
    themselves. The result has every method of :class:`Loss`.
    """
    params = check_hyperparameters(name, tau=tau, gamma=gamma, margin=margin)
    if name in LOSSES:
        return LOSSES[name]
    counts = np.asarray(counts, dtype=np.float64).ravel()
    if counts.size < 2 or not np.all(np.isfinite(counts)) or not np.all(counts > 0):
        raise LPMInputError("counts", list(counts), "at least two positive finite class counts")
    return LOSS_FAMILIES[name].bind(counts, **params)


# ---------------------------------------------------------------- released DR
def released_dr_value(dot, h_norm, w_norm):
    """Per-sample ½(w_yᵀh − ‖w_y‖‖h‖)² / ‖h‖ (theory.md §6.1).

    ``dot`` = w_yᵀh carries the gradient; ``h_norm`` and ``w_norm`` must be
    detached (stop-gradient). Equals ½‖w_y‖²‖h‖(cos θ − 1)².
    """
    return 0.5 * (dot - h_norm * w_norm) ** 2 / h_norm


def released_dr_logit_grad(dot, h_norm, w_norm):
    """d(released value)/d(w_yᵀh) = w_yᵀh/‖h‖ − ‖w_y‖; the gradient in h is this times w_y,
    i.e. ‖w_y‖(cos θ − 1)·w_y (theory.md §6.1)."""
    return dot / h_norm - w_norm


def released_dr_curvature(E_H: float) -> float:
    """Logit-curvature bound of the released surrogate on the feature sphere
    ‖h‖ = sqrt(E_H): d(residual)/d(w_yᵀh) = 1/‖h‖ (so the 1/L step in h uses
    L = ‖W‖₂²/sqrt(E_H); with E_W = 1 it is the paper form's 1/sqrt(E_W E_H))."""
    return 1.0 / float(np.sqrt(E_H))


def batch_balance_scale(y, counts):
    """sqrt(γ / c_y) per sample (theory.md §6.2, "GivenEw"): c_y the count of
    class y in the batch (``counts``, one entry per class), γ = batch size /
    number of distinct labels in the batch."""
    counts = counts if counts.is_floating_point() else counts.double()
    gamma = counts.sum() / (counts > 0).sum()
    return (gamma / counts[y]).sqrt()
