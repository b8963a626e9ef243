"""Every sims/ file: its reduced ("smoke") grid runs, its figure is written,
and the claim the figure makes holds on its own table (theory.md §10)."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from lpm.reproduce import list_simulations, reproduce

K = 10
ETF_COS = -1.0 / (K - 1)


def test_six_simulation_files():
    names = {s.name for s in list_simulations()}
    assert {"minority-collapse", "fixed-etf", "convergence", "gradient-decomposition", "phase-diagram",
            "long-tailed", "convergence-map", "theory-vs-practice"} <= names
    for sim in list_simulations():
        assert sim.description and sim.smoke_grids, sim.name


def _figures_written(result):
    assert [p.suffix for p in result.figures] == [".png", ".pdf"]
    for path in result.figures:
        assert path.stat().st_size > 5000, path
    assert (result.out_dir / "results.csv").exists() and (result.out_dir / "sweep.json").exists()


def test_minority_collapse_claim(run):
    result = run("minority-collapse")
    _figures_written(result)
    table = result.tables["results"]
    t = table[table["task"] == "solve"]
    assert set(t["status"]) <= {"optimal", "optimal_inaccurate"}
    by = {s: rows.sort_values("ratio").set_index("ratio") for s, rows in t.groupby("solver")}
    nuclear = by["nuclear"]
    # R* itself, drawn in the figure: the KKT root and the index bisection agree (theory.md §4.3)
    threshold = table[table["task"] == "threshold"].iloc[0]
    assert threshold["status"] == "ok" and 11.5 < threshold["ratio_star_kkt"] < 13.0
    assert abs(math.log10(threshold["ratio_star_index"] / threshold["ratio_star_kkt"])) < 0.02 + math.log10(1.01)
    cos = nuclear["classifier_minority_cos"].to_numpy()
    # [F21]: the minority cosine rises with R from the ETF value to 1 (collapse)
    assert np.all(np.diff(cos) > 0)
    np.testing.assert_allclose(cos[0], ETF_COS, atol=1e-8)
    np.testing.assert_allclose(cos[-1], 1.0, atol=1e-8)
    assert nuclear["collapse_index"].iloc[-1] < 1e-6 < 0.3 < nuclear["collapse_index"].iloc[1]
    # convex (SDP), nuclear and gradient agree at every R
    for solver, tol in (("convex", 1e-3), ("gradient", 1e-4)):
        other = by[solver]
        for col in ("classifier_minority_cos", "collapse_index", "classifier_norm_ratio"):
            np.testing.assert_allclose(other[col], nuclear[col], atol=tol, err_msg=f"{solver} {col}")


def test_fixed_etf_claim(run):
    result = run("fixed-etf")
    _figures_written(result)
    t = result.tables["results"]
    assert (t["outcome"] == "ok").all()
    etf = t[t["classifier"] == "fixed-etf"]
    assert set(etf["budget"]) == {"per-sample", "class-average"} and set(etf["loss"]) == {"ce", "dr"}
    # [Y22] Theorems 1-2: no collapse at any R, under either budget form
    for col in ("classifier_minority_cos", "feature_minority_cos_uncentred"):
        np.testing.assert_allclose(etf[col], ETF_COS, atol=1e-9, err_msg=col)
    learnable_ce = t[(t["classifier"] == "learnable") & (t["loss"] == "ce")].sort_values("ratio")
    assert learnable_ce["classifier_minority_cos"].iloc[-1] > 0.999
    # learnable + DR: two certified zero-loss minimisers with different geometry
    dr = t[(t["classifier"] == "learnable") & (t["loss"] == "dr") & (t["solver"] != "gradient")]
    assert set(dr["solver"]) == {"nuclear", "convex"}
    assert (dr["objective"] < 1e-9).all() and (dr["gap"] < 1e-6).all()
    at_high = dr[dr["ratio"] == dr["ratio"].max()].set_index("solver")["classifier_minority_cos"]
    assert abs(at_high["nuclear"] - at_high["convex"]) > 0.1


def test_convergence_claim(run):
    """Measured at this figure's budget, E_W·E_H = 5: with exact gradient steps on the fixed-ETF
    LPM, CE reaches the optimum direction far sooner than DR (DR's residual only moves h along
    w_y, so its angle decays like 1/sqrt(t)). At large budgets the order flips: see the
    convergence map (test_convergence_map_claim)."""
    result = run("convergence")
    _figures_written(result)
    traj = result.tables["trajectory"]
    assert {"iteration", "objective", "suboptimality", "angle", "distance"} <= set(traj.columns)
    variant = traj["setting_dr_variant"].fillna("paper") if "setting_dr_variant" in traj else "paper"
    traj = traj.assign(variant=np.where(traj["loss"] == "ce", "ce", "dr-" + variant))
    assert set(traj["variant"]) == {"ce", "dr-paper", "dr-released"}
    for (budget, ratio), rows in traj.groupby(["budget", "ratio"]):
        first = {}
        for v, r in rows.groupby("variant"):
            below = r.loc[np.degrees(r["angle"]) < 1.0, "iteration"]
            first[v] = below.min() if len(below) else math.inf
        assert first["ce"] < 100, (budget, ratio, first)
        assert first["dr-paper"] > 2 * first["ce"] and first["dr-released"] > 2 * first["ce"], first
        final = rows[rows["iteration"] == rows["iteration"].max()].set_index("variant")
        assert final.loc["ce", "distance"] < 1e-6 < final.loc["dr-paper", "distance"]
    # DR's loss does go to 0 (its optimum), and CE's to the closed form of Theorem 1
    ce_final = traj[(traj["variant"] == "ce")].groupby("cell_id")["suboptimality"].last()
    assert (ce_final.abs() < 1e-10).all()
    # the released surrogate under the per-sample budget: its h-gradient is the paper's on each
    # sphere, so the two runs differ only through their first iterates (the random start and early
    # steps can lie inside the ball, where the gradients differ) and end within 0.1 %; under the class-average
    # budget at R = 100 it stalls (its stop-gradient norm does not see the shared budget)
    last = traj[traj["iteration"] == traj.groupby("cell_id")["iteration"].transform("max")]
    last = last.set_index(["budget", "ratio", "variant"])["suboptimality"]
    for ratio in (1.0, 100.0):
        assert last["per-sample", ratio, "dr-released"] == pytest.approx(last["per-sample", ratio, "dr-paper"],
                                                                         rel=1e-3)
    assert last["class-average", 100.0, "dr-released"] > 0.1 > 1e-3 > last["class-average", 100.0, "dr-paper"]


def test_convergence_map_claim(run):
    """theory.md §12 on the smoke grid (per-sample, own 1/L step, cap 5000, 4 vectors per class): CE is
    linear with a rate that collapses like exp(−sqrt(E_W E_H)), DR is sublinear at a speed independent
    of the budget, so CE reaches a coarse angle first at small budgets and DR at large ones. The headline
    is the per-sample angle that §12 analyses: its crossover lies where §12 puts it from the measured start
    angle with nothing fitted. The class means' angle (averaged over 4 vectors) is smaller for DR, and
    its crossover is reported beside it, measured and with CE's start fitted."""
    from lpm.core.rates import fitted_start, predicted_crossover
    from lpm.figures.convergence_map import crossover_table, crossovers, iteration_table, measured_start

    result = run("convergence-map")
    _figures_written(result)
    t = result.tables["results"]
    vectors = t["samples_per_class"].fillna(4)
    ps = t[(t["budget"] == "per-sample") & (vectors == 4)]
    at = lambda form, ewh, col: ps.loc[(ps["form"] == form) & (ps["ewh"] == ewh), col].iloc[0]  # noqa: E731
    coarse, fine = "iterations_to_0.01", "iterations_to_0.0001"
    # averaging 16 vectors per class cuts DR's class-mean count to 0.03 far below its per-sample count
    sixteen = t[(vectors == 16) & (t["form"] == "dr")].iloc[0]
    assert sixteen["iterations_to_0.03"] < at("dr", 0.5, "sample_iterations_to_0.03") / 8
    assert at("ce", 0.5, coarse) <= 10 and at("dr", 0.5, coarse) >= 1000        # small budget: CE first
    assert at("dr", 100.0, coarse) <= 3000 and np.isnan(at("ce", 100.0, coarse))  # large budget: DR first
    assert ps.loc[ps["form"] != "ce", fine].isna().all()                         # DR: never 1e-4 in 5000
    for form in ("dr", "dr-released"):                                           # independent of E_W·E_H,
        assert at(form, 0.5, coarse) == at(form, 100.0, coarse) == at("dr", 0.5, coarse)  # released = paper
    ce = ps[ps["form"] == "ce"].sort_values("ewh")[coarse].fillna(np.inf).to_numpy()
    assert np.all(np.diff(ce) > 0)
    # per-sample angle (the headline): DR's count is §12's K/(K−1)·(θ⁻² − θ_0⁻²) from the measured start,
    # and the crossover predicted from that start (nothing fitted) is within 25 % of the measured one
    start = measured_start(ps, "per-sample")
    assert 1.3 < start < 1.6 and (ps["initial_sample_angle_mean"] > ps["initial_angle_mean"]).all()
    t_dr = at("dr", 0.5, "sample_iterations_to_0.03")
    assert t_dr == pytest.approx(K / (K - 1) * (0.03**-2 - start**-2), rel=0.02)
    assert at("dr", 0.5, "sample_iterations_to_0.03") > 4 * at("dr", 0.5, "iterations_to_0.03")  # averaging
    per_sample = crossovers(iteration_table(ps, "sample_iterations_to_0.03"), 0.03, K, start)
    assert 40 < per_sample["measured"] < 50 and 35 < per_sample["predicted"] < 40
    assert abs(np.log(per_sample["predicted"] / per_sample["measured"])) < np.log(1.25)
    # class-mean angle: measured, and predicted with one constant (CE's start) fitted at E_W·E_H = 20
    table = iteration_table(ps, coarse)
    found = crossovers(table, 1e-2, K)
    assert found["predicted"] is None                                     # no start: nothing predicted unfitted
    assert 50 < found["measured"] < 70 and 40 < found["predicted_fitted"] < 60
    assert abs(np.log(found["predicted_fitted"] / found["measured"])) < np.log(1.25)
    fitted = fitted_start(20.0, K, 1e-2, at("ce", 20.0, coarse))
    assert found["fitted_start"] == pytest.approx(fitted) and fitted < 0.1 * measured_start(ps, "class-mean")
    assert predicted_crossover(K, 1e-2, fitted, at("dr", 0.5, coarse)) == pytest.approx(found["predicted_fitted"])
    # the printed crossover table (python -m lpm.figures.convergence_map) gives the same numbers, and says how
    # each crossover was measured
    listed = crossover_table(t).set_index(["measure", "samples_per_class", "threshold", "budget", "dr_form", "step"])
    row = listed.loc[("class-mean", 4, 0.01, "per-sample", "dr", "own")]
    row = row.iloc[0] if isinstance(row, pd.DataFrame) else row
    assert row["measured"] == pytest.approx(found["measured"])
    assert row["predicted_fitted"] == pytest.approx(found["predicted_fitted"])
    row = listed.loc[("per-sample", 4, 0.03, "per-sample", "dr", "own")]
    row = row.iloc[0] if isinstance(row, pd.DataFrame) else row
    assert row["measured"] == pytest.approx(per_sample["measured"]) and row["predicted"] == pytest.approx(
        per_sample["predicted"]) and row["start_angle"] == pytest.approx(start)
    assert pd.isna(np.atleast_1d(listed.loc[("per-sample", 4, 1e-4, "per-sample", "dr", "own"), "measured"])).all()
    assert pd.isna(np.atleast_1d(listed.loc[("per-sample", 4, 0.03, "class-average", "dr", "own"),
                                            "predicted"])).all()  # R = 100, class-average: measured only


