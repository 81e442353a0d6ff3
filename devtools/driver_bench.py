"""``python -m devtools.study_bench driver``: what the study's driver costs per trial as a study grows.

A study of N trials of a trivial trainable runs through the driver's own Tuner (`study.run`: the Optuna
searcher, TPE with constant liar on the journal, ASHA, the callbacks, Tune's experiment snapshots): each
trial reports `EPOCHS` epochs, writing a small file into its trial folder every epoch as the study's
trials write their checkpoints, and trains nothing, so the
study's wall time is what the driver and Tune spend on it. Figures per size: wall seconds per trial,
the driver process's CPU seconds per trial (all its threads; less noisy than wall time on a shared
machine) and the driver's peak resident memory (Linux's VmHWM, reset before each size).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ray import tune

from mtan.files import atomic_write_text
from study.driver import (  # the driver's own Tuner (the searcher, ASHA, the callbacks), run as it runs it
    StudyJsonWriter,
    build_tuner,
    quiet_tune,
)
from study.search.journal import open_study
from study.settings import StudySettings
from study.space import TRIAL_NUMBER
from study.storage import StudyLocation, TrialStore
from study.trainable import EPOCH_KEY

EPOCHS = 3


def trivial_trial(config: dict[str, Any], *, trials_uri: str) -> None:
    """A trial that trains nothing: `EPOCHS` reports of a value set by its point, each after writing a
    one-line file into its trial folder (so ASHA has something to rank and storage something to hold)."""
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # as the study's trainable
    value = float(config["gamma"]) * (1.0 - float(config["step_fraction"]) / 2)
    with TrialStore(trials_uri).working_folder(int(config[TRIAL_NUMBER])) as (folder, upload):
        for epoch in range(1, EPOCHS + 1):
            atomic_write_text(folder / "state.json", json.dumps({EPOCH_KEY: epoch}))
            upload()
            tune.report({EPOCH_KEY: epoch, StudySettings.metric: value * epoch / EPOCHS})


def reset_peak_rss() -> None:
    """Reset this process's peak resident memory (VmHWM) to its current one (Linux)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_bytes() -> int:
    """This process's peak resident memory since start or `reset_peak_rss`, in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise OSError("/proc/self/status has no VmHWM")


def driver_run(num_trials: int, storage: Path, concurrent: int) -> dict[str, Any]:
    """Run a study of `num_trials` trivial trials, `concurrent` at once; the driver's figures."""
    settings = StudySettings(
        name=f"driver-{num_trials}",
        storage_path=str(storage),
        num_samples=num_trials,
        max_epochs=EPOCHS,
        grace_period=1,
        reduction_factor=2,
        max_concurrent=concurrent,
    )
    location = StudyLocation.of(settings.storage_path, settings.name)
    location.local_dir.mkdir(parents=True, exist_ok=True)
    study = open_study(
        location.journal,
        settings.name,
        mode=settings.mode,
        seed=settings.seed,
        points=settings.space.published_points(),
    )
    study_json = StudyJsonWriter(location, {"settings": settings.to_json()}, 0.0, time.monotonic())
    trainable = tune.with_resources(
        tune.with_parameters(trivial_trial, trials_uri=location.trials_uri), {"cpu": 1}
    )
    tuner = build_tuner(settings, location, study, TrialStore(location.trials_uri), trainable, study_json, 1)
    reset_peak_rss()
    wall, cpu = time.monotonic(), time.process_time()
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # a line per trial otherwise
        with quiet_tune():  # Tune's engine and telemetry as in a study
            grid = tuner.fit()
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    epochs = sum(int((result.metrics or {}).get(EPOCH_KEY, 0)) for result in grid)
    return {
        "trials": num_trials,
        "ended": grid.num_terminated + grid.num_errors,
        "errors": grid.num_errors,
        "epochs": epochs,
        "wall_s": wall,
        "wall_s_per_trial": wall / num_trials,
        "driver_cpu_s_per_trial": cpu / num_trials,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def driver_figures(
    counts: Sequence[int], storage: Path, concurrent: int, on_run: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """`driver_run` at each size, smallest first, with the cost per trial against the smallest's;
    `on_run` gets each size's line as soon as it is measured."""
    runs: list[dict[str, Any]] = []
    for num_trials in sorted(counts):
        run = driver_run(num_trials, storage, concurrent)
        run["per_trial_vs_smallest"] = run["wall_s_per_trial"] / (runs or [run])[0]["wall_s_per_trial"]
        runs.append(run)
        if on_run is not None:
            on_run(format_run(run))
    return {"concurrent": concurrent, "epochs_per_trial": EPOCHS, "runs": runs}


def format_run(run: dict[str, Any]) -> str:
    """One size's figures in one line."""
    return (
        f"{run['trials']:5d} trials ({run['epochs']} epochs, {run['errors']} failed): "
        f"{run['wall_s']:7.1f} s, {run['wall_s_per_trial']:.3f} s per trial "
        f"(x{run['per_trial_vs_smallest']:.2f} the smallest's), "
        f"driver CPU {run['driver_cpu_s_per_trial']:.3f} s per trial, "
        f"driver peak RSS {run['peak_rss_bytes'] / 2**20:.0f} MiB"
    )
