"""Typed configuration of a deep run, with [Y22]'s recipe as defaults (theory.md §7).

A :class:`TrainConfig` is built from three layers, later ones winning:

1. the recipe for the data set (:func:`recipe_defaults`): the CIFAR-family
   recipe — SGD momentum 0.9, lr 0.1, linear warm-up, ×0.1 at 80 % and
   ×0.01 at 90 % of the run (epochs 160 and 180 of 200), 200 epochs, batch
   128, weight decay 2e-4, mixup α = 1 — or, for iNaturalist 2018, Kang et al.
   2020's joint training (90 epochs, batch 512, cosine lr from 0.2, weight
   decay 1e-4, no mixup) — or, for ImageNet-LT, 90 epochs,
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

Remedies (docs/recipes.md): ``class_weights`` (with ``beta``, default
0.9999 for class-balanced), deferred re-weighting from ``drw_epoch`` (or
``drw_fraction`` of the run, rounded like the milestones), ``sampler``, the
loss hyperparameters ``tau``/``gamma``/``margin`` (refused for a loss that
does not take them), and the second stages (``stage``, ``parent``,
``tau_norm``, ``adjust_tau``; :func:`stage_config` builds a stage's config
from its parent's).

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

from lpm.core.errors import INDEX_MAX, SEED_MAX, LPMInputError, check_choice, check_number
from lpm.core.io import read_structured
from lpm.core.geometry import CENTERS
from lpm.core.losses import DR_VARIANTS, LOSS_HYPERPARAMETERS, LOSS_NAMES
from lpm.core.problem import CLASSIFIERS
from lpm.core.profiles import PROFILES
from lpm.core.weighting import CLASS_WEIGHTS

from .data import DATASETS, FILE_DATASETS, SUBSET_DRAWS, default_backbone
from .sampling import SAMPLERS
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
STAGES = ("joint", "crt", "tau-norm", "logit-adjust")
#: stages that train nothing: they change the parent's classifier and evaluate it
POST_HOC_STAGES = ("tau-norm", "logit-adjust")
#: β of class-balanced weights when none is given (Cui et al. 2019's CIFAR value, used by LDAM-DRW)
DEFAULT_BETA = 0.9999


@dataclass
class TrainConfig:
    # data
    dataset: str = "cifar10-lt"
    root: str | None = None
    ratio: float | None = None            # R = 1/τ >= 1; None → 100 (unset for imagenet-lt, inat2018)
    profile: str = "exp"
    n_max: int | None = None              # None → the data set's n_max (theory.md §7)
    majority: int | None = None           # K_A for the step profile
    num_classes: int | None = None        # synthetic sets only
    subset_seed: int = 0
    subset_draw: str = "uniform"          # uniform, or ldam-drw: Cao et al. 2019's CIFAR-LT images
    augment: bool | None = None           # None → the data set's default
    image_size: int | None = None         # imagenet-lt / inat2018 crops (None → 224)
    # model
    backbone: str | None = None           # None → the data set's default
    feature_dim: int = 64                 # mlp / cnn1d only
    head: str = "learnable"
    head_seed: int = 0                    # seeds the fixed ETF rotation / random rows
    head_bias: bool = False
    head_batchnorm: bool = True
    normalize_features: bool | None = None  # None → True (False for imagenet-lt, §6.3)
    cosine_scale: float | None = None     # learnable head as a cosine classifier s·cos(h, w_k) (Cao et al.: 30)
    # loss
    loss: str = "ce"
    dr_form: str = "paper"
    balance_batch: bool | None = None     # None → True for dr_form='released' (§6.2)
    dr_target: float = 1.0
    feature_norm_penalty: float | None = None  # None → 0 (0.01 for imagenet-lt fixed heads)
    allow_degenerate: bool = False
    mixup_alpha: float = 1.0              # 0 turns mixup off
    tau: float | None = None              # loss hyperparameters (None: the loss's published default)
    gamma: float | None = None
    margin: float | None = None
    # re-weighting and re-sampling (docs/recipes.md)
    class_weights: str = "none"           # none, inverse, sqrt, class-balanced
    beta: float | None = None             # class-balanced β; None → 0.9999 (Cui et al. 2019)
    drw_fraction: float | None = None     # deferred re-weighting from this fraction of the run ...
    drw_epoch: int | None = None          # ... or from this epoch (weights apply after drw_epoch epochs)
    sampler: str = "instance"             # instance, class-balanced, sqrt, progressive
    # decoupled second stage (Kang et al. 2020) and post-hoc adjustment
    stage: str = "joint"                  # joint, crt, tau-norm, logit-adjust
    parent: str | None = None             # the run folder a stage starts from
    tau_norm: float | None = None         # τ of w_k/‖w_k‖^τ; None → chosen on the training set
    adjust_tau: float | None = None       # τ of z − τ log π (logit-adjust stage); None → 1
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
    tensorboard: bool = False             # a TensorBoard log in <out>/tensorboard (optional extra)

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
        c.ratio = None if (c.dataset in FILE_DATASETS and c.ratio is None) else (100.0 if c.ratio is None else c.ratio)
        c.normalize_features = (not imagenet) if c.normalize_features is None else c.normalize_features
        if c.feature_norm_penalty is None:
            c.feature_norm_penalty = 0.01 if (imagenet and fixed) else 0.0
        if c.balance_batch is None:
            c.balance_batch = c.loss == "dr" and c.dr_form == "released"
        if c.warmup_epochs is None:
            c.warmup_epochs = default_warmup(c.epochs)
        if c.milestones is None:
            c.milestones = milestone_epochs(c.milestone_fractions, c.epochs)
        if c.class_weights == "class-balanced" and c.beta is None:
            c.beta = DEFAULT_BETA
        if c.drw_epoch is None and c.drw_fraction is not None:
            c.drw_epoch = milestone_epochs((c.drw_fraction,), c.epochs)[0]
        if c.stage == "logit-adjust" and c.adjust_tau is None:
            c.adjust_tau = 1.0
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


#: the remedy settings and their defaults: hashed into the folder name only when set, so the names of
#: runs without a remedy stay what they were before these settings existed
REMEDY_DEFAULTS = {"subset_draw": "uniform", "cosine_scale": None, "tau": None, "gamma": None, "margin": None,
                   "class_weights": "none", "beta": None, "drw_fraction": None, "drw_epoch": None,
                   "sampler": "instance", "stage": "joint", "parent": None, "tau_norm": None, "adjust_tau": None}
#: settings that do not change what a run computes (left out of the default folder name's hash)
EXECUTION_ONLY = ("device", "progress", "figures", "num_workers", "eval_batch_size", "out", "amp",
                  "channels_last", "data_on_device", "compile", "root", "tensorboard")


def default_run_name(c: TrainConfig) -> str:
    """``<dataset>_<head>_<loss>[_<remedies>]_R<ratio>_e<epochs>_seed<seed>_<hash>``; the 6-hex-digit hash
    covers every other setting that changes what the run computes, so two runs that differ get two
    folders. The remedies part names the stage, loss hyperparameters, class weights, deferred
    re-weighting and sampler when they are not the defaults: ``crt``, ``tau1``, ``w-class-balanced0.9999``,
    ``drw160``, ``s-sqrt``."""
    ratio = "lists" if c.ratio is None else f"{c.ratio:g}"
    settings = {k: v for k, v in c.to_dict().items()
                if k not in EXECUTION_ONLY and not (k in REMEDY_DEFAULTS and v == REMEDY_DEFAULTS[k])}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:6]
    return f"{c.dataset}_{c.head}_{c.loss}{remedy_tag(c)}_R{ratio}_e{c.epochs}_seed{c.seed}_{digest}"


def remedy_tag(c: TrainConfig) -> str:
    """The remedies of a run for its folder name: ``_crt_w-inverse_drw160_s-sqrt`` (empty without any)."""
    parts = [] if c.stage == "joint" else [c.stage]
    if c.cosine_scale is not None:
        parts.append(f"cos{c.cosine_scale:g}")
    if c.stage == "tau-norm" and c.tau_norm is not None:
        parts.append(f"taunorm{c.tau_norm:g}")
    if c.stage == "logit-adjust":
        parts.append(f"adj{c.adjust_tau:g}")
    parts += [f"{name}{getattr(c, name):g}" for name in ("tau", "gamma", "margin") if getattr(c, name) is not None]
    if c.class_weights != "none":
        parts.append(f"w-{c.class_weights}" + (f"{c.beta:g}" if c.beta is not None else ""))
    if c.drw_epoch is not None:
        parts.append(f"drw{c.drw_epoch}")
    if c.sampler != "instance":
        parts.append(f"s-{c.sampler}")
    return "".join("_" + p for p in parts)


def recipe_defaults(dataset: str) -> dict[str, Any]:
    """[Y22]'s released recipe for the data set (theory.md §7)."""
    if dataset == "imagenet-lt":
        return {"epochs": 90, "batch_size": 1024, "lr": 0.1, "weight_decay": 5e-4, "mixup_alpha": 0.2,
                "schedule": "cosine", "warmup_epochs": 0}
    if dataset == "inat2018":  # the joint-training recipe of Kang et al. 2020 (ResNet-50, 90 epochs)
        return {"epochs": 90, "batch_size": 512, "lr": 0.2, "weight_decay": 1e-4, "mixup_alpha": 0.0,
                "schedule": "cosine", "warmup_epochs": 0}
    return {}


