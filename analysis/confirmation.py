"""The confirmation on fresh seeds (`python -m study.reproduce --top K`) for the report: the confirmed
ranking with 95 % intervals, the paired comparisons in words, and the winner's curse in one line.

Pure functions of the reproduce folder's tables (docs/results.md): configs.csv, summary.csv,
comparisons.csv. Values are shown in display units (percent for mIoU and pixel accuracy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from analysis.columns import label, metric_info
from analysis.tables import format_metric
from study.record import StudyFolder, trial_dirname

SIGNIFICANCE = 0.05
RANKING_METRICS: tuple[str, ...] = ("score", "miou", "abs_err")


@dataclass(frozen=True)
class Confirmation:
    """The tables `study.reproduce` wrote: one row per retrained configuration (configs), per
    configuration and metric (summary), per comparison and metric (comparisons)."""

    configs: pd.DataFrame
    summary: pd.DataFrame
    comparisons: pd.DataFrame


def read_confirmation(folder: StudyFolder) -> Confirmation | None:
    """The confirmation in a study's reproduce folder, or None when it holds none."""
    configs = folder.read_reproduce_configs()
    summary = folder.read_reproduce_summary()
    comparisons = folder.read_reproduce_comparisons()
    if configs is None or summary is None or comparisons is None:
        return None
    return Confirmation(configs, summary, comparisons)


def short_label(metric: str) -> str:
    """The label without its convention: 'mIoU %', 'abs err', 'score (0 = trivial, 1 = perfect)'."""
    return label(metric).split(" (")[0].split(",")[0]


def _signed(metric: str, value: float) -> str:
    text = format_metric(metric, value)
    return text if text == "-" or text.startswith("-") else f"+{text}"


def interval_text(metric: str, mean: float, low: float, high: float) -> str:
    """'0.512 [0.480, 0.544]' in display units; the bare mean when there is no interval (one seed)."""
    if math.isnan(low) or math.isnan(high):
        return format_metric(metric, mean)
    return f"{format_metric(metric, mean)} [{format_metric(metric, low)}, {format_metric(metric, high)}]"


def ranking_table(
    confirmation: Confirmation, metric: str, mode: str, metrics: Sequence[str] = RANKING_METRICS
) -> pd.DataFrame:
    """The retrained configurations ranked by their confirmed mean of `metric`: name, why retrained,
    weighting, the study's value and each metric's mean with its 95 % interval over the seeds."""
    summary = confirmation.summary
    wide = summary.pivot_table(index="config", columns="metric", values=["mean", "ci_low", "ci_high", "n"])
    order = wide["mean"][metric].sort_values(ascending=(mode == "min"), kind="stable").index
    configs = confirmation.configs.set_index("config")
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
            f"{short_label(metric)} in the study": format_metric(
                metric, math.nan if info is None else info["study_last"]
            ),
        }
        for m in columns:
            row[f"{label(m)}, mean [95 % CI]"] = interval_text(
                m, wide["mean"][m][name], wide["ci_low"][m][name], wide["ci_high"][m][name]
            )
        row["seeds"] = int(wide["n"][metric][name])
        rows.append(row)
    return pd.DataFrame(rows)


def comparison_sentence(row: pd.Series) -> str:
    """One paired comparison in words: 'best dwa (t3) vs best equal (paper): +0.80 mIoU %, 95 % CI -1.20
    to +2.80, not significant over 3 seeds (p = 0.41)'."""
    metric, n = str(row["metric"]), int(row["n"])
    text = f"{row['comparison']}: {_signed(metric, row['mean_diff'])} {short_label(metric)}"
    if not math.isnan(row["ci_low"]):
        text += f", 95 % CI {_signed(metric, row['ci_low'])} to {_signed(metric, row['ci_high'])}"
    p = float(row["p_value"])
    if math.isnan(p):
        verdict = f"not testable over {n} seed{'s' if n != 1 else ''}"
    elif p < SIGNIFICANCE:
        better = (row["mean_diff"] > 0) == metric_info(metric).higher_is_better
        p_text = "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
        verdict = f"significant over {n} seeds ({p_text}; {'better' if better else 'worse'})"
    else:
        verdict = f"not significant over {n} seeds (p = {p:.2f})"
    return f"{text}, {verdict}"


def comparison_sentences(confirmation: Confirmation, metrics: Sequence[str] = RANKING_METRICS) -> list[str]:
    """The comparisons in words, the study's objective first, for `metrics`."""
    rows = confirmation.comparisons
    rows = rows[rows["metric"].isin(metrics)]
    order = {m: i for i, m in enumerate(metrics)}
    rows = rows.assign(_order=rows["metric"].map(order)).sort_values(["comparison", "_order"], kind="stable")
    return [comparison_sentence(row) for _, row in rows.iterrows()]


def winners_curse(confirmation: Confirmation, metric: str) -> str | None:
    """The study's best trial ('top 1') in the study against its confirmed mean, in one line."""
    configs = confirmation.configs
    best = configs[configs["roles"].str.split("; ").map(lambda roles: "top 1" in roles)]
    summary = confirmation.summary
    if best.empty:
        return None
    name = best.iloc[0]["config"]
    trial = _trial_text(best.iloc[0])
    if trial and name != trial_dirname(int(trial)):
        name = f"{name} (trial {trial})"
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
