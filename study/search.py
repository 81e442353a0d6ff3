"""The Optuna searcher of the study, with ASHA-stopped trials told to Optuna as pruned.

Ray's ``OptunaSearch`` tells every trial that ended without error as COMPLETE with its last value, so a
trial that ASHA stopped after 1 of 10 epochs would count as a finished trial with a poor score. This
subclass tells such a trial as PRUNED (its per-epoch values stay in Optuna as intermediate values), so
the TPE sampler and the importance analysis see what happened.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from study.space import SearchSpace

logger = logging.getLogger(__name__)

EPOCH_KEY = "epoch"


class PruningOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that tells trials ended before `max_epochs` epochs without error as pruned."""

    def __init__(self, *args: Any, max_epochs: int, **kwargs: Any) -> None:
        self._max_epochs = max_epochs
        super().__init__(*args, **kwargs)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Tell Optuna the trial's end: complete, failed, or pruned when stopped early."""
        epochs = (result or {}).get(EPOCH_KEY)
        if error or epochs is None or epochs >= self._max_epochs or trial_id in self._completed_trials:
            super().on_trial_complete(trial_id, result=result, error=error)
            return
        ot_trial = self._ot_trials[trial_id]
        value = result.get(self.metric) if result else None
        try:
            # The stopping result reaches the searcher here, not through `on_trial_result`.
            if value is not None:
                ot_trial.report(value, epochs)
            self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
        except Exception as exc:  # as the base class: a bad value must not end the study
            logger.warning(exc)
        self._completed_trials.add(trial_id)


def journal_storage(path: Path) -> JournalStorage:
    """An Optuna journal file at `path` (``optuna-dashboard PATH`` opens it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def make_searcher(
    space: SearchSpace,
    *,
    metric: str,
    mode: str,
    max_epochs: int,
    study_name: str,
    journal: Path,
    seed: int,
    points: list[dict[str, Any]] | None = None,
) -> PruningOptunaSearch:
    """The study's searcher: TPE seeded with `seed`; `points` (default: the published ones) come first."""
    sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    return PruningOptunaSearch(
        space,
        metric=metric,
        mode=mode,
        points_to_evaluate=space.published_points() if points is None else points,
        sampler=sampler,
        study_name=study_name,
        storage=journal_storage(journal),
        max_epochs=max_epochs,
    )
