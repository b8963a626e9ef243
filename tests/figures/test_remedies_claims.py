"""The two remedy figures (theory.md §14.6–§14.7): their smoke grids run, the figures are written,
and the claims they make hold on their own tables."""
from __future__ import annotations

import numpy as np
import pytest

from lpm import Problem
from lpm.core.solvers import get_solver
from lpm.reproduce import build_grid, get_simulation

K = 10
ETF_COS = -1.0 / (K - 1)
COLLAPSED = 1e-6


def _figures_written(result):
    assert [p.suffix for p in result.figures] == [".png", ".pdf"]
    for path in result.figures:
        assert path.stat().st_size > 5000, path


def _curve(t, **equals):
    rows = t
    for key, value in equals.items():
        rows = rows[rows[key] == value]
    return rows.sort_values("ratio").set_index("ratio")


def test_remedies_claim(run):
    result = run("remedies")
    _figures_written(result)
    t = result.tables["results"]
    assert (t["outcome"] == "ok").all() and set(t["status"]) == {"optimal"}
    assert (t[t["solver"] == "nuclear"]["relative_gap"] <= 1e-8).all()
    avg = t[(t["classifier"] == "learnable") & (t["budget"] == "class-average")]
    ce = _curve(avg, loss="ce", class_weights="none")["collapse_index"]
    # learnable + CE: not collapsed at R = 10, collapsed at R = 30 (R* ≈ 12, theory.md §4.3)
    assert ce[10.0] > 0.3 and ce[30.0] < COLLAPSED
    # every loss remedy at its default is collapsed no later than CE; cdt, ldam and vs earlier
    for loss in ("la", "cdt", "ldam", "vs"):
        index = _curve(avg, loss=loss)["collapse_index"]
        assert index[30.0] < COLLAPSED and index[1000.0] < COLLAPSED, loss
        if loss != "la":
            assert index[10.0] < COLLAPSED, loss
    # inverse weights balance the objective: the ETF at every R; class-balanced (β = 0.9999) nearly
    inverse = _curve(avg, loss="ce", class_weights="inverse")
    np.testing.assert_allclose(inverse["classifier_minority_cos"], ETF_COS, atol=1e-6)
    np.testing.assert_allclose(inverse["collapse_index"], 1.0, atol=1e-6)
    assert (_curve(avg, loss="ce", class_weights="class-balanced")["collapse_index"] > 0.99).all()
    # fixed ETF + DR: the ETF cosine at every R
    fixed = t[t["classifier"] == "fixed-etf"]
    np.testing.assert_allclose(fixed["classifier_minority_cos"], ETF_COS, atol=1e-9)
    # weight decay: every loss collapses by R = 1000; re-weighting keeps the minority apart there
    decay = t[(t["classifier"] == "learnable") & (t["budget"] == "weight-decay")]
    for loss in ("ce", "la", "cdt", "ldam", "vs"):
        assert _curve(decay, loss=loss, class_weights="none")["collapse_index"][1000.0] < COLLAPSED, loss
    for scheme in ("inverse", "class-balanced"):
        assert _curve(decay, loss="ce", class_weights=scheme)["collapse_index"][1000.0] > 0.3, scheme
    # max-margin (vanishing regularisation, closed form): nothing merges up to R = 10^4; la, ldam and both
    # weightings are CE's SELI exactly; cdt and vs, the first to collapse under a finite budget, keep the
    # minority classifiers apart best in the limit (cosine at or below the ETF's)
    limit = t[(t["classifier"] == "learnable") & (t["budget"] == "max-margin")]
    assert (limit["solver"] == "analytic").all() and (limit["relative_gap"] <= 1e-12).all()
    seli = _curve(limit, loss="ce", class_weights="none")
    assert seli["classifier_minority_cos"][1000.0] == pytest.approx(0.6707, abs=1e-4)  # theory.md §15.4
    assert (limit["collapse_index"] > 0.15).all() and (limit["classifier_minority_cos"] < 0.9).all()
    for loss, scheme in (("la", "none"), ("ldam", "none"), ("ce", "inverse"), ("ce", "class-balanced")):
        same = _curve(limit, loss=loss, class_weights=scheme)
        for col in ("classifier_minority_cos", "collapse_index"):
            np.testing.assert_allclose(same[col], seli[col], atol=1e-9, err_msg=f"{loss} {scheme}")
    for loss in ("cdt", "vs"):
        temperature = _curve(limit, loss=loss)
        later = temperature.index > 1.0
        assert (temperature["collapse_index"][later] > seli["collapse_index"][later] + 0.1).all(), loss
        assert (temperature["classifier_minority_cos"][later] < ETF_COS + 0.005).all(), loss
        assert _curve(decay, loss=loss)["collapse_index"][1000.0] < COLLAPSED  # finite budget: collapsed


def test_remedies_toml_takes_another_budget_form_as_a_further_grid():
    """Adding a setting is a copy of a grid with its budget name: every other key carries over."""
    sim = get_simulation("remedies")
    spec = dict(next(g for g in sim.grids if g["name"] == "losses-weight-decay"))
    spec.update(name="losses-class-average-copy", budget=["class-average"])
    del spec["lambda_W"], spec["lambda_H"]
    grid = build_grid(spec)
    assert grid.budget == ("class-average",) and len(grid.cells()) == 41 * 5


def test_remedy_tuning_claim(run):
    result = run("remedy-tuning")
    _figures_written(result)
    t = result.tables["results"]
    assert (t["outcome"] == "ok").all() and (t["worst_relative_gap"] <= 1e-9).all()
    best = {(r["loss"], r["ratio"]): r for _, r in t.iterrows()}
    # every search also evaluated the neutral value and did at least as well
    assert (t["distance"] <= t["neutral_distance"] + 1e-12).all()
    # cdt: the geometry is closest to the ETF at γ < 0, the opposite of the published adjustment
    assert best[("cdt", 3.0)]["best"] < -0.1 and best[("cdt", 100.0)]["best"] < -0.1
    # la: τ > 0 helps at small R only; at R = 100 the best τ is negative
    assert best[("la", 3.0)]["best"] > 0.5 and best[("la", 100.0)]["best"] < 0.0
    # no value brings the classifier near the ETF once R is large
    assert best[("la", 100.0)]["distance"] > 0.6 and best[("cdt", 100.0)]["distance"] > 0.6


def test_sqrt_weights_at_ratio_r_are_ce_at_root_r():
    """Under the class-average budgets p_k ∝ sqrt(n_k): the sqrt-weighted problem at R is CE at sqrt(R)."""
    for R in (16.0, 400.0):
        weighted = get_solver("nuclear").run(Problem.from_profile(K=6, ratio=R, class_weights="sqrt"))
        plain = get_solver("nuclear").run(Problem.from_profile(K=6, ratio=np.sqrt(R)))
        assert weighted.objective == pytest.approx(plain.objective, abs=1e-9)
        np.testing.assert_allclose(weighted.H @ weighted.W.T, plain.H @ plain.W.T, atol=1e-4)
