"""Typed configuration of a deep run, with [Y22]'s recipe as defaults (theory.md §7).

A :class:`TrainConfig` is built from three layers, later ones winning:

1. the recipe for the data set (:func:`recipe_defaults`): the CIFAR-family
   recipe — SGD momentum 0.9, lr 0.1, linear warm-up, ×0.1 at 80 % and
   ×0.01 at 90 % of the run (epochs 160 and 180 of 200), 200 epochs, batch
   128, weight decay 2e-4, mixup α = 1 — or, for ImageNet-LT, 90 epochs,
   batch 1024, cosine lr from 0.1, weight decay 5e-4, mixup α = 0.2;
2. a JSON or TOML file (:func:`load_config_file`); unknown keys are refused;
3. explicit options (the CLI passes only the options the user gave).

Every field is checked for its type and range when the config is built
(:data:`FIELD_RULES`): ``epochs = "3"``, ``epochs = 2.5``, ``batch_size =
12.0`` or ``milestones = 160`` are refused with one sentence naming the
field, what it must be and what was given (an
:class:`lpm.core.errors.LPMInputError`). Ints must be ints (``12.0`` is not
one); floats accept ints.

The schedule scales with the run. Step decay happens at
``milestone_fractions`` of ``epochs`` (default 0.8 and 0.9, [Y22]'s 160 and
180 of 200), rounded to whole epochs, unless ``milestones`` gives the epochs
themselves. Warm-up lasts ``warmup_epochs``, by default min(5, ⌊epochs/10⌋):
[Y22]'s 5 epochs for runs of 50 epochs or more, a tenth of the run below
that (3 for 30 epochs, none under 10). :meth:`TrainConfig.resolved` turns
both into epochs, so ``config.json`` records the schedule the run followed;
a resumed run keeps them (the lr of the epochs already done cannot change).

:meth:`TrainConfig.resolved` also fills the ``None`` fields that depend on
the data set (backbone, ratio, augmentation, device-side settings) and checks
the combinations.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import numbers
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from lpm.core.errors import LPMInputError, check_choice, check_number
from lpm.core.geometry import CENTERS
from lpm.core.losses import DR_VARIANTS, PLAIN_LOSS_NAMES
from lpm.core.problem import CLASSIFIERS
from lpm.core.profiles import PROFILES

from .data import DATASETS, default_backbone
from .errors import RunWarning

#: the choices a run may ask for (torch-free, so the command line can list them quickly)
BACKBONES = ("resnet32", "resnet32-wide", "resnet50", "resnet50-wide", "cnn1d", "mlp")
HEADS = CLASSIFIERS                   # a head is one of the layer-peeled model's classifier modes
DEVICES = ("auto", "cpu", "cuda")
SCHEDULES = ("step", "cosine")
DEGENERATE_HINT = ("DR with a learnable classifier is degenerate: every w_k and h_k can share one vector and "
                   "reach zero loss, theory.md §5; set allow_degenerate (--allow-degenerate) to run it anyway")
#: the largest float32: a larger lr cannot multiply float32 gradients at all
FLOAT32_MAX = 3.4028234663852886e38
#: warm-up of [Y22]'s recipe, in epochs, and the share of a short run it may take at most
RECIPE_WARMUP, WARMUP_SHARE = 5, 10


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
    warmup_epochs: int | None = None      # None → min(5, epochs // 10)
    schedule: str = "step"
    milestones: tuple[int, ...] | None = None  # step-decay epochs; None → milestone_fractions of epochs
    milestone_fractions: tuple[float, ...] = (0.8, 0.9)
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
    out: str | None = None                # None → runs/<dataset>_<head>_<loss>_R<ratio>_e<epochs>_seed<seed>_<hash>
    progress: bool = True
    figures: bool = True                  # metrics.png at the end of the run

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, FIELD_RULES[f.name].check(f.name, getattr(self, f.name)))

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
        return cls(**{**recipe_defaults(dataset), **values})

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("milestones", "milestone_fractions"):
            out[key] = None if out[key] is None else list(out[key])
        return out

    def resolved(self) -> "TrainConfig":
        """A copy with data-set-dependent defaults and the schedule's epochs filled in, every field checked."""
        c = dataclasses.replace(self)
        imagenet = c.dataset == "imagenet-lt"
        fixed = c.head != "learnable"
        c.backbone = default_backbone(c.dataset) if c.backbone is None else c.backbone
        c.ratio = None if (imagenet and c.ratio is None) else (100.0 if c.ratio is None else c.ratio)
        c.normalize_features = (not imagenet) if c.normalize_features is None else c.normalize_features
        if c.feature_norm_penalty is None:
            c.feature_norm_penalty = 0.01 if (imagenet and fixed) else 0.0
        if c.balance_batch is None:
            c.balance_batch = c.loss == "dr" and c.dr_form == "released"
        if c.warmup_epochs is None:
            c.warmup_epochs = default_warmup(c.epochs)
        if c.milestones is None:
            c.milestones = milestone_epochs(c.milestone_fractions, c.epochs)
        _validate(c)
        if c.out is None:
            c.out = str(Path("runs") / default_run_name(c))
        return c


