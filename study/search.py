"""The study's Tune searcher: Optuna's ask-and-tell on the study's journal (TPE with constant liar).

The Optuna journal (``STUDY/optuna.journal``) is the study's record of its trials: which exist, with
which number and point, and how each ended. A study enqueues its first points (the published
configurations) once, when it is created. `StudySearcher.suggest` first hands out again the trials that a
previous run left RUNNING, with their own numbers and points, then asks Optuna for new ones. It tells
Optuna how each trial ended: COMPLETE after all `max_epochs` epochs (the last epoch also as an
intermediate value), PRUNED when ASHA stopped it (`RecordingASHA` records which), FAIL on error. A trial
that ended otherwise (the driver was interrupted) stays RUNNING, to be continued by the next run.
Nothing of this searcher is pickled: a resume builds a new one from the journal.
"""

from __future__ import annotations

import fcntl
import math
import os
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, TrialState
from ray.tune.result import AUTO_RESULT_KEYS, DONE, SHOULD_CHECKPOINT, TRIAL_ID
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import Searcher

from study.space import TRIAL_NUMBER, SearchSpace

EPOCH_KEY = "epoch"
RAY_TRIAL_ID = "ray_trial_id"  # Optuna user attribute: the Ray trial id of the trial's latest run
POINTS_ENQUEUED = "points_enqueued"  # Optuna study attribute: the first points are in the journal
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
# Keys of a Tune result that Ray adds to what the trainable reported.
RAY_RESULT_KEYS = frozenset(AUTO_RESULT_KEYS) | {DONE, TRIAL_ID, SHOULD_CHECKPOINT, "experiment_tag"}


class JournalLock(JournalFileOpenLock):
    """The journal's append lock as an ``flock`` of ``JOURNAL.lock``: the kernel releases it when its
    process dies, where Optuna's own file locks would stay behind after a SIGKILL. (A subclass of
    Optuna's public lock class only for its interface: acquire and release are replaced.)"""

    def __init__(self, journal: Path) -> None:
        super().__init__(str(journal))
        self._path = f"{journal}.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Wait for the lock."""
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        return True

    def release(self) -> None:
        """Let it go."""
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


def journal_storage(path: Path) -> JournalStorage:
    """An Optuna journal file at `path` (``optuna-dashboard PATH`` opens it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    repair_journal_tail(path)
    return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalLock(path)))


def repair_journal_tail(path: Path) -> None:
    """Cut a last line that a crash left without its newline: Optuna skips such a line, but the next
    append would join it and make the whole journal unreadable. (Called by the study's one writer.)"""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as file:
        file.seek(0, os.SEEK_END)
        end = file.tell()
        tail = b""
        while end > 0 and b"\n" not in tail:
            start = max(0, end - 4096)
            file.seek(start)
            tail = file.read(end - start) + tail
            end = start
        keep = end + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
        file.truncate(keep)


def open_study(
    journal: Path, name: str, *, mode: str, seed: int, points: list[dict[str, Any]]
) -> optuna.Study:
    """The study `name` in `journal`, created with `points` enqueued as its first trials if new.

    The points are enqueued before any trial is asked, and the study is marked once they all are, so a
    crash in between is finished on the next call: the trials so far are a prefix of `points`.
    """
    study = optuna.create_study(
        study_name=name,
        storage=journal_storage(journal),
        sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True),
        direction="maximize" if mode == "max" else "minimize",
        load_if_exists=True,
    )
    if not study.user_attrs.get(POINTS_ENQUEUED):
        for point in points[len(study.trials) :]:
            study.enqueue_trial(point)
        study.set_user_attr(POINTS_ENQUEUED, True)
    return study


def finished_count(study: optuna.Study) -> int:
    """How many trials of `study` have ended (complete, pruned or failed)."""
    return sum(t.state in FINISHED_STATES for t in study.get_trials(deepcopy=False))


def is_finished(study: optuna.Study, num_samples: int) -> bool:
    """Whether the study has exactly `num_samples` trials and every one of them has ended."""
    trials = study.get_trials(deepcopy=False)
    return len(trials) == num_samples and all(t.state in FINISHED_STATES for t in trials)


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


class StudySearcher(Searcher):
    """Tune's searcher on the Optuna study: see the module's docstring.

    `on_end(number, state)` is called after a trial's end is in the journal (the driver then removes
    what the ended trial no longer needs).
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
    ) -> None:
        super().__init__(metric=metric, mode=mode)
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
            trial = optuna.trial.Trial(self._study, frozen._trial_id)
            reported = set(frozen.intermediate_values)
        else:
            trial = self._study.ask()
            reported = set()
        # On a trial handed out again this returns its recorded values (and completes a point that a
        # crash interrupted while it was being suggested).
        self._space(trial)
        trial.set_user_attr(RAY_TRIAL_ID, trial_id)
        self._trials[trial_id] = trial
        self._reported[trial_id] = reported
        return {**trial.params, TRIAL_NUMBER: trial.number}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """An epoch's value of the metric, as the trial's intermediate value at that epoch."""
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
            for key, value in last_metrics(result).items():
                trial.set_user_attr(key, value)
        value = result.get(self.metric)
        if error:
            state = TrialState.FAIL
        elif epoch is not None and epoch >= self._max_epochs:
            state = TrialState.COMPLETE if _finite(value) else TrialState.FAIL
        elif trial_id in self._stopped:
            state = TrialState.PRUNED
        else:
            return
        del self._trials[trial_id]
        self._study.tell(
            trial.number, float(value) if state == TrialState.COMPLETE else None, state, skip_if_finished=True
        )
        if self._on_end is not None:
            self._on_end(trial.number, state)


def last_metrics(result: Mapping[str, Any]) -> dict[str, float | None]:
    """What the trainable reported in `result` (Ray's own keys and the config left out; NaN and inf as
    None, which JSON can hold)."""
    return {
        key: value if _finite(value) else None
        for key, value in result.items()
        if key not in RAY_RESULT_KEYS and not key.startswith("config/") and isinstance(value, (int, float))
    }


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
