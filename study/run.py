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

from mtan.cli import add_version
from mtan.config import PRESETS
from mtan.data import load_data
from mtan.errors import UserError, run_cli
from mtan.evaluate import trivial_baselines
from mtan.metrics import METRIC_KEYS
from study.connect import connect
from study.environment import hardware, versions
from study.harvest import collect_records
from study.progress import TrialLines
from study.record import FAILED, write_results
from study.search import make_searcher
from study.settings import (
    DEFAULT_MAX_FAILURES,
    DEFAULT_METRIC,
    DEFAULT_NUM_SAMPLES,
    DEFAULT_REDUCTION_FACTOR,
    DEFAULT_STORAGE,
    MIN_GRACE_PERIOD,
    PRESET_DEFAULTS,
    StudySettings,
    preset_epochs,
    validate,
)
from study.space import SearchSpace
from study.storage import StudyLocation
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
    if settings.gpus_per_trial > 0 and ray.cluster_resources().get("GPU", 0.0) == 0 and _is_local():
        raise UserError(
            f"--gpus-per-trial {settings.gpus_per_trial}: no GPU is visible to Ray on this machine"
        )
    location = StudyLocation.of(settings.storage_path, settings.name)
    previous = location.folder.read_study()
    restorable = tune.Tuner.can_restore(location.experiment_uri)
    if not resume and (previous is not None or restorable):
        raise UserError(
            f"{location.experiment_uri}: a study exists there; pass --resume or choose another --name"
        )

    trial_settings = settings.trial_settings()
    data = load_data(trial_settings.base_config())
    baselines = trivial_baselines(data, trial_settings.base_config().batch_size)
    location.folder.write_baselines(baselines)
    spent = float((previous or {}).get("wall_seconds") or 0.0)
    location.folder.write_study(_summary(settings, data.source, spent or None))

    trainable = tune.with_resources(
        tune.with_parameters(run_trial, settings=trial_settings, data=data),
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


def _is_local() -> bool:
    """Whether this Ray instance is a single machine (no autoscaler can add GPU nodes)."""
    return len(ray.nodes()) <= 1


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
    parser = argparse.ArgumentParser(
        prog="python -m study.run",
        description="Ray Tune study of MTAN: Optuna search, ASHA early stopping; results in STORAGE/NAME.",
    )
    add_version(parser)
    add = parser.add_argument
    add("--num-samples", type=int, help=f"number of trials (default {DEFAULT_NUM_SAMPLES})")
    add(
        "--preset",
        help=f"mtan preset, one of {', '.join(PRESETS)}: cpu (default; small, for the synthetic set), report "
        "(the seed report's network), paper (Liu et al. 2019's)",
    )
    add("--data-root", help="MTAN-format CityScapes root (default: the synthetic set)")
    add(
        "--max-epochs",
        type=int,
        help="epochs of a trial that ASHA never stops (default: "
        + ", ".join(
            f"{p} {PRESET_DEFAULTS[p].max_epochs if p in PRESET_DEFAULTS else preset_epochs(p)}"
            for p in PRESETS
        )
        + ")",
    )
    add("--grace-period", type=int, help="epochs before ASHA may stop one (default max(3, max-epochs/f^2))")
    add("--reduction-factor", type=int, help=f"ASHA's reduction factor (default {DEFAULT_REDUCTION_FACTOR})")
    add("--metric", help=f"the objective: one of {', '.join(METRIC_KEYS)} (default {DEFAULT_METRIC})")
    add(
        "--gpus-per-trial",
        type=float,
        help="GPUs per trial, fractions allowed (default 1 if a GPU is visible, else 0)",
    )
    add("--cpus-per-trial", type=float, help="CPUs per trial, also torch's threads (default 1)")
    add("--max-concurrent", type=int, help="trials at once (default: as many as fit)")
    add(
        "--max-failures",
        type=int,
        help="retries of a failed trial from its last checkpoint: a trial whose node died, and also a "
        f"diverged one (it diverges again and ends failed) (default {DEFAULT_MAX_FAILURES})",
    )
    add("--address", help="join a running Ray cluster, e.g. auto (default: start Ray here)")
    add("--storage-path", help=f"where studies go: a folder or s3://... (default {DEFAULT_STORAGE})")
    add("--name", help="the study's folder name (default study-YYYYmmdd-HHMMSS; with --resume the latest)")
    add("--seed", type=int, help="the sampler's seed; trial n trains with seed + n (default 0)")
    add(
        "--uncertainty",
        action="store_true",
        default=None,
        help="also search uncertainty weighting (default: off)",
    )
    add("--tune-lr", action="store_true", default=None, help="also search the learning rate (default: off)")
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


def _or(value: Any, default: Any) -> Any:
    """`value` unless the flag was not given (None)."""
    return default if value is None else value


def settings_from_args(args: argparse.Namespace) -> StudySettings:
    """A new study's settings from the command line, with the defaults filled in."""
    preset = args.preset or "cpu"
    defaults = PRESET_DEFAULTS.get(preset)
    max_epochs = args.max_epochs
    if max_epochs is None:
        max_epochs = defaults.max_epochs if defaults else preset_epochs(preset)
    overrides = {**dict(defaults.overrides if defaults else ()), **dict(_parse_overrides(args.set))}
    reduction_factor = _or(args.reduction_factor, DEFAULT_REDUCTION_FACTOR)
    grace_period = args.grace_period
    if grace_period is None:
        rungs_apart = max(reduction_factor, 2) ** 2  # a bad factor is reported by `validate`
        grace_period = min(max_epochs, max(MIN_GRACE_PERIOD, max_epochs // rungs_apart))
    return StudySettings(
        name=args.name or time.strftime("study-%Y%m%d-%H%M%S"),
        storage_path=args.storage_path or DEFAULT_STORAGE,
        num_samples=_or(args.num_samples, DEFAULT_NUM_SAMPLES),
        preset=preset,
        data_root=args.data_root,
        max_epochs=max_epochs,
        grace_period=grace_period,
        reduction_factor=reduction_factor,
        metric=args.metric or DEFAULT_METRIC,
        gpus_per_trial=_or(args.gpus_per_trial, 0.0),  # `main` makes the default 1 when Ray sees a GPU
        cpus_per_trial=_or(args.cpus_per_trial, 1.0),
        max_concurrent=args.max_concurrent,
        max_failures=_or(args.max_failures, DEFAULT_MAX_FAILURES),
        seed=_or(args.seed, 0),
        uncertainty=bool(args.uncertainty),
        tune_lr=bool(args.tune_lr),
        overrides=tuple(sorted(overrides.items())),
    )


STUDY_FLAGS = (
    "num_samples preset data_root max_epochs grace_period reduction_factor metric gpus_per_trial "
    "cpus_per_trial max_concurrent max_failures seed uncertainty tune_lr"
).split()


def settings_for_resume(args: argparse.Namespace) -> StudySettings:
    """The recorded settings of the study to resume (``--name``, or the latest in the storage path)."""
    storage = args.storage_path or DEFAULT_STORAGE
    name = args.name or StudyLocation.latest_name(storage)
    if name is None:
        raise UserError(f"--resume: no study in {storage} (give --storage-path and --name)")
    recorded = StudyLocation.of(storage, name).folder.read_study()
    if recorded is None or "settings" not in recorded:
        raise UserError(f"--resume: {storage}/{name} has no study.json with the study's settings")
    given = [f"--{flag.replace('_', '-')}" for flag in STUDY_FLAGS if getattr(args, flag) is not None]
    given += ["--set"] if args.set else []
    if given:
        print(f"note: --resume uses the recorded settings; ignoring {' '.join(given)}")
    settings = StudySettings.from_json(recorded["settings"])
    return dataclasses.replace(settings, storage_path=storage, name=name)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: parse, start or join Ray, run the study, print the best trials."""
    started = time.monotonic()
    args = build_parser().parse_args(argv)
    settings = settings_for_resume(args) if args.resume else settings_from_args(args)
    validate(settings)  # bad flags fail before Ray starts
    owns_ray = connect(args.address)
    try:
        if not args.resume and args.gpus_per_trial is None and ray.cluster_resources().get("GPU", 0.0) > 0:
            settings = dataclasses.replace(settings, gpus_per_trial=1.0)
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
