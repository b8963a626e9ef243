"""Typed configuration of a deep run, with [Y22]'s recipe as defaults (theory.md §7).

A :class:`TrainConfig` is built from three layers, later ones winning:

1. the recipe for the data set (:func:`recipe_defaults`): the CIFAR-family
   recipe — SGD momentum 0.9, lr 0.1, 5 warm-up epochs, ×0.1 at epoch 160 and
   ×0.01 at 180, 200 epochs, batch 128, weight decay 2e-4, mixup α = 1 — or,
   for ImageNet-LT, 90 epochs, batch 1024, cosine lr from 0.1, weight decay
   5e-4, mixup α = 0.2;
2. a JSON or TOML file (:func:`load_config_file`); unknown keys are refused;
3. explicit options (the CLI passes only the options the user gave).

:meth:`TrainConfig.resolved` fills the ``None`` fields that depend on the
data set (backbone, ratio, augmentation, device-side settings) and checks
every field, raising :class:`lpm.core.errors.LPMInputError` with one sentence.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lpm.core.errors import LPMInputError, check_choice, check_number
from lpm.core.geometry import CENTERS
from lpm.core.losses import DR_VARIANTS, LOSS_NAMES
from lpm.core.problem import CLASSIFIERS
from lpm.core.profiles import PROFILES, check_ratio

from .data import DATASETS, default_backbone

#: the choices a run may ask for (torch-free, so the command line can list them quickly)
BACKBONES = ("resnet32", "resnet32-wide", "resnet50", "resnet50-wide", "cnn1d", "mlp")
HEADS = CLASSIFIERS                   # a head is one of the layer-peeled model's classifier modes
DEVICES = ("auto", "cpu", "cuda")
SCHEDULES = ("step", "cosine")
DEGENERATE_HINT = ("DR with a learnable classifier is degenerate: every w_k and h_k can share one vector and "
                   "reach zero loss, theory.md §5; set allow_degenerate to run it anyway")


@dataclass
class TrainConfig:
    # data
    dataset: str = "cifar10-lt"
    root: str | None = None
    ratio: float | None = None            # R = 1/τ >= 1; None → 100 (unset for imagenet-lt)
    profile: str = "exp"
    n_max: int | None = None              # None → the data set's n_max (theory.md §7)
    majority: int | None = None           # K_A for the step profile
    num_classes: int | None = None        # synthetic sets only
    subset_seed: int = 0
    augment: bool | None = None           # None → the data set's default
    image_size: int | None = None         # imagenet-lt crops (None → 224)
    # model
    backbone: str | None = None           # None → the data set's default
    feature_dim: int = 64                 # mlp / cnn1d only
    head: str = "learnable"
    head_seed: int = 0                    # seeds the fixed ETF rotation / random rows
    head_bias: bool = False
    head_batchnorm: bool = True
    normalize_features: bool | None = None  # None → True (False for imagenet-lt, §6.3)
    # loss
    loss: str = "ce"
    dr_form: str = "paper"
    balance_batch: bool | None = None     # None → True for dr_form='released' (§6.2)
    dr_target: float = 1.0
    feature_norm_penalty: float | None = None  # None → 0 (0.01 for imagenet-lt fixed heads)
    allow_degenerate: bool = False
    mixup_alpha: float = 1.0              # 0 turns mixup off
    # optimisation
    epochs: int = 200
    batch_size: int = 128                 # global batch, over all processes
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 2e-4
    warmup_epochs: int = 5
    schedule: str = "step"
    milestones: tuple[int, ...] = (160, 180)
    lr_decay: float = 0.1                 # factor per milestone passed
    seed: int = 0
    # execution
    device: str = "auto"
    amp: bool | None = None               # None → bfloat16 autocast on CUDA
    channels_last: bool | None = None     # None → on for image models
    data_on_device: bool | None = None    # None → keep tensors on the GPU when they fit
    sync_bn: bool = False                 # SyncBatchNorm under DDP (CUDA only)
    compile: bool = False
    num_workers: int = 4                  # image-file loaders only
    eval_batch_size: int = 512
    max_batches_per_epoch: int | None = None  # cap for smoke runs and benchmarks
    # tracking and output
    track_every: int = 1
    nc4_on_train: bool = True             # second pass over the training set for NC4
    center: str = "class-means"
    out: str | None = None                # None → runs/<dataset>_<head>_<loss>_R<ratio>_seed<seed>
    progress: bool = True
    figures: bool = True                  # metrics.png at the end of the run

    # ------------------------------------------------------------------ building
    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "TrainConfig":
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise LPMInputError(source, unknown[0] if len(unknown) == 1 else unknown,
                                "made of known settings only (" + ", ".join(names) + ")")
        dataset = values.get("dataset", cls.dataset)
        check_choice("dataset", dataset, DATASETS)
        merged = {**recipe_defaults(dataset), **values}
        if merged.get("milestones") is not None:
            merged["milestones"] = tuple(merged["milestones"])
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["milestones"] = list(self.milestones)
        return out

    def resolved(self) -> "TrainConfig":
        """A copy with data-set-dependent defaults filled in, every field checked."""
        c = dataclasses.replace(self)
        check_choice("dataset", c.dataset, DATASETS)
        imagenet = c.dataset == "imagenet-lt"
        fixed = c.head != "learnable"
        c.backbone = default_backbone(c.dataset) if c.backbone is None else c.backbone
        c.ratio = None if (imagenet and c.ratio is None) else (100.0 if c.ratio is None else c.ratio)
        c.normalize_features = (not imagenet) if c.normalize_features is None else c.normalize_features
        if c.feature_norm_penalty is None:
            c.feature_norm_penalty = 0.01 if (imagenet and fixed) else 0.0
        if c.balance_batch is None:
            c.balance_batch = c.loss == "dr" and c.dr_form == "released"
        _validate(c)
        if c.out is None:
            ratio = "lists" if c.ratio is None else f"{c.ratio:g}"
            c.out = str(Path("runs") / f"{c.dataset}_{c.head}_{c.loss}_R{ratio}_seed{c.seed}")
        return c


def recipe_defaults(dataset: str) -> dict[str, Any]:
    """[Y22]'s released recipe for the data set (theory.md §7)."""
    if dataset == "imagenet-lt":
        return {"epochs": 90, "batch_size": 1024, "lr": 0.1, "weight_decay": 5e-4, "mixup_alpha": 0.2,
                "schedule": "cosine", "warmup_epochs": 0}
    return {}


