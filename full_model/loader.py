"""Batches for in-memory data, with augmentation and mixup on the device.

Every process holds the whole (small) data set — on the GPU when it fits —
and draws the same random numbers from one seeded ``numpy`` generator: the
epoch's order (a permutation, or a class-aware draw, :mod:`full_model.sampling`),
the crop offsets and flips of each *global* batch, the
mixup λ and the mixup partners. Process r then takes the rows r, r+P, r+2P, …
of each global batch. Hence P processes see exactly the rows, augmentations
and mixup pairs of one process with the same global batch, and a resumed run
repeats them once the generator state is restored.

Crop-flip (theory.md §7, CIFAR): pad the uint8 image with 4 zero pixels on
each side, take a random 32×32 window, flip it left-right with probability
½; done for a whole batch by one gather. Inputs are then mapped to float as
(x/255 − mean)/std. Vector data are used as they are.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .distributed import DistContext
from .sampling import epoch_order

PAD = 4


@dataclass
class Batch:
    """Local rows of one global batch. ``counts``: (K,) label counts of the global batch."""

    x: torch.Tensor
    y_a: torch.Tensor
    y_b: torch.Tensor
    lam: float
    counts: torch.Tensor
    global_size: int


def crop_flip(x: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, flip: torch.Tensor, pad: int = PAD):
    """Random crops and flips of a batch (b, C, H, W) in one gather.

    oy, ox: (b,) window offsets in [0, 2·pad]; flip: (b,) bool. A flip reverses
    the window's column order. Returns (b, C, H, W) in channels-last memory.
    """
    b, _, H, W = x.shape
    P = F.pad(x, (pad, pad, pad, pad))                                   # (b, C, H+2p, W+2p)
    rows = oy[:, None] + torch.arange(H, device=x.device)                # (b, H)
    cols = ox[:, None] + torch.arange(W, device=x.device)                # (b, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    out = P[torch.arange(b, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (b, H, W, C)
    return out.permute(0, 3, 1, 2)


class Normalizer:
    """uint8 images → (x/255 − mean)/std in float32; float inputs pass through."""

    def __init__(self, mean, std, device, channels_last: bool = False):
        self.channels_last = channels_last
        self.mean = None if mean is None else torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = None if std is None else torch.tensor(std, device=device).view(1, -1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
            if self.mean is not None:
                x = (x - self.mean) / self.std
        else:
            x = x.float()
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def place(array: np.ndarray, device: torch.device, on_device: bool) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(array))
    if on_device:
        return t.to(device)
    return t.pin_memory() if device.type == "cuda" else t


def num_global_batches(n: int, batch_size: int, world_size: int, cap: int | None = None) -> int:
    """⌈n/B⌉, less a last batch too small to give each process 2 rows (BatchNorm needs 2)."""
    full, rest = divmod(n, batch_size)
    count = full + (1 if rest >= 2 * world_size or full == 0 else 0)
    return count if cap is None else min(count, cap)


class TensorTrainLoader:
    """Training batches of an in-memory split (see the module docstring)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, num_classes: int, *, batch_size: int, device, ctx: DistContext,
                 rng: np.random.Generator, normalizer: Normalizer, augment: bool = False, mixup_alpha: float = 0.0,
                 on_device: bool = True, max_batches: int | None = None, sampler: str = "instance",
                 epochs: int = 1):
        self.device, self.ctx, self.rng, self.normalize = torch.device(device), ctx, rng, normalizer
        self.sampler, self.epoch, self.epochs = sampler, 0, epochs
        self.x, self.y = place(x, self.device, on_device), place(y, self.device, on_device)
        self.y_np, self.K = np.asarray(y), num_classes
        self.batch_size, self.augment, self.alpha = batch_size, augment, mixup_alpha
        self.num_batches = num_global_batches(len(y), batch_size, ctx.world_size, max_batches)

    def __len__(self) -> int:
        return self.num_batches

    def set_epoch(self, epoch: int, epochs: int | None = None) -> None:
        """The 0-based epoch (of ``epochs``) that the next pass draws (the progressive sampler uses it)."""
        self.epoch, self.epochs = epoch, self.epochs if epochs is None else epochs

    def __iter__(self):
        order = epoch_order(self.rng, self.y_np, self.K, self.sampler, self.epoch, self.epochs)
        for b in range(self.num_batches):
            yield self._batch(order[b * self.batch_size:(b + 1) * self.batch_size])

    def _batch(self, idx: np.ndarray) -> Batch:
        B, rng = len(idx), self.rng
        aug = None
        if self.augment:  # crop offsets and flips for every row of the global batch
            aug = (rng.integers(0, 2 * PAD + 1, size=B), rng.integers(0, 2 * PAD + 1, size=B), rng.random(B) < 0.5)
        lam, partner = (float(rng.beta(self.alpha, self.alpha)), rng.permutation(B)) if self.alpha > 0 else (1.0, None)
        mine = np.arange(self.ctx.rank, B, self.ctx.world_size)   # this process's rows of the global batch
        x, y_a = self._view(idx, mine, aug)
        y_b = y_a
        if partner is not None:  # partner rows keep the augmentation they have in their own slot
            x_b, y_b = self._view(idx, partner[mine], aug)
            x = lam * x + (1.0 - lam) * x_b
        counts = torch.as_tensor(np.bincount(self.y_np[idx], minlength=self.K), device=self.device)
        return Batch(x, y_a, y_b, lam, counts, B)

    def _view(self, idx: np.ndarray, positions: np.ndarray, aug):
        """Normalised, augmented rows at ``positions`` of the global batch ``idx``."""
        index = torch.as_tensor(idx[positions], device=self.x.device)
        x = self.x[index].to(self.device, non_blocking=True)
        y = self.y[index].to(self.device, non_blocking=True)
        if aug is not None:
            oy, ox, flip = (torch.as_tensor(a[positions], device=self.device) for a in aug)
            x = crop_flip(x, oy, ox, flip)
        return self.normalize(x), y


class TensorEvalLoader:
    """This process's contiguous shard of a split, in order, without augmentation."""

    def __init__(self, x: np.ndarray, y: np.ndarray, *, batch_size: int, device, ctx: DistContext,
                 normalizer: Normalizer, on_device: bool = True):
        shard = np.array_split(np.arange(len(y)), ctx.world_size)[ctx.rank]
        self.device, self.normalize, self.batch_size = torch.device(device), normalizer, batch_size
        self.x, self.y = place(x[shard], self.device, on_device), place(y[shard], self.device, on_device)

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def __iter__(self):
        for start in range(0, len(self.y), self.batch_size):
            x = self.x[start:start + self.batch_size].to(self.device, non_blocking=True)
            y = self.y[start:start + self.batch_size].to(self.device, non_blocking=True)
            yield self.normalize(x), y
