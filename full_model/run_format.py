"""The run folder written by ``lpm train-deep`` (format version 1).

A run folder holds, written atomically (temporary file, then rename):

``config.json``
    {"format_version": 1, "run_id": 32 hex digits naming the run (the same
     in every file of the run; see :func:`check_run_ids`), "config": the resolved TrainConfig (its
     ``weight_decay`` is the decay of every parameter, the head's included),
     "data": {"name", "num_classes", "train_counts" (list, n_k), "train_size",
              "test_size", "input_shape", "profile" (how the counts were made)},
     "model": {"backbone", "head", "feature_dim", "parameters",
               "head_trainable" (false for fixed heads),
               "head_weight_decay" (λ_W of theory.md §9: the weight decay on
               the classifier W; null for a fixed head, whose W never moves)},
     "provenance": the keys of :func:`lpm.core.provenance.provenance`
                   ("lpm_version", "git" {"commit", "dirty"}, "python",
                   "packages", "hardware", "written_at") plus "device",
                   "torch_threads", "world_size" — of the run's start,
     "resumes": [{"from_epoch", "epochs", "provenance"}, ...] — one entry per
                ``--resume``, with the epochs asked for then}
    A second stage (``stage`` crt, tau-norm or logit-adjust) records the
    absolute path of the run folder it started from in the config's
    ``parent``.
    A resume rewrites the file with the new config (so ``epochs`` says what
    the run now aims at).
``metrics.jsonl``
    one JSON object per finished epoch, in order, keys:
    ``epoch`` (1-based), ``lr``, ``train_loss`` (mean training objective over
    the epoch, mixup included), ``batch_accuracy``, ``epoch_time_s``,
    ``images_per_s``; on tracked epochs also ``train_accuracy``,
    ``test_accuracy``, ``{train,test}_per_class_accuracy`` (lists),
    ``{train,test}_{head,medium,tail}_accuracy`` (or many/medium/few),
    ``{train,test}_ece``, ``nc4``, ``test_nc4``, ``eval_time_s`` and every key
    of :func:`lpm.core.geometry.measure` (nc1, nc2, nc3, y22_*, collapse_index, …);
    the evaluation of docs/evaluation.md: ``{train,test}_top5_accuracy``,
    ``{train,test}_balanced_accuracy``, ``{train,test}_{many,medium,few}_shot_accuracy``
    with ``shot_split`` naming the split, ``{train,test}_mce``,
    ``nc4_agreement``, ``nc4_class_agreement`` (and ``test_`` ones), ``nc1_pinv``,
    ``nc1_pinv_rank``, ``nc1_trace_quotient``, ``cdnv``, ``gnc2``, ``unc3_*``;
    ``class_weighted`` (whether class weights applied in the epoch) when the
    run has class weights. A post-hoc stage (tau-norm, logit-adjust) trains
    nothing and writes one row with ``epoch`` 0, ``stage`` and its τ
    (``tau_norm``, with ``tau_norm_grid`` and
    ``tau_norm_train_balanced_accuracy`` when τ was chosen; ``adjust_tau``).
    The file is rewritten whole each epoch, so a resumed run never repeats
    an epoch.
``final_geometry.npz``
    ``format_version`` (int), ``class_means`` (K×d, training features h),
    ``classifier`` (K×d, W with logits = W h), ``class_counts`` (K, samples
    per class in the tracking pass), ``train_counts`` (K, the long-tailed
    profile n_k), ``within_class_cov`` (d×d), ``feature_dim``,
    ``num_classes``, ``epoch``, ``head``, ``loss``, ``dr_form``, ``dataset``,
    ``center``, ``train_per_class_accuracy``, ``test_per_class_accuracy``
    (K, NaN where a class has no sample; the training accuracy is what
    flags classes the network never fitted); in runs of this version also
    ``class_variances`` (K, tr Cov_k), ``test_bin_count``,
    ``test_bin_confidence``, ``test_bin_correct`` (15 confidence bins),
    ``test_confusion`` (K×K, rows true class; up to 1000 classes) and
    ``shot_split``; ``run_id``.
``summary.json``
    ``best_test_accuracy`` and ``best_epoch`` (selected on the test set, as
    [Y22] reports), ``last_test_accuracy``, ``last_train_accuracy``,
    last-epoch group accuracies, ``epochs``, ``wall_time_s``, ``run_id``.
``checkpoint.pt``, ``checkpoint.prev.pt``
    model (with the buffer ``logit_offset`` after a logit adjustment),
    optimiser, scheduler, epoch, metrics rows and every RNG state
    (see :mod:`full_model.checkpoint`), as tensors and plain values, read
    with ``torch.load(weights_only=True)``; ``checkpoint.prev.pt`` is the
    one before (kept in case the last one is damaged).
``metrics.png``
    figures of the metrics over epochs.
``evaluation.png``, ``confusion.png``
    per-class test accuracy against training count and the reliability
    diagram; the normalised test confusion matrix, classes sorted by count
    (docs/evaluation.md).
``tensorboard/``
    with ``--tensorboard``: a TensorBoard log of every scalar of
    ``metrics.jsonl`` (step = epoch) and the figures; rebuilt from
    ``metrics.jsonl`` on resume, which stays the source of truth.

``.lock``
    held by the one process writing the folder (:func:`lpm.core.io.folder_lock`),
    naming it; removed when the run ends (a killed run leaves it, unlocked).

Files are written through temporary files ``.NAME.*.tmp`` in the folder; a
crash can leave one behind, and the next start of the run removes them.
:func:`load_run` refuses a folder whose files carry different ``run_id`` values
or disagree on the epochs run (files of two runs), and fields of the wrong type.
:func:`load_run` reads and checks a folder; a damaged file is named with how
to recover it.
"""
from __future__ import annotations

