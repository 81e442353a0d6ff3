"""Harvesting a finished study from its own record: one `TrialRecord` per trial of the Optuna journal, in
the order of their numbers, with the history from the trial folder's ``metrics.jsonl`` (no Ray state)."""

from __future__ import annotations

import json
from typing import Any

import optuna
from optuna.trial import TrialState

from mtan.files import METRICS_FILE
from study.record import ERROR_FILE, TrialRecord
from study.search import RAY_TRIAL_ID
from study.settings import StudySettings
from study.space import TRIAL_NUMBER
from study.storage import TrialStore
from study.trainable import trial_config

NO_REASON = "the trial's process ended without a reason (see Ray's logs under STUDY/ray/)"
NOT_FINITE = "the objective's last value is not a finite number"


def read_history(store: TrialStore, number: int) -> list[dict[str, Any]]:
    """The ``metrics.jsonl`` rows of trial `number` (empty if it has none)."""
    text = store.read_text(number, METRICS_FILE) or ""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def collect_records(study: optuna.Study, store: TrialStore, settings: StudySettings) -> list[TrialRecord]:
    """The trials of a finished study, from the journal and their folders."""
    records = []
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        point = {**trial.params, TRIAL_NUMBER: trial.number}
        error = None
        if trial.state == TrialState.FAIL:
            reason = (store.read_text(trial.number, ERROR_FILE) or "").strip()
            error = reason or (NOT_FINITE if trial.user_attrs.get("epoch") is not None else NO_REASON)
        records.append(
            TrialRecord(
                number=trial.number,
                trial_id=str(trial.user_attrs.get(RAY_TRIAL_ID, "")),
                columns=settings.space.column_values(point, settings.max_epochs),
                config=trial_config(point, settings.base_config).to_flat(),
                history=tuple(read_history(store, trial.number)),
                error=error,
                point=point,
            )
        )
    return records
