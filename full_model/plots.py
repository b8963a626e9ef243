"""The figure of a run's metrics over epochs, ``metrics.png`` (drawing only; nothing is computed here).

Six panels: training loss, accuracy (overall and per class group), NC1 (with
the rank cut-off and with the full pseudo-inverse, theory.md §8.1), the
distances NC2/NC3 to a simplex ETF, [Y22]'s mean cosines, and the minority
collapse indices and norm ratios (theory.md §8). Every series has a plain
name, every panel a y-label. Series that coincide (a fixed ETF head keeps
several of them constant and equal) are drawn on top of each other with
different widths and dash patterns, and the later one's legend entry says
which one it equals, so no curve hides another without a word.
"""
from __future__ import annotations

import math

#: (title, y-label, log scale, [(metrics key, legend name), ...])
PANELS = (
    ("Training loss", "mean loss per sample", False, [("train_loss", "training objective (mixup incl.)")]),
    ("Accuracy", "accuracy", False, [
        ("train_accuracy", "train, all classes"), ("test_accuracy", "test, all classes"),
        ("test_head_accuracy", "test, head classes"), ("test_medium_accuracy", "test, medium classes"),
        ("test_tail_accuracy", "test, tail classes"), ("test_many_accuracy", "test, many-shot classes"),
        ("test_few_accuracy", "test, few-shot classes")]),
    ("NC1: within-class variability", r"tr($\Sigma_W \Sigma_B^{+}$) / K  (log scale)", True, [
        ("nc1", "NC1, Σ_B cut at 1e-6 of its largest eigenvalue"), ("nc1_pinv", "NC1, full pseudo-inverse")]),
    ("NC2, NC3: distance to a simplex ETF", "distance (0 = ETF)", False, [
        ("nc2", "NC2 of class means"), ("nc2_classifier", "NC2 of W"), ("nc3", "NC3, class means vs W")]),
    ("Mean cosines [Y22]", "cosine", False, [
        ("y22_cos_means_mean", "between class means"), ("y22_cos_classifiers_mean", "between rows of W"),
        ("y22_self_cos_mean", "class mean k vs row k of W")]),
    ("Minority collapse (norm-aware)", "index or ratio (1 = ETF)", False, [
        ("collapse_index", "collapse index of W"), ("feature_collapse_index", "collapse index of class means"),
        ("classifier_norm_ratio", "norm ratio minority/majority of W"),
        ("feature_norm_ratio", "norm ratio minority/majority of means")]),
)
WIDTHS = (3.4, 2.4, 1.6, 1.1, 0.9, 0.8, 0.7)
DASHES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 2)), (0, (8, 2)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
COLORS = ("#222222", "#1f77b4", "#2ca02c", "#ff7f0e", "#d62728", "#9467bd", "#8c564b")


def plot_metrics(rows: list[dict], fig=None, title: str | None = None):
    """A grid of panels of ``rows`` (metrics.jsonl) against epoch; returns the Figure (14×11 in)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

    fig = fig if fig is not None else Figure(figsize=(14, 11))
    cols = 3
    K = _num_classes(rows)
    for i, (panel, ylabel, log, series) in enumerate(PANELS):
        ax = fig.add_subplot(math.ceil(len(PANELS) / cols), cols, i + 1)
        present = [(key, name, _points(rows, key)) for key, name in series if _points(rows, key)]
        tol = 1e-3 * _span([v for _, _, pts in present for _, v in pts])  # closer than this looks like one line
        drawn: list[tuple[str, list]] = []
        for j, (key, name, points) in enumerate(present):
            same = next((other for other, pts in drawn if _coincide(pts, points, tol)), None)
            label = name if same is None else f"{name} (= {same})"
            every = max(1, len(points) // 8)
            ax.plot(*zip(*points), color=COLORS[j % len(COLORS)], lw=WIDTHS[min(j, len(WIDTHS) - 1)],
                    ls=DASHES[j % len(DASHES)], marker=MARKERS[j % len(MARKERS)], ms=4,
                    markevery=(j % every, every), label=label, zorder=2 + j)
            drawn.append((name, points))
        if key_in(series, "y22_cos_means_mean") and K and ax.has_data():
            ax.axhline(-1 / (K - 1), color="0.5", lw=0.8, ls=":", zorder=1, label=f"ETF: −1/(K−1), K = {K}")
        if log and ax.has_data():
            ax.set_yscale("log")
            values = [v for _, _, pts in present for _, v in pts if v > 0]
            plain = FuncFormatter(lambda v, _: f"{v:.3g}")  # 5.05 rather than 5.05×10⁰
            ax.yaxis.set_major_formatter(plain)  # minor ticks are labelled only within one decade
            ax.yaxis.set_minor_formatter(plain if values and max(values) < 10 * min(values) else NullFormatter())
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"({chr(97 + i)}) {panel}", fontsize=11, loc="left")
        ax.set_xlabel("epoch", fontsize=10)
        ax.set_ylabel(ylabel, fontsize=10)
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.25)
        if not ax.has_data():
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes, color="0.5")
        elif len(ax.get_lines()) > 1:  # below the panel, where it hides no data
            labels = [line.get_label() for line in ax.get_lines()]
            ax.legend(fontsize=8, ncol=2 if max(map(len, labels)) <= 26 else 1, loc="upper center",
                      bbox_to_anchor=(0.5, -0.14), frameon=False)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.subplots_adjust(left=0.06, right=0.985, top=0.94 if title else 0.965, bottom=0.13, hspace=0.72, wspace=0.26)
    return fig


def key_in(series, key: str) -> bool:
    return any(k == key for k, _ in series)


def _points(rows: list[dict], key: str) -> list[tuple[int, float]]:
    return [(r["epoch"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]


def _span(values: list[float]) -> float:
    """The range of ``values`` (their largest magnitude when they are all equal; tiny when empty)."""
    if not values:
        return 1e-12
    span = max(values) - min(values)
    return span if span > 0 else max(1e-12, max(abs(v) for v in values))


def _coincide(a: list, b: list, tol: float) -> bool:
    return len(a) == len(b) and all(x == u and abs(y - v) <= tol for (x, y), (u, v) in zip(a, b))


def _num_classes(rows: list[dict]) -> int | None:
    for r in reversed(rows):
        if isinstance(r.get("train_per_class_accuracy"), list):
            return len(r["train_per_class_accuracy"])
    return None


# ---------------------------------------------------------------------- evaluation figures
# Drawn from the test split of the last tracking step (final_geometry.npz); the numbers come from
# lpm.core.geometry.classification. Sizes and fonts follow lpm/figures/style.py (7 in wide, 9 pt).
EVAL_RC = {"font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 7.5,
           "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.grid": True, "grid.alpha": 0.3,
           "grid.linewidth": 0.5, "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False}
SHOT_COLORS = ("#1f4e9c", "#33a02c", "#d95f02")       # many, medium, few


def plot_evaluation(train_counts, test_accuracy, bins, shots=None, title: str | None = None):
    """``evaluation.png``: (a) per-class test accuracy against training count (log scale), coloured
    by many/medium/few-shot group, with the split named; (b) the reliability diagram with ECE and MCE.
    ``bins``: {"count", "confidence", "correct"} tallies (15,); ``shots``: (ids, names, split) or None."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(EVAL_RC):
        fig = Figure(figsize=(7.0, 3.0), layout="constrained")
        ax_acc, ax_rel = fig.subplots(1, 2)
        per_class_accuracy_panel(ax_acc, train_counts, test_accuracy, shots)
        reliability_panel(ax_rel, bins)
        if title:
            fig.suptitle(title, fontsize=9)
    return fig


def per_class_accuracy_panel(ax, train_counts, test_accuracy, shots=None) -> None:
    import numpy as np
    from matplotlib.ticker import FuncFormatter

    counts = np.asarray(train_counts, dtype=np.float64)
    acc = np.array([np.nan if a is None else a for a in test_accuracy], dtype=np.float64)
    if shots is None:
        ax.scatter(counts, acc, s=14, color=SHOT_COLORS[0], zorder=3)
    else:
        ids, names, split = shots
        for g, name in enumerate(names):
            mask = np.asarray(ids) == g
            if mask.any():
                ax.scatter(counts[mask], acc[mask], s=14, color=SHOT_COLORS[g % 3], label=f"{name}-shot", zorder=3)
        ax.legend(title=f"split: {_split_short(split)}", title_fontsize=7, loc="lower right")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))      # 20, not 2×10¹
    ax.xaxis.set_minor_formatter(FuncFormatter(_minor_count_label))
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("training samples of the class (log scale)")
    ax.set_ylabel("test accuracy of the class")
    ax.set_title("(a) Per-class accuracy against class count", loc="left")


