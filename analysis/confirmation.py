"""The confirmation on fresh seeds (`python -m study.reproduce --top K` or `--per-weighting-best K`) for
the report: the confirmed ranking with 95 % intervals, the best confirmed configuration of each weighting
method, the paired comparisons in words (significant by Holm's adjusted p-value) and the winner's curse in
one line.

Pure functions of the reproduce folder's tables (docs/results.md): configs.csv, summary.csv,
comparisons.csv. Values are shown in display units (percent for mIoU and pixel accuracy).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from analysis.columns import label, metric_info
from analysis.tables import format_metric
from mtan.tasks import TASKS
from study.record import StudyFolder, trial_dirname
from study.reproduce.plan import Candidate, best_of_each_weighting, comparison_pairs, single_task_role
from study.reproduce.stats import SIGNIFICANCE, holm_by_metric

RANKING_METRICS: tuple[str, ...] = ("score", "miou", "abs_err")


@dataclass(frozen=True)
class Confirmation:
    """The tables `study.reproduce` wrote: one row per retrained configuration (configs), per
    configuration and metric (summary), per comparison and metric (comparisons)."""

    configs: pd.DataFrame
    summary: pd.DataFrame
    comparisons: pd.DataFrame


def read_confirmation(folder: StudyFolder) -> Confirmation | None:
    """The confirmation in a study's reproduce folder, or None when it holds none. A comparisons.csv
    written before it had ``p_holm`` gets it as `study.reproduce` computes it: Holm's adjustment over
    the comparisons of each metric."""
    configs = folder.read_reproduce_configs()
    summary = folder.read_reproduce_summary()
    comparisons = folder.read_reproduce_comparisons()
    if configs is None or summary is None or comparisons is None:
        return None
    if "p_holm" not in comparisons.columns:
        comparisons = comparisons.assign(p_holm=holm_by_metric(comparisons))
    return Confirmation(configs, summary, comparisons)


def roles_of(config: pd.Series) -> tuple[str, ...]:
    """A configs.csv row's roles (`best 1 of dwa; paper` -> ('best 1 of dwa', 'paper'))."""
    return tuple(role for role in str(config["roles"]).split("; ") if role)


def single_task_configs(confirmation: Confirmation) -> dict[str, str]:
    """Task -> the configuration of its single-task network (role `stl <task>`), in `mtan.tasks`' order;
    {} when the confirmation trained none."""
    found = {}
    for _, config in confirmation.configs.iterrows():
        for task in TASKS:
            if single_task_role(task) in roles_of(config):
                found[task] = str(config["config"])
    return {task: found[task] for task in TASKS if task in found}


def multitask_configs(confirmation: Confirmation) -> pd.DataFrame:
    """configs.csv without the single-task networks: the configurations of the study's trials."""
    single = set(single_task_configs(confirmation).values())
    return confirmation.configs[~confirmation.configs["config"].astype(str).isin(single)]


def candidates(confirmation: Confirmation) -> list[Candidate]:
    """The multi-task configurations as `study.reproduce.plan` saw them (without their config), in
    configs.csv's order, so that the best of each method and the pairs compared are its own."""
    return [
        Candidate(
            name=str(row["config"]),
            trial=int(row["trial"]),
            trial_id=str(row.get("trial_id", "")),
            roles=roles_of(row),
            weighting=str(row["weighting"]),
            study_last=float(row.get("study_last", math.nan)),
            study_tail=float(row.get("study_tail", math.nan)),
            state=str(row.get("state", "")),
            config={},
        )
        for _, row in multitask_configs(confirmation).iterrows()
    ]


def best_of_each_method(confirmation: Confirmation) -> dict[str, str]:
    """Weighting method -> its best confirmed configuration: the one ranked `best 1 of` it with
    `--per-weighting-best`, with `--top` the best of that weighting among the candidates
    (`study.reproduce.plan.best_of_each_weighting`)."""
    return best_of_each_weighting(candidates(confirmation))


