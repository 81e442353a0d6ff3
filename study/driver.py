"""One driver run of a study: under the study's lock, a fresh Tuner for the trials the journal has not
seen end, study.json kept up to date while it runs, and the results written once every trial has ended.

The study's own record is the truth (docs/design.md, "Where each fact lives"): the Optuna journal (which
trials exist and how each ended, `study.search.journal`) and the trial folders (each trial's newest
checkpoint and history, written by `study.trainable`). Ray's own folders under ``ray/`` are never read.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState
from ray import tune
from ray.tune import Callback

from mtan.data import DataBundle, load_data
from mtan.errors import UserError
from mtan.evaluate import trivial_predictor_metrics
from mtan.run_folder import CONFIG_FILE, METRICS_FILE, parse_config, parse_metrics
from study.cluster import check_trial_fits, hardware, trial_slots, versions
from study.lock import StudyLock
from study.observe.loggers import dashboard_hints, tune_callbacks
from study.observe.progress import StudyHeader, StudyProgress
from study.record import (
    ERROR_FILE,
    FINISHED,
    INTERRUPTED,
    RUNNING,
    STUDY_JSON,
    EndedTrial,
    trial_dirname,
    write_results,
)
from study.search.asha import StudyASHA
from study.search.design import first_points
from study.search.journal import FINISHED_STATES, finished_count, is_finished, open_study
from study.search.searcher import RAY_TRIAL_ID, StudySearcher
from study.settings import StudySettings
from study.space import TRIAL_NUMBER
from study.storage import StudyLocation, TrialStore
from study.trainable import run_trial, trial_name

WALL_CLOCK_EVERY_S = 10.0  # study.json's wall time is written this often while the study runs


@dataclass(frozen=True)
class StudyOutcome:
    """What a call of `run_study` ended with."""

    location: StudyLocation
    finished: bool
    table: pd.DataFrame | None  # results.csv, when finished


def _summary(settings: StudySettings, data_source: str, wall_seconds: float | None) -> dict[str, Any]:
    return {
        "num_samples": settings.num_samples,
        "design": settings.design,
        "max_epochs": settings.max_epochs,
        "grace_period": settings.grace_period,
        "reduction_factor": settings.reduction_factor,
        "metric": settings.metric,
        "mode": settings.mode,
        "preset": settings.preset,
        "data": settings.data_root or "synthetic",
        "data_source": data_source,
        "space": settings.space.describe(),
        "wall_seconds": wall_seconds,
        "hardware": hardware(),
        "versions": versions(),
        "settings": settings.to_json(),
    }


class StudyJsonWriter:
    """study.json while the driver runs: the study's summary, its status and its wall time, summed over
    the driver's runs (this one counted from `started`)."""

    def __init__(
        self, location: StudyLocation, summary: dict[str, Any], spent: float, started: float
    ) -> None:
        self.location = location
        self.summary = summary
        self.spent = spent
        self.started = started

    def wall_seconds(self) -> float:
        """The study's wall time so far."""
        return self.spent + time.monotonic() - self.started

    def write(self, status: str) -> dict[str, Any]:
        """Write study.json with `status` and the wall time so far; return what was written."""
        study = {**self.summary, "status": status, "wall_seconds": self.wall_seconds()}
        self.location.folder.write_study(study)
        return study


class WallTimeWriter(Callback):
    """Writes study.json's wall time every `every_s` seconds and whenever a trial ends, so a driver killed
    without warning loses at most `every_s` seconds of it."""

    def __init__(self, study_json: StudyJsonWriter, every_s: float = WALL_CLOCK_EVERY_S) -> None:
        self._study_json = study_json
        self._every_s = every_s
        self._last = time.monotonic()

    def _write(self) -> None:
        self._study_json.write(RUNNING)
        self._last = time.monotonic()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        """Tune's loop went round once: write when it is time."""
        if time.monotonic() - self._last >= self._every_s:
            self._write()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial ended."""
        self._write()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial failed."""
        self._write()


def study_header(settings: StudySettings, location: StudyLocation, max_concurrent: int | None) -> StudyHeader:
    """What the study prints before its first trial: preset, data, size, budget, trials at once, where
    its files go, and how to open its dashboards."""
    base = settings.base_config
    gpus = f", {settings.gpus_per_trial:g} GPU" if settings.gpus_per_trial > 0 else ""
    each = f"{settings.cpus_per_trial:g} CPU{gpus} each"
    return StudyHeader(
        preset=settings.preset,
        data=settings.data_root or "synthetic (not CityScapes)",
        image_size=f"{base.image_height}x{base.image_width}",
        num_samples=settings.num_samples,
        max_epochs=settings.max_epochs,
        grace_period=settings.grace_period,
        metric=settings.metric,
        mode=settings.mode,
        trials_at_once=f"{max_concurrent or 'as many as fit'} ({each})",
        results=location.experiment_uri,
        hints=tuple(
            dashboard_hints(settings.logger, location.local_dir, settings.name, settings.mlflow_tracking_uri)
        ),
    )


