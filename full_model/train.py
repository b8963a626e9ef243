"""The training loop of a deep run: a recipe read top to bottom.

``train(config)`` loads the long-tailed data, builds backbone + head, and runs
SGD with the epoch schedule of theory.md §7 (linear warm-up, then step decay
or cosine), mixup and augmentation on the device. After every epoch it tracks
the geometry (:mod:`full_model.tracking`), appends one row to
``metrics.jsonl`` and writes ``checkpoint.pt``, both atomically; at the end it
writes ``final_geometry.npz``, ``summary.json`` and ``metrics.png``
(:mod:`full_model.run_format`).

Several processes (torchrun) split each global batch of B rows; each process
scales its summed loss by P/B, so DDP's gradient average equals the gradient
of the global-batch mean of one process. With in-memory data every process
draws the same global augmentation and mixup pairs (:mod:`full_model.loader`),
so the only difference left is BatchNorm, whose batch statistics are
per-process unless ``sync_bn`` (CUDA) is on.

Resume restores every state (model, optimiser, scheduler, epoch, all RNGs)
and is exact on the CPU, bit for bit; on CUDA, cuDNN's non-deterministic
kernels can make the continued run differ in the last bits.
"""
from __future__ import annotations

import contextlib
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lpm.core.errors import LPMInputError

from . import checkpoint as ckpt
from . import outputs
from . import run_format as rf
from .config import TrainConfig
from .data import ArrayData, load_dataset
from .distributed import all_sum, barrier, setup, teardown
from .loader import Normalizer, TensorEvalLoader, TensorTrainLoader
from .losses import Objective
from .models import build_network
from .tracking import groups_for, minority_start, track

# Settings that may change when a run is resumed; every other setting must match the checkpoint.
RESUMABLE = ("epochs", "device", "progress", "figures", "num_workers", "eval_batch_size", "track_every", "out", "amp",
             "channels_last", "data_on_device", "compile", "root")


@dataclass
class RunResult:
    run_dir: Path
    epochs: int
    best_test_accuracy: float | None
    best_epoch: int | None
    last_test_accuracy: float | None
    metrics: list[dict]


@dataclass
class EpochSchedule:
    """lr factor for 0-based epoch e: (e+1)/warmup during warm-up, then
    decay^(#milestones ≤ e) ("step") or ½(1 + cos(π (e−warmup)/(E−warmup))) ("cosine")."""

    warmup: int
    milestones: tuple
    decay: float
    kind: str
    epochs: int

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup:
            return (epoch + 1) / self.warmup
        if self.kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * (epoch - self.warmup) / max(1, self.epochs - self.warmup)))
        return self.decay ** sum(epoch >= m for m in self.milestones)


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise LPMInputError("device", name, "'cpu' or 'auto' on this machine (CUDA is not available)")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def train(config: TrainConfig, resume: bool = False) -> RunResult:
    """Run (or, with ``resume``, continue) one deep run; rank 0 writes ``config.out``."""
    cfg = config.resolved()
    device = resolve_device(cfg.device)
    _check_run_dir(Path(cfg.out), resume)
    ctx = setup(device.type)
    if ctx.active and device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
    try:
        return Trainer(cfg, device, ctx).run(resume)
    finally:
        teardown(ctx)


def resume_config(run_dir, overrides: dict | None = None) -> TrainConfig:
    """The saved config of ``run_dir`` with ``overrides`` (only :data:`RESUMABLE` keys may differ)."""
    path = Path(run_dir) / rf.CONFIG_FILE
    if not path.is_file():
        raise LPMInputError("out", str(run_dir), f"a run folder holding {rf.CONFIG_FILE} and {rf.CHECKPOINT_FILE} "
                                                 "to resume")
    saved = json.loads(path.read_text())["config"]
    values = {**saved, **{k: v for k, v in (overrides or {}).items() if v is not None}, "out": str(run_dir)}
    _check_same(saved, TrainConfig.from_dict(values).resolved().to_dict(), run_dir)
    return TrainConfig.from_dict(values).resolved()


def _check_same(saved: dict, new: dict, run_dir) -> None:
    for key, value in new.items():
        if key not in RESUMABLE and saved.get(key) != value:
            raise LPMInputError(key, value, f"{saved.get(key)!r} as saved in {Path(run_dir) / rf.CONFIG_FILE} "
                                            "when resuming that run")


