"""The tables a confirmation writes under ``RESULTS_DIR/reproduce/`` (docs/results.md), from its runs'
per-seed values: configs.csv, seeds.csv with each configuration's Delta_m against the single-task runs of
the same seed, summary.csv and comparisons.csv. Pure functions (no Ray).

Delta_m (Maninis et al. 2019, Eq. 4; `mtan.metrics.delta_m`) is taken seed by seed: configuration c on
seed s against the single-task runs on seed s (segmentation metrics from ``stl_segmentation``, depth from
``stl_depth``), each run counted with its mean over its last 10 epochs. Its mean over the seeds, its
interval and the paired differences between configurations then treat it like any other metric, so the
comparisons are paired over the seeds twice: the baselines and the configurations share each seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from mtan.metrics import DELTA_M_KEYS, METRIC_KEYS, delta_m, metric, tail_mean
from study.record import COMPARISONS_CSV, CONFIGS_CSV, SEEDS_CSV, SUMMARY_CSV
from study.reproduce.plan import ConfirmationPlan, configs_table
from study.reproduce.stats import comparisons_table, summary_table

# Delta_m's column in seeds.csv and its metric name in summary.csv and comparisons.csv.
DELTA_M = "delta_m"
# Every metric of the per-seed table: the runs' own, then Delta_m.
TABLE_METRICS: tuple[str, ...] = (*METRIC_KEYS, DELTA_M)


def seeds_row(name: str, seed: int, history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A seeds.csv row: the run's epochs and each metric's mean over its last 10 epochs (NaN for a metric
    the run does not have, such as the other task's of a single-task run)."""
    tail = tail_mean(history)
    return {
        "config": name,
        "seed": seed,
        "epochs": len(history),
        **{k: tail.get(k, math.nan) for k in METRIC_KEYS},
    }


def single_task_reference(plan: ConfirmationPlan) -> dict[str, str]:
    """Each metric of Delta_m -> the single-task configuration whose value is its baseline: the one
    trained on the metric's task (`mtan.metrics.METRICS`). A metric without one is left out."""
    of_task = {candidate.single_task: candidate.name for candidate in plan.single_task}
    return {key: of_task[metric(key).task] for key in DELTA_M_KEYS if metric(key).task in of_task}


def single_task_values(per_seed: pd.DataFrame, reference: Mapping[str, str]) -> pd.DataFrame:
    """The baseline of each seed (index) and metric of Delta_m (columns): the value of the single-task
    configuration `reference` names for it on that seed; NaN where that run is missing."""
    seeds = pd.Index(sorted(set(per_seed["seed"])), name="seed")
    return pd.DataFrame(
        {
            key: per_seed[per_seed["config"] == reference.get(key)].set_index("seed")[key].reindex(seeds)
            for key in DELTA_M_KEYS
        },
        index=seeds,
        dtype=float,
    )


def relative_change(values: Mapping[str, float], baseline: Mapping[str, float]) -> float:
    """`mtan.metrics.delta_m`, NaN where it is undefined (a baseline value of 0 has no relative change)."""
    try:
        return delta_m(values, baseline)
    except ValueError:
        return math.nan


def delta_m_per_seed(per_seed: pd.DataFrame, reference: Mapping[str, str]) -> pd.Series:
    """Each row's Delta_m in percent (lower is better) against the single-task runs of its seed; NaN for
    the single-task rows themselves and where a baseline is missing or NaN."""
    baselines = single_task_values(per_seed, reference)
    single_task = set(reference.values())
    values = [
        math.nan
        if row["config"] in single_task
        else relative_change({k: row[k] for k in DELTA_M_KEYS}, baselines.loc[row["seed"]].to_dict())
        for _, row in per_seed.iterrows()
    ]
    return pd.Series(values, index=per_seed.index, name=DELTA_M, dtype=float)


def confirmation_tables(plan: ConfirmationPlan, per_seed: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Every table of the confirmation by file name, from its runs' rows (`seeds_row`, in the plan's
    order): seeds.csv gains Delta_m; summary.csv has every metric and Delta_m of every configuration;
    comparisons.csv the plan's pairs in every metric and Delta_m (each its own family for Holm)."""
    seeds = per_seed.assign(**{DELTA_M: delta_m_per_seed(per_seed, single_task_reference(plan))})
    return {
        CONFIGS_CSV: configs_table(plan.trained),
        SEEDS_CSV: seeds,
        SUMMARY_CSV: summary_table(seeds, TABLE_METRICS),
        COMPARISONS_CSV: comparisons_table(seeds, plan.pairs, TABLE_METRICS),
    }