def build_tuner(
    settings: StudySettings,
    location: StudyLocation,
    study: optuna.Study,
    store: TrialStore,
    trainable: Any,
    study_json: StudyJsonWriter,
    run: int,
) -> tune.Tuner:
    """A fresh Tuner for what is left of the study: its trials, minus those the journal has as ended,
    with ASHA's rungs holding the ended trials' values."""
    max_concurrent = settings.max_concurrent or trial_slots(settings.cpus_per_trial, settings.gpus_per_trial)
    scheduler = StudyASHA(
        ended={
            t.number: t.intermediate_values
            for t in study.get_trials(deepcopy=False)
            if t.state in FINISHED_STATES
        },
        time_attr="epoch",
        max_t=settings.max_epochs,
        grace_period=settings.grace_period,
        reduction_factor=settings.reduction_factor,
    )
    searcher = StudySearcher(
        study,
        settings.space,
        metric=settings.metric,
        mode=settings.mode,
        max_epochs=settings.max_epochs,
        stopped=scheduler.stopped,
        on_end=lambda number, state: store.end(number, failed=state == TrialState.FAIL),
    )
    tune_config = tune.TuneConfig(
        metric=settings.metric,
        mode=settings.mode,
        search_alg=searcher,
        scheduler=scheduler,
        num_samples=settings.num_samples - finished_count(study),
        max_concurrent_trials=max_concurrent,
        reuse_actors=True,
        trial_name_creator=trial_name,  # the name Ray and the loggers show: trial_003
        trial_dirname_creator=trial_name,
    )
    run_config = tune.RunConfig(
        name=f"run_{run:03d}",
        storage_path=location.ray_uri,
        failure_config=tune.FailureConfig(max_failures=settings.max_failures),
        callbacks=[
            StudyProgress(study_header(settings, location, max_concurrent)),
            WallTimeWriter(study_json),
            *tune_callbacks(settings.logger, location.local_dir, settings.name, settings.mlflow_tracking_uri),
        ],
        verbose=0,
    )
    return tune.Tuner(trainable, tune_config=tune_config, run_config=run_config)


def run_study(
    settings: StudySettings,
    *,
    resume: bool = False,
    points: list[dict[str, Any]] | None = None,
    started: float | None = None,
) -> StudyOutcome:
    """Run (or with `resume`, continue) a study on the Ray instance this process is connected to.

    The study's own record is the truth: the Optuna journal (which trials exist and how each ended) and
    the trial folders (each trial's newest checkpoint and history). Each call holds the study's lock and
    runs a fresh Tuner for the trials left; the study is finished, and results.csv written, only when
    the journal holds exactly `num_samples` trials that all ended. `settings` are checked ones
    (`study.settings.validate`: `study.run` checks them before Ray starts). `points` replaces the published
    configurations as the first points of a new study (tests use it); `started` is a
    ``time.monotonic()`` stamp the wall time counts from (default: now).
    """
    started = time.monotonic() if started is None else started
    check_trial_fits(settings.cpus_per_trial, settings.gpus_per_trial)  # else it would wait for ever
    location = StudyLocation.of(settings.storage_path, settings.name)
    if resume:
        if location.folder.read_study() is None:
            raise UserError(f"--resume: {location.experiment_uri} holds no study (no {STUDY_JSON})")
    else:
        location.check_new()
    location.local_dir.mkdir(parents=True, exist_ok=True)
    with StudyLock(location.local_dir):
        previous = location.folder.read_study()  # again, now that no other driver can write it
        if not resume and previous is not None:
            raise UserError(
                f"{location.experiment_uri}: a study exists there; pass --resume or choose another --name"
            )
        spent = float((previous or {}).get("wall_seconds") or 0.0)
        runs = int((previous or {}).get("runs") or 0) + 1
        data = load_data(settings.base_config)
        summary = {**_summary(settings, data.source, None), "runs": runs}
        study_json = StudyJsonWriter(location, summary, spent, started)
        study_json.write(RUNNING)
        try:
            return _run(settings, location, study_json, data, points, runs)
        except BaseException:
            study_json.write(INTERRUPTED)
            location.publish()
            raise


