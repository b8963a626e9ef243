"""The training objective of a deep run (theory.md §5–§6), built on the loss registry.

Every loss comes from :mod:`lpm.core.losses`, the same definitions the
layer-peeled solvers use: ``ce``, ``dr`` (the paper's form, target
``dr_target`` = sqrt(E_W E_H), which is 1 for the ℓ2-normalised fixed heads),
``dr-unscaled`` and ``mse``. With ``dr_form="released"`` a DR loss is
trained through the released code's surrogate (theory.md §6.1,
:func:`lpm.core.losses.released_dr_value`), optionally with in-batch class
balancing (§6.2, :func:`lpm.core.losses.batch_balance_scale`).

The objective returns the **sum** over the rows it is given, scaled by
(number of processes / global batch size): DDP's gradient average then equals
the gradient of the global-batch mean of one process (see
:mod:`full_model.train`).

Mixup (Zhang et al. 2018) mixes inputs x̃ = λ x_a + (1 − λ) x_b and the loss
λ L(·, y_a) + (1 − λ) L(·, y_b); the batch counts c_y for balancing are taken
over y_a (y_b is a permutation of the same batch, so its counts agree).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lpm.core.losses import batch_balance_scale, get_loss, released_dr_value


def released_dr_sum(h: torch.Tensor, W: torch.Tensor, y: torch.Tensor,
                    class_counts: torch.Tensor | None = None) -> torch.Tensor:
    """Σ ½(w̃_yᵀh − ‖w̃_y‖‖h‖)² / ‖h‖ with both norms detached; w̃_y = sqrt(γ/c_y) w_y when
    ``class_counts`` (K,), the counts of the global batch, are given.

    h: (B, d) features; W: (K, d) classifier.
    """
    w = W[y]                                                          # (B, d)
    if class_counts is not None:
        w = w * batch_balance_scale(y, class_counts.to(h.dtype))[:, None]
    dot = (h * w).sum(dim=1)
    h_norm = h.norm(dim=1).detach().clamp_min(1e-12)
    return released_dr_value(dot, h_norm, w.norm(dim=1).detach()).sum()


@dataclass(frozen=True)
class Objective:
    """The training objective for one (head, loss) setting."""

    loss: str = "ce"
    dr_form: str = "paper"
    balance_batch: bool = False
    dr_target: float = 1.0
    feature_norm_penalty: float = 0.0

    def per_label_sum(self, h, logits, W, y, counts) -> torch.Tensor:
        if self.loss.startswith("dr") and self.dr_form == "released":
            return released_dr_sum(h, W, y, counts if self.balance_batch else None)
        return get_loss(self.loss).torch_value(logits, y, self.dr_target).sum()

    def __call__(self, h, logits, W, y_a, y_b, lam: float, counts, global_size: int,
                 world_size: int = 1) -> torch.Tensor:
        """Mixup-weighted loss of the local rows, scaled so that averaging the
        gradients over ``world_size`` processes gives the global-batch mean."""
        total = self.per_label_sum(h, logits, W, y_a, counts)
        if lam < 1.0:
            total = lam * total + (1.0 - lam) * self.per_label_sum(h, logits, W, y_b, counts)
        if self.feature_norm_penalty:
            total = total + self.feature_norm_penalty * h.norm(dim=1).sum()
        return total * (world_size / global_size)
