"""``lpm compare`` on remedy runs: the LPM reference is the run's own objective (theory.md §14.8).

Tiny runs (synthetic-lt, R = 10, two epochs, an MLP) of every remedy are trained once; for each,
the reference Problem must carry exactly the run's loss, hyperparameters, class weights in
force at the end of training and its sampler as the equivalent re-weighting, with the
objective's class weights checked against a hand computation from the counts. Where theory
says so the reference differs from CE's optimum (count-aware losses, weights), is the simplex
ETF (uniform effective weights: class-balanced sampling, cRT) or reduces to CE's (LA at τ = 0).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from full_model.config import build_config, stage_config
from full_model.train import train
from lpm.compare import compare_run, compare_runs, load_run_geometry, problem_for_run, solve_certified, summary_lines
from lpm.compare.curve import collapse_curve
from lpm.compare.report import write_report
from lpm.core.errors import LPMInputError
from lpm.core.geometry import centre_means, etf_reference, geometry_distances

TINY = dict(dataset="synthetic-lt", ratio=10, n_max=30, head="learnable", loss="ce", batch_size=16, warmup_epochs=0,
            mixup_alpha=0.0, progress=False, feature_dim=16, nc4_on_train=False, figures=False, eval_batch_size=256,
            epochs=2, track_every=2)
#: joint runs: name -> settings
JOINT = {"ce": {}, "la": {"loss": "la"}, "la0": {"loss": "la", "tau": 0.0}, "la-half": {"loss": "la", "tau": 0.5},
         "cdt": {"loss": "cdt", "gamma": 0.5}, "ldam": {"loss": "ldam"}, "vs": {"loss": "vs"},
         "cb-drw": {"class_weights": "class-balanced", "beta": 0.99, "drw_epoch": 1},
         "drw-never": {"class_weights": "inverse", "drw_epoch": 2},
         "s-cb": {"sampler": "class-balanced"}, "s-prog": {"sampler": "progressive"},
         "s-sqrt-w-sqrt": {"sampler": "sqrt", "class_weights": "sqrt"}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("remedy-runs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # drw-never warns that its re-weighting never happens
        for name, extra in JOINT.items():
            train(build_config({**TINY, **extra, "out": str(root / name)}))
        train(stage_config("crt", root / "ce", {"epochs": 1, "out": str(root / "crt")}))
        train(stage_config("logit-adjust", root / "la", {"out": str(root / "la-adjust")}))
        train(stage_config("tau-norm", root / "cdt", {"tau_norm": 1.0, "out": str(root / "cdt-taunorm")}))
    return {p.name: load_run_geometry(p) for p in root.iterdir()}


def _pi(run):
    n = run.counts
    return n / n.sum()


def _uniform(run):
    return np.full(run.K, 1.0 / run.K)


def _class_balanced(run, beta):
    p = _pi(run) * (1 - beta) / (1 - beta ** run.counts)
    return p / p.sum()


def _progressive_last(run, epochs=2):  # q of epoch T−1: (1 − t/T) π + (t/T)/K with t/T = (T−1)/T
    t = (epochs - 1) / epochs
    return (1 - t) * _pi(run) + t / run.K


#: name -> (loss, tau, gamma, margin, class_weights, beta, objective weights by hand, words of the source)
EXPECTED = {
    "ce": ("ce", None, None, None, "none", None, _pi, "the run's own loss"),
    "la": ("la", 1.0, None, None, "none", None, _pi, "the run's own loss"),  # τ unset: the published default
    "la0": ("la", 0.0, None, None, "none", None, _pi, "the run's own loss"),
    "la-half": ("la", 0.5, None, None, "none", None, _pi, "the run's own loss"),
    "cdt": ("cdt", None, 0.5, None, "none", None, _pi, "the run's own loss"),
    "ldam": ("ldam", None, None, 0.5, "none", None, _pi, "the run's own loss"),
    "vs": ("vs", 1.0, 0.3, None, "none", None, _pi, "the run's own loss"),
    "cb-drw": ("ce", None, None, None, "class-balanced", 0.99, lambda r: _class_balanced(r, 0.99),
               "in force at the end of training (on after epoch 1 of 2, deferred re-weighting)"),
    "drw-never": ("ce", None, None, None, "none", None, _pi, "re-weighting from epoch 3 never happened in 2 epochs"),
    "s-cb": ("ce", None, None, None, "none", None, _uniform, "the class-balanced sampler as the equivalent re-weighting"),
    "s-prog": ("ce", None, None, None, "none", None, _progressive_last, "the progressive sampler of its last epoch"),
    "s-sqrt-w-sqrt": ("ce", None, None, None, "sqrt", None, _uniform, "the sqrt sampler as the equivalent"),
    "crt": ("ce", None, None, None, "none", None, _uniform, "cRT stage: the objective of its classifier re-training"),
    "la-adjust": ("la", 1.0, None, None, "none", None, _pi, "logit-adjust stage: the parent's objective"),
    "cdt-taunorm": ("cdt", None, 0.5, None, "none", None, _pi, "tau-norm stage: the parent's objective"),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_reference_problem_is_the_runs_own_objective(runs, name):
    run = runs[name]
    p, _ = problem_for_run(run)
    loss, tau, gamma, margin, weights, beta, by_hand, source = EXPECTED[name]
    assert (p.loss, p.tau, p.gamma, p.margin, p.class_weights, p.beta) == (loss, tau, gamma, margin, weights, beta)
    np.testing.assert_allclose(p.weights, by_hand(run), rtol=1e-12, atol=0)
    c = compare_run(run)
    assert source in c.reference.note
    assert c.problem == p and c.row()["reference_source"] == c.reference.note


def _distance(a, b):
    """Joint Gram distance between two LPM solutions of problems with the same counts."""
    counts = a.problem.counts
    return geometry_distances(centre_means(a.H, counts, "class-means"), a.W,
                              centre_means(b.H, counts, "class-means"), b.W)["joint"]


def _ce_twin(p):
    return p.replace(loss="ce", tau=None, gamma=None, margin=None, class_weights="none", beta=None, sampling=None)


@pytest.mark.parametrize("name", ["la", "la-half", "cdt", "ldam", "vs", "cb-drw", "s-prog", "la-adjust"])
def test_reference_differs_from_ce_for_a_remedy(runs, name):
    """At R = 10 the count-aware losses and the weights move the LPM optimum away from CE's at
    the same budgets (measured joint distances 0.03–0.73; certified gaps are ~1e-9)."""
    p, _ = problem_for_run(runs[name])
    assert _distance(solve_certified(p), solve_certified(_ce_twin(p))) > 0.02


@pytest.mark.parametrize("name", ["s-cb", "s-sqrt-w-sqrt", "crt"])
def test_uniform_effective_weights_make_the_reference_the_simplex_etf(runs, name):
    """Class-balanced sampling (and sqrt sampling with sqrt weights) give every class the weight
    1/K: the class-average CE model is then the balanced one, whose optimum is the simplex ETF,
    while plain CE at the same budgets is not."""
    p, _ = problem_for_run(runs[name])
    E = etf_reference(p.K)
    ref, ce = solve_certified(p), solve_certified(_ce_twin(p))
    etf = lambda s: geometry_distances(centre_means(s.H, p.counts, "class-means"), s.W, E, E)["joint"]  # noqa: E731
    assert etf(ref) < 1e-6 and etf(ce) > 0.3


def test_la_at_tau_zero_and_drw_that_never_started_reduce_to_ce(runs):
    for name in ("la0", "drw-never"):
        p, _ = problem_for_run(runs[name])
        assert _distance(solve_certified(p), solve_certified(_ce_twin(p))) < 1e-6


@pytest.mark.parametrize("name", ["la", "cdt", "vs", "s-prog"])
def test_loss_rule_matches_the_runs_own_loss(runs, name):
    """The ``loss`` rule solves for the budget at which the LPM optimum's loss equals the run's
    class-mean loss under the run's own objective (not CE's): checked on both sides of the
    returned budget by independent certified solves (the rule's stated 1 %)."""
    run = runs[name]
    p, b = problem_for_run(run, rule="loss")
    target = p.objective(run.W, run.means)
    assert target != pytest.approx(_ce_twin(p).objective(run.W, run.means), rel=1e-3)
    below, above = solve_certified(p.replace(E_H=p.E_H / 1.01)), solve_certified(p.replace(E_H=p.E_H * 1.01))
    assert below.certificate.lower_bound >= target >= above.objective
    assert "so that the LPM optimum's loss equals the run's class-mean loss" in b.source


def test_every_table_names_the_reference(runs, tmp_path):
    report = compare_runs([runs["la"], runs["crt"], runs["la-adjust"], runs["s-prog"]])
    write_report(report, tmp_path, per_run_figures=False)
    table = pd.read_csv(tmp_path / "distances.csv")
    assert list(table["reference"]) == ["la(tau=1)", "ce s=class-balanced", "la(tau=1)", "ce s=progressive@2/2"]
    assert table["reference_source"].str.contains("stage").tolist() == [False, True, True, False]
    assert set(pd.read_csv(tmp_path / "summary.csv")["reference"]) == set(table["reference"])
    assert set(pd.read_csv(tmp_path / "groups_reference.csv")["reference"]) == set(table["reference"])
    assert sum("LPM reference: " in line for line in summary_lines(report)) == 4


def test_collapse_curve_poses_the_reference_at_every_ratio(runs, monkeypatch):
    """The LPM curve against R keeps the run's objective; the sampler's q is recomputed for each
    ratio's counts (at the run's own counts: the run's reference problem)."""
    import lpm.compare.curve as curve
    c = compare_run(runs["s-prog"])
    posed = []
    real = curve._solve_all
    monkeypatch.setattr(curve, "_solve_all", lambda problems, method: posed.extend(problems) or real(problems, method))
    collapse_curve(c.problem.replace(profile="exp"), [1.0, 10.0], n_max=30, reference=c.reference)
    one, ten = posed
    assert np.allclose(one.weights, 0.1, rtol=1e-12)  # R = 1: q = π = 1/K
    np.testing.assert_allclose(ten.weights, _progressive_last(runs["s-prog"]), rtol=1e-12)
    assert ten.counts == c.problem.counts
    with pytest.raises(LPMInputError, match="the run's Reference for a re-sampled template"):
        collapse_curve(c.problem.replace(profile="exp"), [10.0], n_max=30)
