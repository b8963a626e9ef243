"""Batches for image-file data (ImageNet-LT), read by DataLoader workers.

The epoch's order (:mod:`full_model.sampling`) and the per-image augmentation seeds are drawn in the main
process from the run's seeded generator, identically on every process, so
the order and the augmentation are reproducible and resumable whatever the
number of workers. Process r loads rows r, r+P, … of each global batch.
Mixup pairs rows within each process's share (partners from other processes
are not loaded); λ is shared by all processes.
"""
from __future__ import annotations

import numpy as np
import torch

from .data.base import ImageListData
from .data.imagenet_lt import ImageFiles
from .distributed import DistContext
from .loader import Batch, Normalizer, num_global_batches
from .sampling import epoch_order


class FileTrainLoader:
    def __init__(self, data: ImageListData, *, batch_size: int, device, ctx: DistContext, rng: np.random.Generator,
                 normalizer: Normalizer, mixup_alpha: float = 0.0, num_workers: int = 4,
                 max_batches: int | None = None, augment: bool = True, sampler: str = "instance", epochs: int = 1):
        self.dataset = ImageFiles(data.root, data.train_files, data.y_train, train=augment, size=data.image_size)
        self.y_np, self.K = np.asarray(data.y_train), data.num_classes
        self.device, self.ctx, self.rng, self.normalize = torch.device(device), ctx, rng, normalizer
        self.batch_size, self.alpha, self.workers = batch_size, mixup_alpha, num_workers
        self.sampler, self.epoch, self.epochs = sampler, 0, epochs
        self.num_batches = num_global_batches(len(self.y_np), batch_size, ctx.world_size, max_batches)

    def __len__(self) -> int:
        return self.num_batches

    def set_epoch(self, epoch: int, epochs: int | None = None) -> None:
        """The 0-based epoch (of ``epochs``) that the next pass draws (the progressive sampler uses it)."""
        self.epoch, self.epochs = epoch, self.epochs if epochs is None else epochs

    def __iter__(self):
        order = epoch_order(self.rng, self.y_np, self.K, self.sampler, self.epoch, self.epochs)
        seeds = self.rng.integers(0, 2**31 - 1, size=len(order))
        self._epoch_seed = int(self.rng.integers(0, 2**31 - 1))
        plan = []
        for b in range(self.num_batches):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            lam = float(self.rng.beta(self.alpha, self.alpha)) if self.alpha > 0 else 1.0
            plan.append((idx, seeds[b * self.batch_size:(b + 1) * self.batch_size], lam))
        keys = [[(int(i), int(s)) for i, s in zip(idx[self.ctx.rank::self.ctx.world_size],
                                                 sd[self.ctx.rank::self.ctx.world_size])] for idx, sd, _ in plan]
        loader = torch.utils.data.DataLoader(self.dataset, batch_sampler=keys, num_workers=self.workers,
                                             pin_memory=self.device.type == "cuda")
        for b, (x, y) in enumerate(loader):
            idx, _, lam = plan[b]
            yield self._batch(x, y, idx, lam, b)

    def _batch(self, x, y, idx, lam, b) -> Batch:
        x = self.normalize(x.to(self.device, non_blocking=True))
        y = y.to(self.device, non_blocking=True)
        y_b = y
        if lam < 1.0:
            local = np.random.default_rng([self._epoch_seed, b, self.ctx.rank])
            partner = torch.as_tensor(local.permutation(len(y)), device=self.device)
            x, y_b = lam * x + (1.0 - lam) * x[partner], y[partner]
        counts = torch.as_tensor(np.bincount(self.y_np[idx], minlength=self.K), device=self.device)
        return Batch(x, y, y_b, lam, counts, len(idx))


class FileEvalLoader:
    """This process's shard of a file split, centre-cropped, in order."""

    def __init__(self, data: ImageListData, split: str, *, batch_size: int, device, ctx: DistContext,
                 normalizer: Normalizer, num_workers: int = 4):
        files, labels = (data.train_files, data.y_train) if split == "train" else (data.test_files, data.y_test)
        shard = np.array_split(np.arange(len(labels)), ctx.world_size)[ctx.rank]
        self.dataset = ImageFiles(data.root, files, labels, train=False, size=data.image_size)
        self.keys = [int(i) for i in shard]
        self.device, self.normalize = torch.device(device), normalizer
        self.batch_size, self.workers = batch_size, num_workers

    def __len__(self) -> int:
        return -(-len(self.keys) // self.batch_size)

    def __iter__(self):
        batches = [self.keys[i:i + self.batch_size] for i in range(0, len(self.keys), self.batch_size)]
        loader = torch.utils.data.DataLoader(self.dataset, batch_sampler=batches, num_workers=self.workers,
                                             pin_memory=self.device.type == "cuda")
        for x, y in loader:
            yield self.normalize(x.to(self.device, non_blocking=True)), y.to(self.device, non_blocking=True)
