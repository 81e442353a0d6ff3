"""Retraining the candidates of a confirmation and its single-task baselines on fresh seeds, as Ray tasks
followed through their run folders (`study.reproduce.progress`), and writing its tables
(`study.reproduce.tables`: seeds.csv, summary.csv, comparisons.csv, configs.csv under
``RESULTS_DIR/reproduce/``)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import ray

from mtan.config import TrainConfig, config_from_flat
from mtan.data import DataBundle, load_data
from mtan.train import train
from study.cluster import trial_slots
from study.record import COMPARISONS_CSV, SUMMARY_CSV, StudyFolder, write_csv
from study.reproduce.plan import ConfirmationPlan
from study.reproduce.progress import POLL_SECONDS, ConfirmationProgress, SeedRun, seed_runs
from study.reproduce.tables import confirmation_tables, seeds_row


@dataclass(frozen=True)
class ReproduceSettings:
    """Where the confirmation writes (the study folder) and each task's resources; what it retrains is
    its `ConfirmationPlan`."""

    results_dir: Path
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0


def seed_config(flat: Mapping[str, Any], seed: int, settings: ReproduceSettings) -> TrainConfig:
    """`flat` on `seed`, on this run's device and threads."""
    device = "cuda" if settings.gpus_per_task > 0 else "cpu"
    threads = max(1, math.floor(settings.cpus_per_task))
    return config_from_flat({**flat, "seed": seed, "device": device, "num_threads": threads})


def _train_seed(config: TrainConfig, out_dir: Path, data: DataBundle) -> list[dict[str, float]]:
    """One seed's run (a Ray task): `mtan.train`'s resume continues a run already in `out_dir` after its
    checkpoint's epoch, and trains one stopped before its first checkpoint (or a new one) from the start."""
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")  # zero-copy data
    return train(config, out_dir, resume=True, data=data, progress=False)


def at_once_text(slots: int | None, settings: ReproduceSettings) -> str:
    """How many runs train at once and what each takes: `2 (1 CPU each)`."""
    gpus = f", {settings.gpus_per_task:g} GPU" if settings.gpus_per_task > 0 else ""
    return f"{slots or 'as many as fit'} ({settings.cpus_per_task:g} CPU{gpus} each)"


def wait_for_runs(
    futures: dict[ray.ObjectRef, SeedRun], progress: ConfirmationProgress
) -> dict[SeedRun, list[dict[str, float]]]:
    """Each run's metrics rows as its task returns; the run folders are read between the waits."""
    histories: dict[SeedRun, list[dict[str, float]]] = {}
    pending = list(futures)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=POLL_SECONDS)
        progress.poll()
        for ref in ready:
            run = futures[ref]
            histories[run] = ray.get(ref)
            progress.ended(run, histories[run])
    return histories


def reproduce(
    settings: ReproduceSettings, plan: ConfirmationPlan, data: DataBundle | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Retrain the plan's candidates and single-task baselines on its seeds (Ray tasks on the connected
    Ray) showing their progress (the command has printed the plan, `study.reproduce.progress.plan_text`),
    on `data` when the caller has loaded the study's data set already; write the tables and return
    (summary, comparisons)."""
    folder = StudyFolder(Path(settings.results_dir))
    configs = {c.name: c.config for c in plan.trained}
    runs = seed_runs(plan, folder)
    slots = trial_slots(settings.cpus_per_task, settings.gpus_per_task)  # the connected cluster's now
    progress = ConfirmationProgress(runs, plan.metric, slots)
    progress.start(f"runs at once: {at_once_text(slots, settings)}")
    try:
        first = seed_config(configs[runs[0].config], runs[0].seed, settings)
        shared = ray.put(load_data(first) if data is None else data)
        task = ray.remote(_train_seed).options(
            num_cpus=settings.cpus_per_task, num_gpus=settings.gpus_per_task
        )
        futures = {
            task.remote(seed_config(configs[run.config], run.seed, settings), run.folder, shared): run
            for run in runs
        }
        histories = wait_for_runs(futures, progress)
    finally:
        progress.stop()
    per_seed = pd.DataFrame([seeds_row(run.config, run.seed, histories[run]) for run in runs])
    tables = confirmation_tables(plan, per_seed)
    for name, table in tables.items():
        write_csv(folder.reproduce / name, table)
    return tables[SUMMARY_CSV], tables[COMPARISONS_CSV]
