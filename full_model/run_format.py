"""The run folder written by ``lpm train-deep`` (format version 1).

A run folder holds, written atomically (temporary file, then rename):

``config.json``
    {"format_version": 1, "config": the resolved TrainConfig,
     "data": {"name", "num_classes", "train_counts" (list, n_k), "train_size",
              "test_size", "input_shape", "profile" (how the counts were made)},
     "model": {"backbone", "head", "feature_dim", "parameters"},
     "provenance": the keys of :func:`lpm.core.provenance.provenance`
                   ("lpm_version", "git" {"commit", "dirty"}, "python",
                   "packages", "hardware", "written_at") plus "device",
                   "torch_threads", "world_size"}
``metrics.jsonl``
    one JSON object per finished epoch, in order, keys:
    ``epoch`` (1-based), ``lr``, ``train_loss`` (mean training objective over
    the epoch, mixup included), ``batch_accuracy``, ``epoch_time_s``,
    ``images_per_s``; on tracked epochs also ``train_accuracy``,
    ``test_accuracy``, ``{train,test}_per_class_accuracy`` (lists),
    ``{train,test}_{head,medium,tail}_accuracy`` (or many/medium/few),
    ``{train,test}_ece``, ``nc4``, ``test_nc4``, ``eval_time_s`` and every key
    of :func:`lpm.core.geometry.measure` (nc1, nc2, nc3, y22_*, collapse_index, …).
    The file is rewritten whole each epoch, so a resumed run never repeats
    an epoch.
``final_geometry.npz``
    ``format_version`` (int), ``class_means`` (K×d, training features h),
    ``classifier`` (K×d, W with logits = W h), ``class_counts`` (K, samples
    per class in the tracking pass), ``train_counts`` (K, the long-tailed
    profile n_k), ``within_class_cov`` (d×d), ``feature_dim``,
    ``num_classes``, ``epoch``, ``head``, ``loss``, ``dr_form``, ``dataset``,
    ``center``, ``train_per_class_accuracy``, ``test_per_class_accuracy``
    (K, NaN where a class has no sample).
``summary.json``
    ``best_test_accuracy`` and ``best_epoch`` (selected on the test set, as
    [Y22] reports), ``last_test_accuracy``, ``last_train_accuracy``,
    last-epoch group accuracies, ``epochs``, ``wall_time_s``.
``checkpoint.pt``
    model, optimiser, scheduler, epoch and every RNG state (see
    :mod:`full_model.checkpoint`); a pickle — load only your own.
``metrics.png``
    figures of the metrics over epochs.

:func:`load_run` reads and checks a folder.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lpm.core.errors import LPMInputError

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
GEOMETRY_FILE = "final_geometry.npz"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FILE = "checkpoint.pt"
FIGURE_FILE = "metrics.png"
GEOMETRY_KEYS = ("format_version", "class_means", "classifier", "class_counts", "train_counts",
                 "within_class_cov", "feature_dim", "num_classes", "epoch", "head", "loss", "dr_form",
                 "dataset", "center", "train_per_class_accuracy", "test_per_class_accuracy")


@dataclass
class DeepRun:
    """A loaded run folder."""

    path: Path
    config: dict
    metrics: list[dict]
    geometry: dict[str, np.ndarray]
    summary: dict

    @property
    def train_counts(self) -> np.ndarray:
        return self.geometry["train_counts"]


def _run_error(path, problem: str) -> LPMInputError:
    return LPMInputError("run_dir", str(path), f"a run folder written by `lpm train-deep` ({problem})")


def read_metrics(path) -> list[dict]:
    """Rows of metrics.jsonl (empty list when the file does not exist yet)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise _run_error(path.parent, f"line {number} of {METRICS_FILE} is not JSON") from None
    return rows


def load_run(path) -> DeepRun:
    """Read and check a finished run folder; errors name the missing or bad file."""
    path = Path(path)
    if not path.is_dir():
        raise _run_error(path, "no such folder")
    for name in (CONFIG_FILE, METRICS_FILE, GEOMETRY_FILE, SUMMARY_FILE):
        if not (path / name).is_file():
            raise _run_error(path, f"missing {name}")
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
        summary = json.loads((path / SUMMARY_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise _run_error(path, f"unreadable JSON: {exc}") from None
    if config.get("format_version") != FORMAT_VERSION:
        raise _run_error(path, f"{CONFIG_FILE} has format_version {config.get('format_version')!r}, "
                               f"this lpm reads {FORMAT_VERSION}")
    with np.load(path / GEOMETRY_FILE, allow_pickle=False) as npz:
        geometry = {key: npz[key] for key in npz.files}
    missing = [k for k in GEOMETRY_KEYS if k not in geometry]
    if missing:
        raise _run_error(path, f"{GEOMETRY_FILE} lacks {', '.join(missing)}")
    if int(geometry["format_version"]) != FORMAT_VERSION:
        raise _run_error(path, f"{GEOMETRY_FILE} has format_version {int(geometry['format_version'])}, "
                               f"this lpm reads {FORMAT_VERSION}")
    return DeepRun(path, config, read_metrics(path / METRICS_FILE), geometry, summary)