def load_config_file(path) -> dict[str, Any]:
    """Read a JSON (``.json``) or TOML (``.toml``) file of settings (every failure to read
    or parse it, a file nested too deeply included, is one error naming the file)."""
    path = Path(path)
    if not path.exists():
        raise LPMInputError("config", str(path), "an existing .json or .toml file")
    values = read_structured(path, "config")
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


#: what a second stage takes from its parent and may not change: the data and the network
INHERITED = ("dataset", "ratio", "profile", "n_max", "majority", "num_classes", "subset_seed", "subset_draw",
             "image_size",
             "backbone", "feature_dim", "head", "head_seed", "head_bias", "head_batchnorm", "normalize_features",
             "cosine_scale")
#: the parent's settings a stage keeps unless told otherwise (optimiser, seed, execution)
CARRIED = ("root", "augment", "batch_size", "lr", "momentum", "weight_decay", "lr_decay", "seed", "device", "amp",
           "channels_last", "data_on_device", "sync_bn", "compile", "num_workers", "eval_batch_size",
           "max_batches_per_epoch", "track_every", "nc4_on_train", "center", "progress", "figures")
#: the settings of a stage itself (not taken from the parent)
STAGE_SETTINGS = ("stage", "parent", "tau_norm", "adjust_tau")
#: what a post-hoc stage may set besides the execution settings (it trains nothing)
POST_HOC_SETTINGS = ("tau_norm", "adjust_tau", "center", "nc4_on_train")
#: a cRT stage's defaults (Kang et al. 2020): a fresh classifier trained 10 epochs with class-balanced
#: sampling, cosine lr, no warm-up, no mixup, plain cross-entropy
CRT_DEFAULTS = {"epochs": 10, "sampler": "class-balanced", "schedule": "cosine", "warmup_epochs": 0,
                "mixup_alpha": 0.0, "loss": "ce"}


