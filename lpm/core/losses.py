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

The released code of [Y22] trains DR through a surrogate in the features
(theory.md §6.1–6.2). It is not a function of the logits alone, so it is
given here as :func:`released_dr_value` and :func:`released_dr_logit_grad`
(torch tensors), with the in-batch class balancing of
:func:`batch_balance_scale`.

Adding a loss means adding one entry to :data:`LOSSES`; the contract tests
then run it through every back end.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import check_choice


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
        E = np.exp(Z - shift)
        total = (E if multiplicity is None else multiplicity * E).sum(axis=-1, keepdims=True)
        values = np.log(total[..., 0]) + shift[..., 0] - _own(Z, y)
        return values, E / total - _onehot_like(Z, y)

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


#: every loss the project knows, by name (the CLI and the validation read this)
LOSSES: dict[str, Loss] = {
    "ce": CrossEntropy("ce", "cross-entropy"),
    "dr": DotRegression("dr", "dot regression, the paper's form (z_y - t)^2/(2t), t = sqrt(E_W E_H)"),
    "dr-unscaled": DotRegression("dr-unscaled", "dot regression without the 1/t factor, (z_y - t)^2/2",
                                 scaled=False),
    "mse": SquaredError("mse", "squared error to the one-hot label"),
}
LOSS_NAMES: tuple[str, ...] = tuple(LOSSES)
#: how a DR loss is optimised: its own gradient (``paper``) or the released surrogate (theory.md §6.1)
DR_VARIANTS: tuple[str, ...] = ("paper", "released")


def get_loss(name: str) -> Loss:
    return LOSSES[check_choice("loss", name, LOSS_NAMES)]


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