def reliability_panel(ax, bins) -> None:
    from lpm.core.geometry import calibration_errors, reliability

    r = reliability(bins["count"], bins["confidence"], bins["correct"])
    ece, mce = calibration_errors(bins["count"], bins["confidence"], bins["correct"])
    edges = r["edges"]
    width = edges[1] - edges[0]
    seen = r["count"] > 0
    ax.bar(edges[:-1][seen], r["accuracy"][seen], width=width, align="edge", color="#1f4e9c", alpha=0.8,
           edgecolor="white", linewidth=0.5, label="accuracy in the bin")
    ax.bar(edges[:-1][seen], (r["confidence"] - r["accuracy"])[seen], bottom=r["accuracy"][seen], width=width,
           align="edge", facecolor="none", edgecolor="#d95f02", linewidth=0.8, hatch="///",
           label="gap from accuracy to mean confidence")
    ax.plot([0, 1], [0, 1], color="0.45", linestyle=":", linewidth=1.0, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"confidence (max softmax probability), {len(r['count'])} bins")
    ax.set_ylabel("accuracy")
    mce_text = "n/a" if mce is None else f"{mce:.3f}"
    ax.set_title(f"(b) Reliability: ECE {ece:.3f}, MCE {mce_text}", loc="left")
    ax.legend(loc="upper left")