def stage_config(stage: str, parent, overrides: dict[str, Any] | None = None, config_file=None) -> TrainConfig:
    """The config of a second stage started from the finished run folder ``parent``.

    The data and the network (:data:`INHERITED`) are the parent's and cannot be changed; the
    optimiser, seed and execution settings (:data:`CARRIED`) are the parent's unless given; a cRT
    stage starts from :data:`CRT_DEFAULTS`; the post-hoc stages (``tau-norm``, ``logit-adjust``)
    train nothing and keep the parent's training settings as the record of how the model was made.
    """
    check_choice("stage", stage, STAGES[1:])
    saved, where = read_parent(parent)
    values = load_config_file(config_file) if config_file is not None else {}
    given = {**values, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    for key in INHERITED:
        if key in given and given[key] != saved.get(key):
            raise LPMInputError(key, given[key], f"{saved.get(key)!r} as in the parent run {where} (a second stage "
                                                 "keeps its parent's data and network)")
    if stage in POST_HOC_STAGES:
        base = {k: v for k, v in saved.items() if k not in ("out",) + STAGE_SETTINGS}
        fixed = {k: v for k, v in given.items() if k in EXECUTION_ONLY + POST_HOC_SETTINGS}
        unused = sorted(set(given) - set(fixed) - set(INHERITED) - {"stage", "parent"})
        if unused:
            raise LPMInputError(unused[0], given[unused[0]], f"left unset for stage '{stage}' (it trains nothing)")
        given = fixed
    else:
        base = {**{k: saved[k] for k in INHERITED + CARRIED if k in saved}, **CRT_DEFAULTS}
    resolved_parent = str(Path(parent).resolve())
    cfg = TrainConfig.from_dict({**base, **given, "stage": stage, "parent": resolved_parent},
                                f"stage {stage} of {where}").resolved()
    _warn_schedule(cfg, given)
    return cfg


def read_parent(parent) -> tuple[dict[str, Any], str]:
    """The saved config of a finished run folder, and the path of its config.json for messages."""
    from . import run_format as rf

    folder = Path(parent)
    layout = (f"a finished run folder of `lpm train-deep` (holding {rf.CONFIG_FILE}, {rf.CHECKPOINT_FILE} and "
              f"{rf.SUMMARY_FILE})")
    if not folder.is_dir():
        raise LPMInputError("parent", str(parent), f"{layout}; no such folder")
    for name in (rf.CONFIG_FILE, rf.CHECKPOINT_FILE, rf.SUMMARY_FILE):
        if not (folder / name).is_file():
            hint = "; resume it to the end first" if name == rf.SUMMARY_FILE else ""
            raise LPMInputError("parent", str(parent), f"{layout}; missing {name}{hint}")
    try:
        saved = json.loads((folder / rf.CONFIG_FILE).read_text())["config"]
        if not isinstance(saved, dict):
            raise TypeError("not a table")
    except (ValueError, OSError, KeyError, TypeError) as exc:
        raise LPMInputError("parent", str(parent), f"{layout}; {rf.CONFIG_FILE} is not readable ({exc})") from None
    return saved, str(folder / rf.CONFIG_FILE)


def _warn_schedule(c: TrainConfig, given: dict[str, Any]) -> None:
    """Warn when explicitly given epochs of the schedule never take effect in a run this short."""
    late = [m for m in c.milestones if m >= c.epochs]
    if given.get("milestones") is not None and c.schedule == "step" and late:
        warnings.warn(f"the lr decay at milestone {late[0]} never happens in a {c.epochs}-epoch run (a milestone m "
                      f"lowers the lr from epoch m + 1 on); give milestone_fractions instead to scale with the run",
                      RunWarning, stacklevel=3)
    if c.drw_epoch is not None and c.drw_epoch >= c.epochs and c.stage not in POST_HOC_STAGES:
        warnings.warn(f"deferred re-weighting from epoch {c.drw_epoch + 1} never happens in a {c.epochs}-epoch run "
                      f"(drw_epoch {c.drw_epoch} lets the class weights apply after that many epochs)", RunWarning,
                      stacklevel=3)
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
        if self.kind == "int" and abs(value) > (INDEX_MAX if self.high is None else self.high):
            return False  # beyond any size, count or seed the run can use
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
                high = f"{int(self.high)}" if single == "int" else f"{self.high:g}"
                bounds.append(f"{'<' if self.high_open else '<='} {high}")
            text = noun + (" " + " and ".join(bounds) if bounds else "")
            if self.kind in ("ints", "floats"):
                text = "a list of " + {"int": "ints", "float": "numbers"}[single] + text[len(noun):]
        return text + (f" ({self.what})" if self.what else "")


def _int(low, optional=False, what="", high=None):
    return Rule("int", optional, low=low, high=high, what=what)


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
    "subset_seed": _int(0, high=SEED_MAX), "subset_draw": _choice(SUBSET_DRAWS), "augment": _bool(True),
    "image_size": _int(1, True),
    "backbone": _choice(BACKBONES, True), "feature_dim": _int(1), "head": _choice(HEADS),
    "head_seed": _int(0, high=SEED_MAX),
    "head_bias": _bool(), "head_batchnorm": _bool(), "normalize_features": _bool(True),
    "cosine_scale": _float(0, optional=True, low_open=True),
    "loss": _choice(LOSS_NAMES), "dr_form": _choice(DR_VARIANTS), "balance_batch": _bool(True),
    "dr_target": _float(0, low_open=True), "feature_norm_penalty": _float(0, optional=True),
    "allow_degenerate": _bool(), "mixup_alpha": _float(0),
    "tau": _float(optional=True), "gamma": _float(optional=True), "margin": _float(0, optional=True, low_open=True),
    "class_weights": _choice(CLASS_WEIGHTS), "beta": Rule("float", True, low=0, high=1, low_open=True, high_open=True),
    "drw_fraction": Rule("float", True, low=0, high=1, low_open=True, high_open=True,
                         what="the fraction of the run after which class weights apply"),
    "drw_epoch": _int(1, True, what="the epochs after which class weights apply"),
    "sampler": _choice(SAMPLERS), "stage": _choice(STAGES), "parent": Rule("path", True),
    "tau_norm": _float(0, optional=True), "adjust_tau": _float(optional=True),
    "epochs": _int(1), "batch_size": _int(2, what="BatchNorm needs 2 rows"),
    "lr": _float(0, low_open=True, high=FLOAT32_MAX), "momentum": _float(0, high=1), "weight_decay": _float(0),
    "warmup_epochs": _int(0, True), "schedule": _choice(SCHEDULES),
    "milestones": Rule("ints", True, low=1, what="epochs at which the lr decays"),
    "milestone_fractions": Rule("floats", low=0, high=1, low_open=True, high_open=True,
                                what="fractions of the run at which the lr decays"),
    "lr_decay": _float(0, low_open=True, high=1), "seed": _int(0, high=SEED_MAX),
    "device": _choice(DEVICES), "amp": _bool(True), "channels_last": _bool(True), "data_on_device": _bool(True),
    "sync_bn": _bool(), "compile": _bool(), "num_workers": _int(0), "eval_batch_size": _int(1),
    "max_batches_per_epoch": _int(1, True), "track_every": _int(1), "nc4_on_train": _bool(),
    "center": _choice(CENTERS), "out": Rule("path", True), "progress": _bool(), "figures": _bool(),
    "tensorboard": _bool(),
}


