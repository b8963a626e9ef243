"""Statistics over seeds (lpm.compare.statistics), against hand-computed cases."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lpm.core.errors import LPMInputError
from lpm.compare.statistics import (adjust_p_values, compare_arms, mean_interval, paired_difference,
                                    rank_correlation)


def test_mean_interval_by_hand():
    # 1, 2, 3, 4: mean 2.5, s = sqrt(5/3) = 1.290994, t_{0.975, 3} = 3.182446 (tables) -> half width 2.054260
    iv = mean_interval([1, 2, 3, 4])
    assert iv.n == 4 and iv.mean == 2.5
    np.testing.assert_allclose(iv.std, np.sqrt(5 / 3), rtol=1e-12)
    np.testing.assert_allclose([iv.low, iv.high], [2.5 - 2.054260, 2.5 + 2.054260], atol=1e-6)


def test_one_value_has_no_interval():
    iv = mean_interval([0.7])
    assert iv.mean == 0.7 and np.isnan(iv.low) and np.isnan(iv.high) and np.isnan(iv.std)


def test_paired_t_by_hand():
    # differences 1, 2, 3: mean 2, s = 1, t = 2 / (1/sqrt 3) = 3.4641, two-sided p(df=2) = 0.07418
    result = paired_difference([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(result.statistic, 2 * np.sqrt(3), rtol=1e-12)
    np.testing.assert_allclose(result.p_value, 0.0741799, atol=1e-6)
    assert result.difference.mean == 2.0


def test_equal_differences_have_no_t_test_and_identical_arms_no_wilcoxon_difference():
    assert np.isnan(paired_difference([2, 3, 4], [1, 2, 3]).p_value)
    assert paired_difference([1, 2, 3], [1, 2, 3], test="wilcoxon").p_value == 1.0


def test_holm_by_hand_and_bh_from_scipy():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, 2*0.03, 1*0.04 -> monotone 0.03, 0.06, 0.06
    np.testing.assert_allclose(adjust_p_values([0.01, 0.04, 0.03], "holm"), [0.03, 0.06, 0.06])
    # BH: 0.01*3/1, 0.03*3/2, 0.04*3/3 -> 0.03, 0.045, 0.04 -> step-up minimum: 0.03, 0.04, 0.04
    np.testing.assert_allclose(adjust_p_values([0.01, 0.04, 0.03], "bh"), [0.03, 0.04, 0.04])
    out = adjust_p_values([0.02, np.nan], "holm")
    assert out[0] == 0.02 and np.isnan(out[1])


def test_spearman_of_a_monotone_relation_is_one():
    rho, p = rank_correlation([1, 2, 3, 4, 5], [1, 4, 9, 16, 100])
    assert rho == pytest.approx(1.0) and p < 0.05


def test_compare_arms_pairs_by_seed_and_corrects_over_the_family():
    rows = []
    for ratio in (10, 100):
        for seed in range(4):
            rows.append({"ratio": ratio, "arm": "ce", "seed": seed, "acc": 0.5 + 0.01 * seed})
            rows.append({"ratio": ratio, "arm": "etf", "seed": seed, "acc": 0.5 + 0.01 * seed - 0.02 - 0.001 * seed**2})
    table = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # order must not matter
    out = compare_arms(table, "acc", baseline="ce", by=["ratio"])
    assert list(out["ratio"]) == [10, 100] and set(out["arm"]) == {"etf"}
    diffs = -0.02 - 0.001 * np.arange(4) ** 2
    np.testing.assert_allclose(out["difference"], diffs.mean(), rtol=1e-12)
    np.testing.assert_allclose(out["p_adjusted"], np.minimum(1, 2 * out["p_value"]), rtol=1e-12)
    assert (out["n"] == 4).all()


def test_bad_input_is_named():
    with pytest.raises(LPMInputError, match="'arm'"):
        paired_difference([1, 2], [1, 2, 3])
    with pytest.raises(LPMInputError, match="'method'"):
        adjust_p_values([0.1], "bonferroni")
    with pytest.raises(LPMInputError, match="'table'"):
        compare_arms(pd.DataFrame({"x": [1]}), "acc", baseline="ce")
