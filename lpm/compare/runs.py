"""The part of a deep run that the comparison reads (run folder format: :mod:`full_model.run_format`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import LPMInputError, check_choice
from ..core.losses import LOSS_NAMES
from ..core.problem import CLASSIFIERS

#: how ``lpm compare`` groups a run's classes over epochs: majority/minority (auto when
#: the run has K_A) or the run's own head/medium/tail groups
GROUPINGS = ("auto", "majority", "class-groups")


@dataclass
class RunGeometry:
    """A deep run's final epoch and its history.

    counts (K,): training samples per class n_k. means (K, d): uncentred class
    means of the training features h. W (K, d): classifier, logits z = W h.
    majority: K_A, classes [0, K_A) are the majority (None: unknown).
    groups: (ids (K,), names) of the run's head/medium/tail classes.
    history: the per-epoch rows of metrics.jsonl.
    train_class_accuracy (K,): final training accuracy of each class (NaN: no sample seen).
    weight_decay: the SGD weight decay the run's parameters (its learnable head too) had.
    tau, gamma, margin: the loss's hyperparameters as its config.json holds them (None: the
    published default). class_weights, beta, drw_epoch: the loss's class weights and the epochs
    after which they apply (None: from the start). sampler: the class sampler; epochs: the
    run's epochs. stage, parent: ``joint`` or a second stage (crt, tau-norm, logit-adjust) and
    its parent folder; a post-hoc stage's config holds its parent's training settings.
    """

    name: str
    counts: np.ndarray
    means: np.ndarray
    W: np.ndarray
    head: str
    loss: str
    dr_form: str = "paper"
    ratio: float | None = None
    profile: str = "explicit"
    n_max: float | None = None
    majority: int | None = None
    groups: tuple[np.ndarray, tuple[str, ...]] | None = None
    normalized_features: bool = False
    head_seed: int = 0
    center: str = "class-means"
    dataset: str = ""
    epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    train_class_accuracy: np.ndarray | None = None
    weight_decay: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    tau: float | None = None
    gamma: float | None = None
    margin: float | None = None
    class_weights: str = "none"
    beta: float | None = None
    drw_epoch: int | None = None
    sampler: str = "instance"
    epochs: int | None = None
    stage: str = "joint"
    parent: str | None = None
    cosine_scale: float | None = None

    def __post_init__(self):
        self.counts = np.asarray(self.counts, dtype=np.float64).ravel()
        self.means = np.asarray(self.means, dtype=np.float64)
        self.W = np.asarray(self.W, dtype=np.float64)
        K, d = len(self.counts), (self.means.shape[1] if self.means.ndim == 2 else None)
        for key, arr in (("class_means", self.means), ("classifier", self.W)):
            if arr.ndim != 2 or arr.shape != (K, d):
                raise LPMInputError(key, f"an array of shape {arr.shape}", f"a K×d array with one row per class "
                                    f"count (K = {K}, d = {d})", owner=f"run {self.name}")
        check_choice("head", self.head, CLASSIFIERS, owner=f"run {self.name}")
        check_choice("loss", self.loss, LOSS_NAMES, owner=f"run {self.name}")
        if self.groups is not None and len(self.groups[0]) != K:
            raise LPMInputError("groups", list(self.groups[0]), f"one group id per class (K = {K})",
                                owner=f"run {self.name}")

    @property
    def K(self) -> int:
        return len(self.counts)

    @property
    def d(self) -> int:
        return self.means.shape[1]


def load_run_geometry(path) -> RunGeometry:
    """Read a ``lpm train-deep`` run folder; missing files and a wrong format_version are
    reported by :func:`full_model.run_format.load_run` as :class:`LPMInputError`."""
    from full_model.run_format import load_run

    deep = load_run(path)
    try:
        return _geometry_of(deep, path)
    except (TypeError, ValueError) as exc:  # a field of the right name holding the wrong type
        if isinstance(exc, LPMInputError):
            raise
        raise LPMInputError("run_dir", str(path), f"a run folder written by `lpm train-deep` (a value in its "
                                                  f"config.json or final_geometry.npz has the wrong type: "
                                                  f"{exc})") from None


def _geometry_of(deep, path) -> RunGeometry:
    g, config, data = deep.geometry, deep.config.get("config", {}), deep.config.get("data", {})
    made = data.get("profile") if isinstance(data.get("profile"), dict) else {}
    head = str(g["head"])
    groups = None
    if data.get("groups") is not None and data.get("group_names") is not None:
        groups = (np.asarray(data["groups"], dtype=int), tuple(data["group_names"]))
    ratio = config.get("ratio", made.get("ratio"))
    for where, key, value, kinds in (("data", "majority", data.get("majority"), (int,)),
                                     ("data.profile", "n_max", made.get("n_max"), (int, float)),
                                     ("data.profile", "profile", made.get("profile"), (str,))):
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            raise TypeError(f"{where}.{key} is {value!r}")
    return RunGeometry(
        name=Path(path).resolve().name, counts=g["train_counts"], means=g["class_means"], W=g["classifier"],
        head=head, loss=str(g["loss"]), dr_form=str(g["dr_form"]), ratio=None if ratio is None else float(ratio),
        profile=made.get("profile") or "explicit", n_max=made.get("n_max"), majority=data.get("majority"),
        groups=groups, normalized_features=head != "learnable" and bool(config.get("normalize_features")),
        head_seed=int(config.get("head_seed", 0)), center=str(g["center"]), dataset=str(g["dataset"]),
        epoch=int(g["epoch"]), history=deep.metrics, summary=deep.summary, path=Path(path),
        train_class_accuracy=np.asarray(g["train_per_class_accuracy"], dtype=np.float64),
        weight_decay=None if config.get("weight_decay") is None else float(config["weight_decay"]),
        **_remedies_of(config))


def _optional(value, kind):
    return None if value is None else kind(value)


def _remedies_of(config: dict) -> dict[str, Any]:
    """The remedy settings of a run's config.json (defaults for runs written before they existed)."""
    return {"tau": _optional(config.get("tau"), float), "gamma": _optional(config.get("gamma"), float),
            "margin": _optional(config.get("margin"), float),
            "class_weights": str(config.get("class_weights") or "none"), "beta": _optional(config.get("beta"), float),
            "drw_epoch": _optional(config.get("drw_epoch"), int), "sampler": str(config.get("sampler") or "instance"),
            "epochs": _optional(config.get("epochs"), int), "stage": str(config.get("stage") or "joint"),
            "parent": _optional(config.get("parent"), str),
            "cosine_scale": _optional(config.get("cosine_scale"), float)}
