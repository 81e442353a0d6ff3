"""The Optuna journal (``STUDY/optuna.journal``), the study's record of its trials: which exist, with
which number and point, and how each ended (docs/design.md, "Where each fact lives").

A study enqueues its first points (the published configurations; with ``--per-weighting`` every trial,
`study.search.design`) once, when it is created, and each driver run opens it with a sampler of its own
(`study.search.sampler`). The journal is appended under an ``flock`` that the kernel releases when its
process dies, and a last line that a crash left without its newline is cut before the study's one
writer appends again.
"""

from __future__ import annotations

import fcntl
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import TrialState

from study.front import directions
from study.search.sampler import DEFAULT_SAMPLER, Trained, study_sampler

POINTS_ENQUEUED = "points_enqueued"  # Optuna study attribute: the first points are in the journal
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


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
    journal: Path,
    name: str,
    *,
    mode: str,
    seed: int,
    points: list[dict[str, Any]],
    per_weighting: bool = False,
    trained: Trained | None = None,
    objectives: Sequence[str] = (),
    sampler: str = DEFAULT_SAMPLER,
) -> optuna.Study:
    """The study `name` in `journal`, created with `points` enqueued as its first trials if new, with
    this driver run's sampler (`study.search.sampler.study_sampler`: `sampler` names it; `per_weighting`:
    each weighting method's trials tuned on their own; `trained`: the points the trial folders trained).
    With `objectives` (two or more metrics) the study has one direction per objective, from
    `mtan.metrics.METRICS`, and the objectives as its metric names (optuna-dashboard labels its front
    with them); else the one direction of `mode`.

    The points are enqueued before any trial is asked, and the study is marked once they all are, so a
    crash in between is finished on the next call: the trials so far are a prefix of `points`.
    """
    study = optuna.create_study(
        study_name=name,
        storage=journal_storage(journal),
        sampler=optuna.samplers.RandomSampler(),  # replaced below, once the journal is read
        directions=directions(objectives) if objectives else ["maximize" if mode == "max" else "minimize"],
        load_if_exists=True,
    )
    if objectives and study.metric_names != list(objectives):
        with warnings.catch_warnings():  # experimental since Optuna 3.2, public and unchanged since
            warnings.simplefilter("ignore", ExperimentalWarning)
            study.set_metric_names(list(objectives))
    if not study.user_attrs.get(POINTS_ENQUEUED):
        for point in points[len(study.trials) :]:
            study.enqueue_trial(point)
        study.set_user_attr(POINTS_ENQUEUED, True)
    study.sampler = study_sampler(study, seed, per_weighting=per_weighting, trained=trained, kind=sampler)
    return study


def finished_count(study: optuna.Study) -> int:
    """How many trials of `study` have ended (complete, pruned or failed)."""
    return sum(t.state in FINISHED_STATES for t in study.get_trials(deepcopy=False))


def is_finished(study: optuna.Study, num_samples: int) -> bool:
    """Whether the study has exactly `num_samples` trials and every one of them has ended."""
    trials = study.get_trials(deepcopy=False)
    return len(trials) == num_samples and all(t.state in FINISHED_STATES for t in trials)
