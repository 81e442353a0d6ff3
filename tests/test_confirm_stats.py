"""Confidence intervals and paired comparisons against numbers worked out by hand for 3 seeds.

With 2 degrees of freedom the Student t distribution has the closed form F(t) = 1/2 + t / (2 sqrt(2 + t^2)),
so everything below can be checked with a pocket calculator:
- the 97.5 % quantile solves t / sqrt(2 + t^2) = 0.95: t^2 = 2 * 0.9025 / 0.0975, t = 4.302653;
- a two-sided p-value is 1 - |t| / sqrt(2 + t^2).

Holm's adjustment is checked against the step-down rule worked by hand and against a naive loop.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from study.reproduce.stats import comparisons_table, holm, paired_comparison, summary_table, t_interval

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
    columns = ["comparison", "metric", "mean_diff", "ci_low", "ci_high", "p_value", "p_holm", "n"]
    assert list(table.columns) == columns
    row = table.iloc[0]
    assert row["mean_diff"] == pytest.approx(0.02) and row["p_value"] == pytest.approx(0.074180, abs=1e-6)
    assert row["p_holm"] == pytest.approx(row["p_value"])  # a family of one is not adjusted


def test_holm_on_three_p_values_worked_by_hand():
    # p = 0.01, 0.04, 0.03 (m = 3); in increasing order 0.01, 0.03, 0.04 times 3, 2, 1: 0.03, 0.06, 0.04;
    # step-down keeps them non-decreasing: 0.03, 0.06, max(0.06, 0.04) = 0.06; back in the given order:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    # at 0.05 only the first is significant, though 0.03 and 0.04 are below 0.05 unadjusted
    # times m - j + 1 capped at 1: 0.5 * 3 -> 1, 0.6 * 2 -> 1, 0.7 * 1 -> max(1, 0.7) = 1
    assert holm([0.7, 0.5, 0.6]) == pytest.approx([1.0, 1.0, 1.0])


def test_holm_leaves_an_untested_comparison_out_of_the_family():
    # m = 3, not 4: the same as above with the NaN left in place
    adjusted = holm([0.01, math.nan, 0.04, 0.03])
    assert math.isnan(adjusted[1])
    assert [adjusted[0], adjusted[2], adjusted[3]] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(holm([math.nan])[0])


def naive_holm(p_values: list[float]) -> list[float]:
    """Holm 1979 by its definition: p_(i) adjusted = max_{j <= i} min(1, (m - j + 1) p_(j))."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def test_the_family_is_the_comparisons_of_one_metric():
    # three configurations paired with a reference on four seeds: per metric, the reference's values and
    # each configuration's differences from it (different p-values in each metric)
    reference = {"miou": [0.50, 0.52, 0.51, 0.53], "abs_err": [0.10, 0.11, 0.12, 0.10]}
    differences = {
        "a": {"miou": [0.010, 0.020, 0.015, 0.012], "abs_err": [0.001, -0.002, 0.003, 0.000]},
        "b": {"miou": [0.010, -0.010, 0.020, 0.000], "abs_err": [0.010, 0.012, 0.011, 0.009]},
        "c": {"miou": [0.030, 0.031, 0.029, 0.035], "abs_err": [0.000, 0.005, -0.001, 0.002]},
    }
    rows = [{"config": "ref", "seed": k, **{m: v[k] for m, v in reference.items()}} for k in range(4)]
    for config, shift in differences.items():
        rows += [
            {"config": config, "seed": k, **{m: v[k] + shift[m][k] for m, v in reference.items()}}
            for k in range(4)
        ]
    pairs = [(f"{c} vs ref", c, "ref") for c in differences]
    table = comparisons_table(pd.DataFrame(rows), pairs, ["miou", "abs_err"])
    for _, family in table.groupby("metric"):
        assert len(family) == 3
        assert family["p_holm"].tolist() == pytest.approx(naive_holm(family["p_value"].tolist()))
    by_metric = table.set_index(["metric", "comparison"])["p_holm"]
    assert by_metric["miou"].tolist() != pytest.approx(by_metric["abs_err"].tolist())
    # adjusted over 3, not over all 6 comparisons of the table
    assert by_metric["miou"].tolist() != pytest.approx(naive_holm(table["p_value"].tolist())[::2])


def test_the_printed_family_counts_the_comparisons_holm_adjusted_over():
    from study.reproduce.cli import format_summary

    # b has one seed of the score: its comparison has no p-value and is not in Holm's family (m = 1)
    seeds = pd.DataFrame(
        {"config": ["a", "a", "b", "c", "c"], "seed": [1, 2, 1, 1, 2], "score": [0.5, 0.6, 0.4, 0.3, 0.35]}
    )
    summary = summary_table(seeds, ["score"])
    comparisons = comparisons_table(seeds, [("a vs b", "a", "b"), ("a vs c", "a", "c")], ["score"])
    assert comparisons["p_value"].isna().tolist() == [True, False]
    text = format_summary(summary, comparisons, "score")
    assert "Holm's adjustment over the 1 comparison of each metric" in text
