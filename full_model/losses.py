"""The training objective of a deep run (theory.md §5–§6), built on the loss registry.

Every loss comes from :mod:`lpm.core.losses`, the same definitions the
layer-peeled solvers use: ``ce``, ``dr`` (the paper's form, target
``dr_target`` = sqrt(E_W E_H), which is 1 for the ℓ2-normalised fixed heads),
``dr-unscaled`` and ``mse``. With ``dr_form="released"`` a DR loss is
trained through the released code's surrogate (theory.md §6.1,
:func:`lpm.core.losses.released_dr_value`), optionally with in-batch class
balancing (§6.2, :func:`lpm.core.losses.batch_balance_scale`).

The loss is bound to the run's class counts and hyperparameters (``tau``,
``gamma``, ``margin``) in one place, :func:`objective_loss`; losses without
hyperparameters bind to the registered loss itself.

The objective returns the **sum** over the rows it is given, scaled by
(number of processes / global batch size): DDP's gradient average then equals
the gradient of the global-batch mean of one process (see
:mod:`full_model.train`).

Class weights ω (docs/recipes.md): with weights the objective is the
weighted mean over the global batch, Σ_i ω_{y_i} L_i / Σ_i ω_{y_i} (the sum
of the weights is taken over the whole global batch, from its label counts,
so it is the same on every process) — the convention of
``F.cross_entropy(weight=ω)``, under which the scale of ω does not matter.
Deferred re-weighting passes ω only from its epoch on
(:meth:`Objective.with_weights`).

Mixup (Zhang et al. 2018) mixes inputs x̃ = λ x_a + (1 − λ) x_b and the loss
λ L(·, y_a) + (1 − λ) L(·, y_b); the batch counts c_y for balancing are taken
over y_a (y_b is a permutation of the same batch, so its counts agree).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from lpm.core.losses import batch_balance_scale, get_loss, released_dr_value

from lpm.core.losses import bind_loss


def objective_loss(name: str, counts, tau=None, gamma=None, margin=None):
    """The registered loss ``name`` bound to the training counts (K,) and its hyperparameters."""
    return bind_loss(name, counts, tau=tau, gamma=gamma, margin=margin)


def released_dr_rows(h: torch.Tensor, W: torch.Tensor, y: torch.Tensor,
                     class_counts: torch.Tensor | None = None) -> torch.Tensor:
    """Per row ½(w̃_yᵀh − ‖w̃_y‖‖h‖)² / ‖h‖ (B,), both norms detached; w̃_y = sqrt(γ/c_y) w_y when
    ``class_counts`` (K,), the counts of the global batch, are given.

    h: (B, d) features; W: (K, d) classifier.
    """
    w = W[y]                                                          # (B, d)
    if class_counts is not None:
        w = w * batch_balance_scale(y, class_counts.to(h.dtype))[:, None]
    dot = (h * w).sum(dim=1)
    h_norm = h.norm(dim=1).detach().clamp_min(1e-12)
    return released_dr_value(dot, h_norm, w.norm(dim=1).detach())


def released_dr_sum(h: torch.Tensor, W: torch.Tensor, y: torch.Tensor,
                    class_counts: torch.Tensor | None = None) -> torch.Tensor:
    """The sum of :func:`released_dr_rows`."""
    return released_dr_rows(h, W, y, class_counts).sum()


@dataclass(frozen=True)
class Objective:
    """The training objective for one (head, loss) setting.

    ``loss_fn``: the bound loss (:func:`objective_loss`; ``None`` → the registered ``loss``);
    ``weights``: class weights ω (K,) in force, or ``None`` for the plain mean.
    """

    loss: str = "ce"
    dr_form: str = "paper"
    balance_batch: bool = False
    dr_target: float = 1.0
    feature_norm_penalty: float = 0.0
    loss_fn: object = None
    weights: torch.Tensor | None = None

    def __post_init__(self):
        if self.loss_fn is None:
            object.__setattr__(self, "loss_fn", get_loss(self.loss))

    def with_weights(self, weights: torch.Tensor | None) -> "Objective":
        """The same objective with class weights ω (or none)."""
        return replace(self, weights=weights)

    def per_label_rows(self, h, logits, W, y, counts) -> torch.Tensor:
        """Loss of each row (B,) against labels y."""
        if self.loss.startswith("dr") and self.dr_form == "released":
            return released_dr_rows(h, W, y, counts if self.balance_batch else None)
        return self.loss_fn.torch_value(logits, y, self.dr_target)

    def per_label_sum(self, h, logits, W, y, counts) -> torch.Tensor:
        """Σ_i ω_{y_i} L_i over the rows (ω = 1 without weights)."""
        rows = self.per_label_rows(h, logits, W, y, counts)
        if self.weights is not None:
            rows = rows * self.weights.to(rows.dtype)[y]
        return rows.sum()

    def __call__(self, h, logits, W, y_a, y_b, lam: float, counts, global_size: int,
                 world_size: int = 1) -> torch.Tensor:
        """Mixup-weighted loss of the local rows, scaled so that averaging the
        gradients over ``world_size`` processes gives the global-batch (weighted) mean."""
        total = self.per_label_sum(h, logits, W, y_a, counts)
        if lam < 1.0:
            total = lam * total + (1.0 - lam) * self.per_label_sum(h, logits, W, y_b, counts)
        penalty = self.feature_norm_penalty * h.norm(dim=1).sum() if self.feature_norm_penalty else None
        if self.weights is None:
            return (total if penalty is None else total + penalty) * (world_size / global_size)
        # Σ ω_y over the global batch (mixup partners permute the same labels), kept on the device
        total = total * (world_size / (counts.to(self.weights.dtype) * self.weights).sum().to(total.dtype))
        return total if penalty is None else total + penalty * (world_size / global_size)
