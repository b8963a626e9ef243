"""Figures of a run's metrics over epochs (drawing only; nothing is computed here)."""
from __future__ import annotations

import math

PANELS = (
    ("Training objective", ("train_loss",), False),
    ("Accuracy", ("train_accuracy", "test_accuracy", "test_head_accuracy", "test_medium_accuracy",
                  "test_tail_accuracy", "test_many_accuracy", "test_few_accuracy"), False),
    ("NC1 = tr(Σ_W Σ_B†)/K", ("nc1",), True),
    ("NC2 / NC3", ("nc2", "nc2_classifier", "nc3", "y22_gap"), False),
    ("Cosines [Y22]", ("y22_cos_means_mean", "y22_cos_classifiers_mean", "y22_self_cos_mean"), False),
    ("Collapse (norm-aware)", ("collapse_index", "feature_collapse_index", "classifier_norm_ratio",
                               "feature_norm_ratio"), False),
)


def plot_metrics(rows: list[dict], fig=None):
    """A grid of panels of ``rows`` (metrics.jsonl) against epoch; returns the Figure."""
    from matplotlib.figure import Figure

    fig = fig if fig is not None else Figure(figsize=(13, 7))
    cols = 3
    for i, (title, keys, log) in enumerate(PANELS):
        ax = fig.add_subplot(math.ceil(len(PANELS) / cols), cols, i + 1)
        for key in keys:
            points = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points), marker="." if len(points) < 30 else None, label=key)
        if log and ax.has_data():
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        if ax.has_data():
            ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.05, right=0.98, top=0.95, bottom=0.08, hspace=0.35, wspace=0.2)
    return fig
