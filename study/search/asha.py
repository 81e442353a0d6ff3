"""ASHA that records which trials it stopped and starts from the rungs of a study's earlier driver runs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler


class RecordingASHA(ASHAScheduler):
    """ASHA that records which trials it stopped, so the searcher can tell them as pruned (and an
    interrupted trial, which Tune also ends, is not mistaken for one), and that starts from the rungs of
    the study's earlier driver runs (`ended`: the values per epoch of the trials that ended then, as in
    the journal), so a resumed study stops trials as one that was never interrupted would."""

    def __init__(self, *, ended: Mapping[int, Mapping[int, float]] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stopped: set[str] = set()
        self._ended = dict(ended or {})

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Tune's metric and mode; then the ended trials' values enter each rung, as ASHA records a
        trial's value at a rung: its value at the rung's epoch, signed by the mode (Ray's `_Bracket`)."""
        accepted = super().set_search_properties(metric, mode, **spec)
        if accepted and self._metric_op is not None:
            for bracket in self._brackets:
                for milestone, recorded in bracket._rungs:
                    epoch = math.ceil(milestone)  # the first epoch a trial reports at the rung
                    for number, values in self._ended.items():
                        if epoch in values and math.isfinite(values[epoch]):
                            recorded[f"study-trial-{number}"] = self._metric_op * values[epoch]
        return accepted

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        """ASHA's decision, recorded when it is STOP."""
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP:
            self.stopped.add(trial.trial_id)
        return action
