"""Weightings compared at one budget: the study's trials at an epoch every compared trial reached.

ASHA stops trials at different epochs, so a trial's last value mixes its configuration with its budget
(an equal trial stopped at epoch 3 beside a DWA trial that trained 24). Here every trial that did not
fail counts with its value at the same epoch: the last one all of them reached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
    table: pd.DataFrame, metric: str, epoch: int, total: int, names: Mapping[int, str] | None = None
) -> str:
    """'At epoch 3, which all 20 trials that did not fail reached: equal best 0.310 (trial 4), median
    0.200, n = 6; dwa best ...'; `names` may name a trial otherwise than by its number."""
    names = names or {}
    parts: Sequence[str] = [
        f"{row['weighting']} best {format_metric(metric, row['best'])} "
        f"(trial {names.get(row['best trial'], row['best trial'])}), median "
        f"{format_metric(metric, row['median'])}, n = {row['n']}"
        for _, row in table.iterrows()
    ]
    return f"At epoch {epoch}, which all {total} trials that did not fail reached ({metric}): " + "; ".join(
        parts
    )
