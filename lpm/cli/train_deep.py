"""``lpm train-deep``: train a backbone on a long-tailed data set and track its collapse geometry.

Thin: options → :func:`full_model.config.build_config` (recipe ← config file ←
the options given) → :func:`full_model.train.train`. Settings without an
option here can be set in a JSON/TOML ``--config`` file (any
:class:`full_model.config.TrainConfig` field).

With no data set given (no ``--dataset``, none in ``--config``, no
``--resume``) the command trains nothing: it prints a short usage with a
first run that needs no download, and exits with status 2. Training without
being asked would write a run folder and take minutes; a newcomer is better
served by the example. Warnings about a run print as one ``Warning:`` line;
a diverged run prints one ``Error:`` line and exits with status 1.
"""
from __future__ import annotations

import os
import warnings
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from full_model.config import (BACKBONES, DEVICES, HEADS, SCHEDULES, STAGES, build_config, load_config_file,
                               stage_config)
from full_model.data import DATASETS, SUBSET_DRAWS
from full_model.errors import RunWarning, TrainingDiverged
from full_model.sampling import SAMPLERS

from ..core.errors import LPMInputError
from ..core.losses import DR_VARIANTS, LOSS_NAMES
from ..core.weighting import CLASS_WEIGHTS
from ..core.profiles import PROFILES
from ._common import parse_float_list, user_errors


def _enum(name: str, values) -> type[Enum]:
    return Enum(name, {v.replace("-", "_"): v for v in values}, type=str)


Dataset, Head, Loss = _enum("Dataset", DATASETS), _enum("Head", HEADS), _enum("Loss", LOSS_NAMES)
DRForm, Backbone, Profile = _enum("DRForm", DR_VARIANTS), _enum("Backbone", BACKBONES), _enum("Profile", PROFILES)
Device, Schedule = _enum("Device", DEVICES), _enum("Schedule", SCHEDULES)
Draw = _enum("Draw", SUBSET_DRAWS)
Weights, Sampler, Stage = _enum("Weights", CLASS_WEIGHTS), _enum("Sampler", SAMPLERS), _enum("Stage", STAGES)