def load_config_file(path) -> dict[str, Any]:
    """Read a JSON (``.json``) or TOML (``.toml``) file of settings."""
    path = Path(path)
    if not path.is_file():
        raise LPMInputError("config", str(path), "an existing .json or .toml file")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            values = tomllib.loads(text)
        elif path.suffix.lower() == ".json":
            values = json.loads(text)
        else:
            raise LPMInputError("config", str(path), "a file ending in .json or .toml")
    except (ValueError, TypeError) as exc:
        if isinstance(exc, LPMInputError):
            raise
        raise LPMInputError("config", str(path), f"valid {path.suffix[1:].upper()} ({exc})") from None
    if not isinstance(values, dict):
        raise LPMInputError("config", str(path), "a table of settings (JSON object or TOML table)")
    return values


def build_config(overrides: dict[str, Any] | None = None, config_file=None) -> TrainConfig:
    """Recipe defaults ← config file ← ``overrides`` (``None`` values are skipped)."""
    values = load_config_file(config_file) if config_file is not None else {}
    source = "config" if config_file is None else f"config file {Path(config_file).name}"
    cfg = TrainConfig.from_dict({**values, **{k: v for k, v in (overrides or {}).items() if v is not None}}, source)
    return cfg.resolved()


def _validate(c: TrainConfig) -> None:
    check_choice("backbone", c.backbone, BACKBONES)
    check_choice("head", c.head, HEADS)
    check_choice("loss", c.loss, LOSS_NAMES)
    check_choice("dr_form", c.dr_form, DR_VARIANTS)
    check_choice("profile", c.profile, PROFILES)
    check_choice("device", c.device, DEVICES)
    check_choice("schedule", c.schedule, SCHEDULES)
    check_choice("center", c.center, CENTERS)
    if c.ratio is not None:
        check_ratio(c.ratio)
    for name in ("epochs", "batch_size", "eval_batch_size", "track_every", "feature_dim"):
        check_number(name, getattr(c, name), low=1, integer=True)
    for name in ("warmup_epochs", "num_workers", "seed", "subset_seed", "head_seed"):
        check_number(name, getattr(c, name), low=0, integer=True)
    for name in ("n_max", "majority", "num_classes", "max_batches_per_epoch", "image_size"):
        if getattr(c, name) is not None:
            check_number(name, getattr(c, name), low=1, integer=True)
    check_number("lr", c.lr, low=0, low_open=True)
    check_number("momentum", c.momentum, low=0, high=1)
    check_number("weight_decay", c.weight_decay, low=0)
    check_number("lr_decay", c.lr_decay, low=0, high=1, low_open=True)
    check_number("mixup_alpha", c.mixup_alpha, low=0)
    check_number("dr_target", c.dr_target, low=0, low_open=True)
    check_number("feature_norm_penalty", c.feature_norm_penalty, low=0)
    for m in c.milestones:
        check_number("milestones", m, low=1, integer=True)
    _check_bools(c)
    _check_pairing(c)


def _check_bools(c: TrainConfig) -> None:
    for f in dataclasses.fields(c):
        value = getattr(c, f.name)
        if "bool" in str(f.type) and value is not None and not isinstance(value, bool):
            raise LPMInputError(f.name, value, "true or false")


def _check_pairing(c: TrainConfig) -> None:
    """Refuse head/loss settings that make no sense (theory.md §5–§6)."""
    if c.loss == "dr" and c.head == "learnable" and not c.allow_degenerate:
        raise LPMInputError("loss", c.loss, f"'ce' with the learnable head ({DEGENERATE_HINT})")
    if c.balance_batch and not (c.loss == "dr" and c.dr_form == "released"):
        raise LPMInputError("balance_batch", c.balance_batch,
                            "false unless loss='dr' with dr_form='released' "
                            "(the in-batch balancing of theory.md §6.2)")