def default_warmup(epochs: int) -> int:
    """Warm-up epochs of a run of ``epochs``: min(5, ⌊epochs/10⌋)."""
    return min(RECIPE_WARMUP, epochs // WARMUP_SHARE)


def milestone_epochs(fractions, epochs: int) -> tuple[int, ...]:
    """Step-decay epochs at ``fractions`` of the run, rounded: (0.8, 0.9) of 30 → (24, 27)."""
    return tuple(max(1, round(f * epochs)) for f in fractions)


#: settings that do not change what a run computes (left out of the default folder name's hash)
EXECUTION_ONLY = ("device", "progress", "figures", "num_workers", "eval_batch_size", "out", "amp",
                  "channels_last", "data_on_device", "compile", "root")


def default_run_name(c: TrainConfig) -> str:
    """``<dataset>_<head>_<loss>_R<ratio>_e<epochs>_seed<seed>_<hash>``; the 6-hex-digit hash covers
    every other setting that changes what the run computes, so two runs that differ get two folders."""
    ratio = "lists" if c.ratio is None else f"{c.ratio:g}"
    settings = {k: v for k, v in c.to_dict().items() if k not in EXECUTION_ONLY}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:6]
    return f"{c.dataset}_{c.head}_{c.loss}_R{ratio}_e{c.epochs}_seed{c.seed}_{digest}"


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
    if path.suffix.lower() not in (".json", ".toml"):
        raise LPMInputError("config", str(path), "a file ending in .json or .toml")
    try:
        text = path.read_text()
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            values = tomllib.loads(text)
        else:
            values = json.loads(text)
    except (ValueError, TypeError) as exc:  # decoding errors (UnicodeDecodeError is a ValueError) included
        raise LPMInputError("config", str(path), f"valid {path.suffix[1:].upper()} ({exc})") from None
    if not isinstance(values, dict):
        raise LPMInputError("config", str(path), "a table of settings (JSON object or TOML table)")
    return values


