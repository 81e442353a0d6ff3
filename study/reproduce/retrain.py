"""Retraining the candidates of a confirmation on fresh seeds, as Ray tasks, and the tables it writes
(seeds.csv, summary.csv, comparisons.csv, configs.csv under ``RESULTS_DIR/reproduce/``)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import ray

from mtan.config import TrainConfig, config_from_flat
from mtan.data import DataBundle, load_data
from mtan.files import CHECKPOINT_FILE
from mtan.metrics import METRIC_KEYS, tail_mean
from mtan.train import train
from study.record import COMPARISONS_CSV, CONFIGS_CSV, SEEDS_CSV, SUMMARY_CSV, StudyFolder, write_csv
from study.reproduce.plan import (
    check_counts,
    comparison_pairs,
    configs_table,
    confirmation_candidates,
    first_fresh_seed,
    read_best_config,
)
from study.reproduce.stats import comparisons_table, summary_table


@dataclass(frozen=True)
class ReproduceSettings:
    """What to retrain and on what: the study folder, how many seeds, how many top trials (None: the
    best configuration alone, without the published ones), each task's resources."""

    results_dir: Path
    seeds: int = 3
    top: int | None = None
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0


def seed_config(flat: dict[str, Any], seed: int, settings: ReproduceSettings) -> TrainConfig:
    """`flat` on `seed`, on this run's device and threads."""
    device = "cuda" if settings.gpus_per_task > 0 else "cpu"
    threads = max(1, math.floor(settings.cpus_per_task))
    return config_from_flat({**flat, "seed": seed, "device": device, "num_threads": threads})


def _train_seed(config: TrainConfig, out_dir: Path, data: DataBundle) -> list[dict[str, float]]:
    """One seed's run (a Ray task); continues a run already in `out_dir`."""
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")  # zero-copy data
    return train(config, out_dir, resume=(out_dir / CHECKPOINT_FILE).exists(), data=data, progress=False)


def seeds_row(name: str, seed: int, history: Sequence[dict[str, float]]) -> dict[str, Any]:
    """A seeds.csv row: the run's epochs and each metric's mean over its last 10 epochs."""
    tail = tail_mean(history)
    return {
        "config": name,
        "seed": seed,
        "epochs": len(history),
        **{k: tail.get(k, math.nan) for k in METRIC_KEYS},
    }


def reproduce(
    settings: ReproduceSettings, data: DataBundle | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Retrain the candidates on the seeds (Ray tasks on the connected Ray), on `data` when the caller
    has loaded the study's data set already; write the tables and return (summary, comparisons)."""
    check_counts(settings.seeds, settings.top)
    best = read_best_config(settings.results_dir)
    folder = StudyFolder(Path(settings.results_dir))
    table = folder.read_results()
    candidates = confirmation_candidates(best, table, settings.top)
    first = first_fresh_seed(best, table)
    seeds = range(first, first + settings.seeds)
    out_root = folder.reproduce
    runs = [(c.name, seed, seed_config(c.config, seed, settings)) for c in candidates for seed in seeds]
    shared = ray.put(load_data(runs[0][2]) if data is None else data)
    task = ray.remote(_train_seed).options(num_cpus=settings.cpus_per_task, num_gpus=settings.gpus_per_task)
    futures = [task.remote(config, folder.seed_run(name, seed), shared) for name, seed, config in runs]
    histories = ray.get(futures)
    per_seed = pd.DataFrame(
        [seeds_row(name, seed, history) for (name, seed, _), history in zip(runs, histories, strict=True)]
    )
    summary = summary_table(per_seed, METRIC_KEYS)
    comparisons = comparisons_table(per_seed, comparison_pairs(candidates), METRIC_KEYS)
    write_csv(out_root / CONFIGS_CSV, configs_table(candidates))
    write_csv(out_root / SEEDS_CSV, per_seed)
    write_csv(out_root / SUMMARY_CSV, summary)
    write_csv(out_root / COMPARISONS_CSV, comparisons)
    return summary, comparisons
