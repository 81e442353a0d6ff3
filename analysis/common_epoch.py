"""Weightings compared at one budget: the study's trials at an epoch every compared trial reached.

ASHA stops trials at different epochs, so a trial's last value mixes its configuration with its budget
(an equal trial stopped at epoch 3 beside a DWA trial that trained 24). Here every trial that did not
fail counts with its value at the same epoch: the last one all of them reached. The best of more trials
is better by selection alone, so the methods' bests are compared only when each has as many trials.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from analysis.columns import metric_info
from analysis.tables import format_metric


def compared_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials that did not fail and trained at least one epoch."""
    return trials[(trials["state"] != "failed") & (trials["epochs"].fillna(0) > 0)]


def common_epoch(trials: pd.DataFrame) -> int | None:
    """The last epoch every compared trial reached; None when no trial qualifies."""
    compared = compared_trials(trials)
    return int(compared["epochs"].min()) if len(compared) else None


def trials_at_epoch(trials: pd.DataFrame, curves: pd.DataFrame, epoch: int) -> pd.DataFrame:
    """`trials` with each ``last_<metric>`` column the trial's value at `epoch` (from `curves`; NaN for a
    trial not compared, `compared_trials`) and ``epochs`` that epoch: the final-metric tables and figures,
    at one budget for every trial."""
    at = curves[curves["epoch"] == epoch].set_index("trial")
    compared = set(compared_trials(trials)["trial"].astype(int))
    numbers = trials["trial"].astype(int)
    numbers = numbers.where(numbers.isin(compared))
    shown = trials.copy()
    for column in [c for c in trials.columns if str(c).startswith("last_")]:
        metric = column.removeprefix("last_")
        values = at[metric] if metric in at.columns else pd.Series(dtype=float)
        shown[column] = numbers.map(values).astype(float)
    shown["epochs"] = shown["epochs"].where(numbers.isna(), epoch)
    return shown


def trials_per_weighting(trials: pd.DataFrame) -> dict[str, int]:
    """How many trials each weighting method ran (failed ones too: each was a try), in order of appearance."""
    counts = trials["weighting"].dropna().astype(str).value_counts(sort=False)
    return {str(weighting): int(n) for weighting, n in counts.items()}


def same_number_of_trials(trials: pd.DataFrame) -> bool:
    """Whether every weighting method ran as many trials (`--per-weighting N`), so that their bests
    compare."""
    return len(set(trials_per_weighting(trials).values())) <= 1


def weightings_at_epoch(trials: pd.DataFrame, curves: pd.DataFrame, metric: str, epoch: int) -> pd.DataFrame:
    """Per weighting, over the compared trials at `epoch`: n, the best value and its trial, the median.
    Rows in the order the weightings first appear in `trials`."""
    compared = compared_trials(trials)
    at = curves[(curves["epoch"] == epoch) & curves["trial"].isin(compared["trial"])]
    values = at.set_index("trial")[metric].dropna()
    higher = metric_info(metric).higher_is_better
    rows = []
    for weighting in dict.fromkeys(compared["weighting"].astype(str)):
        numbers = compared.loc[compared["weighting"].astype(str) == weighting, "trial"]
        group = values[values.index.isin(numbers)]
        if group.empty:
            continue
        best = int(group.idxmax() if higher else group.idxmin())
        rows.append(
            {
                "weighting": weighting,
                "n": len(group),
                "best": group[best],
                "best trial": best,
                "median": float(group.median()),
            }  # fmt: skip
        )
    return pd.DataFrame(rows, columns=["weighting", "n", "best", "best trial", "median"])


def common_epoch_sentence(
    table: pd.DataFrame,
    metric: str,
    epoch: int,
    total: int,
    names: Mapping[int, str] | None = None,
    same: bool = True,
) -> str:
    """'At epoch 3, which all 20 trials that did not fail reached (score): equal best 0.310 (trial 4),
    median 0.200, n = 6; dwa best ...'; when the methods ran unequal numbers of trials (not `same`) only
    the medians and n, and a word on why. `names` may name a trial otherwise than by its number."""
    names = names or {}
    parts: list[str] = []
    for _, row in table.iterrows():
        best = names.get(row["best trial"], row["best trial"])
        part = f"{row['weighting']} "
        if same:
            part += f"best {format_metric(metric, row['best'])} (trial {best}), "
        parts.append(part + f"median {format_metric(metric, row['median'])}, n = {row['n']}")
    sentence = f"At epoch {epoch}, which all {total} trials that did not fail reached ({metric}): "
    sentence += "; ".join(parts)
    if not same:
        sentence += (
            " (unequal numbers of trials, so their bests are not compared: the best of more tries is "
            "higher by selection alone)"
        )
    return sentence