def test_crossover_command_prints_the_table_and_refuses_other_files(run, tmp_path, capsys):
    """python -m lpm.figures.convergence_map TABLE: the crossovers of a finished table, exit 0; a
    missing argument, a missing file or another table: one line on stderr, exit 2."""
    from lpm.figures.convergence_map import _main, crossover_table

    table = run("convergence-map").tables["results"]
    path = tmp_path / "map.csv"
    table.to_csv(path, index=False)
    assert _main([str(path)]) == 0
    printed = capsys.readouterr().out
    found = crossover_table(table)
    measured = found[(found["threshold"] == 0.01) & (found["dr_form"] == "dr") & (found["step"] == "own")
                     & (found["budget"] == "per-sample") & (found["measure"] == "class-mean")]["measured"].iloc[0]
    assert 50 < measured < 70 and f"{measured:.1f}" in printed
    assert printed.splitlines()[0].split()[:3] == ["measure", "samples_per_class", "threshold"]
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    for argv, message in (([], "Usage: python -m lpm.figures.convergence_map"),
                          ([str(tmp_path / "none.csv")], "Error: cannot read"),
                          ([str(other)], "it is not a convergence-map results table")):
        assert _main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_gradient_decomposition_claim(run):
    result = run("gradient-decomposition")
    _figures_written(result)
    traj = result.tables["trajectory"]
    last = traj[traj["iteration"] == traj["iteration"].max()].set_index("ratio")
    ratio = last["push_norm"] / last["pull_norm"]
    # theory.md §4.4: balanced, the own-sample pull dominates; at R=1000 the push does
    assert ratio.loc[1.0] < 1.0
    assert ratio.loc[1000.0] > 100.0


