"""One driver run of a study: under the study's lock, a fresh Tuner for the trials the journal has not
seen end, study.json kept up to date while it runs, and the results written once every trial has ended.

The study's own record is the truth (docs/design.md, "Where each fact lives"): the Optuna journal (which
trials exist and how each ended, `study.search.journal`) and the trial folders (each trial's newest
checkpoint and history, written by `study.trainable`; its restarts, written by `RestartRecorder`). Ray's
own folders under ``ray/`` are never read.

Tune runs quiet: the study prints its own header and lines (`study.observe.progress`), none of Tune's
boxes and hints (its legacy output engine at verbosity 0, `RAY_AIR_NEW_OUTPUT=0`), and its callback
telemetry, which would import MLflow at every fit, is skipped (`study.compat`); Ray's errors stay.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState
from ray import tune
from ray.tune import Callback

from mtan.data import DataBundle, load_data
from mtan.errors import UserError
from mtan.evaluate import trivial_predictor_metrics
from mtan.run_folder import CONFIG_FILE, METRICS_FILE, parse_config, parse_metrics
from study import compat
from study.cluster import check_trial_fits, hardware, trial_slots, versions
from study.front import hypervolume_history, maximised, reference_point
from study.lock import StudyLock
from study.observe.loggers import dashboard_hints, tune_callbacks
from study.observe.progress import StudyHeader, StudyProgress, error_line
from study.record import (
    ERROR_FILE,
    FINISHED,
    INTERRUPTED,
    RESTARTS_FILE,
    RUNNING,
    STUDY_JSON,
    EndedTrial,
    StudyFolder,
    parse_restarts,
    restart_line,
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
from study.trainable import run_trial, trial_name, trial_number

WALL_CLOCK_EVERY_S = 10.0  # study.json's wall time is written this often while the study runs
LEGACY_OUTPUT = "RAY_AIR_NEW_OUTPUT"  # Ray's public switch of Tune's output engine (ray.air.constants)


@dataclass(frozen=True)
class StudyOutcome:
    """What a call of `run_study` ended with."""

    location: StudyLocation
    finished: bool
    table: pd.DataFrame | None  # results.csv, when finished


def _summary(settings: StudySettings, data_source: str, wall_seconds: float | None) -> dict[str, Any]:
    objectives = settings.objective_keys
    return {
        "num_samples": settings.num_samples,
        "design": settings.design,
        "max_epochs": settings.max_epochs,
        "grace_period": settings.grace_period,
        "reduction_factor": settings.reduction_factor,
        "metric": settings.metric,
        "mode": settings.mode,
        **(
            {
                "objectives": list(objectives),
                "directions": ["max" if up else "min" for up in maximised(objectives)],
                "sampler": settings.sampler,
            }
            if objectives
            else {}
        ),
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


class RestartRecorder(Callback):
    """Counts each trial's restarts in its own folder (``restarts.jsonl``, a line each, written before
    the trial goes on, so a driver killed afterwards loses none): Tune retrying it after its worker or
    node was lost or it raised (`on_trial_recover`), and a later driver run taking over a trial that an
    earlier one left running (its first start in this run, for the trials in `continued`)."""

    def __init__(self, store: TrialStore, run: int, continued: set[int]) -> None:
        self._store = store
        self._run = run
        self._continued = set(continued)
        self._counts: dict[int, tuple[int, str]] = {}

    def count(self, trial: Any) -> tuple[int, str]:
        """How many times the Tune trial `trial` was restarted, over every driver run, and the last why."""
        number = trial_number(trial)
        if number not in self._counts:
            self._counts[number] = restarts_of(self._store, number)
        return self._counts[number]

    def _add(self, number: int, reason: str) -> None:
        text = self._store.read_text(number, RESTARTS_FILE) or ""
        line = restart_line(reason, self._run, len(read_history(self._store, number)))
        self._store.write_text(number, RESTARTS_FILE, text + line)
        self._counts[number] = restarts_of(self._store, number)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial starts: one that an earlier driver run left running is restarted."""
        number = trial_number(trial)
        if number in self._continued:
            self._continued.discard(number)
            self._add(number, f"the driver stopped while it ran; driver run {self._run} continued it")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Tune retries a trial that failed."""
        self._add(trial_number(trial), error_line(trial))


def restarts_of(store: TrialStore, number: int) -> tuple[int, str]:
    """Trial `number`'s restarts so far and the last one's reason (0 and "" when it has none)."""
    where = f"{store.folder(number)}/{RESTARTS_FILE}"
    restarts = parse_restarts(store.read_text(number, RESTARTS_FILE) or "", where)
    return len(restarts), restarts[-1]["reason"] if restarts else ""


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
        objectives=", ".join(
            f"{key} ({'max' if up else 'min'})"
            for key, up in zip(settings.objective_keys, maximised(settings.objective_keys), strict=True)
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
    on_complete: Callable[[], None] | None = None,
) -> tune.Tuner:
    """A fresh Tuner for what is left of the study: its trials, minus those the journal has as ended,
    with ASHA's rungs holding the ended trials' values; the trials the journal has as running are
    continued, each counted as restarted. `on_complete` is called after each trial that completes."""
    max_concurrent = settings.max_concurrent or trial_slots(settings.cpus_per_trial, settings.gpus_per_trial)

    def on_end(number: int, state: TrialState) -> None:
        store.end(number, failed=state == TrialState.FAIL)
        if state == TrialState.COMPLETE and on_complete is not None:
            on_complete()

    scheduler = StudyASHA(
        ended=ended_values(study, store, settings),
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
        on_end=on_end,
        objectives=settings.objective_keys,
        history=lambda number: read_history(store, number),
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
    continued = {
        t.number
        for t in study.get_trials(deepcopy=False)
        if t.state == TrialState.RUNNING and store.files(t.number)
    }
    restarts = RestartRecorder(store, run, continued)
    run_config = tune.RunConfig(
        name=f"run_{run:03d}",
        storage_path=location.ray_uri,
        failure_config=tune.FailureConfig(max_failures=settings.max_failures),
        callbacks=[
            restarts,  # before the progress, which says the count it keeps
            StudyProgress(
                study_header(settings, location, max_concurrent),
                restarts=restarts.count,
                ended_before=finished_count(study),
            ),
            WallTimeWriter(study_json),
            *tune_callbacks(settings.logger, location.local_dir, settings.name, settings.mlflow_tracking_uri),
        ],
        verbose=0,
    )
    return tune.Tuner(trainable, tune_config=tune_config, run_config=run_config)


def check_study_folder(settings: StudySettings, resume: bool) -> StudyLocation:
    """The study's location, once checked without writing: a new study's folder free for it, a resumed
    one holding a study (`UserError` naming it otherwise)."""
    location = StudyLocation.of(settings.storage_path, settings.name)
    if resume:
        if location.folder.read_study() is None:
            raise UserError(f"--resume: {location.experiment_uri} holds no study (no {STUDY_JSON})")
    else:
        location.check_new()
    return location


def run_study(
    settings: StudySettings,
    *,
    resume: bool = False,
    points: list[dict[str, Any]] | None = None,
    started: float | None = None,
    data: DataBundle | None = None,
) -> StudyOutcome:
    """Run (or with `resume`, continue) a study on the Ray instance this process is connected to.

    The study's own record is the truth: the Optuna journal (which trials exist and how each ended) and
    the trial folders (each trial's newest checkpoint and history). Each call holds the study's lock and
    runs a fresh Tuner for the trials left; the study is finished, and results.csv written, only when
    the journal holds exactly `num_samples` trials that all ended. `settings` are checked ones
    (`study.settings.validate`: `study.run` checks them before Ray starts). `points` replaces the published
    configurations as the first points of a new study (tests use it); `started` is a
    ``time.monotonic()`` stamp the wall time counts from (default: now); `data` is the study's data set
    when the caller has loaded it already (`study.run` does, to check it before Ray starts).
    """
    started = time.monotonic() if started is None else started
    check_trial_fits(settings.cpus_per_trial, settings.gpus_per_trial)  # else it would wait for ever
    location = check_study_folder(settings, resume)
    data = load_data(settings.base_config) if data is None else data
    location.local_dir.mkdir(parents=True, exist_ok=True)
    with StudyLock(location.local_dir):
        previous = location.folder.read_study()  # again, now that no other driver can write it
        if not resume and previous is not None:
            raise UserError(
                f"{location.experiment_uri}: a study exists there; pass --resume or choose another --name"
            )
        spent = float((previous or {}).get("wall_seconds") or 0.0)
        runs = int((previous or {}).get("runs") or 0) + 1
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
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the study says what it does itself
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
        objectives=settings.objective_keys,
        sampler=settings.sampler,
    )
    for trial in study.get_trials(deepcopy=False):  # ended before a crash could clean their folders
        if trial.state in FINISHED_STATES:
            store.end(trial.number, failed=trial.state == TrialState.FAIL)
    baselines = trivial_predictor_metrics(data, settings.base_config.batch_size)
    location.folder.write_baselines(baselines)

    def record_front() -> None:
        if settings.objective_keys:
            write_hypervolume(location.folder, study, settings.objective_keys, baselines)

    record_front()  # again from the journal: a driver killed after a trial completed had not written it

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
        tuner = build_tuner(settings, location, study, store, trainable, study_json, run, record_front)
        with quiet_tune():
            tuner.fit()

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
        objectives=settings.objective_keys,
    )
    record_front()
    location.publish()
    return StudyOutcome(location, finished=True, table=table)


@contextmanager
def quiet_tune() -> Iterator[None]:
    """While Tune runs inside: its legacy output engine, silent at the Tuner's verbosity 0 (the new one
    prints its experiment box and results path whatever the verbosity); no callback telemetry; and
    ``ray.tune.tune``'s log lines about interrupts, which advise Tuner.restore, left out."""
    tune_logger = logging.getLogger("ray.tune.tune")
    level, engine = tune_logger.level, os.environ.get(LEGACY_OUTPUT)
    tune_logger.setLevel(logging.CRITICAL)
    os.environ[LEGACY_OUTPUT] = "0"
    try:
        with compat.no_callback_telemetry():
            yield
    finally:
        tune_logger.setLevel(level)
        if engine is None:
            os.environ.pop(LEGACY_OUTPUT, None)
        else:
            os.environ[LEGACY_OUTPUT] = engine