def train_deep_command(
    dataset: Optional[Dataset] = typer.Option(None, "--dataset", help="Long-tailed data set (no default: without "
                                                                      "one, here or in --config, the command "
                                                                      "prints a first run to try)."),
    root: Optional[str] = typer.Option(None, "--root", help="Folder with the data set files (not needed for "
                                                            "mnist1d-lt, digits-lt, synthetic-*)."),
    ratio: Optional[float] = typer.Option(None, "--ratio", "-R", help="Imbalance ratio R = n_max/n_min = 1/τ (>= 1) "
                                                                      "(default: 100)."),
    profile: Optional[Profile] = typer.Option(None, "--profile", help="Class profile (default: exp)."),
    n_max: Optional[int] = typer.Option(None, "--n-max", help="Largest class count (default: the data set's)."),
    subset_seed: Optional[int] = typer.Option(None, "--subset-seed",
                                              help="Seed choosing the kept images (default: 0)."),
    subset_draw: Optional[Draw] = typer.Option(None, "--subset-draw", help="How the kept images are drawn: uniform, "
                                                                          "or ldam-drw for the CIFAR-LT images of Cao "
                                                                          "et al. 2019 (default: uniform)."),
    head: Optional[Head] = typer.Option(None, "--head", help="Classifier head (default: learnable)."),
    cosine_scale: Optional[float] = typer.Option(None, "--cosine-scale", help="Learnable head as a cosine "
                                                                              "classifier s·cos(h, w_k) with this s "
                                                                              "(Cao et al. 2019: 30) (default: "
                                                                              "linear)."),
    head_bias: Optional[bool] = typer.Option(None, "--head-bias/--no-head-bias", help="Bias in the learnable "
                                                                                      "classifier (default: off)."),
    loss: Optional[Loss] = typer.Option(None, "--loss", help="Loss (default: ce); dr needs a fixed head."),
    dr_form: Optional[DRForm] = typer.Option(None, "--dr-form", help="DR as in the paper (§5) or the released "
                                                                     "code (§6) (default: paper)."),
    balance_batch: Optional[bool] = typer.Option(None, "--balance-batch/--no-balance-batch",
                                                 help="In-batch class balancing of released DR "
                                                      "(default: on for released)."),
    allow_degenerate: bool = typer.Option(False, "--allow-degenerate", help="Run DR with a learnable head "
                                                                                     "anyway (degenerate, §5)."),
    tau: Optional[float] = typer.Option(None, "--tau", help="τ of the loss (la, vs) (default: the loss's "
                                                            "published value)."),
    gamma: Optional[float] = typer.Option(None, "--gamma", help="γ of the loss (cdt, vs) (default: the loss's "
                                                                "published value)."),
    margin: Optional[float] = typer.Option(None, "--margin", help="Largest LDAM margin (default: the loss's "
                                                                  "published value)."),
    class_weights: Optional[Weights] = typer.Option(None, "--class-weights", help="Class weights of the loss "
                                                                                  "(default: none)."),
    beta: Optional[float] = typer.Option(None, "--beta", help="β of class-balanced weights (default: 0.9999)."),
    drw: Optional[str] = typer.Option(None, "--drw", help="Deferred re-weighting: class weights apply from a "
                                                          "fraction of the run ('0.8') or after an epoch ('160') "
                                                          "(default: from the start)."),
    sampler: Optional[Sampler] = typer.Option(None, "--sampler", help="Training sampler (default: instance; "
                                                                      "class-balanced for --stage crt)."),
    stage: Optional[Stage] = typer.Option(None, "--stage", help="joint training (default), or a second stage of "
                                                                "--parent: crt (classifier re-training), tau-norm "
                                                                "or logit-adjust (post-hoc)."),
    parent: Optional[str] = typer.Option(None, "--parent", metavar="<folder>",
                                         help="Finished run folder a second stage starts from."),
    tau_norm: Optional[float] = typer.Option(None, "--tau-norm", help="τ of w_k/‖w_k‖^τ for --stage tau-norm "
                                                                      "(default: chosen on the training set)."),
    adjust_tau: Optional[float] = typer.Option(None, "--adjust-tau", help="τ of z − τ log π for --stage "
                                                                          "logit-adjust (default: 1)."),
    backbone: Optional[Backbone] = typer.Option(None, "--backbone", help="Backbone (default: the data set's)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs (default: 200; 90 for imagenet-lt)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global batch size (default: 128)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default: 0.1)."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="Weight decay (default: 2e-4)."),
    lr_decay: Optional[float] = typer.Option(None, "--lr-decay", help="lr factor at each milestone (default: "
                                                                      "0.1)."),
    warmup_epochs: Optional[int] = typer.Option(None, "--warmup-epochs", help="Linear warm-up epochs (default: "
                                                                               "min(5, epochs/10))."),
    schedule: Optional[Schedule] = typer.Option(None, "--schedule",
                                                help="After warm-up: step or cosine (default: step)."),
    milestones: Optional[str] = typer.Option(None, "--milestones", help="Step decay at fractions of the run "
                                                                        "('0.8,0.9', the default) or at epochs "
                                                                        "('160,180')."),
    mixup_alpha: Optional[float] = typer.Option(None, "--mixup-alpha",
                                                help="Mixup α; 0 turns mixup off (default: 1.0)."),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment", help="Crop-flip augmentation "
                                                                                "(default: the data set's)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of initialisation and data order (default: 0)."),
    seeds: Optional[str] = typer.Option(None, "--seeds", metavar="<list>",
                                        help="Several seeds, e.g. 0,1,2: one run per seed, one after another, "
                                             "each in its own run folder (OUT/seed<k> with --out, else the "
                                             "default name, which carries the seed)."),
    device: Optional[Device] = typer.Option(None, "--device", help="auto, cpu or cuda (default: auto)."),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="bfloat16 autocast (default: on for CUDA)."),
    compile_model: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model."),
    num_workers: Optional[int] = typer.Option(None, "--num-workers",
                                              help="Loader workers for image files (default: 4)."),
    track_every: Optional[int] = typer.Option(None, "--track-every",
                                              help="Track geometry every N epochs (default: 1)."),
    max_batches: Optional[int] = typer.Option(None, "--max-batches-per-epoch", help="Cap batches per epoch "
                                                                                    "(smoke runs)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", metavar="<folder>",
                                      help="Run folder (default: runs/<dataset>_<head>_<loss>_R<ratio>_e<epochs>_"
                                           "seed<seed>_<hash of the settings>)."),
    config: Optional[Path] = typer.Option(None, "--config", help="JSON or TOML file of settings (TrainConfig fields)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoint."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bars (default: on)."),
    tensorboard: Optional[bool] = typer.Option(None, "--tensorboard/--no-tensorboard",
                                               help="Also log every metric and figure to <out>/tensorboard "
                                                    "(default: off; needs the tensorboard package: "
                                                    "pip install 'lpm[tensorboard]')."),
):
    """Train a deep network on a long-tailed data set and record its collapse geometry per epoch.

    \b
    Example (35-60 s on 2 lightly shared CPU cores; every class fitted):
      lpm train-deep --dataset mnist1d-lt --ratio 100 --head fixed-etf --loss dr \\
        --epochs 100 --mixup-alpha 0 --weight-decay 5e-4 --schedule cosine \\
        --track-every 5

    Second stage of a finished run (docs/recipes.md): lpm train-deep --stage crt --parent RUN_FOLDER
    """
    from full_model.train import resume_config, train  # imports torch: loaded only when a run starts

    value = lambda e: None if e is None else e.value  # noqa: E731
    with user_errors(), warnings.catch_warnings():
        warnings.simplefilter("always", RunWarning)
        warnings.showwarning = _show_warning
        overrides = {
            "dataset": value(dataset), "root": root, "ratio": ratio, "profile": value(profile), "n_max": n_max,
            "subset_seed": subset_seed, "subset_draw": value(subset_draw), "head_bias": head_bias,
            "cosine_scale": cosine_scale,
            "lr_decay": lr_decay, "head": value(head), "loss": value(loss), "dr_form": value(dr_form),
            "balance_batch": balance_batch, "allow_degenerate": allow_degenerate or None, "backbone": value(backbone),
            "epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
            "warmup_epochs": warmup_epochs, "schedule": value(schedule), "mixup_alpha": mixup_alpha,
            "augment": augment, "seed": seed, "device": value(device), "amp": amp, "compile": compile_model,
            "num_workers": num_workers, "track_every": track_every, "max_batches_per_epoch": max_batches,
            "out": out, "progress": progress, "tensorboard": tensorboard, **_milestones(milestones),
            "tau": tau, "gamma": gamma, "margin": margin, "class_weights": value(class_weights), "beta": beta,
            "sampler": value(sampler), "tau_norm": tau_norm, "adjust_tau": adjust_tau, **_drw(drw),
        }
        from_file = _file(config)
        seed_list = _seeds(seeds, seed)
        stage_name = value(stage) or from_file.get("stage", "joint")
        if not resume and stage_name == "joint":
            if parent is not None:
                raise LPMInputError("stage", "joint", "'crt', 'tau-norm' or 'logit-adjust' with --parent")
            if dataset is None and "dataset" not in from_file:
                typer.echo(NO_DATASET, err=True)
                raise typer.Exit(2)
        base_out = out if out is not None else from_file.get("out")
        if seed_list is None:
            runs = [overrides]
        else:  # one run per seed, each in its own folder; every config is checked before the first run
            runs = [{**overrides, "seed": s, "out": None if base_out is None else str(Path(base_out) / f"seed{s}")}
                    for s in seed_list]
        configs = []
        for settings in runs:
            if resume:
                run_dir = settings["out"] if settings["out"] is not None else from_file.get("out")
                if run_dir is None:
                    raise LPMInputError("out", None, "the run folder to continue (--resume needs --out)")
                cfg = resume_config(run_dir, {**from_file, **settings})
            elif stage_name != "joint":
                parent_dir = parent if parent is not None else from_file.get("parent")
                if parent_dir is None:
                    raise LPMInputError("parent", None, f"the finished run folder that stage '{stage_name}' "
                                                        "starts from (--parent)")
                cfg = stage_config(stage_name, parent_dir, settings, config)
            else:
                cfg = build_config(settings, config)
            refuse_unused(settings, cfg)
            configs.append(cfg)
        for cfg in configs:
            try:
                result = train(cfg, resume=resume)
            except TrainingDiverged as exc:
                typer.echo(f"Error: {exc}", err=True)
                raise typer.Exit(1) from None
            if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
                _report(result)