def test_phase_diagram_claim(run):
    result = run("phase-diagram")
    _figures_written(result)
    t = result.tables["results"]
    thr = t[t["task"] == "threshold"].set_index(["majority", "ewh"])
    assert (thr["status"] == "ok").all()
    log_gap = np.abs(np.log10(thr["ratio_star_index"] / thr["ratio_star_kkt"]))
    assert (log_gap < thr["log10_tol"] + 0.01).all(), log_gap  # within the bisection tolerance
    r = thr["ratio_star_kkt"]
    assert r.loc[(3, 1.0)] < r.loc[(3, 5.0)] and r.loc[(5, 1.0)] < r.loc[(5, 5.0)]  # grows with E_W·E_H
    assert r.loc[(5, 5.0)] < r.loc[(3, 5.0)]  # more majority classes push harder
    reg = t[t["task"] == "regularised"]
    assert len(reg) == 12
    collapsed = reg["collapse_index"] < 1e-4
    assert (collapsed == reg["predicted_collapse"].astype(bool)).all()  # theory.md §9 formula holds
    assert (reg.loc[~collapsed, "collapse_index"] > 0.05).all()
    mse = reg[reg["loss"] == "mse"]
    assert ((mse["majority_norm"] < 1e-4) == mse["predicted_majority_vanish"].astype(bool)).all()