def _validate(c: TrainConfig) -> None:
    """Checks across fields (each field's own type and range is checked on construction)."""
    _check_pairing(c)
    _check_remedies(c)


def _check_remedies(c: TrainConfig) -> None:
    """Loss hyperparameters the loss takes, weights that DRW can switch on, stage settings of their stage."""
    for key in ("tau", "gamma", "margin"):
        if getattr(c, key) is not None and key not in LOSS_HYPERPARAMETERS.get(c.loss, ()):
            takes = ", ".join(LOSS_HYPERPARAMETERS.get(c.loss, ())) or "no hyperparameter"
            raise LPMInputError(key, getattr(c, key), f"left unset for loss '{c.loss}' (it takes {takes})")
    if c.beta is not None and c.class_weights != "class-balanced":
        raise LPMInputError("beta", c.beta, "left unset unless class_weights is 'class-balanced'")
    if c.drw_epoch is not None and c.class_weights == "none":
        raise LPMInputError("class_weights", c.class_weights, "'inverse', 'sqrt' or 'class-balanced' for deferred "
                                                              "re-weighting (drw_fraction / drw_epoch)")
    if (c.stage == "joint") != (c.parent is None):
        raise LPMInputError("parent", c.parent, "the run folder to start from for stage "
                                                f"'{c.stage}'" if c.stage != "joint" else
                            "left unset for stage 'joint' (a second stage names its parent run folder)")
    if c.stage == "crt" and c.head != "learnable":
        raise LPMInputError("stage", c.stage, f"'tau-norm' or 'logit-adjust' for a run with the {c.head} head "
                                              "(classifier re-training needs the learnable head)")
    if c.cosine_scale is not None and c.head != "learnable":
        raise LPMInputError("cosine_scale", c.cosine_scale, f"left unset for the {c.head} head (the cosine "
                                                            "classifier is a learnable head)")
    if c.stage == "tau-norm" and c.cosine_scale is not None:
        raise LPMInputError("stage", c.stage, "'crt' or 'logit-adjust' for a cosine classifier (its rows all have "
                                              "norm cosine_scale, so τ-normalisation changes nothing)")
    if c.tau_norm is not None and c.stage != "tau-norm":
        raise LPMInputError("tau_norm", c.tau_norm, "left unset unless stage is 'tau-norm'")
    if c.adjust_tau is not None and c.stage != "logit-adjust":
        raise LPMInputError("adjust_tau", c.adjust_tau, "left unset unless stage is 'logit-adjust'")


def _check_pairing(c: TrainConfig) -> None:
    """Refuse head/loss settings that make no sense (theory.md §5–§6)."""
    if c.loss == "dr" and c.head == "learnable" and not c.allow_degenerate:
        raise LPMInputError("loss", c.loss, f"'ce' with the learnable head ({DEGENERATE_HINT})")
    if c.balance_batch and not (c.loss == "dr" and c.dr_form == "released"):
        raise LPMInputError("balance_batch", c.balance_batch,
                            "false unless loss='dr' with dr_form='released' "
                            "(the in-batch balancing of theory.md §6.2)")
