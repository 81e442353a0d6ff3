"""The study's ASHA: Ray Tune's ASHA that says whom it stopped and starts from the rungs of a study's
earlier driver runs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from study.compat import asha_rungs, asha_sign


class StudyASHA(ASHAScheduler):
    """ASHA that keeps the Tune ids of the trials it stopped (`stopped`), so the searcher can tell them
    as pruned (and an interrupted trial, which Tune also ends, is not mistaken for one), and that starts
    from the rungs of the study's earlier driver runs (`ended`: the values per epoch of the trials that
    ended then, as in the journal), so a resumed study stops trials as one never interrupted would."""

    def __init__(self, *, ended: Mapping[int, Mapping[int, float]] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stopped: set[str] = set()
        self._ended = dict(ended or {})

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Tune's metric and mode; then the ended trials' values enter each rung as ASHA records a
        trial's value there: its value at the rung's epoch, signed by the mode."""
        accepted = super().set_search_properties(metric, mode, **spec)
        sign = asha_sign(self)
        if accepted and sign is not None:
            for milestone, recorded in asha_rungs(self):
                epoch = math.ceil(milestone)  # the first epoch a trial reports at the rung
                for number, values in self._ended.items():
                    if epoch in values and math.isfinite(values[epoch]):
                        recorded[f"study-trial-{number}"] = sign * values[epoch]
        return accepted

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        """ASHA's decision, kept when it is STOP."""
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP:
            self.stopped.add(trial.trial_id)
        return action