import contextlib
import json
import zipfile
import zlib
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
PREVIOUS_CHECKPOINT_FILE = "checkpoint.prev.pt"
FIGURE_FILE = "metrics.png"
EVALUATION_FIGURE_FILE = "evaluation.png"
CONFUSION_FIGURE_FILE = "confusion.png"
#: the TensorBoard log folder of a run trained with --tensorboard
TENSORBOARD_DIR = "tensorboard"
RUN_FILES = (CONFIG_FILE, METRICS_FILE, GEOMETRY_FILE, SUMMARY_FILE, CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE,
             FIGURE_FILE, EVALUATION_FIGURE_FILE, CONFUSION_FIGURE_FILE)
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


def _run_error(path, problem: str, name: str = "run_dir") -> LPMInputError:
    return LPMInputError(name, str(path), f"a run folder written by `lpm train-deep` ({problem})")


def read_metrics(path) -> list[dict]:
    """Rows of metrics.jsonl (empty list when the file does not exist yet)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    rerun = (f"run `lpm train-deep --resume --out {path.parent}` to write it again from the history kept in "
             f"{CHECKPOINT_FILE}")
    try:
        lines = path.read_text().splitlines()
    except (ValueError, OSError) as exc:
        raise _run_error(path.parent, f"{METRICS_FILE} cannot be read ({exc}); {rerun}") from None
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not isinstance(row, dict) or not isinstance(row.get("epoch"), int):
                raise _run_error(path.parent, f"line {number} of {METRICS_FILE} is not a JSON row of an epoch; "
                                              f"{rerun}")
            rows.append(row)
    return rows


def load_run(path) -> DeepRun:
    """Read and check a finished run folder; errors name the missing or bad file and how to recover."""
    path = Path(path)
    if not path.is_dir():
        raise _run_error(path, "no such folder")
    for name in (CONFIG_FILE, METRICS_FILE, GEOMETRY_FILE, SUMMARY_FILE):
        if not (path / name).is_file():
            raise _run_error(path, f"missing {name}")
    rerun = f"run `lpm train-deep --resume --out {path}` to write it again from {CHECKPOINT_FILE}"
    config = _read_json(path, CONFIG_FILE, f"delete it and {rerun}")
    summary = _read_json(path, SUMMARY_FILE, rerun)
    if config.get("format_version") != FORMAT_VERSION:
        raise _run_error(path, f"{CONFIG_FILE} has format_version {config.get('format_version')!r}, "
                               f"this lpm reads {FORMAT_VERSION}")
    try:
        with np.load(path / GEOMETRY_FILE, allow_pickle=False) as npz:
            geometry = {key: npz[key] for key in npz.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
        raise _run_error(path, f"{GEOMETRY_FILE} is truncated or corrupt ({type(exc).__name__}: {exc}); "
                               f"{rerun}") from None
    missing = [k for k in GEOMETRY_KEYS if k not in geometry]
    if missing:
        raise _run_error(path, f"{GEOMETRY_FILE} lacks {', '.join(missing)}")
    _check_types(path, config, summary, geometry)
    if int(geometry["format_version"]) != FORMAT_VERSION:
        raise _run_error(path, f"{GEOMETRY_FILE} has format_version {int(geometry['format_version'])}, "
                               f"this lpm reads {FORMAT_VERSION}")
    metrics = read_metrics(path / METRICS_FILE)
    run_id = geometry.get("run_id")
    check_run_ids(path, {SUMMARY_FILE: summary.get("run_id"), GEOMETRY_FILE: None if run_id is None else str(run_id),
                         CONFIG_FILE: config.get("run_id")})
    epochs = {SUMMARY_FILE: summary.get("epochs"), GEOMETRY_FILE: int(geometry["epoch"]),
              METRICS_FILE: metrics[-1]["epoch"] if metrics else None}
    if len({e for e in epochs.values() if e is not None}) > 1:
        detail = ", ".join(f"{name} {epoch}" for name, epoch in epochs.items())
        raise _run_error(path, f"its files disagree on the epochs run ({detail}): they come from different runs "
                               f"or an interrupted resume; run `lpm train-deep --resume --out {path}` to write them "
                               "again, or delete the folder")
    return DeepRun(path, config, metrics, geometry, summary)


def check_run_ids(path, ids: dict, read: tuple[str, ...] = (), name: str = "run_dir") -> None:
    """Refuse a run folder whose files come from different runs: every file that carries a
    ``run_id`` (``ids``, plus the JSON files named in ``read``) must carry the same one. Files of
    runs written before run ids existed carry none and are not compared."""
    path = Path(path)
    ids = dict(ids)
    for file in read:
        with contextlib.suppress(OSError, ValueError, AttributeError, RecursionError):
            value = json.loads((path / file).read_text())
            ids[file] = value.get("run_id") if isinstance(value, dict) else None
    known = {name: str(v) for name, v in ids.items() if v is not None}
    if len(set(known.values())) > 1:
        groups: dict[str, list[str]] = {}
        for name, value in known.items():
            groups.setdefault(value, []).append(name)
        detail = " but ".join(f"{' and '.join(names)} {'is' if len(names) == 1 else 'are'} from run {value[:8]}"
                              for value, names in groups.items())
        raise _run_error(path, f"its files disagree: {detail}, as when two runs wrote into one folder; delete "
                               "the folder and start again", name)


#: what each field read by ``lpm compare`` must be
_JSON_TABLES = ((CONFIG_FILE, ("config", "data", "model", "provenance")), )
_ARRAY_KINDS = {"class_means": "f", "classifier": "f", "class_counts": "f", "train_counts": "if",
                "within_class_cov": "f", "feature_dim": "i", "num_classes": "i", "epoch": "i",
                "train_per_class_accuracy": "f", "test_per_class_accuracy": "f", "format_version": "i",
                "head": "U", "loss": "U", "dr_form": "U", "dataset": "U", "center": "U"}


def _check_types(path: Path, config: dict, summary: dict, geometry: dict) -> None:
    """Refuse files with the right names but the wrong types inside, naming the file and the key."""
    for name, keys in _JSON_TABLES:
        for key in keys:
            if key in config and not isinstance(config[key], dict):
                raise _run_error(path, f"\"{key}\" in {name} is not a JSON object")
    epochs = summary.get("epochs")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)):
        raise _run_error(path, f"\"epochs\" in {SUMMARY_FILE} is not an integer")
    for key, kinds in _ARRAY_KINDS.items():
        arr = geometry[key]
        if arr.dtype.kind not in kinds and not (arr.dtype.kind in "iu" and "f" in kinds):
            raise _run_error(path, f"'{key}' in {GEOMETRY_FILE} holds {arr.dtype} values, not "
                                   + {"f": "numbers", "i": "integers", "U": "text", "if": "numbers"}[kinds])
        if kinds in ("i", "U") and arr.ndim != 0:
            raise _run_error(path, f"'{key}' in {GEOMETRY_FILE} is an array of shape {arr.shape}, not one value")


def _read_json(path: Path, name: str, rerun: str) -> dict:
    try:
        value = json.loads((path / name).read_text())
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _run_error(path, f"{name} is not valid JSON ({exc}); {rerun}") from None
    except RecursionError:
        raise _run_error(path, f"{name} is nested too deeply to be a run file; {rerun}") from None
    if not isinstance(value, dict):
        raise _run_error(path, f"{name} is not a JSON object; {rerun}")
    return value


def remove_stale_temporaries(run_dir) -> list[Path]:
    """Delete the ``.NAME.*.tmp`` files that an interrupted atomic write of a run file left behind."""
    removed = []
    for name in RUN_FILES:
        for tmp in Path(run_dir).glob(f".{name}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed
