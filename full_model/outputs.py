"""Writers of the run folder files (format: :mod:`full_model.run_format`)."""
from __future__ import annotations

import io
import json
import platform
from pathlib import Path

import numpy as np
import torch

from lpm.core.io import json_default, write_bytes_atomic, write_json_atomic, write_text_atomic
from lpm.core.provenance import provenance as core_provenance

from . import run_format as rf


def provenance(device: torch.device, world_size: int) -> dict:
    """:func:`lpm.core.provenance.provenance` (lpm version, git commit, software,
    hardware), plus the device, torch threads and number of processes of the run."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {**core_provenance(), "device": f"{device.type}: {name}", "torch_threads": torch.get_num_threads(),
            "world_size": world_size}


def write_config(run_dir: Path, config: dict, data_info: dict, model_info: dict, prov: dict,
                 resumes: list[dict] | None = None, run_id: str | None = None) -> None:
    write_json_atomic(run_dir / rf.CONFIG_FILE, {"format_version": rf.FORMAT_VERSION, "run_id": run_id,
                                                 "config": config,
                                                 "data": data_info, "model": model_info, "provenance": prov,
                                                 "resumes": resumes or []})


def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    text = "".join(json.dumps(row, default=json_default) + "\n" for row in rows)
    write_text_atomic(run_dir / rf.METRICS_FILE, text)


def write_geometry(run_dir: Path, snap, *, epoch: int, train_counts, config, run_id: str | None = None) -> None:
    K, d = snap.classifier.shape
    nan_list = lambda v: np.array([np.nan if a is None else a for a in v], dtype=np.float64)  # noqa: E731
    arrays = {
        "format_version": np.int64(rf.FORMAT_VERSION), "class_means": snap.class_means,
        "classifier": snap.classifier, "class_counts": np.asarray(snap.class_counts, dtype=np.float64),
        "train_counts": np.asarray(train_counts, dtype=np.int64), "within_class_cov": snap.within_cov,
        "feature_dim": np.int64(d), "num_classes": np.int64(K), "epoch": np.int64(epoch),
        "head": np.str_(config.head), "loss": np.str_(config.loss), "dr_form": np.str_(config.dr_form),
        "dataset": np.str_(config.dataset), "center": np.str_(config.center),
        "train_per_class_accuracy": nan_list(snap.train_per_class_accuracy),
        "test_per_class_accuracy": nan_list(snap.test_per_class_accuracy),
    }
    if snap.class_variances is not None:
        arrays["class_variances"] = np.asarray(snap.class_variances, dtype=np.float64)
    if snap.test_confusion is not None:
        arrays["test_confusion"] = np.asarray(snap.test_confusion, dtype=np.float64)
    if snap.test_bins is not None:
        for key, value in snap.test_bins.items():
            arrays[f"test_bin_{key}"] = np.asarray(value, dtype=np.float64)
    if snap.shot_split is not None:
        arrays["shot_split"] = np.str_(snap.shot_split)
    if run_id is not None:
        arrays["run_id"] = np.str_(run_id)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(run_dir / rf.GEOMETRY_FILE, buffer.getvalue())


def summarize(rows: list[dict], wall_time_s: float) -> dict:
    """Best (test-selected, as [Y22] reports) and last-epoch accuracies."""
    tracked = [r for r in rows if r.get("test_accuracy") is not None]
    best = max(tracked, key=lambda r: r["test_accuracy"]) if tracked else None
    last = tracked[-1] if tracked else {}
    out = {"epochs": rows[-1]["epoch"] if rows else 0,
           "best_test_accuracy": best["test_accuracy"] if best else None,
           "best_epoch": best["epoch"] if best else None,
           "last_epoch": last.get("epoch"),
           "last_test_accuracy": last.get("test_accuracy"),
           "last_train_accuracy": last.get("train_accuracy"),
           "model_selection_note": "best_test_accuracy is selected on the test set, as [Y22] reports; "
                                   "last_test_accuracy involves no selection",
           "wall_time_s": wall_time_s}
    for key, value in last.items():
        if key.startswith("test_") and key.endswith("_accuracy") and key != "test_accuracy":
            out[f"last_{key}"] = value
    for key in SUMMARY_EXTRAS:
        if key in last:
            out[f"last_{key}"] = last[key]
    return out


#: last-epoch values that summary.json carries beside the accuracies (which split and which NC1 they are)
SUMMARY_EXTRAS = ("shot_split", "test_ece", "test_mce", "nc1", "nc1_rank", "nc1_pinv", "nc1_pinv_rank",
                  "nc1_trace_quotient", "cdnv", "test_nc4_agreement")


def write_summary(run_dir: Path, summary: dict) -> None:
    write_json_atomic(run_dir / rf.SUMMARY_FILE, summary)


def write_figure(run_dir: Path, rows: list[dict], title: str | None = None) -> None:
    """metrics.png at 200 dpi (2800×2200 px)."""
    from .plots import plot_metrics

    fig = plot_metrics(rows, title=title)  # a pyplot-free Figure: no GUI backend is touched
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=FIGURE_DPI)
    write_bytes_atomic(run_dir / rf.FIGURE_FILE, buffer.getvalue())


FIGURE_DPI = 200


def final_figures(rows: list[dict], snap, train_counts, title: str | None = None) -> dict:
    """The figures of a finished run, by name: ``metrics`` (over epochs), and from the last tracking
    step's test split ``evaluation`` (per-class accuracy against count, reliability diagram) and
    ``confusion`` (when the confusion matrix was kept). Pyplot-free Figures."""
    from lpm.core.geometry import shot_groups

    from .plots import plot_confusion, plot_evaluation, plot_metrics

    figures = {"metrics": plot_metrics(rows, title=title)}
    if snap is not None and snap.test_bins is not None:
        figures["evaluation"] = plot_evaluation(train_counts, snap.test_per_class_accuracy, snap.test_bins,
                                                shot_groups(train_counts), title)
    if snap is not None and snap.test_confusion is not None:
        figures["confusion"] = plot_confusion(snap.test_confusion, train_counts)
    return figures


#: the file of each figure of :func:`final_figures`
FIGURE_FILES = {"metrics": rf.FIGURE_FILE, "evaluation": rf.EVALUATION_FIGURE_FILE,
                "confusion": rf.CONFUSION_FIGURE_FILE}


def write_figures(run_dir: Path, figures: dict) -> list[Path]:
    """Write each figure of :func:`final_figures` to its PNG file (:data:`FIGURE_FILES`) at 200 dpi."""
    return [_write_png(Path(run_dir) / FIGURE_FILES[name], fig) for name, fig in figures.items()]


def _write_png(path: Path, fig) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=FIGURE_DPI)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def figure_title(config) -> str:
    """One line naming the run: data set, ratio, head, loss, epochs and seed."""
    ratio = "" if config.ratio is None else f", R = {config.ratio:g}"
    loss = config.loss if config.loss != "dr" else f"dr ({config.dr_form})"
    return (f"{config.dataset}{ratio}: {config.backbone}, {config.head} head, {loss} loss, "
            f"{config.epochs} epochs, seed {config.seed}")
