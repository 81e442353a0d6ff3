"""Statistics of a confirmation on fresh seeds: Student-t intervals of each configuration's mean and
paired comparisons between configurations trained on the same seeds, their p-values adjusted for
multiple comparisons by Holm's step-down method. Pure functions of the per-seed table (no Ray); the
distributions come from scipy.stats, the adjustment from statsmodels.

The per-seed table has one row per (configuration, seed): columns ``config``, ``seed`` and one column
per metric (a run's value, e.g. its mean over the last 10 epochs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

CONFIDENCE = 0.95
# A comparison is significant when its Holm-adjusted p-value is below this (the family-wise error rate).
SIGNIFICANCE = 0.05
SUMMARY_COLUMNS = ("config", "metric", "mean", "std", "ci_low", "ci_high", "n")
COMPARISON_COLUMNS = ("comparison", "metric", "mean_diff", "ci_low", "ci_high", "p_value", "p_holm", "n")


@dataclass(frozen=True)
class Interval:
    """A sample's mean with its sample standard deviation (ddof 1) and Student-t confidence interval."""

    mean: float
    std: float
    low: float
    high: float
    n: int


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """mean +/- t_{(1+confidence)/2, n-1} * std / sqrt(n); NaN std and interval below two values, and
    an empty interval (low = high = mean) when all values are equal."""
    sample = np.asarray(values, dtype=float)
    n = len(sample)
    mean = float(sample.mean()) if n else math.nan
    if n < 2:
        return Interval(mean, math.nan, math.nan, math.nan, n)
    std = float(sample.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return Interval(mean, std, mean - half, mean + half, n)


@dataclass(frozen=True)
class PairedComparison:
    """a - b paired over seeds: the mean difference, its Student-t interval and the paired t-test's
    two-sided p-value."""

    mean_diff: float
    low: float
    high: float
    p_value: float
    n: int


def paired_comparison(
    a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE
) -> PairedComparison:
    """The paired comparison of `a` and `b` (same seeds, same order); NaN p-value below two pairs or
    when the differences do not vary."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    interval = t_interval(differences, confidence)
    p_value = math.nan
    if interval.n >= 2 and interval.std > 0:
        p_value = float(stats.ttest_rel(np.asarray(a, float), np.asarray(b, float)).pvalue)
    return PairedComparison(interval.mean, interval.low, interval.high, p_value, interval.n)


def summary_table(seeds: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """summary.csv: per configuration (in order of appearance) and metric, the mean, sample std, 95 %
    Student-t interval and n."""
    rows = []
    for config, group in seeds.groupby("config", sort=False):
        for metric in metrics:
            i = t_interval(group[metric].dropna().to_numpy())
            rows.append((config, metric, i.mean, i.std, i.low, i.high, i.n))
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def paired_values(seeds: pd.DataFrame, a: str, b: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """`metric` of configurations `a` and `b` on the seeds both have a value for, in seed order (none when
    either has no value on any seed, e.g. a Delta_m without its single-task runs)."""
    wide = seeds.pivot_table(index="seed", columns="config", values=metric, aggfunc="first", dropna=False)
    pairs = wide.reindex(columns=[a, b]).dropna().sort_index()
    return pairs[a].to_numpy(), pairs[b].to_numpy()


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of one family of p-values (Holm 1979): the i-th smallest of m becomes
    max over j <= i of min(1, (m - j + 1) p_(j)). A NaN p-value (no test) stays NaN and is not counted
    in m."""
    values = np.asarray(p_values, dtype=float)
    adjusted = np.full(values.shape, math.nan)
    tested = ~np.isnan(values)
    if tested.any():
        adjusted[tested] = multipletests(values[tested], method="holm")[1]
    return adjusted


def family_note(comparisons: int) -> str:
    """How the comparisons are tested, in words, for `comparisons` comparisons of each metric."""
    plural = "" if comparisons == 1 else "s"
    return (
        f"paired t-tests over the seeds; Holm's adjustment over the {comparisons} comparison{plural} of "
        "each metric; "
        f"significant: Holm p < {SIGNIFICANCE:g}"
    )


def comparisons_table(
    seeds: pd.DataFrame, comparisons: Sequence[tuple[str, str, str]], metrics: Sequence[str]
) -> pd.DataFrame:
    """comparisons.csv: for each (name, a, b) and metric, a - b paired over the seeds; ``p_holm`` adjusts
    ``p_value`` over the family of all comparisons of the same metric."""
    rows = []
    for name, a, b in comparisons:
        for metric in metrics:
            result = paired_comparison(*paired_values(seeds, a, b, metric))
            rows.append((name, metric, result.mean_diff, result.low, result.high, result.p_value, result.n))
    table = pd.DataFrame(rows, columns=[c for c in COMPARISON_COLUMNS if c != "p_holm"])
    table.insert(COMPARISON_COLUMNS.index("p_holm"), "p_holm", holm_by_metric(table))
    return table


def holm_by_metric(comparisons: pd.DataFrame) -> pd.Series:
    """``p_value`` adjusted by Holm's method over the family of the comparisons of each metric."""
    family = comparisons.groupby("metric", sort=False)["p_value"]
    return family.transform(lambda p_values: holm(p_values.to_numpy())).astype(float)
