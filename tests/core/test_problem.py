import numpy as np
import pytest

from lpm import Problem
from lpm.core.errors import LPMInputError
from lpm.core.profiles import exp_counts, step_counts


def test_step_profile_is_fang_setting():
    p = Problem.from_profile(K=10, ratio=100)
    assert p.counts == (100.0,) * 5 + (1.0,) * 5
    assert p.majority == 5 and list(p.minority) == [5, 6, 7, 8, 9]
    assert (p.classifier, p.loss, p.E_W, p.E_H, p.budget, p.d) == ("learnable", "ce", 1.0, 5.0, "class-average", 10)
    np.testing.assert_allclose(p.weights.sum(), 1.0)
    np.testing.assert_allclose(p.weights[0] / p.weights[-1], 100.0)


def test_budget_defaults_follow_each_paper():
    assert Problem.from_profile(classifier="fixed-etf").budget == "per-sample"
    assert Problem.from_profile(classifier="fixed-random").budget == "per-sample"
    assert Problem.from_profile(classifier="learnable", budget="per-sample").budget == "per-sample"


def test_exponential_profile_matches_cifar10_lt():
    assert exp_counts(10, 100, 5000) == (5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50)
    assert step_counts(4, 10, majority=1, n_majority=500) == (500, 50, 50, 50)


def test_problem_is_frozen_and_hashable():
    p = Problem.from_profile()
    with pytest.raises(AttributeError):
        p.loss = "dr"
    assert hash(p) == hash(Problem.from_profile())
    assert p.replace(loss="dr").loss == "dr"


def test_fixed_classifier_rows():
    p = Problem.from_profile(K=6, classifier="fixed-etf", E_W=2.0, d=8, seed=4)
    W = p.fixed_classifier
    np.testing.assert_allclose(np.linalg.norm(W, axis=1) ** 2, 2.0, atol=1e-12)
    np.testing.assert_allclose(W.sum(0), 0.0, atol=1e-12)
    R = Problem.from_profile(K=6, classifier="fixed-random", E_W=2.0).fixed_classifier
    np.testing.assert_allclose(np.linalg.norm(R, axis=1) ** 2, 2.0, atol=1e-12)
    assert Problem.from_profile().fixed_classifier is None


@pytest.mark.parametrize("kwargs,message", [
    (dict(K=1), "The 'K' parameter must be an int >= 2. Got 1 instead."),
    (dict(ratio=0.5), "The 'ratio' parameter must be a number >= 1. Got 0.5 instead."),
    (dict(E_H=0), "The 'E_H' parameter must be a number >= 1e-08 and <= 1e+08. Got 0 instead."),
    (dict(E_W=-1), "The 'E_W' parameter must be a number >= 1e-08 and <= 1e+08. Got -1 instead."),
    (dict(loss="hinge"), "The 'loss' parameter must be one of 'ce', 'dr', 'dr-unscaled', 'mse', 'la', 'cdt', 'ldam', 'vs'. Got 'hinge' instead."),
    (dict(classifier="etf"),
     "The 'classifier' parameter must be one of 'learnable', 'fixed-etf', 'fixed-random'. Got 'etf' instead."),
    (dict(profile="zipf"), "The 'profile' parameter must be one of 'step', 'exp'. Got 'zipf' instead."),
    (dict(budget="sum"), "The 'budget' parameter must be one of 'per-sample', 'class-average', 'weight-decay', 'max-margin'. Got 'sum' instead."),
    (dict(K=10, d=5, classifier="fixed-etf"),
     "The 'd' parameter must be an int >= K-1 = 9 for a fixed simplex ETF with K=10. Got 5 instead."),
    (dict(K=4, majority=4), "The 'majority' parameter must be an int >= 1 and <= 3. Got 4 instead."),
])
def test_bad_input_messages(kwargs, message):
    with pytest.raises(LPMInputError) as err:
        Problem.from_profile(**kwargs)
    assert str(err.value) == message


def test_counts_must_match_and_be_positive():
    with pytest.raises(LPMInputError, match=r"The 'counts' parameter must be a list of at least 2 positive"):
        Problem.from_counts([10, 0, 3])
    from lpm.core.profiles import check_counts
    with pytest.raises(LPMInputError, match=r"must be a list of K=3 numbers"):
        check_counts([1, 2], num_classes=3)


@pytest.mark.parametrize("build, message", [
    (lambda: Problem.from_profile(K=10, ratio=100, E_W=1e308),
     "The 'E_W' parameter must be a number >= 1e-08 and <= 1e+08. Got 1e+308 instead."),
    (lambda: Problem.from_counts([5.0, 5.0], budget="weight-decay", lambda_W=1.0),
     "The 'lambda_H' parameter must be a number >= 1e-08 and <= 1e+08, given with budget='weight-decay' "
     "(the weight-decay coefficient). Got None instead."),
    (lambda: Problem.from_counts([5.0, 5.0], loss="dr", budget="weight-decay", lambda_W=1.0, lambda_H=1.0),
     "The 'loss' parameter must be 'ce' or 'mse' with budget='weight-decay' (DR's target sqrt(E_W E_H) is set "
     "by the norm budgets, theory.md §5). Got 'dr' instead."),
    (lambda: Problem.from_counts([5.0, 5.0], lambda_H=1.0),
     "The 'lambda_H' parameter must be left unset unless budget='weight-decay'. Got 1.0 instead."),
])
def test_extreme_and_inconsistent_values_are_refused(build, message):
    with pytest.raises(LPMInputError) as info:
        build()
    assert str(info.value) == message


def test_a_problem_too_large_for_memory_is_refused_before_allocating():
    """K = 100000 with a fixed ETF would allocate a 100000×100000 Gaussian: refused with an estimate."""
    from lpm import solve

    with pytest.raises(LPMInputError, match=r"^The 'K' parameter must be small enough to fit in memory: "
                                            r"K=100000 \(at least 10 float64 arrays of K × K\) needs about 745 GiB, "
                                            r"this machine has"):
        solve(Problem.from_profile(K=100000, ratio=10, classifier="fixed-etf"))
