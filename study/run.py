"""``python -m study.run``: the Ray Tune study of MTAN (Optuna suggestions, ASHA early stopping).

Each trial is one `mtan` training run (`study.trainable`) in its folder ``STORAGE/NAME/trials/trial_NNN/``;
the study's files go to ``STORAGE/NAME/`` (docs/results.md). ``--resume`` continues an interrupted study
with its recorded settings, from the study's own record (the Optuna journal and the trial folders).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import optuna
import pandas as pd
import ray
from optuna.trial import TrialState
from ray import tune
from ray.tune import Callback

from mtan.cli import command_parser
from mtan.data import DataBundle, load_data
from mtan.errors import UserError, run_cli
from mtan.evaluate import trivial_baselines
from study.capacity import check_trial_fits
from study.connect import connect
from study.environment import hardware, versions
from study.harvest import collect_records
from study.lock import StudyLock
from study.loggers import dashboard_hints, tune_callbacks
from study.progress import StudyHeader, StudyProgress
from study.record import FAILED, STUDY_JSON, trial_dirname, write_results
from study.search import (
    FINISHED_STATES,
    RecordingASHA,
    StudySearcher,
    finished_count,
    is_finished,
    open_study,
)
from study.settings import (
    PRESET_DEFAULTS,
    STUDY_FLAGS,
    StudySettings,
    default_gpus_per_trial,
    flag_type,
    new_settings,
    validate,
)
from study.space import TRIAL_NUMBER, SearchSpace
from study.storage import StudyLocation, TrialStore, check_storage_path
from study.trainable import run_trial

# study.json's status: a driver runs it (or was killed: then its lock is free), it was interrupted and
# can be resumed, or every trial has ended and the results are written.
RUNNING, INTERRUPTED, FINISHED = "running", "interrupted", "finished"
WALL_CLOCK_EVERY_S = 10.0  # study.json's wall time is written this often while the study runs
RESULTS_LINE = "results: "  # the finished study's last line: where its results are
RESUME_HINT = "study interrupted; continue it with"  # the interrupted study's last line


@dataclass(frozen=True)
class StudyOutcome:
    """What a call of `run_study` ended with."""

    location: StudyLocation
    finished: bool
    table: pd.DataFrame | None  # results.csv, when finished


def _summary(settings: StudySettings, data_source: str, wall_seconds: float | None) -> dict[str, Any]:
    return {
        "num_samples": settings.num_samples,
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


def ray_trial_dirname(trial: Any) -> str:
    """Ray's folder name of a trial: the study's own, ``trial_NNN`` with its Optuna number."""
    return trial_dirname(int(trial.config[TRIAL_NUMBER]))


def _slots(settings: StudySettings) -> int | None:
    """How many trials fit on the cluster now (None when none fits yet, e.g. GPU nodes scale from 0)."""
    resources = ray.cluster_resources()
    if settings.gpus_per_trial > 0:
        slots = math.floor(resources.get("GPU", 0.0) / settings.gpus_per_trial + 1e-9)
    else:
        slots = math.floor(resources.get("CPU", 0.0) / settings.cpus_per_trial + 1e-9)
    return slots if slots >= 1 else None


class StudyRecord:
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


class RecordClock(Callback):
    """Writes study.json's wall time every `every_s` seconds and whenever a trial ends, so a driver killed
    without warning loses at most `every_s` seconds of it."""

    def __init__(self, record: StudyRecord, every_s: float = WALL_CLOCK_EVERY_S) -> None:
        self._record = record
        self._every_s = every_s
        self._last = time.monotonic()

    def _write(self) -> None:
        self._record.write(RUNNING)
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
    record: StudyRecord,
    run: int,
) -> tune.Tuner:
    """A fresh Tuner for what is left of the study: its trials, minus those the journal has as ended,
    with ASHA's rungs holding the ended trials' values."""
    max_concurrent = settings.max_concurrent or _slots(settings)
    scheduler = RecordingASHA(
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
        trial_dirname_creator=ray_trial_dirname,
    )
    run_config = tune.RunConfig(
        name=f"run_{run:03d}",
        storage_path=location.ray_uri,
        failure_config=tune.FailureConfig(max_failures=settings.max_failures),
        callbacks=[
            StudyProgress(study_header(settings, location, max_concurrent)),
            RecordClock(record),
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
    the journal holds exactly `num_samples` trials that all ended. `points` replaces the published
    configurations as the first points of a new study (tests use it); `started` is a
    ``time.monotonic()`` stamp the wall time counts from (default: now).
    """
    started = time.monotonic() if started is None else started
    validate(settings)
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
        record = StudyRecord(location, summary, spent, started)
        record.write(RUNNING)
        try:
            return _run(settings, location, record, data, points, runs)
        except BaseException:
            record.write(INTERRUPTED)
            location.publish()
            raise


