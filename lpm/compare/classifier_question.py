"""Runner of ``sims/classifier-question.toml``: "Do we need a learnable classifier?".

Every arm (a ``[[grids]]`` table: a head, a loss and a remedy) is trained on
every data set, ratio, recipe and seed of ``[options.design]``::

    [options.design]
    datasets = ["mnist1d-lt", "digits-lt"]
    ratios = [10, 100]
    seeds = [0, 1, 2, 3, 4]
    recipes = ["paper", "terminal"]     # tables of [options.recipes]
    baseline = "learnable-ce"           # the arm every other arm is paired with
    [options.train]                     # TrainConfig settings of every run
    [options.datasets.NAME]             # ... of the runs on one data set
    [options.recipes.NAME]              # ... of the runs of one recipe
    [options.compare]                   # keyword arguments of lpm.compare.compare_run
    [options.smoke]                     # --smoke: design keys replaced, TrainConfig keys added
    [[grids]]
    name = "learnable-ce-crt"           # an arm; keys other than name/stage/parent are TrainConfig settings
    stage = "crt"                       # a second stage ...
    parent = "learnable-ce"             # ... on the finished run of this arm (same data set, ratio, recipe, seed)

A run's settings are, later winning: ``[options.train]``, the data set's
table, the recipe's table, the arm's keys, the smoke table (``--smoke``),
then data set, ratio and seed. A stage arm's settings are its parent run's
data, network, optimiser and seed settings, the stage's defaults
(:data:`full_model.config.CRT_DEFAULTS` for ``crt``) and the arm's keys, so
its folder is exactly what ``lpm train-deep --stage crt --parent RUN`` makes.
The same seed gives every arm the same data subset, data order and backbone
initialisation.

Runs live in ``RUNS/ARM_DATASET_RECIPE_R<ratio>_seed<seed>`` (``RUNS`` =
``OUT/runs`` or the declared shared ``runs_dir``) and are ``train`` cells of
the sweep engine, resumable like every grid: finished runs are reused. The
joint runs go first, the stages second (they need their parents).

Then each run is set beside the LPM optimum for its own counts, loss and
head by :func:`lpm.compare.compare_run` (the minority: the run's few-shot
classes), and the tables are written to ``OUT``:

``runs.csv``         one row per run: the evaluation (top-1, balanced, many /
                     medium / few, ECE), whether every class is fitted on the
                     training set, the measured and LPM geometry, seconds
``summary.csv``      one row per (data set, recipe, ratio, arm): each metric's
                     mean with its 95 % t interval over seeds, and its paired
                     difference from the baseline arm (interval, paired t-test,
                     Holm-adjusted p over the family of every arm and setting
                     for that metric)
``correlation.csv``  per (data set, recipe, ratio): Spearman's ρ across arms
                     between the LPM's minority classifier cosine (mean over
                     seeds) and the measured few-shot accuracy, its p-value
                     and the p-value Holm-adjusted over the settings
``classifier-question.json``  what was done with each run and how long it took
``compare/RUN.json`` each run's row, reused on a rerun while the run and the
                     comparison options are unchanged
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import LPMInputError, check_number
from ..core.io import write_json_atomic, write_text_atomic
from ..sweep import SweepFailed, check_cells, load_record, located, run_cells, train_cells

__all__ = ["METRICS", "GEOMETRY", "design", "run_settings", "run_table", "summary_table", "correlation_table",
           "run_classifier_question"]

#: the evaluation columns of runs.csv (from each run's summary.json) and their short names
METRICS = {"top1": "last_test_accuracy", "balanced": "last_test_balanced_accuracy",
           "many": "last_test_many_shot_accuracy", "medium": "last_test_medium_shot_accuracy",
           "few": "last_test_few_shot_accuracy", "ece": "last_test_ece"}
#: geometry columns of runs.csv: measured (run_*) beside the run's own LPM optimum (lpm_*)
GEOMETRY = ("classifier_minority_cos", "collapse_index", "classifier_norm_ratio")
SETTING = ["dataset", "recipe", "ratio"]
_DESIGN_KEYS = ("datasets", "ratios", "seeds", "recipes", "baseline")
_ARM_ONLY = ("name", "stage", "parent")


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def design(sim, smoke: bool = False) -> dict[str, Any]:
    """The design axes (``[options.design]``, with ``[options.smoke]``'s design keys for ``smoke``)."""
    owner = f"simulation file {sim.path.name}"
    found = dict(sim.options.get("design", {}))
    if smoke:
        found.update({k: v for k, v in sim.options.get("smoke", {}).items() if k in _DESIGN_KEYS})
    missing = [k for k in _DESIGN_KEYS if k not in found]
    if missing:
        raise LPMInputError("options.design", sorted(found), "a table with " + ", ".join(_DESIGN_KEYS), owner=owner)
    out = {k: _as_list(found[k]) for k in ("datasets", "ratios", "seeds", "recipes")}
    recipes = sim.options.get("recipes", {})
    for recipe in out["recipes"]:
        if recipe not in recipes:
            raise LPMInputError("recipes", recipe, "a table of [options.recipes]: one of "
                                + ", ".join(repr(r) for r in sorted(recipes)), owner=owner)
    with located(owner):
        out["ratios"] = [check_number("ratio", r, low=1) for r in out["ratios"]]
        out["seeds"] = [check_number("seed", s, low=0, integer=True) for s in out["seeds"]]
    arms = [g.get("name") for g in sim.grids]
    if found["baseline"] not in arms:
        raise LPMInputError("baseline", found["baseline"], "the name of an arm ([[grids]]): one of "
                            + ", ".join(repr(a) for a in arms), owner=owner)
    out["baseline"] = found["baseline"]
    return out


def _folder(arm: str, dataset: str, recipe: str, ratio: float, seed: int) -> str:
    return f"{arm}_{dataset}_{recipe}_R{ratio:g}_seed{seed}"


def run_settings(sim, out_dir: Path, smoke: bool = False, runs_dir: Path | None = None) -> list[dict[str, Any]]:
    """One dict per run: ``arm``, ``dataset``, ``recipe``, ``ratio``, ``seed``, ``stage``
    (``joint`` or the stage) and ``settings`` (its TrainConfig settings, ``out`` set)."""
    from full_model.config import CARRIED, CRT_DEFAULTS, INHERITED

    owner = f"simulation file {sim.path.name}"
    axes = design(sim, smoke)
    root = Path(runs_dir) if runs_dir is not None else Path(out_dir) / "runs"
    shared = dict(sim.options.get("train", {}))
    per_dataset, recipes = sim.options.get("datasets", {}), sim.options.get("recipes", {})
    smoke_train = {k: v for k, v in sim.options.get("smoke", {}).items() if k not in _DESIGN_KEYS} if smoke else {}
    arms = {spec.get("name"): spec for spec in sim.grid_specs(smoke)}
    runs: list[dict[str, Any]] = []
    for name, spec in arms.items():
        if not isinstance(name, str):
            raise LPMInputError("grid", sorted(spec), "a table with a 'name' (and TrainConfig settings)", owner=owner)
        stage = spec.get("stage", "joint")
        if stage != "joint" and spec.get("parent") not in arms:
            raise LPMInputError("parent", spec.get("parent"), "the name of another arm (the stage's first stage)",
                                owner=f"{owner}, grid '{name}'")
        if stage != "joint" and arms[spec["parent"]].get("stage", "joint") != "joint":
            raise LPMInputError("parent", spec["parent"], "an arm trained from scratch (stage 'joint')",
                                owner=f"{owner}, grid '{name}'")
    for dataset in axes["datasets"]:
        for recipe in axes["recipes"]:
            for ratio in axes["ratios"]:
                for seed in axes["seeds"]:
                    joint = {}
                    for name, spec in arms.items():
                        if spec.get("stage", "joint") != "joint":
                            continue
                        settings = {**shared, **per_dataset.get(dataset, {}), **recipes[recipe],
                                    **{k: v for k, v in spec.items() if k not in _ARM_ONLY}, **smoke_train,
                                    "dataset": dataset, "ratio": ratio, "seed": seed,
                                    "out": str(root / _folder(name, dataset, recipe, ratio, seed))}
                        joint[name] = settings
                        runs.append({"arm": name, "dataset": dataset, "recipe": recipe, "ratio": ratio, "seed": seed,
                                     "stage": "joint", "settings": settings})
                    for name, spec in arms.items():
                        stage = spec.get("stage", "joint")
                        if stage == "joint":
                            continue
                        parent = joint[spec["parent"]]
                        settings = {**{k: parent[k] for k in INHERITED + CARRIED if k in parent},
                                    **(CRT_DEFAULTS if stage == "crt" else {}),
                                    **{k: v for k, v in spec.items() if k not in _ARM_ONLY},
                                    "stage": stage, "parent": str(Path(parent["out"]).resolve()),
                                    "out": str(root / _folder(name, dataset, recipe, ratio, seed))}
                        runs.append({"arm": name, "dataset": dataset, "recipe": recipe, "ratio": ratio, "seed": seed,
                                     "stage": stage, "settings": settings})
    return runs


# ---------------------------------------------------------------- tables
def _few_shot_minority(counts: np.ndarray, few: int) -> float:
    """A count threshold whose minority (classes with fewer samples) is the ``few`` smallest classes."""
    ordered = np.sort(np.asarray(counts, dtype=np.float64))
    return float(ordered[few]) if few < len(ordered) else float(ordered[-1]) + 1.0


def _few_classes(K: int) -> int:
    """How many classes the count-thirds split calls few (docs/evaluation.md):
    K − ⌈K/3⌉ − ⌈(K − ⌈K/3⌉)/2⌉."""
    many = -(-K // 3)
    return K - many - (-(-(K - many) // 2))


def run_row(run: dict[str, Any], compare_options: dict[str, Any]) -> dict[str, Any]:
    """One row of runs.csv: the run's evaluation and its geometry beside its own LPM optimum."""
    from .core import compare_run
    from .runs import load_run_geometry

    geometry = load_run_geometry(run["settings"]["out"])
    summary = geometry.summary
    options = dict(compare_options)
    if "minority_below" not in options:  # the run's few-shot classes (its split's few group)
        options["minority_below"] = _few_shot_minority(geometry.counts, _few_classes(geometry.K))
    comparison = compare_run(geometry, **options)
    full = comparison.row()
    accuracy = geometry.train_class_accuracy
    row = {k: run[k] for k in ("arm", "dataset", "recipe", "ratio", "seed", "stage")}
    row.update({short: summary.get(key) for short, key in METRICS.items()})
    row.update({"shot_split": summary.get("last_shot_split"), "train_accuracy": summary.get("last_train_accuracy"),
                "min_train_class_accuracy": float(np.nanmin(accuracy)) if accuracy is not None else None,
                "all_classes_fitted": bool(accuracy is not None and np.all(accuracy >= 0.5)),
                "head": geometry.head, "loss": geometry.loss, "epochs": geometry.epoch,
                "minority_rule": full["minority_rule"], "unfitted_classes": full["unfitted_classes"],
                "lpm_status": full["lpm_status"], "lpm_gap": full["lpm_gap"]})
    for key in GEOMETRY:
        row[f"run_{key}"], row[f"lpm_{key}"] = full[f"run_{key}"], full[f"lpm_{key}"]
    row["dist_lpm_joint"], row["dist_etf_joint"] = full["dist_lpm_joint"], full["dist_etf_joint"]
    row["run"] = Path(run["settings"]["out"]).name
    return row


def run_table(runs: list[dict[str, Any]], compare_options: dict[str, Any],
              cache_dir: Path | None = None) -> pd.DataFrame:
    """runs.csv: one row per run (:func:`run_row`). With ``cache_dir``, each row is kept in
    ``cache_dir/RUN.json`` beside the run's id and the options, and reused while both are unchanged
    (the LPM solve takes about a second per run; a rerun over finished runs solves nothing)."""
    import json

    rows = []
    for run in runs:
        folder = Path(run["settings"]["out"])
        try:
            run_id = json.loads((folder / "summary.json").read_text()).get("run_id")
        except (OSError, ValueError):
            run_id = None
        key = json.loads(json.dumps({"run_id": run_id, "options": compare_options,
                                     **{k: run[k] for k in ("arm", "dataset", "recipe", "ratio", "seed", "stage")}}))
        cached = None if cache_dir is None else Path(cache_dir) / f"{folder.name}.json"
        if cached is not None and run_id is not None and cached.is_file():
            try:
                saved = json.loads(cached.read_text())
            except ValueError:
                saved = {}
            if saved.get("key") == key:
                rows.append(saved["row"])
                continue
        row = run_row(run, compare_options)
        if cached is not None:
            write_json_atomic(cached, {"key": key, "row": row})
        rows.append(row)
    return pd.DataFrame(rows)


def summary_table(runs: pd.DataFrame, baseline: str, confidence: float = 0.95,
                  correction: str = "holm") -> pd.DataFrame:
    """summary.csv: per (setting, arm), each metric's mean and t interval over seeds, and the
    paired difference from ``baseline`` (interval, paired t-test p, p adjusted over every
    setting and arm of that metric by ``correction``)."""
    from .statistics import compare_arms, mean_interval

    columns = list(METRICS) + ["run_classifier_minority_cos", "lpm_classifier_minority_cos"]
    t = runs.copy()
    t[columns] = t[columns].apply(pd.to_numeric, errors="coerce")
    rows = []
    for key, group in t.groupby(SETTING + ["arm"], sort=False):
        row = dict(zip(SETTING + ["arm"], key))
        row["n"] = len(group)
        row["all_classes_fitted"] = bool(group["all_classes_fitted"].all())
        for col in columns:
            values = group[col].dropna()
            if len(values):
                interval = mean_interval(values.to_numpy(), confidence)
                row.update({col: interval.mean, f"{col}_low": interval.low, f"{col}_high": interval.high})
            else:
                row.update({col: np.nan, f"{col}_low": np.nan, f"{col}_high": np.nan})
        rows.append(row)
    out = pd.DataFrame(rows)
    for metric in METRICS:
        paired = compare_arms(t.dropna(subset=[metric]), metric, baseline, by=SETTING, correction=correction,
                              confidence=confidence)
        keep = {"difference": f"{metric}_diff", "difference_low": f"{metric}_diff_low",
                "difference_high": f"{metric}_diff_high", "p_value": f"{metric}_p",
                "p_adjusted": f"{metric}_p_adj"}
        if paired.empty:
            for col in keep.values():
                out[col] = np.nan
            continue
        paired = paired[SETTING + ["arm", *keep]].rename(columns=keep)
        out = out.merge(paired, on=SETTING + ["arm"], how="left")
    out["correction"] = correction
    return out


def correlation_table(summary: pd.DataFrame, predicted: str = "lpm_classifier_minority_cos",
                      measured: str = "few") -> pd.DataFrame:
    """Per setting, Spearman's ρ across arms between ``predicted`` and ``measured`` (arm means),
    and its p-value. ρ < 0: the arms the LPM predicts a more collapsed minority for (higher
    cosine) have lower few-shot accuracy. NaN where fewer than 3 arms or a constant column;
    ``p_adjusted``: Holm over the settings."""
    from .statistics import rank_correlation

    rows = []
    for key, group in summary.groupby(SETTING, sort=False):
        g = group[[predicted, measured]].apply(pd.to_numeric, errors="coerce").dropna()
        rho = p = np.nan
        if len(g) >= 3 and g[predicted].nunique() > 1 and g[measured].nunique() > 1:
            rho, p = rank_correlation(g[predicted].to_numpy(), g[measured].to_numpy())
        rows.append({**dict(zip(SETTING, key)), "predicted": predicted, "measured": measured, "arms": len(g),
                     "distinct_predictions": int(g[predicted].round(6).nunique()), "spearman_rho": rho,
                     "p_value": p})
    out = pd.DataFrame(rows)
    if len(out):
        from .statistics import adjust_p_values

        out["p_adjusted"] = adjust_p_values(out["p_value"].to_numpy(float), "holm")
    return out


# ---------------------------------------------------------------- runner
def run_classifier_question(sim, out_dir: Path, *, smoke: bool = False, progress: bool = True, executor=None,
                            runs_dir: Path | None = None) -> dict[str, pd.DataFrame]:
    """Train (or reuse) every run, compare each with its LPM optimum, and write runs.csv,
    summary.csv and correlation.csv; return those tables (``runs``, ``summary``, ``correlation``)."""
    out_dir = Path(out_dir)
    began = time.perf_counter()
    axes = design(sim, smoke)
    runs = run_settings(sim, out_dir, smoke, runs_dir)
    cells = train_cells([r["settings"] for r in runs], grid=sim.name)
    with located(f"simulation file {sim.path.name}"):
        check_cells(cells)
    # the stages need their parents' finished folders: the joint runs go first (with any stage already
    # recorded, so that the sweep folder never holds a cell the call does not name), then every run
    recorded = {c.cell_id for c in cells if load_record(out_dir, c) is not None}
    first = [c for run, c in zip(runs, cells) if run["stage"] == "joint" or c.cell_id in recorded]
    ran: set = set()
    for phase in ([first] if len(first) < len(cells) else []) + [cells]:
        report = run_cells(phase, out_dir, executor=executor, runs_dir=runs_dir, progress=progress,
                           config={"simulation": sim.name, "file": str(sim.path), "smoke": smoke})
        if report.failed:
            raise SweepFailed(f"simulation '{sim.name}': {report.failed} of {report.cells} deep runs failed; the "
                              f"first: {report.first_error} (records in {out_dir / 'cells'})")
        ran |= set(report.ran)
    done: list[dict[str, Any]] = []
    for cell in cells:
        row = load_record(out_dir, cell)["row"]
        now = cell.cell_id in ran and row["action"] != "reused"
        done.append({"run": row["run"], "action": row["action"] if now else "reused",
                     "seconds": row["seconds"] if now else 0.0, "trained_seconds": row["seconds"]})
    trained = time.perf_counter() - began
    table = run_table(runs, dict(sim.options.get("compare", {})), cache_dir=out_dir / "compare")
    summary = summary_table(table, axes["baseline"])
    correlation = correlation_table(summary)
    for name, frame in (("runs", table), ("summary", summary), ("correlation", correlation)):
        write_text_atomic(out_dir / f"{name}.csv", frame.to_csv(index=False))
    record = {"simulation": sim.name, "smoke": smoke, "design": axes, "runs": done,
              "training_seconds": trained, "total_seconds": time.perf_counter() - began,
              "unfitted_terminal_runs": table.loc[(table["recipe"] == "terminal") & ~table["all_classes_fitted"],
                                                  "run"].tolist() if "terminal" in axes["recipes"] else []}
    write_json_atomic(out_dir / "classifier-question.json", record)
    if progress:
        print(f"{len(table)} runs ({sum(d['action'] != 'reused' for d in done)} trained now) in "
              f"{record['total_seconds']:.0f} s; tables in {out_dir}")
    return {"runs": table, "summary": summary, "correlation": correlation}