def _report(result) -> None:
    """The lines a finished run prints: its folder, accuracies and the long-tail evaluation."""
    typer.echo(f"run folder: {result.run_dir}")
    typer.echo(f"epochs: {result.epochs}  last test accuracy: {_fmt(result.last_test_accuracy)}  "
               f"best test accuracy: {_fmt(result.best_test_accuracy)} (epoch {result.best_epoch}; "
               "selected on the test set)")
    last = next((r for r in reversed(getattr(result, "metrics", None) or [])
                 if r.get("test_balanced_accuracy") is not None), None)
    if last is not None:
        shots = "/".join(_fmt(last.get(f"test_{g}_shot_accuracy")) for g in ("many", "medium", "few"))
        split = str(last.get("shot_split") or "").split(" (")[0]
        typer.echo(f"last test balanced accuracy: {_fmt(last['test_balanced_accuracy'])}  many/medium/few-shot: "
                   f"{shots} (split by {split})  ECE: {_fmt(last.get('test_ece'))}")


def refuse_unused(given: dict, cfg) -> None:
    """Refuse options given on the command line that the resolved run would not read."""
    from full_model.data import dataset_needs_root

    if given.get("dr_form") is not None and cfg.loss != "dr":
        raise LPMInputError("dr-form", given["dr_form"], f"given only with --loss dr (this run's loss is "
                                                         f"'{cfg.loss}')")
    if (given.get("milestones") is not None or given.get("milestone_fractions") is not None) \
            and cfg.schedule != "step":
        value = given.get("milestones") or given.get("milestone_fractions")
        raise LPMInputError("milestones", value, f"given only with --schedule step (this run's schedule is "
                                                 f"'{cfg.schedule}', which has no milestones)")
    if not dataset_needs_root(cfg.dataset):
        for option, key in (("root", "root"), ("num-workers", "num_workers")):
            if given.get(key) is not None:
                raise LPMInputError(option, given[key], f"left out for '{cfg.dataset}', which is made in memory "
                                                        "and reads no files")
    if given.get("allow_degenerate") and not (cfg.loss == "dr" and cfg.head == "learnable"):
        raise LPMInputError("allow-degenerate", True, "given only with --loss dr and the learnable head (the "
                                                      "degenerate pairing it allows)")


