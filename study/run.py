"""``python -m study.run``: the Ray Tune study of MTAN (Optuna suggestions, ASHA early stopping).

Each trial is one `mtan` training run (`study.trainable`); the study's files go to
``STORAGE/NAME/`` next to Ray's own (docs/results.md). ``--resume`` continues an interrupted study
with its recorded settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from mtan.cli import command_parser
from mtan.data import load_data
from mtan.errors import UserError, run_cli
from mtan.evaluate import trivial_baselines
from study.capacity import check_trial_fits
from study.connect import connect
from study.environment import hardware, versions
from study.harvest import collect_records
from study.progress import TrialLines
from study.record import FAILED, write_results
from study.search import make_searcher
from study.settings import (
    PRESET_DEFAULTS,
    STUDY_FLAGS,
    StudySettings,
    default_gpus_per_trial,
    flag_type,
    new_settings,
    validate,
)
from study.space import SearchSpace
from study.storage import StudyLocation, check_storage_path
from study.trainable import run_trial


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
    """Ray's folder name of a trial: ``trial_<n>_<trial_id>``, n = 1, 2, ... in the order of creation."""
    return f"trial_{trial.experiment_tag.split('_', 1)[0]:0>3}_{trial.trial_id}"


def _slots(settings: StudySettings) -> int | None:
    """How many trials fit on the cluster now (None when none fits yet, e.g. GPU nodes scale from 0)."""
    resources = ray.cluster_resources()
    if settings.gpus_per_trial > 0:
        slots = math.floor(resources.get("GPU", 0.0) / settings.gpus_per_trial + 1e-9)
    else:
        slots = math.floor(resources.get("CPU", 0.0) / settings.cpus_per_trial + 1e-9)
    return slots if slots >= 1 else None


def _tuner(
    settings: StudySettings,
    location: StudyLocation,
    trainable: Any,
    points: list[dict[str, Any]] | None,
) -> tune.Tuner:
    searcher = make_searcher(
        settings.space,
        metric=settings.metric,
        mode=settings.mode,
        max_epochs=settings.max_epochs,
        study_name=settings.name,
        journal=location.folder.journal,
        seed=settings.seed,
        points=points,
    )
    scheduler = ASHAScheduler(
        time_attr="epoch",
        max_t=settings.max_epochs,
        grace_period=settings.grace_period,
        reduction_factor=settings.reduction_factor,
    )
    tune_config = tune.TuneConfig(
        metric=settings.metric,
        mode=settings.mode,
        search_alg=searcher,
        scheduler=scheduler,
        num_samples=settings.num_samples,
        max_concurrent_trials=settings.max_concurrent or _slots(settings),
        reuse_actors=True,
        trial_dirname_creator=ray_trial_dirname,
    )
    run_config = tune.RunConfig(
        name=settings.name,
        storage_path=location.storage_path,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        failure_config=tune.FailureConfig(max_failures=settings.max_failures),
        callbacks=[TrialLines(settings.metric, settings.num_samples, settings.max_epochs)],
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

    `points` replaces the published configurations as the first points (tests use it); `started`
    is a ``time.monotonic()`` stamp the wall time counts from (default: now).
    """
    started = time.monotonic() if started is None else started
    validate(settings)
    # Every epoch checkpoints and only the latest checkpoint is kept, so Tune snapshots its experiment
    # state often; that is intended here (a resume must find the kept checkpoint), not worth a warning.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    check_trial_fits(settings.cpus_per_trial, settings.gpus_per_trial)  # else it would wait for ever
    location = StudyLocation.of(settings.storage_path, settings.name)
    previous = location.folder.read_study()
    restorable = tune.Tuner.can_restore(location.experiment_uri)
    if not resume and (previous is not None or restorable):
        raise UserError(
            f"{location.experiment_uri}: a study exists there; pass --resume or choose another --name"
        )

    data = load_data(settings.base_config)
    baselines = trivial_baselines(data, settings.base_config.batch_size)
    location.folder.write_baselines(baselines)
    spent = float((previous or {}).get("wall_seconds") or 0.0)
    location.folder.write_study(_summary(settings, data.source, spent or None))

    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=settings.base_config, data=data, baselines=baselines),
        {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial},
    )
    if resume and restorable:
        tuner = tune.Tuner.restore(
            location.experiment_uri,
            trainable=trainable,
            resume_unfinished=True,
            resume_errored=False,
            restart_errored=False,
        )
    else:
        tuner = _tuner(settings, location, trainable, points)
    grid = tuner.fit()

    wall = spent + time.monotonic() - started
    finished = grid.num_terminated + grid.num_errors
    if finished < settings.num_samples or len(grid) < settings.num_samples:
        location.folder.write_study(_summary(settings, data.source, wall))
        location.publish()
        return StudyOutcome(location, finished=False, table=None)
    records = collect_records(grid, settings)
    summary = _summary(settings, data.source, wall)
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
    """The best `top` trials by their last value of `metric`, as text."""
    columns = ["trial", "trial_id", "state", "epochs", *space.columns]
    columns += [f"last_{metric}"] + [f"last_{m}" for m in ("miou", "abs_err") if m != metric]
    ranked = table[table["state"] != FAILED].sort_values(f"last_{metric}", ascending=mode == "min")
    return ranked[columns].head(top).to_string(index=False, float_format=lambda v: f"{v:.4g}")


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


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: parse, start or join Ray, run the study, print the best trials."""
    started = time.monotonic()
    args = build_parser().parse_args(argv)
    settings = settings_for_resume(args) if args.resume else settings_from_args(args)
    validate(settings)  # bad flags fail before Ray starts
    check_storage_path(settings.storage_path)
    owns_ray = connect(args.address)
    try:
        if not args.resume and args.gpus_per_trial is None:
            gpus = default_gpus_per_trial(ray.cluster_resources().get("GPU", 0.0))
            settings = dataclasses.replace(settings, gpus_per_trial=gpus)
        outcome = run_study(settings, resume=args.resume, started=started)
    finally:
        if owns_ray:
            ray.shutdown()
    where = outcome.location.experiment_uri
    if not outcome.finished:
        print(
            f"study interrupted; continue it with: python -m study.run --resume --storage-path "
            f"{settings.storage_path} --name {settings.name}",
            file=sys.stderr,
        )
        return 130
    assert outcome.table is not None
    print(f"\nbest trials by {settings.metric} ({settings.mode}):")
    print(best_trials_table(outcome.table, settings.metric, settings.mode, settings.space))
    print(f"\nresults: {where}")
    return 0


if __name__ == "__main__":
    run_cli(main)