def build_config(overrides: dict[str, Any] | None = None, config_file=None) -> TrainConfig:
    """Recipe defaults ← config file ← ``overrides`` (``None`` values are skipped)."""
    values = load_config_file(config_file) if config_file is not None else {}
    source = "config" if config_file is None else f"config file {Path(config_file).name}"
    given = {**values, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    cfg = TrainConfig.from_dict(given, source).resolved()
    _warn_schedule(cfg, given)
    return cfg


def _warn_schedule(c: TrainConfig, given: dict[str, Any]) -> None:
    """Warn when explicitly given epochs of the schedule never take effect in a run this short."""
    late = [m for m in c.milestones if m >= c.epochs]
    if given.get("milestones") is not None and c.schedule == "step" and late:
        warnings.warn(f"the lr decay at milestone {late[0]} never happens in a {c.epochs}-epoch run (a milestone m "
                      f"lowers the lr from epoch m + 1 on); give milestone_fractions instead to scale with the run",
                      RunWarning, stacklevel=3)
    if given.get("warmup_epochs") and c.warmup_epochs >= c.epochs:
        warnings.warn(f"the warm-up of {c.warmup_epochs} epochs covers the whole {c.epochs}-epoch run: the lr never "
                      f"reaches its peak {c.lr:g}", RunWarning, stacklevel=3)


# ---------------------------------------------------------------------- field rules
class Rule(NamedTuple):
    """What one field accepts: ``kind`` ∈ int, float, bool, str, path, choice, ints, floats (lists);
    an interval for numbers (and list items); ``choices`` for ``choice``; ``optional``: None allowed."""

    kind: str
    optional: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    what: str = ""

    def check(self, name: str, value):
        if value is None:
            if self.optional:
                return None
            raise LPMInputError(name, value, self.describe())
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise LPMInputError(name, value, "true or false")
            return value
        if self.kind == "choice":
            return check_choice(name, value, self.choices)
        if self.kind == "str":
            if not isinstance(value, str):
                raise LPMInputError(name, value, self.describe())
            return value
        if self.kind == "path":
            if not isinstance(value, (str, os.PathLike)):
                raise LPMInputError(name, value, self.describe())
            return str(value)
        if self.kind in ("ints", "floats"):
            if not isinstance(value, (list, tuple)):
                raise LPMInputError(name, value, self.describe())
            item = self._replace(kind=self.kind[:-1], optional=False)
            items = []
            for v in value:
                if not item.accepts(v):
                    raise LPMInputError(name, value, self.describe())
                items.append(item.check(name, v))
            return tuple(items)
        if not self.accepts(value):
            raise LPMInputError(name, value, self.describe())
        return int(value) if self.kind == "int" else float(value)

    def accepts(self, value) -> bool:
        """A number of the right type within the interval."""
        if isinstance(value, bool):
            return False
        if self.kind == "int" and not isinstance(value, numbers.Integral):
            return False
        if self.kind == "float" and not isinstance(value, numbers.Real):
            return False
        try:
            check_number("_", value, low=self.low, low_open=self.low_open,
                         high=None if self.high_open else self.high)
        except LPMInputError:
            return False
        return not (self.high_open and self.high is not None and value >= self.high)

    def describe(self) -> str:
        if self.kind in ("str", "path"):
            text = "a string" if self.kind == "str" else "a path (string)"
        else:
            single = self.kind.rstrip("s")
            noun = {"int": "an int", "float": "a number"}[single]
            bounds = []
            if self.low is not None:
                bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
            if self.high is not None:
                bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
            text = noun + (" " + " and ".join(bounds) if bounds else "")
            if self.kind in ("ints", "floats"):
                text = "a list of " + {"int": "ints", "float": "numbers"}[single] + text[len(noun):]
        return text + (f" ({self.what})" if self.what else "")


def _int(low, optional=False, what=""):
    return Rule("int", optional, low=low, what=what)


def _float(low=None, optional=False, low_open=False, high=None, what=""):
    return Rule("float", optional, low=low, high=high, low_open=low_open, what=what)


def _bool(optional=False):
    return Rule("bool", optional)


def _choice(choices, optional=False):
    return Rule("choice", optional, choices=tuple(choices))


#: the type and range of every TrainConfig field, checked when a config is built
FIELD_RULES: dict[str, Rule] = {
    "dataset": _choice(DATASETS), "root": Rule("path", True), "ratio": _float(1, optional=True),
    "profile": _choice(PROFILES), "n_max": _int(1, True), "majority": _int(1, True), "num_classes": _int(2, True),
    "subset_seed": _int(0), "augment": _bool(True), "image_size": _int(1, True),
    "backbone": _choice(BACKBONES, True), "feature_dim": _int(1), "head": _choice(HEADS), "head_seed": _int(0),
    "head_bias": _bool(), "head_batchnorm": _bool(), "normalize_features": _bool(True),
    "loss": _choice(PLAIN_LOSS_NAMES), "dr_form": _choice(DR_VARIANTS), "balance_batch": _bool(True),
    "dr_target": _float(0, low_open=True), "feature_norm_penalty": _float(0, optional=True),
    "allow_degenerate": _bool(), "mixup_alpha": _float(0),
    "epochs": _int(1), "batch_size": _int(2, what="BatchNorm needs 2 rows"),
    "lr": _float(0, low_open=True, high=FLOAT32_MAX), "momentum": _float(0, high=1), "weight_decay": _float(0),
    "warmup_epochs": _int(0, True), "schedule": _choice(SCHEDULES),
    "milestones": Rule("ints", True, low=1, what="epochs at which the lr decays"),
    "milestone_fractions": Rule("floats", low=0, high=1, low_open=True, high_open=True,
                                what="fractions of the run at which the lr decays"),
    "lr_decay": _float(0, low_open=True, high=1), "seed": _int(0),
    "device": _choice(DEVICES), "amp": _bool(True), "channels_last": _bool(True), "data_on_device": _bool(True),
    "sync_bn": _bool(), "compile": _bool(), "num_workers": _int(0), "eval_batch_size": _int(1),
    "max_batches_per_epoch": _int(1, True), "track_every": _int(1), "nc4_on_train": _bool(),
    "center": _choice(CENTERS), "out": Rule("path", True), "progress": _bool(), "figures": _bool(),
}


def _validate(c: TrainConfig) -> None:
    """Checks across fields (each field's own type and range is checked on construction)."""
    _check_pairing(c)


def _check_pairing(c: TrainConfig) -> None:
    """Refuse head/loss settings that make no sense (theory.md §5–§6)."""
    if c.loss == "dr" and c.head == "learnable" and not c.allow_degenerate:
        raise LPMInputError("loss", c.loss, f"'ce' with the learnable head ({DEGENERATE_HINT})")
    if c.balance_batch and not (c.loss == "dr" and c.dr_form == "released"):
        raise LPMInputError("balance_batch", c.balance_batch,
                            "false unless loss='dr' with dr_form='released' "
                            "(the in-batch balancing of theory.md §6.2)")
