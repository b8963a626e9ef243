"""lpm.compare on hand-made run folders whose geometry is known (theory.md §8, §10.7).

The folders are written here in the documented format (full_model.run_format,
format version 1) with the class means and classifier set to a certified LPM
optimum (rotated by a random orthogonal matrix), so the comparison must find
distance 0, and a growing distance as the geometry is perturbed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lpm import Problem
from lpm.compare import (collapse_table, compare_run, compare_runs, group_history, load_run_geometry, problem_for_run,
                         solve_certified, summary_lines)
from lpm.core.errors import LPMInputError
from lpm.core.geometry import cosine_matrix, gram_distance, measure

#: distance at which a run "equals" the LPM optimum. The hand-made run holds the convex
#: (Gram SDP) solver's optimum and `lpm compare` solves with the nuclear solver, so this
#: is also their agreement (measured: 6e-9)
ZERO_DISTANCE = 1e-6
COUNTS = (200.0, 120.0, 60.0, 25.0, 8.0, 3.0)


def write_run(folder: Path, means, W, counts, *, head="learnable", loss="ce", majority=3, ratio=None,
              profile="explicit", n_max=None, head_seed=0, normalize=True, history=None, version=1) -> Path:
    """A run folder in the format of full_model.run_format (config, metrics, geometry, summary)."""
    folder.mkdir(parents=True, exist_ok=True)
    K, d = np.shape(means)
    config = {"format_version": version,
              "config": {"dataset": "hand-made", "ratio": ratio, "head": head, "loss": loss, "head_seed": head_seed,
                         "normalize_features": normalize, "center": "class-means"},
              "data": {"name": "hand-made", "num_classes": K, "train_counts": list(counts),
                       "profile": {"profile": profile, "ratio": ratio, "n_max": n_max}, "majority": majority,
                       "group_scheme": "index", "groups": [0] * majority + [2] * (K - majority),
                       "group_names": ["head", "medium", "tail"]},
              "model": {"backbone": "none", "head": head, "feature_dim": d}}
    (folder / "config.json").write_text(json.dumps(config))
    rows = history if history is not None else [{"epoch": 1, **measure(means, W, majority=majority)}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "summary.json").write_text(json.dumps({"epochs": 1, "last_test_accuracy": None}))
    nan = np.full(K, np.nan)
    np.savez(folder / "final_geometry.npz", format_version=np.int64(version), class_means=np.asarray(means),
             classifier=np.asarray(W), class_counts=np.asarray(counts, float), train_counts=np.asarray(counts),
             within_class_cov=np.zeros((d, d)), feature_dim=np.int64(d), num_classes=np.int64(K), epoch=np.int64(1),
             head=np.str_(head), loss=np.str_(loss), dr_form=np.str_("paper"), dataset=np.str_("hand-made"),
             center=np.str_("class-means"), train_per_class_accuracy=nan, test_per_class_accuracy=nan)
    return folder


def _rotation(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q


@pytest.fixture(scope="module")
def learnable_optimum():
    problem = Problem(counts=COUNTS, d=8, classifier="learnable", loss="ce", E_W=1.0, E_H=5.0, majority=3)
    solution = solve_certified(problem, "convex")
    assert solution.status.value == "optimal"
    Q = _rotation(8, 1)
    return problem, solution.H @ Q, solution.W @ Q


def test_gram_distance_is_rotation_and_scale_invariant():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 9))
    assert gram_distance(A, 3.7 * A @ _rotation(9, 2)) < 1e-12
    assert gram_distance(A, np.hstack([A, np.zeros((6, 4))])) < 1e-12  # width does not matter
    B = rng.standard_normal((6, 9))
    assert 0.05 < gram_distance(A, B) <= np.sqrt(2) + 1e-12


def test_cosine_matrix_leaves_vanishing_rows_undefined():
    V = np.array([[1.0, 0.0], [0.0, 2.0], [1e-9, 0.0]])
    C = cosine_matrix(V)
    np.testing.assert_allclose(C[:2, :2], [[1.0, 0.0], [0.0, 1.0]], atol=1e-15)
    assert np.isnan(C[2]).all() and np.isnan(C[:, 2]).all()


def test_run_at_lpm_optimum_has_zero_distance(tmp_path, learnable_optimum):
    problem, means, W = learnable_optimum
    run = load_run_geometry(write_run(tmp_path / "at-optimum", means, W, COUNTS))
    built, budgets = problem_for_run(run)
    assert built.counts == COUNTS and built.classifier == "learnable" and built.loss == "ce" and built.d == 8
    # the optimum uses both budgets fully, so the default (norms) rule recovers them
    np.testing.assert_allclose([budgets.E_W, budgets.E_H], [1.0, 5.0], rtol=1e-6)
    assert budgets.source == ("E_W = 1 = mean squared classifier row norm of the run; "
                              "E_H = 5 = mean squared class-mean norm of the run")
    row = compare_runs([run]).distances.iloc[0]
    assert row["lpm_solver"] == "nuclear" and row["lpm_status"] == "optimal"
    assert row["lpm_gap_over_objective"] < 1e-6
    for part in ("means", "classifier", "joint"):
        assert row[f"dist_lpm_{part}"] < ZERO_DISTANCE
        assert row[f"dist_etf_{part}"] > 0.1  # imbalance moved the optimum away from the ETF
    np.testing.assert_allclose(row["run_collapse_index"], row["lpm_collapse_index"], atol=1e-4)


def test_distance_grows_with_perturbation(tmp_path, learnable_optimum):
    _, means, W = learnable_optimum
    rng = np.random.default_rng(7)
    noise_h, noise_w = rng.standard_normal(means.shape), rng.standard_normal(W.shape)
    rms_h, rms_w = np.sqrt(np.mean(means**2)), np.sqrt(np.mean(W**2))
    distances = []
    for i, eps in enumerate((0.0, 0.01, 0.03, 0.1, 0.3)):
        folder = write_run(tmp_path / f"eps{i}", means + eps * rms_h * noise_h, W + eps * rms_w * noise_w, COUNTS)
        c = compare_run(load_run_geometry(folder))
        distances.append([c.distances[f"lpm_{p}"] for p in ("means", "classifier", "joint")])
        # the run's (W, means) is feasible for the budgets read from it, so the LPM cannot do worse
        row = c.row()
        assert row["lpm_objective"] <= row["run_objective"] + row["lpm_gap"] + 1e-12
    distances = np.array(distances)
    assert (distances[0] < ZERO_DISTANCE).all()
    assert (np.diff(distances, axis=0) > 0).all(), distances


def test_logits_budget_rule_uses_the_nuclear_norm_of_run_logits(tmp_path, learnable_optimum):
    _, means, W = learnable_optimum
    shifted = means + 3.0  # a global mean the classifier only partly turns into logits
    run = load_run_geometry(write_run(tmp_path / "shifted", shifted, W, COUNTS))
    p_norms, _ = problem_for_run(run, rule="norms")
    p_logits, b = problem_for_run(run, rule="logits")
    nuclear = np.linalg.svd(shifted @ W.T, compute_uv=False).sum()
    np.testing.assert_allclose(len(COUNTS) * np.sqrt(p_logits.E_W * p_logits.E_H), nuclear, rtol=1e-12)
    assert p_logits.E_W == p_norms.E_W and p_logits.E_H < p_norms.E_H
    assert "nuclear norm of the run's class-mean logits" in b.source
    c = compare_run(run, budget_rule="logits")
    assert c.solution.objective <= c.row()["run_objective"] + c.solution.certificate.gap + 1e-12


def test_loss_budget_rule_recovers_the_budget_of_an_optimum(tmp_path, learnable_optimum):
    """At an LPM optimum the run's loss is the optimal value v(E_W E_H), so matching the loss
    must give back E_W·E_H = 5 (to the rule's stated 1 %)."""
    problem, means, W = learnable_optimum
    run = load_run_geometry(write_run(tmp_path / "opt", means, W, COUNTS))
    p, b = problem_for_run(run, rule="loss")
    np.testing.assert_allclose(p.E_W, 1.0, rtol=1e-9)
    np.testing.assert_allclose(p.E_W * p.E_H, 5.0, rtol=0.01)
    assert b.source.startswith("E_W = 1 = mean squared classifier row norm of the run; E_H = ")
    assert "so that the LPM optimum's loss equals the run's class-mean loss" in b.source


def test_loss_budget_rule_brackets_the_root_in_few_solves(tmp_path, learnable_optimum, monkeypatch):
    """A run that is not an optimum: the returned P = E_W·E_H is within 1 % of the root of
    v(P) = f(Z_run), checked by independent certified solves on both sides; the bracket
    search needs few solves, and compare_run reuses its last one."""
    import lpm.compare.budgets as budgets_module
    _, means, W = learnable_optimum
    rng = np.random.default_rng(3)
    run = load_run_geometry(write_run(tmp_path / "noisy", means + 0.3 * rng.standard_normal(means.shape), W, COUNTS))
    solves = []
    real = budgets_module.solve_certified
    monkeypatch.setattr(budgets_module, "solve_certified", lambda p, m="auto": solves.append(p) or real(p, m))
    p, b = problem_for_run(run, rule="loss")
    assert 1 <= len(solves) <= 6
    target = p.objective(run.W, run.means)
    below, above = real(p.replace(E_H=p.E_H / 1.01)), real(p.replace(E_H=p.E_H * 1.01))
    assert below.certificate.lower_bound >= target >= above.objective
    assert b.solution is not None and b.solution.problem == p
    c = compare_run(run, budget_rule="loss")
    assert c.solution is c.budgets.solution


def test_user_budgets_and_bad_values(tmp_path, learnable_optimum):
    _, means, W = learnable_optimum
    run = load_run_geometry(write_run(tmp_path / "r", means, W, COUNTS))
    p, b = problem_for_run(run, E_W=2.0, E_H=3.0)
    assert (p.E_W, p.E_H) == (2.0, 3.0) and b.source == "E_W = 2 set by the user; E_H = 3 set by the user"
    with pytest.raises(LPMInputError, match=r"^The 'E_H' parameter must be a number >= 1e-08 and <= 1e\+08. Got 0.0 instead.$"):
        problem_for_run(run, E_H=0.0)
    with pytest.raises(LPMInputError, match=r"^The 'solver' parameter must be a back end that certifies"):
        compare_run(run, method="gradient")
    with pytest.raises(LPMInputError, match=r"^The 'budget_rule' parameter must be one of 'norms', 'logits', "
                                            r"'loss', 'weight-decay'. Got 'max' instead.$"):
        problem_for_run(run, rule="max")


def test_fixed_etf_run_at_its_optimum(tmp_path):
    K, d, seed = 6, 7, 3
    template = Problem(counts=COUNTS, d=d, classifier="fixed-etf", loss="dr", E_W=1.0, E_H=1.0, seed=seed)
    opt = solve_certified(template)  # analytic: h_k = sqrt(E_H) m_k (Y22 Theorem 2)
    run = load_run_geometry(write_run(tmp_path / "etf", opt.H, opt.W, COUNTS, head="fixed-etf", loss="dr",
                                      head_seed=seed))
    c = compare_run(run)
    assert c.problem.budget == "per-sample" and (c.problem.E_W, c.problem.E_H) == (1.0, 1.0)
    assert c.budgets.source.endswith("E_H = 1 because the fixed head l2-normalises every feature")
    np.testing.assert_allclose(c.solution.W, run.W, atol=1e-12)  # the same seeded frame as the head
    for key, value in c.distances.items():  # the LPM optimum is the simplex ETF here
        assert value < 1e-7, key
    history, reference = group_history(c)
    ref = reference.set_index(["part", "quantity", "group"])["value"]
    np.testing.assert_allclose(ref.loc[("classifier", "cos", "minority")], -1 / (K - 1), atol=1e-12)
    np.testing.assert_allclose(ref.loc[("feature", "norm", "minority")], 1.0, atol=1e-12)
    assert set(history["epoch"]) == {1}


def test_collapse_table_puts_runs_on_the_lpm_curve(tmp_path):
    """Two runs at the exp-profile LPM optimum for R = 10 and 100: the deep points, the LPM at
    each run's budgets and the LPM curve (same budgets) coincide at those ratios. The minority is
    taken by counts (here: fewer than 60 samples) at every ratio, so R = 1 has none."""
    runs = []
    for R in (10.0, 100.0):
        p = Problem.from_profile(K=6, ratio=R, profile="exp", n_max=200, majority=3, d=6, E_W=1.0, E_H=3.0)
        s = solve_certified(p)
        folder = write_run(tmp_path / f"R{R:g}", s.H, s.W, p.counts, ratio=R, profile="exp", n_max=200)
        runs.append(compare_run(load_run_geometry(folder), minority_below=60))
    table = collapse_table(runs, points=4, minority_below=60)
    assert set(table["minority_rule"]) == {"minority: classes with fewer than 60 training samples"}
    curve = table[table["source"] == "lpm"].set_index("ratio")
    assert {10.0, 100.0} <= set(curve.index) and curve.index.min() == 1.0
    assert np.isnan(curve.loc[1.0, "collapse_index"])                          # balanced: no minority
    for source in ("deep", "lpm-run"):
        pts = table[table["source"] == source].set_index("ratio")
        for R in (10.0, 100.0):
            for col in ("collapse_index", "classifier_minority_cos"):
                np.testing.assert_allclose(pts.loc[R, col], curve.loc[R, col], atol=1e-4)


def test_unfitted_classes_are_flagged_and_left_out_of_the_minority(tmp_path, learnable_optimum):
    """Class 5 (3 samples) was never fitted on the training set: compare flags it, warns, and
    measures the minority (classes below 20 samples: 4 and 5) without it, on both sides."""
    _, means, W = learnable_optimum
    folder = write_run(tmp_path / "unfitted", means, W, COUNTS)
    with np.load(folder / "final_geometry.npz") as npz:
        arrays = dict(npz)
    arrays["train_per_class_accuracy"] = np.array([1.0, 1.0, 0.98, 0.9, 0.75, 0.0])
    np.savez(folder / "final_geometry.npz", **arrays)
    report = compare_runs([folder])
    row = report.distances.iloc[0]
    assert row["minority_classes"] == "4 5" and row["unfitted_classes"] == "5"
    assert row["measured_minority_classes"] == "4"
    assert row["run_collapse_index"] is None or np.isnan(row["run_collapse_index"])  # one class left: no pair
    lines = summary_lines(report)
    # which list is which: the minority by counts, then the unfitted ones and the minority the metrics use
    assert "  minority classes [4 5] (classes with fewer than 20 training samples)" in lines
    assert ("  warning: unfitted classes [5] (training accuracy below 0.5); they are left out of the minority "
            "metrics (the LPM describes the terminal phase), which use classes [4]") in lines


def test_weight_decay_rule_poses_the_regularised_model(tmp_path):
    """A learnable run trained with weight decay is set beside the weight-decay model (theory.md §9):
    λ_W from the run, λ_H from the balance λ_W‖W‖² = λ_H Σ n_k‖μ_k‖²; a run sitting at that model's
    optimum is recovered at distance 0 with the same coefficients."""
    counts = (50.0, 50.0, 5.0, 5.0)
    truth = Problem.from_counts(counts, classifier="learnable", loss="ce", budget="weight-decay",
                                lambda_W=2e-3, lambda_H=5e-4, majority=2)
    s = solve_certified(truth)
    assert s.status.value == "optimal"
    folder = write_run(tmp_path / "wd", s.H, s.W, counts, majority=2)
    config = json.loads((folder / "config.json").read_text())
    config["config"]["weight_decay"] = 2e-3
    (folder / "config.json").write_text(json.dumps(config))
    run = load_run_geometry(folder)
    problem, budgets = problem_for_run(run, rule="weight-decay")
    assert problem.budget == "weight-decay" and problem.counts == counts
    np.testing.assert_allclose([problem.lambda_W, problem.lambda_H], [2e-3, 5e-4], rtol=1e-6)
    assert budgets.source.startswith("lambda_W = 0.002 = the run's weight decay; lambda_H = 0.0005 from")
    report = compare_runs([run], budget_rule="weight-decay")
    row = report.distances.iloc[0]
    assert row["lpm_status"] == "optimal" and row["budget"] == "weight-decay"
    assert row["dist_lpm_joint"] < 1e-6
    # only the numbers that enter the model: λ_W, λ_H in the table and the heatmap title, no E_W, E_H
    assert row["E_W"] is None and row["E_H"] is None
    from lpm.compare.report import _title
    assert _title(report.comparisons[0]).endswith("LPM of ce by nuclear, $\\lambda_W$=0.002, $\\lambda_H$=0.0005")


def test_inconsistent_arrays_are_refused(tmp_path, learnable_optimum):
    _, means, W = learnable_optimum
    folder = write_run(tmp_path / "bad", means[:5], W[:5], COUNTS)
    with pytest.raises(LPMInputError, match=r"^The 'class_means' parameter of run bad must be a K×d array"):
        load_run_geometry(folder)


def test_collapse_figure_names_the_weight_decay_coefficients_of_a_regularised_curve():
    """A weight-decay LPM curve is labelled with its λ_W, λ_H (its E_W, E_H are not used), a
    constrained one with its budgets."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from lpm.figures.compare import plot_collapse_vs_ratio

    def rows(head, loss, E, lam):
        base = dict(dataset="d", head=head, loss=loss, K=4, E_W=E, E_H=E, lambda_W=lam, lambda_H=lam and 2e-7,
                    collapse_index=0.5, classifier_minority_cos=0.0)
        return [{**base, "source": s, "ratio": r} for s in ("lpm", "deep", "lpm-run") for r in (10.0, 100.0)]

    table = pd.DataFrame(rows("learnable", "ce", 1.0, 5e-4) + rows("fixed-etf", "dr", 2.0, None))
    fig = plot_collapse_vs_ratio(table)
    labels = {t.get_text() for legend in fig.legends for t in legend.get_texts()}
    labels |= {label for axis in fig.axes for label in axis.get_legend_handles_labels()[1]}
    plt.close(fig)
    assert r"LPM, learnable + CE (weight decay $\lambda_W$=0.0005, $\lambda_H$=2e-07)" in labels
    assert "LPM at each run's coefficients, learnable + CE" in labels
    assert "LPM, fixed-etf + DR ($E_W$=2, $E_H$=2)" in labels
    assert "LPM at each run's budgets, fixed-etf + DR" in labels


def test_collapse_figure_explains_missing_ratios_and_indices_above_one():
    """Figure 7 says why R = 1 has no point (no minority) and why an index may exceed 1."""
    import pandas as pd

    from lpm.figures.compare import plot_collapse_vs_ratio
    rows = []
    for source in ("deep", "lpm-run", "lpm"):
        for ratio, index, cos in ((1.0, None, None), (10.0, 1.007, -0.24), (100.0, 0.8, 0.0)):
            rows.append({"head": "learnable", "loss": "ce", "source": source, "ratio": ratio, "K": 10,
                         "collapse_index": index if source == "deep" else (None if index is None else 0.7),
                         "classifier_minority_cos": cos, "E_W": None, "E_H": None, "lambda_W": 5e-4,
                         "lambda_H": 1e-7})
    fig = plot_collapse_vs_ratio(pd.DataFrame(rows))
    note = " ".join(fig.legends[0].get_title().get_text().split())
    assert note.startswith("R = 1: no point, because no class falls in the minority there")
    assert "An index above 1 (up to 1.007, learnable + CE at R = 10) is not an error" in note
