"""``python -m study.run``: the Ray Tune study of MTAN (Optuna suggestions, ASHA early stopping).

Each trial is one `mtan` training run (`study.trainable`) in its folder ``STORAGE/NAME/trials/trial_NNN/``;
the study's files go to ``STORAGE/NAME/`` (docs/results.md). ``--resume`` continues an interrupted study
with its recorded settings, from the study's own record (the Optuna journal and the trial folders).

Every check comes before Ray starts and before anything is written: the flags, the storage path, the study
folder (and that no other driver holds it: `study.lock.check_not_in_use`), the data (loaded here, by
`mtan.data`'s own checks) and, for the Ray instance the study starts on this machine, whether a trial fits
(on a cluster: once joined). A finished study ends with the counts by state and the next commands; one
whose every trial failed, with the most common reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import ray

from mtan.cli import command_parser, flag_type
from mtan.data import load_data
from mtan.errors import UserError, run_cli
from study.cluster import (
    check_trial_fits,
    connect_interruptible,
    default_gpus_per_trial,
    interrupt_on_sigterm,
    local_capacity,
    shutdown_ray,
    starts_local_ray,
)
from study.driver import StudyOutcome, check_study_folder, run_study
from study.lock import check_not_in_use
from study.record import FAILED, PARETO_COLUMN, count_states, most_common_error, states_text
from study.settings import (
    PRESET_DEFAULTS,
    STUDY_FLAGS,
    StudySettings,
    new_settings,
    validate,
)
from study.space import SearchSpace
from study.storage import StudyLocation, check_storage_path

RESULTS_LINE = "results: "  # a finished study says where its results are
RESUME_HINT = "study interrupted; continue it with"  # the interrupted study's last line
ALL_FAILED = "every trial failed"  # the last line of a study with no result


def best_trials_table(table: pd.DataFrame, metric: str, mode: str, space: SearchSpace, top: int = 5) -> str:
    """The best `top` trials by their last value of `metric`, as text ("-" where a value does not apply to
    a trial, e.g. the temperature of an equal-weighting one)."""
    columns = ["trial", "state", "epochs", *space.columns]
    columns += [f"last_{metric}"] + [f"last_{m}" for m in ("miou", "abs_err") if m != metric]
    ranked = table[table["state"] != FAILED].sort_values(f"last_{metric}", ascending=mode == "min")
    return ranked[columns].head(top).to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-")


def front_lines(table: pd.DataFrame, settings: StudySettings) -> list[str]:
    """A study of several objectives: its Pareto front (the completed trials no other completed trial
    dominates, on the means of their last 10 epochs), a line per trial with its weighting and values."""
    keys = settings.objective_keys
    front = table.loc[table[PARETO_COLUMN]]
    lines = [f"Pareto front of {', '.join(keys)} (means of the last 10 epochs): {len(front)} trial(s)"]
    for row in front.itertuples():
        values = "  ".join(f"{key} {getattr(row, f'tail_{key}'):.4g}" for key in keys)
        lines.append(f"  trial {row.trial}  {row.weighting}  {values}")
    return [*lines, ""]


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
            flag_type(StudySettings, setting.name),
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
    """A new study's settings from the command line, with the defaults filled in and checked (one GPU per
    trial when the Ray instance has a GPU is added by `main`)."""
    given = {name: getattr(args, name) for name in ("name", "storage_path", *STUDY_FLAGS)}
    settings = new_settings({**given, "overrides": _parse_overrides(args.set)})
    validate(settings)
    return settings


def settings_for_resume(args: argparse.Namespace) -> StudySettings:
    """The recorded settings of the study to resume (``--name``, or the latest in the storage path),
    checked."""
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
        settings = StudySettings.from_study_json(recorded)
        settings = dataclasses.replace(settings, storage_path=storage, name=name)
        validate(settings)
    except (UserError, TypeError, ValueError) as error:
        raise UserError(f"{folder.study_json}: the recorded settings are refused ({error})") from None
    return settings


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


def said_its_last(output: str) -> bool:
    """Whether a driver's output holds its last line: where the finished study's results are, or how to
    resume the interrupted one (`main` prints it before it shuts Ray down)."""
    return RESULTS_LINE in output or RESUME_HINT in output


def finished_lines(table: pd.DataFrame, settings: StudySettings, results: str) -> list[str]:
    """What a finished study prints last: its best trials (and a study of several objectives its front),
    where its results are, the count of trials by state (and of restarts), then the next commands (the
    confirmation of the best 2, of each weighting method's best for a ``--per-weighting`` study, of every
    front point for a study of several objectives that has a front); when every trial failed, instead of
    the best trials and the commands, one last line saying so with the most common reason."""
    counts = count_states(table)
    restarts = int(table["restarts"].sum())
    restarted = f"; {restarts} restart{'s' if restarts != 1 else ''} (results.csv)" if restarts else ""
    lines = []
    if counts[FAILED] < len(table):
        lines += [f"best trials by {settings.metric} ({settings.mode}):"]
        lines += [best_trials_table(table, settings.metric, settings.mode, settings.space), ""]
        lines += front_lines(table, settings) if settings.objective_keys else []
    lines += [f"{RESULTS_LINE}{results}", f"trials: {states_text(counts)}{restarted}"]
    common = most_common_error(table)
    if counts[FAILED] == len(table) and common is not None:
        reason, count = common
        return [*lines, f"{ALL_FAILED}; the most common reason ({count} of {len(table)}): {reason}"]
    folder = shlex.quote(results)
    if settings.objective_keys and table[PARETO_COLUMN].any():
        confirm = "--pareto   (every front point, new seeds)"
    elif settings.per_weighting is None:
        confirm = "--top 2   (the best 2 and the published ones, new seeds)"
    else:  # each method had its own trials: confirm each one's best against the others'
        confirm = (
            "--per-weighting-best 1   (the best of each weighting method and the published ones, new seeds)"
        )
    return [
        *lines,
        f"next: python -m study.reproduce {folder} {confirm}",
        f"      python -m analysis.report {folder}   (the report)",
    ]


def _say_outcome(outcome: StudyOutcome | None, settings: StudySettings) -> int:
    """Print how a finished study ended (0; 1 when every trial failed) or how to resume an interrupted
    one (130)."""
    if outcome is None or not outcome.finished:
        print(
            f"{RESUME_HINT}: python -m study.run --resume --storage-path {settings.storage_path} "
            f"--name {settings.name}",
            file=sys.stderr,
            flush=True,
        )
        return 130
    assert outcome.table is not None
    lines = finished_lines(outcome.table, settings, outcome.location.experiment_uri)
    print("\n" + "\n".join(lines), flush=True)
    return 1 if lines[-1].startswith(ALL_FAILED) else 0


def _with_default_gpus(settings: StudySettings, args: argparse.Namespace, gpus: float) -> StudySettings:
    """A new study without --gpus-per-trial: one GPU per trial when its Ray instance has `gpus` > 0."""
    if args.resume or args.gpus_per_trial is not None:
        return settings
    return dataclasses.replace(settings, gpus_per_trial=default_gpus_per_trial(gpus))


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: parse and check everything (the flags, the storage path, the study folder and
    that no driver holds it, the data, and whether a trial fits the Ray instance it starts here), start
    or join Ray, run the study, print how it ended (or how to resume), then stop the Ray instance it
    started."""
    started = _process_started()
    args = build_parser().parse_args(argv)
    settings = settings_for_resume(args) if args.resume else settings_from_args(args)  # before Ray starts
    check_storage_path(settings.storage_path)
    local = starts_local_ray(args.address)
    if local:  # known before Ray starts: this machine's CPUs and GPUs
        capacity = local_capacity()
        settings = _with_default_gpus(settings, args, capacity["GPU"])
        check_trial_fits(settings.cpus_per_trial, settings.gpus_per_trial, local=capacity)
    location = check_study_folder(settings, args.resume)
    check_not_in_use(location.local_dir)  # the driver takes the lock itself, for its life, once Ray runs
    data = load_data(settings.base_config)
    interrupt_on_sigterm()
    owns_ray = False
    outcome = None
    try:
        try:
            owns_ray = connect_interruptible(args.address)
            if not local:
                settings = _with_default_gpus(settings, args, ray.cluster_resources().get("GPU", 0.0))
            outcome = run_study(settings, resume=args.resume, started=started, data=data)
        except KeyboardInterrupt:
            pass
        return _say_outcome(outcome, settings)
    finally:
        if owns_ray:
            shutdown_ray()


if __name__ == "__main__":
    try:
        run_cli(main)
    except SystemExit as done:
        # Everything is written by now (atomically, fsynced) and the lock goes with the process. Skip the
        # interpreter's teardown, where Ray's and torch's threads can crash it and turn the exit code into a
        # signal.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(done.code if isinstance(done.code, int) else 1)