def _run(
    settings: StudySettings,
    location: StudyLocation,
    record: StudyRecord,
    data: DataBundle,
    points: list[dict[str, Any]] | None,
    run: int,
) -> StudyOutcome:
    """The body of `run_study`, under the study's lock."""
    published = settings.space.published_points() if points is None else points
    study = open_study(
        location.journal,
        settings.name,
        mode=settings.mode,
        seed=settings.seed,
        points=published[: settings.num_samples],
    )
    store = TrialStore(location.trials_uri)
    for trial in study.get_trials(deepcopy=False):  # ended before a crash could clean their folders
        if trial.state in FINISHED_STATES:
            store.end(trial.number, failed=trial.state == TrialState.FAIL)
    baselines = trivial_baselines(data, settings.base_config.batch_size)
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
        tuner = build_tuner(settings, location, study, store, trainable, record, run)
        tune_logger = logging.getLogger("ray.tune.tune")
        level = tune_logger.level
        tune_logger.setLevel(logging.CRITICAL)  # its lines about interrupts advise Tuner.restore
        try:
            tuner.fit()
        finally:
            tune_logger.setLevel(level)

    if not is_finished(study, settings.num_samples):
        record.write(INTERRUPTED)
        location.publish()
        return StudyOutcome(location, finished=False, table=None)
    records = collect_records(study, store, settings)
    summary = {**record.summary, "status": FINISHED, "wall_seconds": record.wall_seconds()}
    table = write_results(
        location.folder,
        records,
        metric=settings.metric,
        mode=settings.mode,
        max_epochs=settings.max_epochs,
        columns=settings.space.columns,
        summary=summary,
    )
    location.publish()
    return StudyOutcome(location, finished=True, table=table)