def _seeds(text: str | None, seed: int | None) -> list[int] | None:
    """--seeds '0,1,2' → [0, 1, 2] (distinct integers >= 0); refused beside --seed."""
    values = parse_float_list("seeds", text)
    if values is None:
        return None
    if seed is not None:
        raise LPMInputError("seeds", text, "given without --seed (--seeds runs one run per seed)")
    if not values or any(v != int(v) or v < 0 for v in values) or len(set(values)) != len(values):
        raise LPMInputError("seeds", text, "a comma-separated list of distinct integers >= 0, e.g. '0,1,2'")
    return [int(v) for v in values]


#: the quick pair that `lpm train-deep` suggests: learnable + CE and fixed ETF + DR on MNIST-1D-LT at R = 100
#: with the recipe of figure 7 (weight decay 5e-4, no mixup, cosine schedule), long enough (100 epochs) that
#: every class is fitted, so that `lpm compare` of the pair reports the minority geometry of both
QUICK_RECIPE = ("--dataset mnist1d-lt --ratio 100 --epochs 100 --mixup-alpha 0 --weight-decay 5e-4 "
                "--schedule cosine --track-every 5")
QUICK_COMMANDS = (
    f"lpm train-deep {QUICK_RECIPE} --head learnable --loss ce -o runs/quick/learnable-ce",
    f"lpm train-deep {QUICK_RECIPE} --head fixed-etf --loss dr -o runs/quick/etf-dr",
    "lpm compare runs/quick/learnable-ce runs/quick/etf-dr --budget-rule weight-decay -o runs/quick/compare",
)

#: what `lpm train-deep` prints when no data set is given
NO_DATASET = """\
Error: no data set given: choose one with --dataset (or in a --config file).
A first comparison that needs no download: learnable + CE and fixed ETF + DR on MNIST-1D-LT at
R = 100, every class fitted, then theory beside practice (17 s and 35-60 s of training and 6 s
for compare, measured on 2 lightly shared CPU cores; up to 3 minutes each on busy cores):
  """ + "\n  ".join(QUICK_COMMANDS) + """
Offline sets: mnist1d-lt, digits-lt, synthetic-lt, synthetic-images-lt. CIFAR, SVHN, STL-10 and
ImageNet-LT are read from files: --dataset cifar10-lt --root FOLDER. All options: lpm train-deep --help"""


def _milestones(text: str | None) -> dict:
    """--milestones: all values in (0, 1) → milestone_fractions; whole numbers >= 1 → milestones (epochs)."""
    values = parse_float_list("milestones", text)
    if values is None:
        return {}
    if values and all(0 < v < 1 for v in values):
        return {"milestone_fractions": values}
    if values and all(v >= 1 and v.is_integer() for v in values):
        return {"milestones": [int(v) for v in values]}
    raise LPMInputError("milestones", text, "fractions of the run in (0, 1) such as '0.8,0.9', or epochs >= 1 "
                                            "such as '160,180'")


def _drw(text: str | None) -> dict:
    """--drw: a fraction in (0, 1) → drw_fraction; a whole number >= 1 → drw_epoch."""
    if text is None:
        return {}
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if 0 < number < 1:
        return {"drw_fraction": number}
    if number >= 1 and number.is_integer():
        return {"drw_epoch": int(number)}
    raise LPMInputError("drw", text, "a fraction of the run in (0, 1) such as '0.8', or an epoch >= 1 such as '160'")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    typer.echo(f"Warning: {message}", err=True)


def _file(config):
    return load_config_file(config) if config is not None else {}


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def register(app: typer.Typer) -> None:
    app.command("train-deep")(train_deep_command)