def _check_run_dir(run_dir: Path, resume: bool) -> None:
    has_checkpoint = (run_dir / rf.CHECKPOINT_FILE).is_file()
    if resume and not has_checkpoint:
        raise LPMInputError("out", str(run_dir), f"a run folder holding {rf.CHECKPOINT_FILE} to resume")
    if not resume and has_checkpoint:
        raise LPMInputError("out", str(run_dir), "a new run folder (this one holds a checkpoint; resume it "
                                                 "instead or choose another folder)")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    def __init__(self, cfg: TrainConfig, device: torch.device, ctx):
        self.cfg, self.device, self.ctx, self.run_dir = cfg, device, ctx, Path(cfg.out)
        seed_everything(cfg.seed)
        self.data = load_dataset(cfg.dataset, cfg.root, cfg.ratio, cfg.profile, cfg.n_max, cfg.subset_seed,
                                 cfg.majority, cfg.num_classes)
        if cfg.image_size is not None:
            if isinstance(self.data, ArrayData):
                raise LPMInputError("image_size", cfg.image_size, "left unset except for 'imagenet-lt'")
            self.data.image_size = cfg.image_size
        self.K = self.data.num_classes
        cuda = device.type == "cuda"
        self.amp = cuda if cfg.amp is None else cfg.amp
        image = len(self.data.input_shape) == 3
        # channels-last suits both cuDNN and oneDNN: 4× faster ResNet-32 steps on a 2-core CPU as well
        self.channels_last = image if cfg.channels_last is None else cfg.channels_last
        torch.manual_seed(cfg.seed)
        self.net = build_network(cfg.backbone, cfg.head, self.K, self.data.input_shape, feature_dim=cfg.feature_dim,
                                 head_seed=cfg.head_seed, normalize=cfg.normalize_features,
                                 head_batchnorm=cfg.head_batchnorm, head_bias=cfg.head_bias).to(device)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.model = self._wrap(self.net)
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                         weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._schedule())
        self.data_rng = np.random.default_rng(cfg.seed)
        self.objective = Objective(cfg.loss, cfg.dr_form, bool(cfg.balance_batch), cfg.dr_target,
                                   float(cfg.feature_norm_penalty))
        self._build_loaders()
        self.groups = groups_for(self.K, self.data.counts, self.data.group_scheme)
        self.majority = minority_start(self.K, self.groups, self.data.group_scheme, cfg.profile, cfg.majority)
        self.snapshot = None

    # ------------------------------------------------------------ setup
    def _schedule(self) -> EpochSchedule:
        c = self.cfg
        return EpochSchedule(c.warmup_epochs, tuple(c.milestones), c.lr_decay, c.schedule, c.epochs)

    def _wrap(self, net):
        model = net
        if self.ctx.active:
            if self.cfg.sync_bn and self.device.type == "cuda":
                net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
                self.net = net
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = torch.nn.parallel.DistributedDataParallel(net, device_ids=ids)
        return torch.compile(model) if self.cfg.compile else model

    def autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def _on_device(self) -> bool:
        if self.cfg.data_on_device is not None or self.device.type != "cuda":
            return True if self.device.type != "cuda" else bool(self.cfg.data_on_device)
        d = self.data
        free, _ = torch.cuda.mem_get_info(self.device)
        return (d.x_train.nbytes + d.x_test.nbytes) < 0.3 * free

    def _build_loaders(self) -> None:
        cfg, d, common = self.cfg, self.data, {"device": self.device, "ctx": self.ctx}
        norm = Normalizer(d.mean, d.std, self.device, self.channels_last)
        if isinstance(d, ArrayData):
            on_dev = self._on_device()
            augment = (d.augment == "crop-flip") if cfg.augment is None else cfg.augment
            self.train_loader = TensorTrainLoader(
                d.x_train, d.y_train, self.K, batch_size=cfg.batch_size, rng=self.data_rng, normalizer=norm,
                augment=augment, mixup_alpha=cfg.mixup_alpha, on_device=on_dev,
                max_batches=cfg.max_batches_per_epoch, **common)
            self.eval_loaders = [TensorEvalLoader(x, y, batch_size=cfg.eval_batch_size, normalizer=norm,
                                                  on_device=on_dev, **common)
                                 for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test))]
            return
        from .loader_files import FileEvalLoader, FileTrainLoader

        self.train_loader = FileTrainLoader(d, batch_size=cfg.batch_size, rng=self.data_rng, normalizer=norm,
                                            mixup_alpha=cfg.mixup_alpha, num_workers=cfg.num_workers,
                                            max_batches=cfg.max_batches_per_epoch, augment=cfg.augment is not False,
                                            **common)
        self.eval_loaders = [FileEvalLoader(d, split, batch_size=cfg.eval_batch_size, normalizer=norm,
                                            num_workers=cfg.num_workers, **common) for split in ("train", "test")]

    # ------------------------------------------------------------ loop
    def run(self, resume: bool) -> RunResult:
        rows, start, elapsed = self._restore() if resume else ([], 0, 0.0)
        if not resume and self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            outputs.write_config(self.run_dir, self.cfg.to_dict(), self.data_info(), self.model_info(),
                                 outputs.provenance(self.device, self.ctx.world_size))
        began = time.time() - elapsed
        for epoch in range(start, self.cfg.epochs):
            rows.append(self.epoch(epoch))
            if self.ctx.is_main:
                outputs.write_metrics(self.run_dir, rows)
                self.save(epoch + 1, time.time() - began)
            barrier(self.ctx)
        if self.snapshot is None:  # resumed after the last epoch: measure the final model again
            self.track()
        summary = outputs.summarize(rows, time.time() - began)
        if self.ctx.is_main:
            outputs.write_geometry(self.run_dir, self.snapshot, epoch=len(rows), train_counts=self.data.counts,
                                   config=self.cfg)
            outputs.write_summary(self.run_dir, summary)
            if self.cfg.figures:
                outputs.write_figure(self.run_dir, rows)
        barrier(self.ctx)
        return RunResult(self.run_dir, len(rows), summary["best_test_accuracy"], summary["best_epoch"],
                         summary["last_test_accuracy"], rows)

    def epoch(self, epoch: int) -> dict:
        lr = self.optimizer.param_groups[0]["lr"]
        t0 = time.time()
        loss, accuracy, seen = self.train_epoch(epoch)
        self.scheduler.step()
        took = time.time() - t0
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": loss, "batch_accuracy": accuracy,
               "epoch_time_s": took, "images_per_s": seen / max(took, 1e-9)}
        if (epoch + 1) % self.cfg.track_every == 0 or epoch + 1 == self.cfg.epochs:
            t1 = time.time()
            row.update(self.track())
            row["eval_time_s"] = time.time() - t1
            if self.cfg.progress and self.ctx.is_main:
                tqdm.write(f"epoch {epoch + 1}/{self.cfg.epochs}  loss {loss:.4f}  train acc "
                           f"{row['train_accuracy']:.4f}  test acc {row['test_accuracy']:.4f}  nc1 {row['nc1']}")
        return row

    def train_epoch(self, epoch: int) -> tuple[float, float, int]:
        """One pass over the training batches; returns (mean objective, batch accuracy, rows seen)."""
        self.model.train()
        W_of = self.net.get_classifier
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.float64)
        seen = 0
        bar = tqdm(self.train_loader, total=len(self.train_loader), desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
                   leave=False, disable=not (self.cfg.progress and self.ctx.is_main), dynamic_ncols=True)
        for step, batch in enumerate(bar):
            with self.autocast():
                h, z = self.model(batch.x, with_features=True)
            h, z = h.float(), z.float()
            loss = self.objective(h, z, W_of(), batch.y_a, batch.y_b, batch.lam, batch.counts, batch.global_size,
                                  self.ctx.world_size)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach().double() * (batch.global_size / self.ctx.world_size)
            correct += (z.detach().argmax(dim=1) == batch.y_a).sum()
            seen += len(batch.y_a)
            if not bar.disable and step % 10 == 0:
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", acc=f"{correct.item() / seen:.3f}")
        totals = all_sum(self.ctx, np.array([loss_sum.item(), correct.item(), seen]))
        return float(totals[0] / totals[2]), float(totals[1] / totals[2]), int(totals[2])

    def track(self) -> dict:
        metrics, self.snapshot = track(self.net, *self.eval_loaders, num_classes=self.K, groups=self.groups,
                                       majority=self.majority, ctx=self.ctx, autocast=self.autocast,
                                       nc4_on_train=self.cfg.nc4_on_train, center=self.cfg.center)
        return metrics

    # ------------------------------------------------------------ state
    def save(self, epochs_done: int, wall_time_s: float) -> None:
        state = {"format_version": rf.FORMAT_VERSION, "epoch": epochs_done, "model": self.net.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "rng": ckpt.capture_rng(self.data_rng), "config": self.cfg.to_dict(), "wall_time_s": wall_time_s}
        ckpt.save_atomic(state, self.run_dir / rf.CHECKPOINT_FILE)

    def _restore(self) -> tuple[list[dict], int, float]:
        state = ckpt.load(self.run_dir / rf.CHECKPOINT_FILE, self.device)
        _check_same(state["config"], self.cfg.to_dict(), self.run_dir)
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scheduler.lr_lambdas[0] = self._schedule()  # the (possibly extended) epoch count of this config
        ckpt.restore_rng(state["rng"], self.data_rng)
        done = int(state["epoch"])
        rows = [r for r in rf.read_metrics(self.run_dir / rf.METRICS_FILE) if r["epoch"] <= done]
        return rows, done, float(state.get("wall_time_s", 0.0))

    def data_info(self) -> dict:
        d = self.data
        return {"name": d.name, "num_classes": self.K, "train_counts": list(d.counts), "train_size": len(d.y_train),
                "test_size": len(d.y_test), "input_shape": list(d.input_shape), "profile": d.profile,
                "group_scheme": d.group_scheme, "groups": self.groups[0].tolist(), "group_names": list(self.groups[1]),
                "majority": self.majority}

    def model_info(self) -> dict:
        return {"backbone": self.cfg.backbone, "head": self.cfg.head, "feature_dim": self.net.get_classifier().shape[1],
                "parameters": sum(p.numel() for p in self.net.parameters())}