def method_comparisons(confirmation: Confirmation) -> list[tuple[str, str, str]]:
    """(comparison, method a, method b) of the comparisons between two methods' best configurations
    (`study.reproduce.plan.comparison_pairs`), in its order: every method against tuned equal weighting,
    then against tuned scalarization; not the top trials against the paper's configuration. Only those
    comparisons.csv records: a confirmation that compared nothing (``--pareto``) has none."""
    best = best_of_each_method(confirmation)
    method = {name: weighting for weighting, name in best.items()}
    recorded = set(confirmation.comparisons["comparison"])
    return [
        (name, method[a], method[b])
        for name, a, b in comparison_pairs(candidates(confirmation))
        if a in method and b in method and method[a] != method[b] and name in recorded
    ]


def short_label(metric: str) -> str:
    """The label without its convention: 'mIoU %', 'abs err', 'score (0 = trivial, 1 = perfect)'."""
    return label(metric).split(" (")[0].split(",")[0]


def signed(metric: str, value: float) -> str:
    """A difference of `metric` in display units with its sign: '+0.80', '-0.0020'."""
    text = format_metric(metric, value)
    return text if text == "-" or text.startswith("-") else f"+{text}"


def interval_text(metric: str, mean: float, low: float, high: float) -> str:
    """'0.512 [0.480, 0.544]' in display units; the bare mean when there is no interval (one seed)."""
    if math.isnan(low) or math.isnan(high):
        return format_metric(metric, mean)
    return f"{format_metric(metric, mean)} [{format_metric(metric, low)}, {format_metric(metric, high)}]"


def study_value_text(
    metric: str, value: float, epochs: float | None = None, max_epochs: float | None = None
) -> str:
    """A configuration's value in the study, with the epochs it had when ASHA stopped it short of the
    budget ('0.138 after 3 of 24 epochs'), so that it is not read against a full-budget value."""
    text = format_metric(metric, value)
    if text == "-" or epochs is None or max_epochs is None or pd.isna(epochs) or epochs >= max_epochs:
        return text
    return f"{text} after {epochs:.0f} of {max_epochs:.0f} epochs"


def ranking_table(
    confirmation: Confirmation,
    metric: str,
    mode: str,
    metrics: Sequence[str] = RANKING_METRICS,
    study_epochs: Mapping[int, float] | None = None,
    max_epochs: float | None = None,
) -> pd.DataFrame:
    """The retrained multi-task configurations ranked by their confirmed mean of `metric`: name, why
    retrained, weighting, the study's value (with the epochs it had, `study_epochs` by trial number, when
    fewer than `max_epochs`) and each metric's mean with its 95 % interval over the seeds."""
    configs = multitask_configs(confirmation).set_index("config")
    summary = confirmation.summary[confirmation.summary["config"].isin(configs.index)]
    wide = summary.pivot_table(index="config", columns="metric", values=["mean", "ci_low", "ci_high", "n"])
    order = wide["mean"][metric].sort_values(ascending=(mode == "min"), kind="stable").index
    epochs = study_epochs or {}
    columns = [m for m in dict.fromkeys((metric, *metrics)) if m in wide["mean"].columns]
    rows = []
    for rank, name in enumerate(order, start=1):
        info = configs.loc[name] if name in configs.index else None
        row = {
            "rank": rank,
            "configuration": name,
            "trial": "" if info is None else _trial_text(info),
            "retrained as": "" if info is None else info["roles"].replace("_", " "),
            "weighting": "" if info is None else info["weighting"],
            f"{short_label(metric)} in the study": study_value_text(
                metric,
                math.nan if info is None else info["study_last"],
                None if info is None or pd.isna(info["trial"]) else epochs.get(int(info["trial"])),
                max_epochs,
            ),
        }
        for m in columns:
            row[f"{label(m)}, mean [95 % CI]"] = interval_text(
                m, wide["mean"][m][name], wide["ci_low"][m][name], wide["ci_high"][m][name]
            )
        row["seeds"] = int(wide["n"][metric][name])
        rows.append(row)
    return pd.DataFrame(rows)


