"""The study's Tune searcher: Optuna's ask-and-tell on the study's journal (TPE with constant liar).

`StudySearcher.suggest` first hands out again the trials that a previous run left RUNNING, with their
own numbers and points, then asks Optuna for new ones. It tells Optuna how each trial ended: COMPLETE
after all `max_epochs` epochs (the last epoch also as an intermediate value), PRUNED when ASHA stopped it
(`study.search.asha.StudyASHA` records which), FAIL on error. A trial that ended otherwise (the
driver was interrupted) stays RUNNING, to be continued by the next run. Nothing of this searcher is
pickled: a resume builds a new one from the journal (`study.search.journal`).

In a study of several objectives a COMPLETE trial's values are its objectives' means over its last 10
epochs (`mtan.metrics.tail_mean` of its history, the paper's protocol, as results.csv's ``tail_``
columns), and no epoch's value is an intermediate value: Optuna keeps none for a multi-objective study
(`Trial.report` refuses, and its TPE ranks a pruned trial by its intermediate values in a single
direction). A PRUNED trial has no values, so only trials that trained the full budget make the front.
ASHA still stops trials on the study's scalar metric, from the results Tune hands it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from ray.tune.search import Searcher

from mtan.metrics import tail_mean
from study.compat import reopen_trial
from study.space import TRIAL_NUMBER, SearchSpace
from study.trainable import EPOCH_KEY, reported_metrics

RAY_TRIAL_ID = "ray_trial_id"  # Optuna user attribute: the Ray trial id of the trial's latest run
History = Callable[[int], Sequence[Mapping[str, Any]]]  # trial number -> its metrics.jsonl rows


class StudySearcher(Searcher):
    """Tune's searcher on the Optuna study: see the module's docstring.

    `on_end(number, state)` is called after a trial's end is in the journal (the driver then removes
    what the ended trial no longer needs). With `objectives` (a study of several), `history(number)`
    gives a trial's per-epoch rows, from which its values are told.
    """

    def __init__(
        self,
        study: optuna.Study,
        space: SearchSpace,
        *,
        metric: str,
        mode: str,
        max_epochs: int,
        stopped: set[str],
        on_end: Callable[[int, TrialState], None] | None = None,
        objectives: Sequence[str] = (),
        history: History | None = None,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        if objectives and history is None:
            raise ValueError("a study of several objectives needs each trial's history")
        self._objectives = tuple(objectives)
        self._history = history
        self._study = study
        self._space = space
        self._max_epochs = max_epochs
        self._stopped = stopped
        self._on_end = on_end
        running = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
        self._resumable: deque[FrozenTrial] = deque(sorted(running, key=lambda t: t.number))
        self._trials: dict[str, optuna.Trial] = {}
        self._reported: dict[str, set[int]] = {}

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """Tune's metric and mode must be this searcher's; the space is this searcher's own."""
        return metric in (None, self.metric) and mode in (None, self.mode) and not config

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        """Nothing to save: the journal is the searcher's state."""

    def suggest(self, trial_id: str) -> dict[str, Any]:
        """The next trial's point with its Optuna number: a RUNNING trial of the journal first."""
        if self._resumable:
            frozen = self._resumable.popleft()
            trial = reopen_trial(self._study, frozen)
            reported = set(frozen.intermediate_values)
        else:
            trial = self._study.ask()
            reported = set()
        # On a trial handed out again this returns its recorded values (and completes a point that a
        # crash interrupted while it was being suggested: study.search.sampler).
        self._space(trial)
        trial.set_user_attr(RAY_TRIAL_ID, trial_id)
        self._trials[trial_id] = trial
        self._reported[trial_id] = reported
        return {**trial.params, TRIAL_NUMBER: trial.number}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """An epoch's value of the metric, as the trial's intermediate value at that epoch (none in a
        study of several objectives)."""
        if self._objectives:
            return
        trial = self._trials.get(trial_id)
        epoch, value = result.get(EPOCH_KEY), result.get(self.metric)
        if trial is None or epoch is None or not _finite(value) or int(epoch) in self._reported[trial_id]:
            return
        trial.report(float(value), int(epoch))
        self._reported[trial_id].add(int(epoch))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Tell Optuna how the trial ended; a trial ended by an interrupt stays RUNNING."""
        trial = self._trials.get(trial_id)
        if trial is None:
            return
        result = result or {}
        epoch = result.get(EPOCH_KEY)
        if not error and epoch is not None:
            self.on_trial_result(trial_id, result)
            for key, value in reported_metrics(result).items():
                trial.set_user_attr(key, value if math.isfinite(value) else None)
        values: float | list[float] | None = None
        if error:
            state = TrialState.FAIL
        elif epoch is not None and epoch >= self._max_epochs:
            values = self._values(trial.number, result)
            state = TrialState.COMPLETE if values is not None else TrialState.FAIL
        elif trial_id in self._stopped:
            state = TrialState.PRUNED
        else:
            return
        del self._trials[trial_id]
        self._study.tell(trial.number, values, state, skip_if_finished=True)
        if self._on_end is not None:
            self._on_end(trial.number, state)

    def _values(self, number: int, result: Mapping[str, Any]) -> float | list[float] | None:
        """A completed trial's value (its last epoch's metric), or with several objectives their means
        over its last 10 epochs; None when one is not a finite number."""
        if not self._objectives:
            value = result.get(self.metric)
            return float(value) if _finite(value) else None
        assert self._history is not None
        tail = tail_mean(self._history(number))
        values = [tail.get(key, math.nan) for key in self._objectives]
        return values if all(math.isfinite(v) for v in values) else None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
