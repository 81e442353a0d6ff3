"""Confidence intervals and paired comparisons against numbers worked out by hand for 3 seeds.

With 2 degrees of freedom the Student t distribution has the closed form F(t) = 1/2 + t / (2 sqrt(2 + t^2)),
so everything below can be checked with a pocket calculator:
- the 97.5 % quantile solves t / sqrt(2 + t^2) = 0.95: t^2 = 2 * 0.9025 / 0.0975, t = 4.302653;
- a two-sided p-value is 1 - |t| / sqrt(2 + t^2).
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from study.reproduce.stats import comparisons_table, paired_comparison, summary_table, t_interval

T_975_DF2 = math.sqrt(2 * 0.9025 / 0.0975)  # 4.302653


def test_the_closed_form_quantile():
    assert T_975_DF2 == pytest.approx(4.302653, abs=1e-6)


def test_a_95_percent_interval_of_three_seeds():
    # 0.52, 0.55, 0.58: mean 0.55; deviations -0.03, 0, 0.03; std = sqrt(0.0018 / 2) = 0.03
    # half width = 4.302653 * 0.03 / sqrt(3) = 0.074524
    interval = t_interval([0.52, 0.55, 0.58])
    assert interval.mean == pytest.approx(0.55)
    assert interval.std == pytest.approx(0.03)
    assert (interval.low, interval.high) == pytest.approx((0.55 - 0.074524, 0.55 + 0.074524), abs=1e-6)
    assert interval.n == 3


def test_a_paired_comparison_of_three_seeds():
    # differences a - b = 0.01, 0.02, 0.03: mean 0.02, std 0.01, standard error 0.01 / sqrt(3)
    # t = 0.02 / (0.01 / sqrt(3)) = 2 sqrt(3) = 3.464102; p = 1 - t / sqrt(2 + t^2) = 1 - 2 sqrt(3) / sqrt(14)
    #   = 1 - 0.925820 = 0.074180
    # interval = 0.02 +/- 4.302653 * 0.01 / sqrt(3) = 0.02 +/- 0.024841
    result = paired_comparison([0.52, 0.55, 0.58], [0.51, 0.53, 0.55])
    assert result.mean_diff == pytest.approx(0.02)
    assert result.p_value == pytest.approx(0.074180, abs=1e-6)
    assert (result.low, result.high) == pytest.approx((0.02 - 0.024841, 0.02 + 0.024841), abs=1e-6)
    assert result.n == 3


def test_too_few_seeds_or_no_variation_give_nan_not_a_number_that_looks_real():
    one = t_interval([0.5])
    assert one.mean == 0.5 and math.isnan(one.std) and math.isnan(one.low) and one.n == 1
    same = paired_comparison([0.5, 0.6], [0.4, 0.5])  # the differences do not vary
    assert same.mean_diff == pytest.approx(0.1) and math.isnan(same.p_value)
    with pytest.raises(ValueError, match="differ in length"):
        paired_comparison([0.5, 0.6], [0.4])


def test_tables_pair_by_seed_whatever_the_row_order():
    seeds = pd.DataFrame(
        {
            "config": ["t7", "paper", "t7", "paper", "paper", "t7"],
            "seed": [20, 22, 21, 20, 21, 22],
            "miou": [0.52, 0.55, 0.55, 0.51, 0.53, 0.58],
        }
    )
    summary = summary_table(seeds, ["miou"]).set_index("config")
    assert list(summary.columns) == ["metric", "mean", "std", "ci_low", "ci_high", "n"]
    assert summary.loc["t7", "mean"] == pytest.approx(0.55)
    assert summary.loc["t7", "ci_high"] == pytest.approx(0.55 + 0.074524, abs=1e-6)
    assert summary.loc["paper", "n"] == 3
    table = comparisons_table(seeds, [("t7 vs paper", "t7", "paper")], ["miou"])
    assert list(table.columns) == ["comparison", "metric", "mean_diff", "ci_low", "ci_high", "p_value", "n"]
    row = table.iloc[0]
    assert row["mean_diff"] == pytest.approx(0.02) and row["p_value"] == pytest.approx(0.074180, abs=1e-6)
