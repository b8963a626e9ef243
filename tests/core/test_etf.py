import numpy as np
import pytest

from lpm.core.errors import LPMInputError
from lpm.core.etf import check_etf, etf_gram, random_orthonormal, simplex_etf


@pytest.mark.parametrize("K,d", [(2, 2), (5, 5), (10, 10), (10, 17), (7, 6), (10, 9), (3, 40)])
@pytest.mark.parametrize("seed", [None, 0, 3])
def test_simplex_etf_properties(K, d, seed):
    M = simplex_etf(K, d, seed)
    assert M.shape == (d, K)
    np.testing.assert_allclose(np.linalg.norm(M, axis=0), 1.0, atol=1e-12)
    G = M.T @ M
    off = G[~np.eye(K, dtype=bool)]
    np.testing.assert_allclose(off, -1.0 / (K - 1), atol=1e-12)
    np.testing.assert_allclose(M.sum(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(G, etf_gram(K), atol=1e-12)
    assert check_etf(M).ok(1e-12)


def test_seed_rotates_and_is_reproducible():
    A, B, C = simplex_etf(6, 9, 1), simplex_etf(6, 9, 1), simplex_etf(6, 9, 2)
    np.testing.assert_array_equal(A, B)
    assert np.abs(A - C).max() > 1e-3


def test_random_orthonormal_is_orthonormal_and_uniform_in_sign():
    Q = random_orthonormal(8, 5, 0)
    np.testing.assert_allclose(Q.T @ Q, np.eye(5), atol=1e-12)
    # Haar measure: the mean of the (0,0) entry over many draws is ~0 (sign fix).
    firsts = [random_orthonormal(3, 3, s)[0, 0] for s in range(2000)]
    assert abs(np.mean(firsts)) < 0.05


def test_checker_detects_non_etf():
    M = simplex_etf(5, 5, 0)
    M[:, 0] *= 1.5
    assert not check_etf(M).ok(1e-3)
    assert check_etf(np.eye(4)).cosine_error == pytest.approx(1 / 3)


def test_d_too_small_is_a_clear_error():
    with pytest.raises(LPMInputError) as err:
        simplex_etf(10, 8)
    assert str(err.value) == ("The 'd' parameter must be an int >= K-1 = 9 for a simplex ETF with K=10. "
                              "Got 8 instead.")