def _run(
    settings: StudySettings,
    location: StudyLocation,
    study_json: StudyJsonWriter,
    data: DataBundle,
    points: list[dict[str, Any]] | None,
    run: int,
) -> StudyOutcome:
    """The body of `run_study`, under the study's lock."""
    published = settings.space.published_points() if points is None else points
    store = TrialStore(location.trials_uri)
    study = open_study(
        location.journal,
        settings.name,
        mode=settings.mode,
        seed=settings.seed,
        points=first_points(
            published,
            num_samples=settings.num_samples,
            per_weighting=settings.per_weighting,
            weightings=settings.space.weightings,
        ),
        per_weighting=settings.per_weighting is not None,
        trained=lambda number: trained_point(store, number, settings),
    )
    for trial in study.get_trials(deepcopy=False):  # ended before a crash could clean their folders
        if trial.state in FINISHED_STATES:
            store.end(trial.number, failed=trial.state == TrialState.FAIL)
    baselines = trivial_predictor_metrics(data, settings.base_config.batch_size)
    location.folder.write_baselines(baselines)

    if finished_count(study) < settings.num_samples:
        trainable = tune.with_resources(
            tune.with_parameters(
                run_trial,
                base=settings.base_config,
                data=data,
                baselines=baselines,
                trials_uri=location.trials_uri,
                checkpoint_every=settings.checkpoint_every,
            ),
            {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial},
        )
        tuner = build_tuner(settings, location, study, store, trainable, study_json, run)
        tune_logger = logging.getLogger("ray.tune.tune")
        level = tune_logger.level
        tune_logger.setLevel(logging.CRITICAL)  # its lines about interrupts advise Tuner.restore
        try:
            tuner.fit()
        finally:
            tune_logger.setLevel(level)

    if not is_finished(study, settings.num_samples):
        study_json.write(INTERRUPTED)
        location.publish()
        return StudyOutcome(location, finished=False, table=None)
    summary = {**study_json.summary, "status": FINISHED, "wall_seconds": study_json.wall_seconds()}
    table = write_results(
        location.folder,
        ended_trials(study, store, settings),
        metric=settings.metric,
        mode=settings.mode,
        max_epochs=settings.max_epochs,
        columns=settings.space.columns,
        summary=summary,
    )
    location.publish()
    return StudyOutcome(location, finished=True, table=table)


NO_REASON = "the trial's process ended without a reason (see Ray's logs under STUDY/ray/)"
NOT_FINITE = "the objective's last value is not a finite number"


def trained_config(store: TrialStore, number: int) -> dict[str, Any] | None:
    """The flat `TrainConfig` trial `number` trained with: its ``config.json``, which `mtan.train` writes
    before the first epoch; None when the trial has none (it failed before training began)."""
    text = store.read_text(number, CONFIG_FILE)
    return None if text is None else parse_config(text, f"{store.folder(number)}/{CONFIG_FILE}")


def trained_point(store: TrialStore, number: int, settings: StudySettings) -> dict[str, Any] | None:
    """The point trial `number`'s folder trained, from its ``config.json`` (None when it has none)."""
    config = trained_config(store, number)
    return None if config is None else settings.space.point_of(config, settings.max_epochs)


def read_history(store: TrialStore, number: int) -> list[dict[str, Any]]:
    """The ``metrics.jsonl`` rows of trial `number` (empty if it has none); `UserError` naming the file
    and line that is not an epoch's row."""
    text = store.read_text(number, METRICS_FILE) or ""
    return parse_metrics(text, f"{store.uri}/{trial_dirname(number)}/{METRICS_FILE}")


def ended_trials(study: optuna.Study, store: TrialStore, settings: StudySettings) -> list[EndedTrial]:
    """The trials of a finished study, from the journal and their folders."""
    ended = []
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        point = {**trial.params, TRIAL_NUMBER: trial.number}
        error = None
        if trial.state == TrialState.FAIL:
            reason = (store.read_text(trial.number, ERROR_FILE) or "").strip()
            error = reason or (NOT_FINITE if trial.user_attrs.get("epoch") is not None else NO_REASON)
        ended.append(
            EndedTrial(
                number=trial.number,
                trial_id=str(trial.user_attrs.get(RAY_TRIAL_ID, "")),
                columns=settings.space.column_values(point, settings.max_epochs),
                config=trained_config(store, trial.number) or {},  # {}: it never trained, has no metrics
                history=tuple(read_history(store, trial.number)),
                error=error,
                point=point,
            )
        )
    return ended
