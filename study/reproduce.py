"""``python -m study.reproduce RESULTS_DIR``: retrain a study's best configuration from scratch on several
seeds in parallel (Ray tasks), with the study's full epoch budget.

Writes ``RESULTS_DIR/reproduce/seed_<s>/`` (one `mtan` run each), ``seeds.csv`` (the last epoch's
metrics per seed) and ``summary.csv`` (mean and sample std per metric), and prints mean +/- std. The
seeds are the best trial's own training seed + 1, + 2, ...: the best trial was picked because its seed
did well, so only other seeds estimate how good the configuration is. Runs already in the folder are
continued from their checkpoints, finished ones are kept.
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import ray

from mtan.checkpoint import atomic_write_text
from mtan.cli import add_version
from mtan.config import TrainConfig, config_from_flat
from mtan.data import DataBundle, load_data
from mtan.errors import UserError, run_cli
from mtan.metrics import METRIC_KEYS
from mtan.train import CHECKPOINT_FILE, train
from study.connect import connect

REPRODUCE_DIR = "reproduce"


@dataclass(frozen=True)
class ReproduceSettings:
    """What to retrain and on what: the study folder, how many seeds, each task's resources."""

    results_dir: Path
    seeds: int = 3
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0


def read_best_config(results_dir: Path) -> dict[str, Any]:
    """The study's best_config.json; `UserError` when the folder holds no finished study."""
    path = Path(results_dir) / "best_config.json"
    if not path.is_file():
        raise UserError(f"{path}: not found; RESULTS_DIR must be a finished study's folder (STORAGE/NAME)")
    return json.loads(path.read_text())


def seed_configs(best: dict[str, Any], settings: ReproduceSettings) -> list[TrainConfig]:
    """The best configuration once per new seed, on this run's device and threads."""
    flat = dict(best["config"])
    first = int(flat.get("seed", 0)) + 1
    device = "cuda" if settings.gpus_per_task > 0 else "cpu"
    threads = max(1, math.floor(settings.cpus_per_task))
    return [
        config_from_flat({**flat, "seed": seed, "device": device, "num_threads": threads})
        for seed in range(first, first + settings.seeds)
    ]


def _train_seed(config: TrainConfig, out_dir: Path, data: DataBundle) -> list[dict[str, float]]:
    """One seed's run (a Ray task); continues a run already in `out_dir`."""
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")  # zero-copy data
    return train(config, out_dir, resume=(out_dir / CHECKPOINT_FILE).exists(), data=data, progress=False)


def seeds_table(configs: Sequence[TrainConfig], histories: Sequence[list[dict[str, float]]]) -> pd.DataFrame:
    """seeds.csv: seed, epochs and the last epoch's metrics, one row per seed."""
    rows = []
    for config, history in zip(configs, histories, strict=True):
        last = history[-1]
        rows.append({"seed": config.seed, "epochs": len(history), **{k: last[k] for k in METRIC_KEYS}})
    return pd.DataFrame(rows, columns=["seed", "epochs", *METRIC_KEYS])


def summary_table(seeds: pd.DataFrame) -> pd.DataFrame:
    """summary.csv: mean, sample standard deviation (ddof 1; empty for one seed) and n per metric."""
    return pd.DataFrame(
        {
            "metric": list(METRIC_KEYS),
            "mean": [seeds[k].mean() for k in METRIC_KEYS],
            "std": [seeds[k].std(ddof=1) for k in METRIC_KEYS],
            "n": len(seeds),
        }
    )


def format_summary(summary: pd.DataFrame) -> str:
    """The mean +/- std table as text."""
    width = max(len(m) for m in summary["metric"])
    lines = [f"{'metric':<{width}}  mean +/- std (n = {int(summary['n'].iloc[0])})"]
    for row in summary.itertuples():
        std = "-" if pd.isna(row.std) else f"{row.std:.4f}"
        lines.append(f"{row.metric:<{width}}  {row.mean:.4f} +/- {std}")
    return "\n".join(lines)


def reproduce(settings: ReproduceSettings) -> pd.DataFrame:
    """Retrain the best configuration on the seeds (Ray tasks on the connected Ray); return the summary."""
    if settings.seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {settings.seeds}")
    best = read_best_config(settings.results_dir)
    configs = seed_configs(best, settings)
    out_root = Path(settings.results_dir) / REPRODUCE_DIR
    data = ray.put(load_data(configs[0]))
    task = ray.remote(_train_seed).options(num_cpus=settings.cpus_per_task, num_gpus=settings.gpus_per_task)
    futures = [task.remote(c, out_root / f"seed_{c.seed}", data) for c in configs]
    histories = ray.get(futures)
    seeds = seeds_table(configs, histories)
    summary = summary_table(seeds)
    atomic_write_text(out_root / "seeds.csv", seeds.to_csv(index=False))
    atomic_write_text(out_root / "summary.csv", summary.to_csv(index=False))
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m study.reproduce",
        description="Retrain a study's best configuration from scratch on new seeds, in parallel.",
    )
    add_version(parser)
    parser.add_argument("results_dir", type=Path, help="the study's folder, STORAGE/NAME (local)")
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds (default 3)")
    parser.add_argument("--cpus-per-task", type=float, default=1.0, help="CPUs (and torch threads) per seed")
    parser.add_argument(
        "--gpus-per-task", type=float, help="GPUs per seed, fractions allowed (default 1 if a GPU is visible)"
    )
    parser.add_argument("--address", help="join a running Ray cluster, e.g. auto (default: start Ray here)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: parse, start or join Ray, retrain, print the table."""
    args = build_parser().parse_args(argv)
    read_best_config(args.results_dir)  # fail before starting Ray
    owns_ray = connect(args.address)
    try:
        gpus = args.gpus_per_task
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0.0) > 0 else 0.0
        settings = ReproduceSettings(args.results_dir, args.seeds, args.cpus_per_task, gpus)
        summary = reproduce(settings)
    finally:
        if owns_ray:
            ray.shutdown()
    print(format_summary(summary))
    print(f"\nper-seed runs and tables: {args.results_dir / REPRODUCE_DIR}")
    return 0


if __name__ == "__main__":
    run_cli(main)
