"""``python -m study.reproduce RESULTS_DIR``: the command line of the confirmation (`study.reproduce`).

Every check comes before Ray starts and before anything is written: the study's files, each checked whole
(best_config.json, results.csv against study.json and the journal), the counts, the data (loaded here),
and for the Ray instance it starts on this machine whether a seed's run fits (on a cluster: once
joined). It ends with where its tables are and the report's command.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import ray

from mtan.cli import command_parser
from mtan.config import config_from_flat
from mtan.data import load_data
from mtan.metrics import DELTA_M_KEYS, METRICS
from study import cluster
from study.front import interval_dominated
from study.record import StudyFolder, journal_states, load_optuna_study
from study.reproduce.plan import ConfirmationPlan, plan_confirmation
from study.reproduce.progress import plan_text
from study.reproduce.retrain import ReproduceSettings, reproduce
from study.reproduce.stats import SIGNIFICANCE, family_note
from study.reproduce.tables import DELTA_M


def _signed(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:+.4f}"


DELTA_M_HEADING = (
    f"{DELTA_M}: Delta_m in % against the single-task runs of the same seed (lower is better, 0 = parity), "
    "over seeds"
)


def format_summary(
    summary: pd.DataFrame, comparisons: pd.DataFrame, metric: str, heading: str | None = None
) -> str:
    """`metric`'s mean, std and 95 % interval per configuration that has a value of it (a single-task
    run has no score, no Delta_m), then its paired comparisons with their raw and Holm-adjusted p-values;
    "significant" goes by the adjusted one. `heading` says what the metric is (default: a run's metric,
    the mean of its last 10 epochs)."""
    rows = summary[(summary["metric"] == metric) & (summary["n"] > 0)]
    heading = heading or f"{metric}, mean of the last 10 epochs, over seeds"
    if rows.empty:
        return f"{heading}: no values"
    width = max(len(str(c)) for c in rows["config"])
    lines = [f"{heading}: mean +/- std [95 % CI] (n)"]
    for row in rows.itertuples():
        std = "-" if pd.isna(row.std) else f"{row.std:.4f}"
        interval = f"[{row.ci_low:.4f}, {row.ci_high:.4f}]"
        lines.append(f"  {row.config:<{width}}  {row.mean:.4f} +/- {std} {interval} ({row.n})")
    paired = comparisons[comparisons["metric"] == metric]
    if len(paired):
        lines.append(
            f"paired over seeds: difference in {metric} [95 % CI], p, Holm p "
            f"({family_note(int(paired['p_value'].notna().sum()))})"  # Holm's m: the tested ones
        )
        for row in paired.itertuples():
            interval = f"[{_signed(row.ci_low)}, {_signed(row.ci_high)}]"
            if math.isnan(row.p_holm):
                verdict = "not testable"
            else:
                verdict = "significant" if row.p_holm < SIGNIFICANCE else "not significant"
            p_values = f"p = {row.p_value:.3f}, Holm p = {row.p_holm:.3f}, {verdict}"
            lines.append(f"  {row.comparison}: {_signed(row.mean_diff)} {interval}, {p_values} (n = {row.n})")
    return "\n".join(lines)


def single_task_text(summary: pd.DataFrame, plan: ConfirmationPlan) -> str:
    """The single-task baselines' metrics of Delta_m, each its mean over the seeds with its 95 % interval:
    `  stl_depth  abs_err 0.0123 [0.0101, 0.0145], rel_err ... (3)`."""
    values = summary.set_index(["config", "metric"])
    width = max(len(candidate.name) for candidate in plan.single_task)
    lines = ["single-task baselines, mean of the last 10 epochs over seeds [95 % CI] (n):"]
    for candidate in plan.single_task:
        keys = [key for key in DELTA_M_KEYS if METRICS[key].task == candidate.single_task]
        cells = [values.loc[(candidate.name, key)] for key in keys]
        text = ", ".join(
            f"{key} {row['mean']:.4f} [{row['ci_low']:.4f}, {row['ci_high']:.4f}]"
            for key, row in zip(keys, cells, strict=True)
        )
        lines.append(f"  {candidate.name:<{width}}  {text} ({int(cells[0]['n'])})")
    return "\n".join(lines)


def format_front(summary: pd.DataFrame, plan: ConfirmationPlan) -> str:
    """The retrained front (the plan's candidates; not the single-task baselines): each configuration's
    objectives (mean [95 % CI] over the seeds) and whether it stays non-dominated once the intervals count
    (`study.front.interval_dominated`)."""
    objectives = plan.objectives
    front = summary[summary["config"].isin([candidate.name for candidate in plan.candidates])]
    dominated = interval_dominated(front, objectives)
    rows = summary.set_index(["config", "metric"])
    width = max(len(name) for name in dominated)
    lines = [
        "the Pareto front on fresh seeds, mean [95 % CI] over the seeds; a configuration is dominated when "
        "another's whole interval is better than its own in every objective:"
    ]
    for name, by in dominated.items():
        values = "  ".join(
            f"{key} {rows.loc[(name, key), 'mean']:.4f} "
            f"[{rows.loc[(name, key), 'ci_low']:.4f}, {rows.loc[(name, key), 'ci_high']:.4f}]"
            for key in objectives
        )
        verdict = f"dominated by {', '.join(by)}" if by else "stays non-dominated"
        lines.append(f"  {name:<{width}}  {values}  {verdict}")
    kept = sum(not by for by in dominated.values())
    lines.append(f"{kept} of {len(dominated)} configurations stay non-dominated")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "study.reproduce",
        "Retrain a study's best configuration (or, with --top K, its K best, or, with --per-weighting-best "
        "K, the K best of each weighting method, and both published configurations; or, with --pareto, "
        "every point of a multi-objective study's front) from scratch on fresh seeds, in parallel.",
    )
    parser.add_argument("results_dir", type=Path, help="the study's folder, STORAGE/NAME (local)")
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds (default 3)")
    parser.add_argument(
        "--top",
        type=int,
        help="retrain the K best completed trials and both published configurations, paired on the seeds",
    )
    parser.add_argument(
        "--per-weighting-best",
        type=int,
        metavar="K",
        help="retrain the K best trials of each weighting method (completed first, then those ASHA "
        "stopped, longest trained first) and both published "
        "configurations, paired on the seeds; each method's best is compared with the best equal (and "
        "scalarization) one (not with --top)",
    )
    parser.add_argument(
        "--pareto",
        action="store_true",
        help="retrain every trial on a multi-objective study's Pareto front, paired on the seeds, and say "
        "which stay non-dominated once their 95 %% intervals count (not with --top or --per-weighting-best)",
    )
    parser.add_argument("--cpus-per-task", type=float, default=1.0, help="CPUs (and torch threads) per run")
    parser.add_argument(
        "--gpus-per-task", type=float, help="GPUs per run, fractions allowed (default 1 if a GPU is visible)"
    )
    parser.add_argument("--address", help="join a running Ray cluster, e.g. auto (default: start Ray here)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: check everything and print the plan, start or join Ray, retrain, print the
    tables, where they are and the report's command."""
    args = build_parser().parse_args(argv)
    plan = plan_confirmation(args.results_dir, args.seeds, args.top, args.per_weighting_best, args.pareto)
    folder = StudyFolder(args.results_dir)
    if folder.journal.is_file():  # results.csv's states against the journal's, too
        folder.read_results(journal_states(load_optuna_study(folder.journal, folder.path.resolve().name)))
    flags = ("--cpus-per-task", "--gpus-per-task")
    gpus = args.gpus_per_task
    if cluster.starts_local_ray(args.address):  # known before Ray starts: this machine's CPUs and GPUs
        capacity = cluster.local_capacity()
        gpus = cluster.default_gpus_per_trial(capacity["GPU"]) if gpus is None else gpus
        cluster.check_trial_fits(args.cpus_per_task, gpus, flags, local=capacity)
    data = load_data(config_from_flat(plan.candidates[0].config))  # every trial's data is the study's
    print(plan_text(plan, folder), flush=True)
    cluster.interrupt_on_sigterm()
    owns_ray = False
    try:
        owns_ray = cluster.connect_interruptible(args.address)
        if gpus is None:
            gpus = cluster.default_gpus_per_trial(ray.cluster_resources().get("GPU", 0.0))
        cluster.check_trial_fits(args.cpus_per_task, gpus, flags)
        settings = ReproduceSettings(args.results_dir, args.cpus_per_task, gpus)
        summary, comparisons = reproduce(settings, plan, data)
    except KeyboardInterrupt:
        print(
            f"interrupted: the runs so far are in {folder.reproduce}; the same command continues them (each "
            "from its last checkpoint)",
            file=sys.stderr,
            flush=True,
        )
        return 130
    finally:
        if owns_ray:
            cluster.shutdown_ray()
    print(format_summary(summary, comparisons, plan.metric))
    if plan.single_task:
        print(format_summary(summary, comparisons, DELTA_M, DELTA_M_HEADING))
        print(single_task_text(summary, plan))
    if plan.objectives:
        print(format_front(summary, plan))
    print(f"\nper-seed runs and tables (seeds.csv, summary.csv, comparisons.csv): {folder.reproduce}")
    print(f"next: python -m analysis.report {shlex.quote(str(args.results_dir))}   (the report)")
    return 0
