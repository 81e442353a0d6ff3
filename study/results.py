"""The study's own result files (docs/results.md): results.csv, trials/*/metrics.jsonl, best_config.json,
study.json. Pure functions of the trial records, so they are tested without Ray.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mtan.checkpoint import atomic_write_text
from mtan.metrics import HIGHER_IS_BETTER, METRIC_KEYS

COMPLETED, STOPPED_EARLY, FAILED = "completed", "stopped_early", "failed"
STATES: tuple[str, ...] = (COMPLETED, STOPPED_EARLY, FAILED)
CONFIG_COLUMNS: tuple[str, ...] = ("weighting", "temperature", "weight_decay", "step_size", "gamma", "lr")


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial: its training configuration, its per-epoch rows, and why it failed, if it did."""

    trial_id: str
    config: Mapping[str, Any]  # the flat `TrainConfig`
    history: tuple[Mapping[str, Any], ...] = ()  # `metrics.jsonl` rows, in epoch order
    error: str | None = None
    point: Mapping[str, Any] = field(default_factory=dict)  # the searched values
    number: int = 0  # Optuna's trial number: the folder trials/trial_NNN/ and the seed offset


def write_json_atomic(path: Path, value: Any) -> None:
    """Write `value` as indented JSON to `path` atomically (NaN and inf become null)."""
    atomic_write_text(path, json.dumps(_json_safe(value), indent=2) + "\n")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _json_safe(value.item())
    return value


def trial_state(record: TrialRecord, max_epochs: int) -> str:
    """``failed`` with an error, ``completed`` after `max_epochs` epochs, else ``stopped_early``."""
    if record.error is not None:
        return FAILED
    return COMPLETED if len(record.history) >= max_epochs else STOPPED_EARLY


def _best(values: Sequence[float], higher_is_better: bool) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return math.nan
    return max(finite) if higher_is_better else min(finite)


def trial_row(record: TrialRecord, max_epochs: int) -> dict[str, Any]:
    """The results.csv row of one trial."""
    row: dict[str, Any] = {
        "trial": record.number,
        "trial_id": record.trial_id,
        "state": trial_state(record, max_epochs),
        "epochs": len(record.history),
        "error": record.error or "",
    }
    for name in CONFIG_COLUMNS:
        row[name] = record.config.get(name)
    if record.config.get("weighting") != "dwa":
        row["temperature"] = None
    last = record.history[-1] if record.history else {}
    for key in METRIC_KEYS:
        row[f"last_{key}"] = last.get(key, math.nan)
    for key in METRIC_KEYS:
        values = [r[key] for r in record.history if key in r]
        row[f"best_{key}"] = _best(values, HIGHER_IS_BETTER[key])
    return row


def results_table(records: Iterable[TrialRecord], max_epochs: int) -> pd.DataFrame:
    """results.csv as a DataFrame: one row per trial, in the order given."""
    rows = [trial_row(record, max_epochs) for record in records]
    columns = [
        "trial",
        "trial_id",
        "state",
        "epochs",
        "error",
        *CONFIG_COLUMNS,
        *(f"last_{k}" for k in METRIC_KEYS),
        *(f"best_{k}" for k in METRIC_KEYS),
    ]
    return pd.DataFrame(rows, columns=columns)


def best_trial_id(table: pd.DataFrame, metric: str, mode: str) -> str | None:
    """The trial with the best last value of `metric` among the completed trials (all trials if none
    completed); None when no trial has a value."""
    candidates = table[table["state"] == COMPLETED]
    if candidates[f"last_{metric}"].notna().sum() == 0:
        candidates = table[table["state"] != FAILED]
    values = candidates[f"last_{metric}"].dropna()
    if values.empty:
        return None
    index = values.idxmax() if mode == "max" else values.idxmin()
    return str(candidates.loc[index, "trial_id"])


def count_states(table: pd.DataFrame) -> dict[str, int]:
    """How many trials ended in each state (every state listed, 0 included)."""
    counts = table["state"].value_counts()
    return {state: int(counts.get(state, 0)) for state in STATES}


def write_results(
    exp_dir: Path,
    records: Sequence[TrialRecord],
    *,
    metric: str,
    mode: str,
    max_epochs: int,
    summary: Mapping[str, Any],
) -> pd.DataFrame:
    """Write results.csv, best_config.json and study.json into `exp_dir` (each trial's metrics.jsonl is in
    its folder already).

    `summary` is study.json's settings part (num_samples, hardware, versions, ...); this adds the
    counts by state and the epochs trained. Returns the results table.
    """
    table = results_table(records, max_epochs)
    atomic_write_text(exp_dir / "results.csv", table.to_csv(index=False))

    best_id = best_trial_id(table, metric, mode)
    if best_id is not None:
        best = next(r for r in records if r.trial_id == best_id)
        best_config = {
            "trial": best.number,
            "trial_id": best_id,
            "metric": metric,
            "mode": mode,
            "value": best.history[-1][metric],
            "config": dict(best.config),
            "metrics": dict(best.history[-1]),
            "point": dict(best.point),
        }
        write_json_atomic(exp_dir / "best_config.json", best_config)

    study = {
        **summary,
        "states": count_states(table),
        "epochs_trained": int(table["epochs"].sum()),
        "epochs_budget": int(summary["num_samples"]) * max_epochs,
        "best_trial_id": best_id,
    }
    write_json_atomic(exp_dir / "study.json", study)
    return table
