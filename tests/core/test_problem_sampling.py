"""Problem.sampling: a re-sampled run's class-sampling probabilities q enter the objective as
weights q_k ω_k, normalised (theory.md §14: re-sampling is re-weighting in the LPM)."""
import numpy as np
import pytest

from lpm import Problem
from lpm.core.errors import LPMInputError
from lpm.core.solvers import get_solver

COUNTS = (6.0, 6.0, 3.0, 1.0)


def test_sampling_weights_at_hand_computed_counts():
    q = (0.3, 0.3, 0.25, 0.15)
    p = Problem.from_counts(COUNTS, sampling=q)
    np.testing.assert_allclose(p.weights, q, rtol=1e-15)
    # with inverse class weights ω ∝ 1/n: q_k/n_k normalised
    w = np.array(q) / np.array(COUNTS)
    np.testing.assert_allclose(Problem.from_counts(COUNTS, sampling=q, class_weights="inverse").weights,
                               w / w.sum(), rtol=1e-14)
    # q = π is instance sampling; q = 1/K is inverse re-weighting, one objective
    pi = np.array(COUNTS) / sum(COUNTS)
    np.testing.assert_allclose(Problem.from_counts(COUNTS, sampling=tuple(2 * pi)).weights, pi, rtol=1e-15)
    np.testing.assert_allclose(Problem.from_counts(COUNTS, sampling=(1, 1, 1, 1)).weights,
                               Problem.from_counts(COUNTS, class_weights="inverse").weights, rtol=1e-14)
    assert Problem.from_counts(COUNTS, sampling=(2, 2, 2, 2)).describe()["sampling"] == [0.25] * 4


def test_sampled_and_reweighted_problems_have_one_certified_optimum():
    sampled = Problem.from_counts(COUNTS, sampling=(1, 1, 1, 1), E_H=3.0)
    weighted = Problem.from_counts(COUNTS, class_weights="inverse", E_H=3.0)
    a, b = get_solver("nuclear").run(sampled), get_solver("nuclear").run(weighted)
    assert a.certificate.relative_gap < 1e-8
    assert a.objective == pytest.approx(b.objective, rel=1e-9)


def test_bad_sampling_is_refused():
    with pytest.raises(LPMInputError) as err:
        Problem.from_counts(COUNTS, sampling=(0.5, 0.5))
    assert str(err.value) == ("The 'sampling' parameter must be positive finite class-sampling probabilities, one "
                              "per class (K = 4). Got [0.5, 0.5] instead.")
    with pytest.raises(LPMInputError, match="must be probabilities equal for classes of equal count"):
        Problem.from_counts(COUNTS, sampling=(0.4, 0.2, 0.2, 0.2))
    with pytest.raises(LPMInputError, match="positive finite class-sampling probabilities"):
        Problem.from_counts(COUNTS, sampling=(0.5, 0.5, 0.0, 0.0))
