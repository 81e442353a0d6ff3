"""The Pareto front of a multi-objective study (docs/study.md, "Several objectives at once"): the
objectives and their directions (from `mtan.metrics.METRICS`), which points no other point dominates, the
hypervolume a front dominates, and which retrained configurations stay non-dominated once their 95 %
intervals are taken into account. Pure (numpy, pandas, moocore): the driver, the confirmation and the
analysis share it.

A point dominates another when it is at least as good in every objective and better in one; the front is
the points no other point dominates, so two identical points are both on it. The front and the hypervolume
are moocore's (`is_nondominated`, `hypervolume`: the C library of López-Ibáñez et al. behind the
hypervolume figures of the EMO literature), not computed here by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import moocore
import numpy as np
import pandas as pd

from mtan.errors import UserError
from mtan.metrics import HIGHER_IS_BETTER, METRIC_KEYS, multitask_score


def parse_objectives(text: str) -> tuple[str, ...]:
    """The metrics of ``--objectives a,b,...``, in that order; `UserError` naming the flag for an unknown
    metric, a metric named twice, or fewer than two (a single objective is ``--metric``)."""
    keys = tuple(key.strip() for key in text.split(","))
    unknown = [key for key in keys if key not in METRIC_KEYS]
    if unknown:
        raise UserError(
            f"--objectives: unknown metric {unknown[0]!r}; each must be one of {', '.join(METRIC_KEYS)}"
        )
    repeated = [key for key in keys if keys.count(key) > 1]
    if repeated:
        raise UserError(f"--objectives names {repeated[0]} twice; give each metric once")
    if len(keys) < 2:
        raise UserError(
            f"--objectives needs two or more metrics, got {text!r} (a single objective is --metric)"
        )
    return keys


def maximised(objectives: Sequence[str]) -> list[bool]:
    """Whether each objective is maximised: its metric's direction in `mtan.metrics.METRICS`."""
    return [HIGHER_IS_BETTER[key] for key in objectives]


def directions(objectives: Sequence[str]) -> list[str]:
    """Each objective's direction as Optuna names it (``maximize`` / ``minimize``)."""
    return ["maximize" if up else "minimize" for up in maximised(objectives)]


def non_dominated(points: np.ndarray, maximise: Sequence[bool]) -> np.ndarray:
    """For each row of `points` (one point, a column per objective): whether no other row dominates it.
    A row with a missing or infinite value is never on the front and dominates nothing."""
    points = np.asarray(points, dtype=float).reshape(len(points), len(maximise))
    usable = np.isfinite(points).all(axis=1)
    front = np.zeros(len(points), dtype=bool)
    if usable.any():
        front[usable] = moocore.is_nondominated(points[usable], maximise=list(maximise), keep_weakly=True)
    return front


def pareto_column(
    table: pd.DataFrame, objectives: Sequence[str], eligible: pd.Series, prefix: str = "tail_"
) -> pd.Series:
    """results.csv's ``pareto``: True for the `eligible` rows (the completed trials) that no other
    eligible row dominates in the columns `prefix` + objective."""
    front = pd.Series(False, index=table.index, name="pareto")
    rows = table.loc[eligible.to_numpy(dtype=bool)]
    if len(rows):
        points = rows[[f"{prefix}{key}" for key in objectives]].to_numpy(dtype=float)
        front.loc[rows.index] = non_dominated(points, maximised(objectives))
    return front


def reference_point(baselines: Mapping[str, float], objectives: Sequence[str]) -> list[float]:
    """The point the hypervolume is measured from: the trivial predictors' value of each objective
    (baselines.json: the majority class everywhere, the mean depth everywhere; their score is 0 by the
    score's definition), which every trial that learnt anything beats; a trial worse than them in an
    objective adds nothing to the hypervolume."""
    trivial = {**baselines, "score": multitask_score(baselines, baselines)}
    return [float(trivial[key]) for key in objectives]


def hypervolume(points: np.ndarray, reference: Sequence[float], maximise: Sequence[bool]) -> float:
    """The hypervolume of `points` (rows, a column per objective) against `reference` (moocore): the
    volume of objective space that some point dominates and that dominates the reference; rows with a
    missing value are left out, a point not better than the reference in every objective adds nothing."""
    points = np.asarray(points, dtype=float).reshape(-1, len(maximise))
    points = points[np.isfinite(points).all(axis=1)]
    if not len(points):
        return 0.0
    return float(moocore.hypervolume(points, ref=list(reference), maximise=list(maximise)))


HYPERVOLUME_COLUMNS = ("completed", "trial", "front_size", "hypervolume")


def hypervolume_history(
    completed: Sequence[tuple[int, Sequence[float]]], reference: Sequence[float], maximise: Sequence[bool]
) -> pd.DataFrame:
    """hypervolume.csv: after each of the `completed` trials ((number, objective values), in the order
    they completed), how many had completed, which one it was, the size of the front of those so far and
    its hypervolume against `reference`."""
    rows: list[tuple[int, int, int, float]] = []
    values = np.asarray([v for _, v in completed], dtype=float).reshape(-1, len(maximise))
    for count, (number, _) in enumerate(completed, start=1):
        so_far = values[:count]
        front = so_far[non_dominated(so_far, maximise)]
        rows.append((count, int(number), len(front), hypervolume(front, reference, maximise)))
    return pd.DataFrame(rows, columns=list(HYPERVOLUME_COLUMNS))


def interval_dominated(summary: pd.DataFrame, objectives: Sequence[str]) -> dict[str, list[str]]:
    """Each configuration of a confirmation's summary.csv (``config``, ``metric``, ``ci_low``,
    ``ci_high``) -> the configurations that dominate it once intervals count: another configuration
    dominates it when, in every objective, its whole 95 % interval lies on the better side of this one's
    whole interval (no overlap). A configuration without an interval (one seed) dominates nothing and is
    dominated by nothing. Those with an empty list stay non-dominated."""
    intervals: dict[str, dict[str, tuple[float, float]]] = {}
    for row in summary.itertuples():
        if row.metric in objectives:
            intervals.setdefault(str(row.config), {})[str(row.metric)] = (
                float(row.ci_low),
                float(row.ci_high),
            )
    up = dict(zip(objectives, maximised(objectives), strict=True))

    def better(a: tuple[float, float], b: tuple[float, float], key: str) -> bool:
        return a[0] > b[1] if up[key] else a[1] < b[0]  # NaN compares False: no interval, no claim

    dominated: dict[str, list[str]] = {}
    for name, mine in intervals.items():
        dominated[name] = [
            other
            for other, theirs in intervals.items()
            if other != name
            and all(
                key in mine and key in theirs and better(theirs[key], mine[key], key) for key in objectives
            )
        ]
    return dominated
