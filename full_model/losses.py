"""Training losses for deep runs (theory.md §5–§6).

Every loss returns the **sum** over the rows it is given; the trainer divides
by the size of the global batch, so a batch split over several processes
gives the same gradient as one process (see :mod:`full_model.train`).

* ``ce``: log Σ_j exp(z_j) − z_y.
* ``dr``, ``dr_form="paper"`` [Y22, Thm 2]: ½ (w_yᵀh − sqrt(E_W E_H))². With
  the normalised fixed heads ‖w_k‖ = ‖h‖ = 1, so the target is 1
  (``dr_target``) and w_yᵀh is the logit z_y.
* ``dr``, ``dr_form="released"`` (§6.1): ½ (w_yᵀh − ‖w_y‖‖h‖)² / ‖h‖ with
  both norms detached, i.e. ½ ‖w_y‖²‖h‖ (cos θ − 1)² per sample.
  ``balance_batch`` (§6.2, "GivenEw") scales the target column w_y by
  sqrt(γ / c_y), c_y the count of class y in the (global) batch and
  γ = batch size / number of distinct labels, giving an in-batch
  class-balanced average of (1 − cos θ)².

Mixup (Zhang et al. 2018) mixes inputs x̃ = λ x_a + (1 − λ) x_b and the
loss λ L(·, y_a) + (1 − λ) L(·, y_b); the batch counts c_y for balancing are
taken over y_a (y_b is a permutation of the same batch, so its counts agree).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOSSES = ("ce", "dr")
DR_FORMS = ("paper", "released")


def ce_sum(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="sum")


def dr_paper_sum(logits: torch.Tensor, y: torch.Tensor, target: float = 1.0) -> torch.Tensor:
    """Σ ½ (z_y − target)², z_y = w_yᵀh."""
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    return 0.5 * ((z_y - target) ** 2).sum()


def dr_released_sum(h: torch.Tensor, W: torch.Tensor, y: torch.Tensor,
                    class_counts: torch.Tensor | None = None) -> torch.Tensor:
    """Σ ½ (w̃_yᵀh − ‖w̃_y‖‖h‖)² / ‖h‖, norms detached; w̃_y = sqrt(γ/c_y) w_y when balanced.

    h: (B, d) features; W: (K, d) classifier; class_counts: (K,) counts c_k in
    the global batch (None: no balancing).
    """
    w = W[y]                                              # (B, d)
    if class_counts is not None:
        counts = class_counts.to(h.dtype)
        gamma = counts.sum() / (counts > 0).sum()
        w = w * torch.sqrt(gamma / counts[y])[:, None]
    dot = (h * w).sum(dim=1)
    h_norm = h.norm(dim=1).detach().clamp_min(1e-12)
    w_norm = w.norm(dim=1).detach()
    return 0.5 * ((dot - h_norm * w_norm) ** 2 / h_norm).sum()


@dataclass(frozen=True)
class Objective:
    """The training objective for one (head, loss) setting."""

    loss: str = "ce"
    dr_form: str = "paper"
    balance_batch: bool = False
    dr_target: float = 1.0
    feature_norm_penalty: float = 0.0

    def per_label_sum(self, h, logits, W, y, counts) -> torch.Tensor:
        if self.loss == "ce":
            return ce_sum(logits, y)
        if self.dr_form == "paper":
            return dr_paper_sum(logits, y, self.dr_target)
        return dr_released_sum(h, W, y, counts if self.balance_batch else None)

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
