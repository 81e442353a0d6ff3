"""``python -m study.reproduce RESULTS_DIR``: retrain configurations of a finished study from scratch on
fresh seeds (Ray tasks, GPU fractions allowed), with the study's full epoch budget, and say what is known
and what is noise.

- By default: the study's best configuration (best_config.json) on ``--seeds`` seeds.
- ``--top K``: the K best completed trials *and* both published configurations (the paper's and the
  seed report's, the study's first two trials), all on the same fresh seeds, so that they compare paired.

The best trial was picked because its seed did well, so only fresh seeds estimate how good a
configuration is: the seeds start above every seed the study used. Each run counts with its mean over
its last 10 epochs (the paper's protocol, `mtan.metrics.tail_mean`). Runs already in the folder are
continued from their checkpoints, finished ones are kept. Writes into ``RESULTS_DIR/reproduce/``:
``<config>/seed_<s>/`` (one `mtan` run each; config = ``trial_NNN`` or `paper` / `seed_report`),
``configs.csv``, ``seeds.csv``, ``summary.csv`` and ``comparisons.csv`` (docs/results.md).
"""

from __future__ import annotations

import argparse
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import ray

from mtan.cli import command_parser
from mtan.config import TrainConfig, config_from_flat
from mtan.data import DataBundle, load_data
from mtan.errors import ConfigError, UserError, run_cli
from mtan.files import CHECKPOINT_FILE
from mtan.metrics import METRIC_KEYS, tail_mean
from mtan.train import train
from study.capacity import check_trial_fits
from study.confirm_stats import comparisons_table, summary_table
from study.connect import connect
from study.record import (
    COMPARISONS_CSV,
    COMPLETED,
    CONFIGS_CSV,
    SEEDS_CSV,
    SUMMARY_CSV,
    StudyFolder,
    trial_dirname,
    write_csv,
)
from study.settings import default_gpus_per_trial
from study.space import PUBLISHED, SearchSpace

# The study's trials 0 and 1 are the published configurations (`study.space.PUBLISHED`, in that order).
CONFIG_TABLE_COLUMNS = (
    "config", "trial", "trial_id", "roles", "weighting", "study_last", "study_tail", "state"
)  # fmt: skip
# Every `TrainConfig` field a search space may set (results.csv has a column for each it searched).
SEARCHED_FIELDS: tuple[str, ...] = SearchSpace(uncertainty=True, tune_lr=True).fields


@dataclass(frozen=True)
class ReproduceSettings:
    """What to retrain and on what: the study folder, how many seeds, how many top trials (None: the
    best configuration alone, without the published ones), each task's resources."""

    results_dir: Path
    seeds: int = 3
    top: int | None = None
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0


@dataclass(frozen=True)
class Candidate:
    """A configuration to retrain: its name (``trial_NNN``, or `paper` / `seed_report`), the study trial
    it comes from, why it is retrained, and its flat `TrainConfig` (the seed is set per run)."""

    name: str
    trial: int
    trial_id: str
    roles: tuple[str, ...]
    weighting: str
    study_last: float
    study_tail: float
    state: str
    config: dict[str, Any]


def read_best_config(results_dir: Path) -> dict[str, Any]:
    """The study's best_config.json, its ``config`` checked as a `TrainConfig`; `UserError` naming the
    file when the folder holds no finished study or the file is not valid JSON or not a study's."""
    folder = StudyFolder(Path(results_dir))
    best = folder.read_best_config()
    if best is None:
        raise UserError(
            f"{folder.best_config_json}: not found; RESULTS_DIR must be a finished study's folder "
            "(STORAGE/NAME)"
        )
    if not isinstance(best.get("config"), dict):
        raise UserError(f"{folder.best_config_json}: expected a JSON object with the best trial's config")
    try:
        config_from_flat(best["config"])
    except ConfigError as error:
        raise ConfigError(f"{folder.best_config_json}: {error}") from None
    return best


def first_fresh_seed(best: dict[str, Any], table: pd.DataFrame) -> int:
    """The seed after every seed of the study: trial n trained with the study's seed + n."""
    study_seed = int(best["config"].get("seed", 0)) - int(best.get("trial", 0))
    return study_seed + int(table["trial"].max()) + 1


