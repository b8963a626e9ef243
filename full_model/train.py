"""The training loop of a deep run: a recipe read top to bottom.

``train(config)`` loads the long-tailed data, builds backbone + head, and runs
SGD with the epoch schedule of theory.md §7 (linear warm-up, then step decay
or cosine), mixup and augmentation on the device. After every epoch it tracks
the geometry (:mod:`full_model.tracking`), appends one row to
``metrics.jsonl`` and writes ``checkpoint.pt``, both atomically; at the end it
writes ``final_geometry.npz``, ``summary.json`` and the figures ``metrics.png``,
``evaluation.png`` and ``confusion.png`` (:mod:`full_model.run_format`); with
``tensorboard`` on, every row and figure also goes to a TensorBoard log
(:mod:`full_model.tensorboard_log`).

Several processes (torchrun) split each global batch of B rows; each process
scales its summed loss by P/B, so DDP's gradient average equals the gradient
of the global-batch mean of one process. With in-memory data every process
draws the same global augmentation and mixup pairs (:mod:`full_model.loader`),
so the only difference left is BatchNorm, whose batch statistics are
per-process unless ``sync_bn`` (CUDA) is on.

Remedies (docs/recipes.md): the loss is bound to the run's class counts
(:func:`full_model.losses.objective_loss`); class weights ω apply from the
start or, with deferred re-weighting, after ``drw_epoch`` epochs; the
sampler draws each epoch's order (:mod:`full_model.sampling`). A second
stage starts from its ``parent`` run folder: ``crt`` freezes the backbone
(weights and BatchNorm statistics) and re-trains a fresh classifier;
``tau-norm`` and ``logit-adjust`` change the parent's classifier, evaluate
once and write the run folder without training.

Resume restores every state (model, optimiser, scheduler, epoch, all RNGs,
the metrics so far) and is exact on the CPU, bit for bit; on CUDA, cuDNN's
non-deterministic kernels can make the continued run differ in the last
bits. Only the settings in :data:`RESUMABLE` may change on resume (more
``epochs``, say); ``config.json`` is rewritten with them. A missing or
damaged ``metrics.jsonl`` is rebuilt from the history kept in the
checkpoint, with a warning.

Divergence: a training loss that is not finite, or above
:data:`DIVERGENCE_FACTOR` times max(1, the run's first loss), or features
that are not finite when tracking, stop the run with
:class:`full_model.errors.TrainingDiverged` naming the epoch and step;
nothing of that epoch is written and the last good checkpoint stays. The
check runs on the device and is read every :data:`CHECK_EVERY` steps, so it
costs no synchronisation per step.

Everything that can be checked before training is: the output folder, the
checkpoint to resume, and the batch size against the training set (a batch
larger than the set is refused: use the set's size for full-batch training).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lpm.core.errors import LPMInputError, check_fits_in_memory
from lpm.core.io import check_output_path, folder_lock, json_default

from . import checkpoint as ckpt
from . import outputs
from . import run_format as rf
from lpm.core.weighting import class_weights
from .config import POST_HOC_STAGES, REMEDY_DEFAULTS, TrainConfig
from .data import ArrayData, load_dataset
from .distributed import all_sum, barrier, setup, teardown
from .errors import NonFiniteOutputs, RunWarning, TrainingDiverged
from .loader import Normalizer, TensorEvalLoader, TensorTrainLoader
from .losses import Objective, objective_loss
from .models import build_network
from .tensorboard_log import TensorBoardLog
from .tensorboard_log import check_available as check_tensorboard
from .tracking import groups_for, minority_start, track

# Settings that may change when a run is resumed; every other setting must match the checkpoint.
RESUMABLE = ("epochs", "device", "progress", "figures", "num_workers", "eval_batch_size", "track_every", "out", "amp",
             "channels_last", "data_on_device", "compile", "root", "tensorboard")
#: a loss above this many times max(1, the run's first loss) has exploded
DIVERGENCE_FACTOR = 1e4
#: steps between reads of the on-device divergence flag (and the last step of each epoch)
CHECK_EVERY = 50
#: seconds between refreshes of the progress bar's loss/accuracy
POSTFIX_EVERY_S = 0.5
#: the τ of w_k/‖w_k‖^τ tried when τ-normalisation chooses it on the training set: 0, 0.1, …, 2
TAU_GRID = np.round(np.arange(0, 21) / 10, 1)


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
    """Run (or, with ``resume``, continue) one deep run; rank 0 writes ``config.out``.

    Raises :class:`LPMInputError` for settings, folders and files that cannot be used (before any
    work), and :class:`full_model.errors.TrainingDiverged` when the loss stops being finite.
    """
    cfg = config.resolved()
    if cfg.tensorboard:
        check_tensorboard()
    run_dir = check_output_path("out", cfg.out, "folder")
    device = resolve_device(cfg.device)
    check_memory(cfg)
    writer = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 writes (and locks) the folder
    with folder_lock(run_dir, "out", "training run") if writer else contextlib.nullcontext():
        state = _check_run_dir(run_dir, resume)
        if state is not None:
            _check_same(state["config"], cfg.to_dict(), run_dir / rf.CHECKPOINT_FILE)
            if cfg.epochs < state["epoch"]:
                raise LPMInputError("epochs", cfg.epochs, f"at least the {state['epoch']} epochs already done in "
                                                          f"{run_dir}")
            _warn_schedule_change(TrainConfig.from_dict(state["config"]), cfg, state["epoch"])
        ctx = setup(device.type)
        if ctx.active and device.type == "cuda":
            device = torch.device("cuda", ctx.local_rank)
        try:
            if ctx.is_main and run_dir.is_dir():
                rf.remove_stale_temporaries(run_dir)
            return Trainer(cfg, device, ctx, fresh=state is None).run(state)
        finally:
            teardown(ctx)


#: bytes per float64 value
_F64 = 8


def check_memory(cfg: TrainConfig) -> None:
    """Refuse, before allocating, a feature dimension whose arrays cannot fit in memory: the
    d × d within-class covariance that tracking measures (float64, about four copies while it is
    computed and written); the layers around the features are smaller for any backbone."""
    d = int(cfg.feature_dim)
    check_fits_in_memory("feature_dim", d, 4 * _F64 * float(d) ** 2,
                         f"feature_dim={d} (4 float64 arrays of d × d for the covariance)")


def resume_config(run_dir, overrides: dict | None = None) -> TrainConfig:
    """The saved config of ``run_dir`` with ``overrides`` (only :data:`RESUMABLE` keys may differ).

    The settings come from ``config.json``, or from the checkpoint when ``config.json`` is missing
    (with a warning; the resumed run writes it again)."""
    run_dir = Path(run_dir)
    path, checkpoint = run_dir / rf.CONFIG_FILE, run_dir / rf.CHECKPOINT_FILE
    if not checkpoint.is_file():
        raise LPMInputError("out", str(run_dir), f"a run folder holding {rf.CONFIG_FILE} and {rf.CHECKPOINT_FILE} "
                                                 "to resume")
    if path.is_file():
        saved = _read_saved_config(path)
    else:
        saved = ckpt.load(checkpoint)["config"]
        warnings.warn(f"{path} is missing: resuming with the settings kept in {rf.CHECKPOINT_FILE} "
                      f"(and writing {rf.CONFIG_FILE} again)", RunWarning, stacklevel=2)
    values = {**saved, **{k: v for k, v in (overrides or {}).items() if v is not None}, "out": str(run_dir)}
    source = f"saved config {path}"
    _check_same(saved, TrainConfig.from_dict(values, source).resolved().to_dict(),
                path if path.is_file() else checkpoint)
    return TrainConfig.from_dict(values, source).resolved()


def _read_saved_config(path: Path) -> dict:
    recovery = (f"delete it and resume again: it is written again from the settings kept in "
                f"{rf.CHECKPOINT_FILE}")
    try:
        saved = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise LPMInputError("out", str(path.parent), f"a run folder with a readable {rf.CONFIG_FILE} to resume "
                                                     f"({rf.CONFIG_FILE} is not valid JSON: {exc}; "
                                                     f"{recovery})") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        raise LPMInputError("out", str(path.parent), f"a run folder with a readable {rf.CONFIG_FILE} to resume "
                                                     f"({rf.CONFIG_FILE} has no \"config\" table; {recovery})")
    return saved["config"]


def _check_same(saved: dict, new: dict, source) -> None:
    """Refuse a change of a setting that is not RESUMABLE; ``source`` is the file the saved settings came
    from. A remedy setting missing from an older run's config is its default (those runs were made
    without it)."""
    for key, value in new.items():
        old = saved.get(key, REMEDY_DEFAULTS.get(key))
        if key not in RESUMABLE and old != value:
            raise LPMInputError(key, value, f"{old!r} as saved in {source} when resuming that run")


def _check_run_dir(run_dir: Path, resume: bool) -> dict | None:
    """Refuse a folder that does not fit ``resume``; when resuming, load and return its checkpoint."""
    has_checkpoint = (run_dir / rf.CHECKPOINT_FILE).is_file()
    if resume and not has_checkpoint:
        raise LPMInputError("out", str(run_dir), f"a run folder holding {rf.CHECKPOINT_FILE} to resume")
    if not resume and has_checkpoint:
        raise LPMInputError("out", str(run_dir), "a new run folder (this one holds a checkpoint; resume it "
                                                 "instead or choose another folder)")
    if not resume:
        return None
    state = ckpt.load(run_dir / rf.CHECKPOINT_FILE)
    rf.check_run_ids(run_dir, {rf.CHECKPOINT_FILE: state.get("run_id")}, (rf.CONFIG_FILE,), name="out")
    return state


def schedule_of(c: TrainConfig) -> "EpochSchedule":
    """The lr factor per epoch of a resolved config."""
    return EpochSchedule(c.warmup_epochs, tuple(c.milestones), c.lr_decay, c.schedule, c.epochs)


def _warn_schedule_change(saved: TrainConfig, new: TrainConfig, done: int) -> None:
    """Say so when the resumed run's schedule differs from the one its finished epochs followed
    (a cosine schedule stretched over more epochs, say)."""
    if new.sampler == "progressive" and saved.epochs != new.epochs and done < new.epochs:
        warnings.warn(f"the progressive sampler now moves to class-balanced sampling over {new.epochs} epochs; the "
                      f"first {done} epochs followed a {saved.epochs}-epoch run", RunWarning, stacklevel=3)
    old_s, new_s = schedule_of(saved.resolved()), schedule_of(new)
    if done < new.epochs and any(not math.isclose(old_s(e), new_s(e)) for e in range(done)):
        warnings.warn(f"the lr schedule is now that of a {new.epochs}-epoch run, resumed at epoch {done + 1} with lr "
                      f"{new.lr * new_s(done):.4g}; the first {done} epochs followed that of a {saved.epochs}-epoch "
                      f"run (lr {new.lr * old_s(done - 1):.4g} in epoch {done})", RunWarning, stacklevel=3)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    def __init__(self, cfg: TrainConfig, device: torch.device, ctx, fresh: bool = True):
        self.cfg, self.device, self.ctx, self.run_dir = cfg, device, ctx, Path(cfg.out)
        seed_everything(cfg.seed)
        self.data = load_dataset(cfg.dataset, cfg.root, cfg.ratio, cfg.profile, cfg.n_max, cfg.subset_seed,
                                 cfg.majority, cfg.num_classes, cfg.subset_draw)
        if cfg.image_size is not None:
            if isinstance(self.data, ArrayData):
                raise LPMInputError("image_size", cfg.image_size, "left unset except for 'imagenet-lt' and 'inat2018'")
            self.data.image_size = cfg.image_size
        self.K = self.data.num_classes
        n_train = len(self.data.y_train)
        if cfg.batch_size > n_train:
            raise LPMInputError("batch_size", cfg.batch_size, f"at most the {n_train} training samples of this run "
                                                              f"(use {n_train} for full-batch training)")
        cuda = device.type == "cuda"
        self.amp = cuda if cfg.amp is None else cfg.amp
        image = len(self.data.input_shape) == 3
        # channels-last suits both cuDNN and oneDNN: 4× faster ResNet-32 steps on a 2-core CPU as well
        self.channels_last = image if cfg.channels_last is None else cfg.channels_last
        torch.manual_seed(cfg.seed)
        self.net = build_network(cfg.backbone, cfg.head, self.K, self.data.input_shape, feature_dim=cfg.feature_dim,
                                 head_seed=cfg.head_seed, normalize=cfg.normalize_features,
                                 head_batchnorm=cfg.head_batchnorm, head_bias=cfg.head_bias,
                                 cosine_scale=cfg.cosine_scale).to(device)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if cfg.stage != "joint":
            self._start_stage(fresh)
        self.model = self._wrap(self.net)
        trained = [q for q in self.net.parameters() if q.requires_grad]  # cRT: the classifier only
        self.optimizer = torch.optim.SGD(trained, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._schedule())
        self.data_rng = np.random.default_rng(cfg.seed)
        loss_fn = objective_loss(cfg.loss, self.data.counts, cfg.tau, cfg.gamma, cfg.margin)
        self.objective = Objective(cfg.loss, cfg.dr_form, bool(cfg.balance_batch), cfg.dr_target,
                                   float(cfg.feature_norm_penalty), loss_fn)
        self.class_weights = None  # ω (K,) on the device, or None
        if cfg.class_weights != "none":
            omega = class_weights(cfg.class_weights, self.data.counts, cfg.beta)
            self.class_weights = torch.as_tensor(omega, dtype=torch.float32, device=device)
        self._build_loaders()
        self.groups = groups_for(self.K, self.data.counts, self.data.group_scheme)
        self.majority = minority_start(self.K, self.groups, self.data.group_scheme, cfg.profile, cfg.majority)
        self.snapshot = None
        self.first_loss: float | None = None  # the run's first training loss: the divergence threshold's scale

    # ------------------------------------------------------------ setup
    def _schedule(self) -> EpochSchedule:
        return schedule_of(self.cfg)

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
                max_batches=cfg.max_batches_per_epoch, sampler=cfg.sampler, epochs=cfg.epochs, **common)
            self.eval_loaders = [TensorEvalLoader(x, y, batch_size=cfg.eval_batch_size, normalizer=norm,
                                                  on_device=on_dev, **common)
                                 for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test))]
            return
        from .loader_files import FileEvalLoader, FileTrainLoader

        self.train_loader = FileTrainLoader(d, batch_size=cfg.batch_size, rng=self.data_rng, normalizer=norm,
                                            mixup_alpha=cfg.mixup_alpha, num_workers=cfg.num_workers,
                                            max_batches=cfg.max_batches_per_epoch, augment=cfg.augment is not False,
                                            sampler=cfg.sampler, epochs=cfg.epochs, **common)
        self.eval_loaders = [FileEvalLoader(d, split, batch_size=cfg.eval_batch_size, normalizer=norm,
                                            num_workers=cfg.num_workers, **common) for split in ("train", "test")]

    # ------------------------------------------------------------ loop
    def run(self, state: dict | None = None) -> RunResult:
        """Train from scratch, or from the checkpoint ``state`` (loaded by :func:`train`)."""
        rows, start, elapsed = self._restore(state) if state is not None else ([], 0, 0.0)
        # one identity for every file of this run (checked by --resume and by lpm compare)
        self.run_id = (state or {}).get("run_id") or uuid.uuid4().hex
        if self.cfg.stage in POST_HOC_STAGES:
            return self._run_post_hoc(elapsed, rows if state is not None else None)
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._write_config(resumed_from=None if state is None else start)
        log = TensorBoardLog(self.run_dir, rows) if self.cfg.tensorboard and self.ctx.is_main else None
        began = time.time() - elapsed
        for epoch in range(start, self.cfg.epochs):
            rows.append(self.epoch(epoch))
            if self.ctx.is_main:
                outputs.write_metrics(self.run_dir, rows)
                if log is not None:
                    log.add_row(rows[-1])
                self.save(epoch + 1, time.time() - began, rows)
            barrier(self.ctx)
        if self.snapshot is None:  # resumed after the last epoch: measure the final model again
            self.track(len(rows))
        summary = {**outputs.summarize(rows, time.time() - began), "run_id": self.run_id}
        if self.ctx.is_main:
            outputs.write_geometry(self.run_dir, self.snapshot, epoch=len(rows), train_counts=self.data.counts,
                                   config=self.cfg, run_id=self.run_id)
            outputs.write_summary(self.run_dir, summary)
            if self.cfg.figures or log is not None:
                figures = outputs.final_figures(rows, self.snapshot, self.data.counts, outputs.figure_title(self.cfg))
                if self.cfg.figures:
                    outputs.write_figures(self.run_dir, figures)
                if log is not None:
                    log.add_figures(figures, len(rows))
            if log is not None:
                log.close()
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
        if self.class_weights is not None:
            row["class_weighted"] = self.weights_on(epoch)
        if (epoch + 1) % self.cfg.track_every == 0 or epoch + 1 == self.cfg.epochs:
            t1 = time.time()
            row.update(self.track(epoch + 1, lr))
            row["eval_time_s"] = time.time() - t1
            if self.cfg.progress and self.ctx.is_main:
                tqdm.write(f"epoch {epoch + 1}/{self.cfg.epochs}  loss {loss:.4f}  train acc "
                           f"{row['train_accuracy']:.4f}  test acc {row['test_accuracy']:.4f}  "
                           f"nc1 {_short(row['nc1'])}")
        # plain Python values, exactly as metrics.jsonl holds them (and a weights_only checkpoint can)
        return json.loads(json.dumps(row, default=json_default))

    def train_epoch(self, epoch: int) -> tuple[float, float, int]:
        """One pass over the training batches; returns (mean objective, batch accuracy, rows seen)."""
        self.model.train()
        if self.cfg.stage == "crt":  # frozen features: the backbone's BatchNorm statistics stay too
            self.net.backbone.eval()
        self.train_loader.set_epoch(epoch, self.cfg.epochs)
        objective = self.objective.with_weights(self.class_weights if self.weights_on(epoch) else None)
        W_of = self.net.get_classifier
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.float64)
        first_bad = torch.full((), -1, device=self.device, dtype=torch.long)  # first diverged step, on the device
        bad_loss = torch.zeros((), device=self.device, dtype=torch.float64)
        seen, steps, shown = 0, len(self.train_loader), -math.inf
        bar = tqdm(self.train_loader, total=steps, desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
                   leave=False, disable=not (self.cfg.progress and self.ctx.is_main), dynamic_ncols=True)
        for step, batch in enumerate(bar):
            with self.autocast():
                h, z = self.model(batch.x, with_features=True)
            h, z = h.float(), z.float()
            loss = objective(h, z, W_of(), batch.y_a, batch.y_b, batch.lam, batch.counts, batch.global_size,
                                  self.ctx.world_size)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            value = loss.detach().double()
            if self.first_loss is None:  # once per run: the scale of the divergence threshold
                self.first_loss = float(all_sum(self.ctx, np.array([value.item()]))[0] / self.ctx.world_size)
            bad = ~torch.isfinite(value) | (value > self.loss_limit)
            first_bad = torch.where((first_bad < 0) & bad, step, first_bad)
            bad_loss = torch.where(first_bad == step, value, bad_loss)
            loss_sum += value * (batch.global_size / self.ctx.world_size)
            correct += (z.detach().argmax(dim=1) == batch.y_a).sum()
            seen += len(batch.y_a)
            if (step + 1) % CHECK_EVERY == 0 or step + 1 == steps:
                self._stop_if_diverged(epoch, first_bad, bad_loss, steps)
            if not bar.disable and (time.monotonic() - shown >= POSTFIX_EVERY_S or step + 1 == steps):
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", acc=f"{correct.item() / seen:.3f}")
                shown = time.monotonic()
        totals = all_sum(self.ctx, np.array([loss_sum.item(), correct.item(), seen]))
        return float(totals[0] / totals[2]), float(totals[1] / totals[2]), int(totals[2])

    def weights_on(self, epoch: int) -> bool:
        """Whether class weights apply in 0-based ``epoch``: from the start, or after ``drw_epoch`` epochs."""
        return self.class_weights is not None and (self.cfg.drw_epoch is None or epoch >= self.cfg.drw_epoch)

    @property
    def loss_limit(self) -> float:
        """Losses above this have exploded: DIVERGENCE_FACTOR × max(1, the run's first loss)."""
        if self.first_loss is None or not math.isfinite(self.first_loss):
            return math.inf  # a non-finite first loss is caught by the finiteness test
        return DIVERGENCE_FACTOR * max(1.0, abs(self.first_loss))

    def _stop_if_diverged(self, epoch: int, first_bad: torch.Tensor, bad_loss: torch.Tensor, steps: int) -> None:
        """Raise TrainingDiverged on every process when any process saw a diverged step."""
        local = int(first_bad.item())
        if all_sum(self.ctx, np.array([float(local >= 0)]))[0] == 0:
            return
        seen_at = np.zeros(steps)
        if local >= 0:
            seen_at[local] = 1.0
        step = int(np.flatnonzero(all_sum(self.ctx, seen_at))[0])  # the earliest step over processes
        value = float(bad_loss.item())
        if local != step:
            what = "the training loss of another process was not finite or exploded"
        elif not math.isfinite(value):
            what = f"the training loss is {value}"
        else:
            what = (f"the training loss reached {value:.3g}, over {DIVERGENCE_FACTOR:g} times max(1, its first "
                    f"value {self.first_loss:.3g})")
        raise TrainingDiverged(epoch + 1, step + 1, steps, what, self._last_checkpoint(),
                               self.optimizer.param_groups[0]["lr"])

    def _last_checkpoint(self) -> str | None:
        path = self.run_dir / rf.CHECKPOINT_FILE
        return str(path) if path.is_file() else None

    def track(self, epoch: int, lr: float | None = None) -> dict:
        try:
            metrics, self.snapshot = track(self.net, *self.eval_loaders, num_classes=self.K, groups=self.groups,
                                           majority=self.majority, ctx=self.ctx, autocast=self.autocast,
                                           nc4_on_train=self.cfg.nc4_on_train, center=self.cfg.center,
                                           class_counts=self.data.counts)
        except NonFiniteOutputs as exc:
            lr = self.optimizer.param_groups[0]["lr"] if lr is None else lr
            raise TrainingDiverged(epoch, None, None, str(exc), self._last_checkpoint(), lr) from None
        return metrics

    # ------------------------------------------------------------ second stages
    def _start_stage(self, fresh: bool) -> None:
        """Load the parent's model (a fresh stage) and prepare the stage: cRT freezes the backbone and,
        when fresh, re-initialises the classifier; logit-adjust adds its offset buffer, τ-norm rescales W."""
        cfg = self.cfg
        if fresh:
            self._load_model(ckpt.load(Path(cfg.parent) / rf.CHECKPOINT_FILE)["model"])
        if cfg.stage == "logit-adjust" and "logit_offset" not in self.net._buffers:
            self.net.set_logit_offset(torch.zeros(self.K))
        if not fresh:  # the stage's own checkpoint holds the model
            if cfg.stage == "crt":
                self._freeze_backbone()
            return
        if cfg.stage == "crt":
            self._freeze_backbone()
            torch.manual_seed(cfg.seed)
            self.net.head.linear.reset_parameters()
        elif cfg.stage == "logit-adjust":
            pi = np.asarray(self.data.counts, dtype=np.float64) / sum(self.data.counts)
            offset = self.net._buffers["logit_offset"].double().cpu().numpy() - cfg.adjust_tau * np.log(pi)
            self.net.set_logit_offset(offset)

    def _load_model(self, state: dict) -> None:
        """Load model weights, first adding the logit-offset buffer when they hold one."""
        if "logit_offset" in state and "logit_offset" not in self.net._buffers:
            self.net.set_logit_offset(torch.zeros(self.K))
        self.net.load_state_dict(state)

    def _freeze_backbone(self) -> None:
        for q in self.net.backbone.parameters():
            q.requires_grad_(False)

    def _tau_norm(self) -> dict:
        """Rescale W to w_k / ‖w_k‖^τ, τ given or chosen on the training set; returns what to record."""
        W = self.net.get_classifier()
        norms = W.detach().norm(dim=1).clamp_min(1e-12)
        info = {"tau_norm": self.cfg.tau_norm}
        if self.cfg.tau_norm is None:
            scores = self._tau_scores(norms)
            best = int(np.argmax(scores))  # the first maximum: ties go to the smaller τ
            info = {"tau_norm": float(TAU_GRID[best]), "tau_norm_grid": TAU_GRID.tolist(),
                    "tau_norm_train_balanced_accuracy": scores.tolist()}
        with torch.no_grad():
            W.div_(norms.pow(info["tau_norm"])[:, None])
        return info

    def _tau_scores(self, norms: torch.Tensor) -> np.ndarray:
        """Balanced training accuracy of w_k / ‖w_k‖^τ for each τ of TAU_GRID, over all processes."""
        self.net.eval()
        K, grid = self.K, torch.as_tensor(TAU_GRID, dtype=torch.float32, device=self.device)
        scale = norms[None, :].pow(-grid[:, None])                     # (T, K)
        bias = self.net.head.linear.bias if getattr(self.net.head, "linear", None) is not None else None
        offset = self.net._buffers.get("logit_offset")
        hits = torch.zeros(len(grid), K, dtype=torch.float64, device=self.device)
        totals = torch.zeros(K, dtype=torch.float64, device=self.device)
        with torch.no_grad():
            for x, y in self.eval_loaders[0]:
                with self.autocast():
                    h = self.net.forward_features(x)
                z = self.net.head.logits(h.float())
                base = z - (bias if bias is not None else 0.0)              # W h alone
                extra = (bias if bias is not None else 0.0) + (offset if offset is not None else 0.0)
                pred = (base[None] * scale[:, None, :] + extra).argmax(dim=2)  # (T, B)
                hits.index_add_(1, y, (pred == y[None]).double())
                totals += torch.bincount(y, minlength=K).double()
        merged = all_sum(self.ctx, np.concatenate([hits.cpu().numpy().ravel(), totals.cpu().numpy()]))
        hits_np, totals_np = merged[:len(grid) * K].reshape(len(grid), K), merged[len(grid) * K:]
        seen = totals_np > 0
        return (hits_np[:, seen] / totals_np[seen]).mean(axis=1)

    def _run_post_hoc(self, elapsed: float, saved_rows: list[dict] | None) -> RunResult:
        """τ-norm or logit adjustment of the parent's model: evaluate once, write the run folder.
        Resumed (``saved_rows``), the adjusted model comes from the checkpoint and is evaluated again."""
        began = time.time() - elapsed
        if saved_rows:
            extra = {k: v for k, v in saved_rows[0].items() if k.startswith(("tau_norm", "adjust_tau"))}
        elif self.cfg.stage == "tau-norm":
            extra = self._tau_norm()
        else:
            extra = {"adjust_tau": self.cfg.adjust_tau}
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._write_config(resumed_from=None)
        t0 = time.time()
        row = {"epoch": 0, "stage": self.cfg.stage, **extra, **self.track(0)}
        row["eval_time_s"] = time.time() - t0
        rows = [json.loads(json.dumps(row, default=json_default))]
        summary = {**outputs.summarize(rows, time.time() - began), "run_id": self.run_id}
        if self.ctx.is_main:
            outputs.write_metrics(self.run_dir, rows)
            self.save(0, time.time() - began, rows)
            outputs.write_geometry(self.run_dir, self.snapshot, epoch=0, train_counts=self.data.counts,
                                   config=self.cfg, run_id=self.run_id)
            outputs.write_summary(self.run_dir, summary)
        barrier(self.ctx)
        return RunResult(self.run_dir, 0, summary["best_test_accuracy"], summary["best_epoch"],
                         summary["last_test_accuracy"], rows)

    # ------------------------------------------------------------ state
    def save(self, epochs_done: int, wall_time_s: float, rows: list[dict]) -> None:
        state = {"checkpoint_version": ckpt.CHECKPOINT_VERSION, "format_version": rf.FORMAT_VERSION,
                 "epoch": epochs_done, "model": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "rng": ckpt.capture_rng(self.data_rng),
                 "config": self.cfg.to_dict(), "wall_time_s": wall_time_s, "metrics": rows,
                 "first_loss": self.first_loss, "run_id": self.run_id}
        ckpt.save_atomic(state, self.run_dir / rf.CHECKPOINT_FILE)

    def _restore(self, state: dict) -> tuple[list[dict], int, float]:
        try:
            self._load_model(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:  # tensors that do not fit this model
            lines = [" ".join(line.split()) for line in str(exc).strip().splitlines() if line.strip()]
            why = " ".join(lines[:2]) if lines else type(exc).__name__
            raise LPMInputError("out", str(self.run_dir), f"a run folder whose {rf.CHECKPOINT_FILE} fits the model "
                                                          f"of its settings ({rf.CHECKPOINT_FILE} does not: {why}; "
                                                          "delete the folder and start again)") from None
        self.scheduler.lr_lambdas[0] = self._schedule()  # the (possibly extended) epoch count of this config
        ckpt.restore_rng(state["rng"], self.data_rng)
        self.first_loss = state.get("first_loss")
        done = int(state["epoch"])
        rows = list(state["metrics"])
        if self.ctx.is_main:
            self._repair_metrics(rows)
        return rows, done, float(state.get("wall_time_s", 0.0))

    def _repair_metrics(self, rows: list[dict]) -> None:
        """Rewrite metrics.jsonl from the checkpoint's history when it lacks (or garbles) finished epochs.
        Rows past the checkpoint (an epoch written just before a crash) are dropped silently."""
        path = self.run_dir / rf.METRICS_FILE
        try:
            on_disk = rf.read_metrics(path)
            problem = "is missing" if not path.is_file() else None
        except LPMInputError:
            on_disk, problem = [], "is damaged"
        text = lambda rs: [json.dumps(r, default=json_default) for r in rs]  # noqa: E731
        if text(on_disk[:len(rows)]) == text(rows):
            if len(on_disk) > len(rows):
                outputs.write_metrics(self.run_dir, rows)
            return
        problem = problem or f"holds {len(on_disk)} epochs that do not match the checkpoint's {len(rows)}"
        outputs.write_metrics(self.run_dir, rows)
        warnings.warn(f"{path} {problem}: rewritten from the history of {len(rows)} epochs kept in "
                      f"{rf.CHECKPOINT_FILE}", RunWarning, stacklevel=2)

    def _write_config(self, resumed_from: int | None) -> None:
        """config.json: the config now in force; on a resume, the start's provenance is kept and the
        resume is appended to ``resumes``."""
        prov = outputs.provenance(self.device, self.ctx.world_size)
        first, resumes = prov, []
        if resumed_from is not None:
            try:
                old = json.loads((self.run_dir / rf.CONFIG_FILE).read_text())
                first, resumes = old.get("provenance", prov), list(old.get("resumes", []))
            except (OSError, ValueError, AttributeError):  # missing or damaged: rewritten whole
                pass
            resumes.append({"from_epoch": resumed_from, "epochs": self.cfg.epochs, "provenance": prov})
        outputs.write_config(self.run_dir, self.cfg.to_dict(), self.data_info(), self.model_info(), first, resumes,
                             run_id=self.run_id)

    def data_info(self) -> dict:
        d = self.data
        return {"name": d.name, "num_classes": self.K, "train_counts": list(d.counts), "train_size": len(d.y_train),
                "test_size": len(d.y_test), "input_shape": list(d.input_shape), "profile": d.profile,
                "group_scheme": d.group_scheme, "groups": self.groups[0].tolist(), "group_names": list(self.groups[1]),
                "majority": self.majority}

    def model_info(self) -> dict:
        trainable = self.cfg.head == "learnable"
        return {"backbone": self.cfg.backbone, "head": self.cfg.head, "feature_dim": self.net.get_classifier().shape[1],
                "parameters": sum(p.numel() for p in self.net.parameters()), "head_trainable": trainable,
                "head_weight_decay": self.cfg.weight_decay if trainable else None}


def _short(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"
