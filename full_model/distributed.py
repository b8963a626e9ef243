"""Multi-process training through PyTorch's own engine (design.md).

Launch with ``torchrun --nproc_per_node N $(which lpm) train-deep ...``:
torchrun sets RANK, WORLD_SIZE and LOCAL_RANK, and :func:`setup` joins the
process group (NCCL on CUDA, gloo on CPU). Only rank 0 writes files.

The streaming statistics of :mod:`lpm.core.geometry` are merged exactly across
ranks: counts and sums add, and the within-class scatter is combined with
the parallel-variance rule

    N Σ_W = Σ_r N_r Σ_W^(r) + Σ_r Σ_k n_k^(r) (μ_k^(r) − μ_k)(μ_k^(r) − μ_k)ᵀ.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def setup(device_type: str) -> DistContext:
    """Join the process group when torchrun started us; otherwise one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local)  # before NCCL starts, so each process owns its own GPU
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return DistContext(rank, world, local)


def teardown(ctx: DistContext) -> None:
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.active:
        dist.barrier()


def all_sum(ctx: DistContext, array: np.ndarray) -> np.ndarray:
    """Sum a float64 array over ranks (a copy; the input is unchanged)."""
    array = np.asarray(array, dtype=np.float64)
    if not ctx.active:
        return array.copy()
    t = torch.from_numpy(array.copy())
    if dist.get_backend() == "nccl":  # NCCL reduces CUDA tensors only
        t = t.to(torch.device("cuda", torch.cuda.current_device()))
    dist.all_reduce(t)
    return t.cpu().numpy()


def reduce_class_stats(ctx: DistContext, stats) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Merged (counts (K,), means (K×d), within_cov (d×d), balanced within_cov (d×d) or None)
    of a ClassStats on every rank (the balanced one needs the class counts given to ClassStats)."""
    counts, means, cov = stats.counts, stats.means, stats.within_cov
    if not ctx.active:
        return counts.copy(), means, cov, stats.balanced_within_cov
    total_counts = all_sum(ctx, counts)
    global_means = all_sum(ctx, counts[:, None] * means) / np.maximum(total_counts, 1)[:, None]
    delta = means - global_means                             # (K, d); rows of empty classes are weighted 0
    scatter = counts.sum() * cov + (counts[:, None] * delta).T @ delta
    merged = all_sum(ctx, scatter) / max(total_counts.sum(), 1)
    return total_counts, global_means, 0.5 * (merged + merged.T), _reduce_balanced(ctx, stats, delta, total_counts)


def _reduce_balanced(ctx: DistContext, stats, delta: np.ndarray, total_counts: np.ndarray) -> np.ndarray | None:
    """Σ_W^bal over ranks: each rank's scatter about its own means, moved to the global means."""
    local = stats.balanced_scatter()
    if local is None:
        return None
    weight = stats.counts / np.maximum(stats.expected, 1.0)
    merged = all_sum(ctx, local + (weight[:, None] * delta).T @ delta)
    if not np.array_equal(total_counts, stats.expected):
        return None
    return 0.5 * (merged + merged.T) / stats.K


def reduce_class_variances(ctx: DistContext, stats, global_means: np.ndarray) -> np.ndarray:
    """Per-class variances tr Cov_k of a ClassStats merged over ranks (the parallel-variance rule
    per class: n_k σ_k² = Σ_r n_k^(r) (σ_k^(r)² + ‖μ_k^(r) − μ_k‖²))."""
    counts = stats.counts
    if not ctx.active:
        return stats.class_variances
    delta = stats.means - global_means
    local = counts * (stats.class_variances + np.einsum("kd,kd->k", delta, delta))
    return all_sum(ctx, local) / np.maximum(all_sum(ctx, counts), 1)


def reduce_classification(ctx: DistContext, stats) -> None:
    """Sum a ClassificationStats' tallies over ranks, in place."""
    for name in stats.TALLIES:
        if getattr(stats, name) is not None:
            setattr(stats, name, all_sum(ctx, getattr(stats, name)))


def reduce_agreement(ctx: DistContext, stats) -> None:
    """Sum a NearestMeanAgreement's tallies over ranks, in place."""
    stats.disagree, stats.total = (int(v) for v in all_sum(ctx, np.array([stats.disagree, stats.total])))
    stats.agree_per_class = all_sum(ctx, stats.agree_per_class)
    stats.total_per_class = all_sum(ctx, stats.total_per_class)