def trial_config(best: dict[str, Any], row: pd.Series) -> dict[str, Any]:
    """The flat config of a trial of `results.csv`: the best trial's config (every trial shares all but
    the searched fields and the seed) with the trial's searched fields."""
    flat = dict(best["config"])
    for column in SEARCHED_FIELDS:
        value = row.get(column)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue  # not searched, or not a field of this trial's method (temperature of equal)
        value = value.item() if hasattr(value, "item") else value
        if isinstance(flat.get(column), int) and isinstance(value, float) and value.is_integer():
            value = int(value)  # a CSV column with an empty cell reads as floats
        flat[column] = value
    return flat


def confirmation_candidates(best: dict[str, Any], table: pd.DataFrame, top: int | None) -> list[Candidate]:
    """The configurations to retrain, best first: with `top` None the best trial alone; otherwise the
    `top` best completed trials by the study's metric (last epoch, as the study ranked them), then the
    published configurations not among them. A published trial is named `paper` / `seed_report` in both
    modes, so its runs are shared between them."""
    metric, mode = best["metric"], best["mode"]
    if top is None:
        ranked = [int(best["trial"])]
    else:
        completed = table[table["state"] == COMPLETED].dropna(subset=[f"last_{metric}"])
        ordered = completed.sort_values(f"last_{metric}", ascending=(mode == "min"), kind="stable")
        ranked = [int(t) for t in ordered["trial"].head(top)]
    roles: dict[int, list[str]] = {trial: [f"top {rank}"] for rank, trial in enumerate(ranked, start=1)}
    published = dict(enumerate(PUBLISHED))  # trial number -> name
    for trial, name in published.items():
        if trial in set(table["trial"]) and (top is not None or trial in roles):
            roles.setdefault(trial, []).append(name)
    rows = table.set_index("trial")
    candidates = []
    for trial, trial_roles in roles.items():
        row = rows.loc[trial]
        config = trial_config(best, row)
        candidates.append(
            Candidate(
                name=published.get(trial, trial_dirname(trial)),
                trial=trial,
                trial_id=str(row.get("trial_id", "")),
                roles=tuple(trial_roles),
                weighting=str(config["weighting"]),
                study_last=float(row.get(f"last_{metric}", math.nan)),
                study_tail=float(row.get(f"tail_{metric}", math.nan)),
                state=str(row.get("state", "")),
                config=config,
            )
        )
    return candidates


def comparison_pairs(candidates: Sequence[Candidate]) -> list[tuple[str, str, str]]:
    """(name, a, b) of the paired comparisons a - b: the best configuration of every other weighting
    against the best equal one ("best" = first in `candidates`' order), and each top trial against the
    paper's configuration (once: a top trial that is the best of its weighting, compared with the paper's
    as the best equal one, is not compared again)."""
    best_of: dict[str, str] = {}
    for candidate in candidates:
        best_of.setdefault(candidate.weighting, candidate.name)
    pairs = []
    if "equal" in best_of:
        for weighting, name in best_of.items():
            if weighting != "equal":
                pairs.append(
                    (f"best {weighting} ({name}) vs best equal ({best_of['equal']})", name, best_of["equal"])
                )
    names = {c.name for c in candidates}
    compared = {(a, b) for _, a, b in pairs}
    if "paper" in names:
        for candidate in candidates:
            top = any(r.startswith("top ") for r in candidate.roles)
            if top and candidate.name != "paper" and (candidate.name, "paper") not in compared:
                pairs.append((f"{candidate.name} vs paper", candidate.name, "paper"))
    return pairs


def check_counts(seeds: int, top: int | None) -> None:
    """`UserError` naming the flag when --seeds or --top is below 1."""
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    if top is not None and top < 1:
        raise UserError(f"--top must be at least 1, got {top}")


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


def configs_table(candidates: Sequence[Candidate]) -> pd.DataFrame:
    """configs.csv: each retrained configuration, the trial it comes from and its values in the study."""
    rows = [
        (c.name, c.trial, c.trial_id, "; ".join(c.roles), c.weighting, c.study_last, c.study_tail, c.state)
        for c in candidates
    ]
    return pd.DataFrame(rows, columns=list(CONFIG_TABLE_COLUMNS))


