"""Harvesting a finished Tune run: one `TrialRecord` per trial of the result grid, in the order the trials
were created, with its history read back from its last checkpoint."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from ray import tune

from study.record import TrialRecord
from study.settings import StudySettings
from study.space import TRIAL_NUMBER
from study.storage import read_history
from study.trainable import trial_config


def _creation_order(result: tune.Result) -> int:
    match = re.match(r"trial_(\d+)_", Path(result.path).name)
    return int(match.group(1)) if match else sys.maxsize


def _error_reason(error: BaseException) -> str:
    """One line saying why a trial failed: the original exception's type and first line."""
    cause = getattr(error, "cause", None) or error
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}".strip()


def _read_params(result: tune.Result) -> dict[str, Any]:
    """A trial's point from its ``params.json`` when it never reported (empty if there is none)."""
    path = f"{result.path.rstrip('/')}/params.json"
    try:
        with result.filesystem.open_input_stream(path) as stream:
            return json.loads(stream.read().decode("utf-8"))
    except (OSError, ValueError):
        return {}


def collect_records(grid: tune.ResultGrid, settings: StudySettings) -> list[TrialRecord]:
    """The finished trials of a Tune run, with their histories read from their last checkpoints."""
    records = []
    trial_settings = settings.trial_settings()
    space = settings.space
    for order, result in enumerate(sorted(grid, key=_creation_order)):
        trial_id = str(result.metrics.get("trial_id") or Path(result.path).name.rsplit("_", 1)[-1])
        history = read_history(result.checkpoint) if result.checkpoint is not None else []
        point = dict(result.config or _read_params(result))
        records.append(
            TrialRecord(
                number=int(point.get(TRIAL_NUMBER, order)),
                trial_id=trial_id,
                columns=space.column_values(point, settings.max_epochs),
                config=trial_config(point, trial_settings).to_flat() if "weighting" in point else {},
                history=tuple(history),
                error=_error_reason(result.error) if result.error is not None else None,
                point=point,
            )
        )
    return records