def test_long_tailed_claim(run):
    result = run("long-tailed")
    _figures_written(result)
    pc = result.tables["per_class"]
    assert len(pc) == K * (3 + 2 * 3 * 2)
    etf = pc[pc["classifier"] == "fixed-etf"]
    # [Y22] Theorems 1-2: per-sample budget, CE and DR: h_k = sqrt(E_H) m_k for every class
    etf_ps = etf[(etf["budget"] == "per-sample") & etf["loss"].isin(["ce", "dr"])]
    np.testing.assert_allclose(etf_ps["feature_norm"], math.sqrt(5.0), rtol=1e-6)
    np.testing.assert_allclose(etf.loc[etf["loss"] != "mse", "feature_max_cos"], ETF_COS, atol=1e-6)
    etf_ca = pc[(pc["classifier"] == "fixed-etf") & (pc["budget"] == "class-average") & (pc["loss"] == "ce")]
    norms = etf_ca.sort_values("class_index")["feature_norm"].to_numpy()
    assert np.all(np.diff(norms) < 0)  # budget re-allocated toward the head
    np.testing.assert_allclose(etf_ca["feature_max_cos"], ETF_COS, atol=1e-6)  # directions stay m_k
    learn = pc[(pc["classifier"] == "learnable") & (pc["loss"] == "ce")].sort_values("class_index")
    assert learn["classifier_norm"].iloc[0] > 5 * learn["classifier_norm"].iloc[-1]


def test_plot_functions_draw_into_given_axes(run):
    from lpm.figures.collapse import plot_minority_collapse

    table = run("minority-collapse").tables["results"]
    fig, axes = plt.subplots(1, 3)
    assert plot_minority_collapse(table, ax=axes) is fig
    for a in axes:
        assert a.get_xscale() == "log" and a.get_xlabel() and a.get_ylabel()
    etf_lines = [ln for ln in axes[0].get_lines() if np.allclose(ln.get_ydata(), ETF_COS)]
    assert etf_lines, "the ETF reference line -1/(K-1) is drawn"
    plt.close(fig)
    fig, axes = plt.subplots(1, 2)
    with pytest.raises(ValueError, match="this figure draws 3 panels; got 2 axes"):
        plot_minority_collapse(table, ax=axes)
    plt.close("all")


def test_resume_reuses_finished_cells(run, monkeypatch):
    from lpm.sweep import tasks

    first = run("gradient-decomposition")
    calls = []
    monkeypatch.setitem(tasks._TASKS, "solve", lambda spec: calls.append(spec) or {})
    again = reproduce("gradient-decomposition", first.out_dir, smoke=True, progress=False)
    assert calls == []
    pd.testing.assert_frame_equal(again.tables["trajectory"], first.tables["trajectory"])