def reproduce(settings: ReproduceSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Retrain the candidates on the seeds (Ray tasks on the connected Ray); write the tables and return
    (summary, comparisons)."""
    check_counts(settings.seeds, settings.top)
    best = read_best_config(settings.results_dir)
    folder = StudyFolder(Path(settings.results_dir))
    table = folder.read_results()
    candidates = confirmation_candidates(best, table, settings.top)
    first = first_fresh_seed(best, table)
    seeds = range(first, first + settings.seeds)
    out_root = folder.reproduce
    runs = [(c.name, seed, seed_config(c.config, seed, settings)) for c in candidates for seed in seeds]
    data = ray.put(load_data(runs[0][2]))
    task = ray.remote(_train_seed).options(num_cpus=settings.cpus_per_task, num_gpus=settings.gpus_per_task)
    futures = [task.remote(config, folder.seed_run(name, seed), data) for name, seed, config in runs]
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


def _signed(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:+.4f}"


def format_summary(summary: pd.DataFrame, comparisons: pd.DataFrame, metric: str) -> str:
    """The study metric's mean, std and 95 % interval per configuration, then its paired comparisons."""
    rows = summary[summary["metric"] == metric]
    width = max(len(str(c)) for c in rows["config"])
    lines = [f"{metric}, mean of the last 10 epochs, over seeds: mean +/- std [95 % CI] (n)"]
    for row in rows.itertuples():
        std = "-" if pd.isna(row.std) else f"{row.std:.4f}"
        interval = f"[{row.ci_low:.4f}, {row.ci_high:.4f}]"
        lines.append(f"  {row.config:<{width}}  {row.mean:.4f} +/- {std} {interval} ({row.n})")
    paired = comparisons[comparisons["metric"] == metric]
    if len(paired):
        lines.append(f"paired over seeds: difference in {metric} [95 % CI], p (paired t-test)")
        for row in paired.itertuples():
            interval = f"[{_signed(row.ci_low)}, {_signed(row.ci_high)}]"
            p_value = f"p = {row.p_value:.3f}"
            lines.append(f"  {row.comparison}: {_signed(row.mean_diff)} {interval}, {p_value} (n = {row.n})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "study.reproduce",
        "Retrain a study's best configuration (or, with --top K, its K best and both published "
        "configurations) from scratch on fresh seeds, in parallel.",
    )
    parser.add_argument("results_dir", type=Path, help="the study's folder, STORAGE/NAME (local)")
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds (default 3)")
    parser.add_argument(
        "--top",
        type=int,
        help="retrain the K best completed trials and both published configurations, paired on the seeds",
    )
    parser.add_argument("--cpus-per-task", type=float, default=1.0, help="CPUs (and torch threads) per run")
    parser.add_argument(
        "--gpus-per-task", type=float, help="GPUs per run, fractions allowed (default 1 if a GPU is visible)"
    )
    parser.add_argument("--address", help="join a running Ray cluster, e.g. auto (default: start Ray here)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: parse, start or join Ray, retrain, print the tables."""
    args = build_parser().parse_args(argv)
    best = read_best_config(args.results_dir)  # fail before starting Ray
    StudyFolder(args.results_dir).read_results()
    check_counts(args.seeds, args.top)
    owns_ray = connect(args.address)
    try:
        gpus = args.gpus_per_task
        if gpus is None:
            gpus = default_gpus_per_trial(ray.cluster_resources().get("GPU", 0.0))
        check_trial_fits(args.cpus_per_task, gpus, ("--cpus-per-task", "--gpus-per-task"))
        settings = ReproduceSettings(args.results_dir, args.seeds, args.top, args.cpus_per_task, gpus)
        summary, comparisons = reproduce(settings)
    finally:
        if owns_ray:
            ray.shutdown()
    print(format_summary(summary, comparisons, best["metric"]))
    print(f"\nper-seed runs and tables: {StudyFolder(args.results_dir).reproduce}")
    return 0


if __name__ == "__main__":
    run_cli(main)