def plot_confusion(confusion, train_counts, title: str | None = None):
    """``confusion.png``: the row-normalised test confusion matrix (rows true class, columns
    predicted), classes sorted by decreasing training count; class indices label the axes up to 30
    classes."""
    import matplotlib
    from matplotlib.figure import Figure

    from lpm.core.geometry import normalised_confusion

    C, order = normalised_confusion(confusion, train_counts)
    K = len(order)
    with matplotlib.rc_context({**EVAL_RC, "axes.grid": False}):
        fig = Figure(figsize=(4.6, 4.0), layout="constrained")
        ax = fig.subplots()
        image = ax.imshow(C, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
        fig.colorbar(image, ax=ax, shrink=0.85, label="fraction of the true class's test samples")
        if K <= 30:
            ax.set_xticks(range(K), [str(k) for k in order], rotation=90 if K > 12 else 0)
            ax.set_yticks(range(K), [str(k) for k in order])
        ax.set_xlabel("predicted class (sorted by training count, largest first)")
        ax.set_ylabel("true class (sorted by training count)")
        ax.set_title(title or "Normalised confusion matrix (test)", loc="left")
    return fig


def _minor_count_label(value: float, _) -> str:
    """Label the minor ticks 2·10ⁿ and 5·10ⁿ of a log axis, plainly."""
    if value <= 0:
        return ""
    lead = value / 10 ** math.floor(math.log10(value) + 1e-9)
    return f"{value:g}" if round(lead) in (2, 5) and abs(lead - round(lead)) < 1e-6 else ""


def _split_short(split: str) -> str:
    return split.split(" (")[0]