NO_REASON = "the trial's process ended without a reason (see Ray's logs under STUDY/ray/)"
NOT_FINITE = "the objective's last value is not a finite number"


def ended_values(
    study: optuna.Study, store: TrialStore, settings: StudySettings
) -> dict[int, dict[int, float]]:
    """The value of the study's metric (ASHA's) at each epoch of every trial that has ended, for a new
    driver run's ASHA: the journal's intermediate values, or in a study of several objectives, whose
    journal has none, the trial folders' histories."""
    ended = [t for t in study.get_trials(deepcopy=False) if t.state in FINISHED_STATES]
    if not settings.objective_keys:
        return {t.number: dict(t.intermediate_values) for t in ended}
    values: dict[int, dict[int, float]] = {}
    for trial in ended:
        rows = read_history(store, trial.number)
        values[trial.number] = {
            int(row["epoch"]): float(row[settings.metric])
            for row in rows
            if isinstance(row.get(settings.metric), (int, float))
        }
    return values


def write_hypervolume(
    folder: StudyFolder, study: optuna.Study, objectives: Sequence[str], baselines: Mapping[str, float]
) -> None:
    """hypervolume.csv from the journal: the completed trials in the order they completed, with their
    told values (their objectives' means over the last 10 epochs), against the trivial predictors'
    metrics (`study.front.reference_point`). The driver, the one writer, rewrites it whole after each
    completed trial, at each start and at the end, so a driver killed in between leaves a file that the
    next one completes."""
    folder.write_hypervolume(hypervolume_table(study.get_trials(deepcopy=False), objectives, baselines))


def hypervolume_table(
    trials: Sequence[FrozenTrial], objectives: Sequence[str], baselines: Mapping[str, float]
) -> pd.DataFrame:
    """hypervolume.csv's rows for `trials` of a journal: the completed ones in the order they completed,
    with their told values, against the trivial predictors' metrics (`study.front.reference_point`)."""
    completed = sorted(
        (t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: (t.datetime_complete, t.number)
    )
    return hypervolume_history(
        [(t.number, t.values) for t in completed],
        reference_point(baselines, objectives),
        maximised(objectives),
    )


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
        restarts, restart_reason = restarts_of(store, trial.number)
        ended.append(
            EndedTrial(
                number=trial.number,
                trial_id=str(trial.user_attrs.get(RAY_TRIAL_ID, "")),
                columns=settings.space.column_values(point, settings.max_epochs),
                config=trained_config(store, trial.number) or {},  # {}: it never trained, has no metrics
                history=tuple(read_history(store, trial.number)),
                error=error,
                point=point,
                restarts=restarts,
                restart_reason=restart_reason,
            )
        )
    return ended