def best_trials_table(table: pd.DataFrame, metric: str, mode: str, space: SearchSpace, top: int = 5) -> str:
    """The best `top` trials by their last value of `metric`, as text ("-" where a value does not apply to
    a trial, e.g. the temperature of an equal-weighting one)."""
    columns = ["trial", "state", "epochs", *space.columns]
    columns += [f"last_{metric}"] + [f"last_{m}" for m in ("miou", "abs_err") if m != metric]
    ranked = table[table["state"] != FAILED].sort_values(f"last_{metric}", ascending=mode == "min")
    return ranked[columns].head(top).to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-")


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_overrides(items: Sequence[str]) -> tuple[tuple[str, Any], ...]:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = _parse_value(value.strip())
    return tuple(sorted(overrides.items()))


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "study.run",
        "Ray Tune study of MTAN: Optuna search, ASHA early stopping; results in STORAGE/NAME.",
    )
    add = parser.add_argument
    for setting in dataclasses.fields(StudySettings):  # a flag per setting, default None: not given
        if "help" not in setting.metadata:
            continue
        flag, kind, text = (
            f"--{setting.name.replace('_', '-')}",
            flag_type(setting.name),
            setting.metadata["help"],
        )
        if kind is bool:
            add(flag, action="store_true", default=None, help=text)
        else:
            add(flag, type=kind, help=text)
    add("--address", help="join a running Ray cluster, e.g. auto (default: start Ray here)")
    add(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another TrainConfig field, repeatable (default on cpu: "
        + ", ".join(f"{k}={v}" for k, v in PRESET_DEFAULTS["cpu"].overrides)
        + ")",
    )
    add("--resume", action="store_true", help="continue an interrupted study with its recorded settings")
    return parser


def settings_from_args(args: argparse.Namespace) -> StudySettings:
    """A new study's settings from the command line, with the defaults filled in (one GPU per trial
    when Ray sees a GPU is added by `main`, once Ray runs)."""
    given = {name: getattr(args, name) for name in ("name", "storage_path", *STUDY_FLAGS)}
    return new_settings({**given, "overrides": _parse_overrides(args.set)})


def settings_for_resume(args: argparse.Namespace) -> StudySettings:
    """The recorded settings of the study to resume (``--name``, or the latest in the storage path)."""
    storage = args.storage_path or StudySettings.storage_path
    name = args.name or StudyLocation.latest_name(storage)
    if name is None:
        raise UserError(f"--resume: no study in {storage} (give --storage-path and --name)")
    folder = StudyLocation.of(storage, name).folder
    recorded = folder.read_study()
    if recorded is None or not isinstance(recorded.get("settings"), dict):
        raise UserError(f"--resume: {storage}/{name} has no study.json with the study's settings")
    given = [f"--{flag.replace('_', '-')}" for flag in STUDY_FLAGS if getattr(args, flag) is not None]
    given += ["--set"] if args.set else []
    if given:
        print(f"note: --resume uses the recorded settings; ignoring {' '.join(given)}")
    try:
        settings = StudySettings.from_json(recorded["settings"])
        settings = dataclasses.replace(settings, storage_path=storage, name=name)
        validate(settings)
    except (UserError, TypeError, ValueError) as error:
        raise UserError(f"{folder.study_json}: the recorded settings are refused ({error})") from None
    return settings


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM handled as Ctrl-C: Tune's handler while trials run (the study stops cleanly), else a
    KeyboardInterrupt. Replaces Ray's own handler, which exits with a crash dump."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


def _process_started() -> float:
    """When this process started, on the ``time.monotonic()`` clock: the study's wall time counts the
    interpreter's start and imports too (tens of seconds on a loaded machine)."""
    try:  # Linux: the process's start in clock ticks after boot, and the time since boot
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        age = max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        age = 0.0
    return time.monotonic() - age


def _connect(address: str | None) -> bool:
    """`connect`, then SIGTERM as Ctrl-C again. While Ray starts, its own handler is in place: it exits
    with SystemExit(SIGTERM), taken here as an interrupt (in a short window its C++ core prints a crash
    report and aborts instead; nothing of the study is written before Ray has started)."""
    try:
        owns_ray = connect(address)
    except SystemExit as error:
        if error.code == signal.SIGTERM:
            raise KeyboardInterrupt from None
        raise
    signal.signal(signal.SIGTERM, _interrupt)
    return owns_ray


def said_its_last(output: str) -> bool:
    """Whether a driver's output holds its last line: where the finished study's results are, or how to
    resume the interrupted one (`main` prints it before it shuts Ray down)."""
    return RESULTS_LINE in output or RESUME_HINT in output


def _say_outcome(outcome: StudyOutcome | None, settings: StudySettings) -> int:
    """Print the best trials of a finished study (0) or how to resume an interrupted one (130)."""
    if outcome is None or not outcome.finished:
        print(
            f"{RESUME_HINT}: python -m study.run --resume --storage-path {settings.storage_path} "
            f"--name {settings.name}",
            file=sys.stderr,
            flush=True,
        )
        return 130
    assert outcome.table is not None
    print(f"\nbest trials by {settings.metric} ({settings.mode}):")
    print(best_trials_table(outcome.table, settings.metric, settings.mode, settings.space))
    print(f"\n{RESULTS_LINE}{outcome.location.experiment_uri}", flush=True)
    return 0


def _shutdown_ray() -> None:
    """Stop the Ray instance this driver started, once the study's files are written and its last line
    printed, with Ctrl-C and SIGTERM ignored meanwhile (they would only cut Ray's clean-up short). Ray's
    core sets SIGTERM back to its default action during `ray.shutdown` (for about 1 of its 1.4 s here,
    seen in /proc/self/status), so a SIGTERM then ends the process by the signal: with nothing left to
    write or say."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ray.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: parse, start or join Ray, run the study, print the best trials (or how to
    resume), then stop the Ray instance it started."""
    started = _process_started()
    args = build_parser().parse_args(argv)
    settings = settings_for_resume(args) if args.resume else settings_from_args(args)
    validate(settings)  # bad flags fail before Ray starts
    check_storage_path(settings.storage_path)
    signal.signal(signal.SIGTERM, _interrupt)
    owns_ray = False
    outcome = None
    try:
        try:
            owns_ray = _connect(args.address)
            if not args.resume and args.gpus_per_trial is None:
                gpus = default_gpus_per_trial(ray.cluster_resources().get("GPU", 0.0))
                settings = dataclasses.replace(settings, gpus_per_trial=gpus)
            outcome = run_study(settings, resume=args.resume, started=started)
        except KeyboardInterrupt:
            pass
        return _say_outcome(outcome, settings)
    finally:
        if owns_ray:
            _shutdown_ray()


if __name__ == "__main__":
    try:
        run_cli(main)
    except SystemExit as done:
        # Everything is written by now (atomically, fsynced) and the lock goes with the process. Skip the
        # interpreter's teardown: Ray's and torch's threads once crashed it (SIGSEGV after a clean
        # interrupt, in study.chaos), which would turn the exit code 130 or 0 into a signal.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(done.code if isinstance(done.code, int) else 1)