def verdict(row: pd.Series, higher_is_better: bool, over: str = "") -> str:
    """A comparison's verdict from its Holm-adjusted p-value against `study.reproduce.stats.SIGNIFICANCE`:
    'significant (Holm p = 0.012; better)', 'not significant (Holm p = 0.41)', or 'not testable' without
    a p-value (one seed, or differences that do not vary); `over` ('over 3 seeds') after the word."""
    p = float(row["p_holm"])
    over = f" {over}" if over else ""
    if math.isnan(p):
        return f"not testable{over}"
    if p < SIGNIFICANCE:
        better = (row["mean_diff"] > 0) == higher_is_better
        p_text = "Holm p < 0.001" if p < 0.001 else f"Holm p = {p:.3f}"
        return f"significant{over} ({p_text}; {'better' if better else 'worse'})"
    return f"not significant{over} (Holm p = {p:.2f})"


def comparison_sentence(row: pd.Series) -> str:
    """One paired comparison in words: 'best dwa (t3) vs best equal (paper): +0.80 mIoU %, 95 % CI -1.20
    to +2.80, not significant over 3 seeds (Holm p = 0.41)'."""
    metric, n = str(row["metric"]), int(row["n"])
    text = f"{row['comparison']}: {signed(metric, row['mean_diff'])} {short_label(metric)}"
    if not math.isnan(row["ci_low"]):
        text += f", 95 % CI {signed(metric, row['ci_low'])} to {signed(metric, row['ci_high'])}"
    seeds = f"over {n} seed{'s' if n != 1 else ''}"
    return f"{text}, {verdict(row, metric_info(metric).higher_is_better, seeds)}"


def comparison_sentences(confirmation: Confirmation, metrics: Sequence[str] = RANKING_METRICS) -> list[str]:
    """The comparisons in words, the study's objective first, for `metrics`."""
    rows = confirmation.comparisons
    rows = rows[rows["metric"].isin(metrics)]
    order = {m: i for i, m in enumerate(metrics)}
    rows = rows.assign(_order=rows["metric"].map(order)).sort_values(["comparison", "_order"], kind="stable")
    return [comparison_sentence(row) for _, row in rows.iterrows()]


def winners_curse(confirmation: Confirmation, metric: str, best_trial: int | None) -> str | None:
    """The study's best trial (`best_trial`, best_config.json's) in the study against its confirmed mean,
    in one line, whichever mode retrained it; None when the confirmation did not retrain it."""
    configs = multitask_configs(confirmation)
    best = configs[pd.to_numeric(configs["trial"], errors="coerce") == best_trial]
    summary = confirmation.summary
    if best_trial is None or best.empty:
        return None
    name = str(best.iloc[0]["config"])
    if name != trial_dirname(best_trial):
        name = f"{name} (trial {best_trial})"
    row = summary[(summary["config"] == best.iloc[0]["config"]) & (summary["metric"] == metric)]
    if row.empty:
        return None
    confirmed = row.iloc[0]
    tail = best.iloc[0].get("study_tail", math.nan)
    tail_text = "" if pd.isna(tail) else f" ({format_metric(metric, tail)} as the mean of its last 10 epochs)"
    return (
        f"Winner's curse: the study's best trial {name} reached {short_label(metric)} "
        f"{format_metric(metric, best.iloc[0]['study_last'])} in the study{tail_text}, picked from many "
        f"single-seed runs; retrained on {int(confirmed['n'])} fresh seeds it reaches "
        f"{interval_text(metric, confirmed['mean'], confirmed['ci_low'], confirmed['ci_high'])} "
        "(mean of the last 10 epochs [95 % CI])."
    )


def _trial_text(config: pd.Series) -> str:
    """A confirmed configuration's study trial number, as text ('' when configs.csv has none)."""
    number = config.get("trial")
    return "" if number is None or pd.isna(number) else str(int(number))
