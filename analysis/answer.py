"""The field's question answered from the confirmation: does a weighting method beat equal weighting and
linear scalarization once every method is tuned with the same budget (Kurin et al. 2022, arXiv
2201.04122; Xin et al. 2022, arXiv 2209.11379)?

A table laid out like Nash-MTL's Table 3: the study's own single-task networks, then each method's best
confirmed configuration (`analysis.confirmation.best_of_each_method`), with the mean [95 % CI] over the
fresh seeds of the four metrics Delta_m averages (`mtan.metrics.DELTA_M_KEYS`) and Delta_m against those
single-task networks (Maninis et al. 2019, Eq. 4; percent, lower is better), the published rows below;
and the answer in one or two sentences, significant by Holm's adjusted p-value. Pure functions of the
confirmation's tables and study.json's design.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from analysis.columns import label, metric_info
from analysis.common_epoch import trials_per_weighting
from analysis.confirmation import (
    Confirmation,
    best_of_each_method,
    interval_text,
    method_comparisons,
    roles_of,
    short_label,
    signed,
    single_task_configs,
    verdict,
)
from analysis.published import ReferenceRow, delta_m_keys, table_rows
from analysis.space import RecordedSpace
from analysis.tables import format_metric
from mtan.metrics import DELTA_M_KEYS, delta_m
from mtan.tasks import TASKS
from study.reproduce.plan import single_task_name
from study.reproduce.tables import DELTA_M  # summary.csv's and comparisons.csv's metric of Delta_m

NEEDS_SINGLE_TASK = (
    "Delta_m needs the study's own single-task networks (configurations "
    f"{' and '.join(single_task_name(task) for task in TASKS)} in the confirmation), which this "
    "confirmation lacks"
)
NOT_ANSWERED = (
    "Not answered yet: `python -m study.reproduce RESULTS_DIR --per-weighting-best 1 --seeds 3` retrains "
    "the best configuration of each weighting method on the same fresh seeds and compares each with tuned "
    "equal weighting and scalarization; this section then answers."
)


@dataclass(frozen=True)
class Budget:
    """How the study shared its trials among the weighting methods: N each (`per_weighting`, study.json's
    ``design``), or None when the sampler chose each trial's method (`--num-samples`); and how many
    trials each method ran."""

    per_weighting: int | None
    trials: Mapping[str, int]


def study_budget(study: Mapping[str, Any], trials: pd.DataFrame) -> Budget:
    """The budget of each method in a study: study.json's ``design`` and results.csv's trials."""
    design = study.get("design") or {}
    per_weighting = design.get("per_weighting") if isinstance(design, Mapping) else None
    return Budget(None if per_weighting is None else int(per_weighting), trials_per_weighting(trials))


def study_weightings(study: Mapping[str, Any], space: RecordedSpace) -> tuple[str, ...]:
    """The weighting methods the study searched, in the order its trials took turns (study.json's
    ``design``), else as its recorded space lists them."""
    design = study.get("design") or {}
    recorded = design.get("weightings") if isinstance(design, Mapping) else None
    return tuple(str(w) for w in (recorded or space.choices("weighting")))


def _summary(confirmation: Confirmation) -> pd.DataFrame:
    return confirmation.summary.set_index(["config", "metric"])


def delta_m_text(mean: float, low: float, high: float) -> str:
    """'-0.80 [-2.10, +0.50]': a Delta_m in percent with its 95 % interval ('-' when there is none)."""
    if pd.isna(mean):
        return "-"
    if pd.isna(low) or pd.isna(high):
        return f"{mean:+.2f}"
    return f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"


def _depth_averaging() -> str:
    """How this project's depth errors among `DELTA_M_KEYS` are averaged, from their labels."""
    depth = [key for key in DELTA_M_KEYS if metric_info(key).task == "depth"]
    return label(depth[0]).split("(")[-1].rstrip(")")


def _confirmed_row(
    summary: pd.DataFrame, config: str, method: str, configuration: str, tasks: Sequence[str] | None
) -> dict[str, str]:
    """One confirmed configuration's row: its metrics of `tasks` (all when None) as mean [95 % CI] and
    its Delta_m."""
    row = {"source": "this study", "method": method, "configuration": configuration}
    seeds = 0
    for key in DELTA_M_KEYS:
        cell = "-"
        if (tasks is None or metric_info(key).task in tasks) and (config, key) in summary.index:
            value = summary.loc[(config, key)]
            cell = interval_text(key, value["mean"], value["ci_low"], value["ci_high"])
            seeds = max(seeds, int(value["n"]))
        row[short_label(key)] = cell
    row["depth errors"] = _depth_averaging() if tasks is None or "depth" in tasks else "-"
    if tasks is not None:
        row["Delta_m %"] = "reference"
    elif (config, DELTA_M) in summary.index:
        value = summary.loc[(config, DELTA_M)]
        row["Delta_m %"] = delta_m_text(value["mean"], value["ci_low"], value["ci_high"])
    else:
        row["Delta_m %"] = "-"
    row["seeds"] = str(seeds) if seeds else "-"
    return row


def _published_row(row: ReferenceRow, stl: ReferenceRow) -> dict[str, str]:
    keys = delta_m_keys(row)
    out = {"source": f"published: {row.group}", "method": row.label, "configuration": "-"}
    for ours, theirs in zip(DELTA_M_KEYS, keys, strict=True):
        out[short_label(ours)] = format_metric(theirs, row.values[theirs], converted=True)
    out["depth errors"] = row.depth_averaging.split(" (")[0]
    if row.key == stl.key:
        out["Delta_m %"] = "reference"
    else:
        out["Delta_m %"] = f"{delta_m(row.values, stl.values, keys):+.2f}"
    out["seeds"] = "-"
    return out


def answer_table(
    confirmation: Confirmation,
    weightings: Sequence[str],
    published: Sequence[ReferenceRow] | None = None,
) -> pd.DataFrame:
    """The answer as text, one row per method: the study's single-task network of each task, then the
    best confirmed configuration of each method of `weightings` (a method with none: '-'), then the
    `published` rows (default: the Nash-MTL table's, its STL row first), their Delta_m computed from the
    published (rounded) values against their own STL row."""
    summary = _summary(confirmation)
    rows = [
        _confirmed_row(summary, config, f"STL {task}", config, (task,))
        for task, config in single_task_configs(confirmation).items()
    ]
    best = best_of_each_method(confirmation)
    configs = confirmation.configs.set_index("config")
    for weighting in weightings:
        name = best.get(weighting)
        if name is None:
            empty = {short_label(key): "-" for key in DELTA_M_KEYS}
            rows.append({"source": "this study", "method": weighting,
                         "configuration": "none retrained", **empty,
                         "depth errors": "-", "Delta_m %": "-", "seeds": "-"})  # fmt: skip
            continue
        roles = ", ".join(roles_of(configs.loc[name])).replace("_", " ")
        rows.append(_confirmed_row(summary, name, weighting, f"{name} ({roles})", None))
    published = table_rows() if published is None else published
    if published:
        rows += [_published_row(row, published[0]) for row in published]
    return pd.DataFrame(rows)


def _budget_text(budget: Budget) -> str:
    if budget.per_weighting is not None:
        return f"with {budget.per_weighting} trials per method (`--per-weighting {budget.per_weighting}`)"
    counts = ", ".join(f"{weighting} {n}" for weighting, n in budget.trials.items())
    chosen = "equal" if len(set(budget.trials.values())) <= 1 else "unequal"
    return f"with {chosen} trials per method, chosen by the sampler ({counts})"


def _clause(row: pd.Series, a: str, b: str, metric: str) -> str:
    """'dwa vs tuned equal -0.80 [95 % CI -2.10, +0.50], not significant (Holm p = 0.41)'."""
    if metric == DELTA_M:
        higher = False
        number = f"{row['mean_diff']:+.2f}"
        interval = "" if pd.isna(row["ci_low"]) else f" [95 % CI {row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"
    else:
        higher = metric_info(metric).higher_is_better
        number = signed(metric, row["mean_diff"])
        interval = ""
        if not pd.isna(row["ci_low"]):
            interval = f" [95 % CI {signed(metric, row['ci_low'])}, {signed(metric, row['ci_high'])}]"
    return f"{a} vs tuned {b} {number}{interval}, {verdict(row, higher)}"


def answer_sentence(
    confirmation: Confirmation | None, budget: Budget, objective: str, *, synthetic: bool
) -> str:
    """The answer in one or two sentences: the design (trials per method, seeds), then each method's best
    against tuned equal weighting (and scalarization): its Delta_m difference with the 95 % interval and
    whether it is significant (Holm). Without the single-task runs, on the study's `objective` instead,
    saying so; when the methods had unequal budgets, a second sentence says this is not the field's
    question."""
    pairs = method_comparisons(confirmation) if confirmation is not None else []
    if confirmation is None or not pairs:
        return NOT_ANSWERED
    comparisons = confirmation.comparisons
    metric = DELTA_M if has_delta_m(confirmation) else objective
    rows = comparisons[comparisons["metric"] == metric].set_index("comparison")
    clauses, seeds = [], 0
    for name, a, b in pairs:
        if name in rows.index:
            clauses.append(_clause(rows.loc[name], a, b, metric))
            seeds = max(seeds, int(rows.loc[name, "n"]))
    if metric == DELTA_M:
        what = "Delta_m against the study's own single-task networks (%, lower is better): "
    else:
        direction = "higher" if metric_info(objective).higher_is_better else "lower"
        what = f"{NEEDS_SINGLE_TASK}; on the study's objective instead ({objective}, {direction} is better): "
    data = " (synthetic, not CityScapes)" if synthetic else ""
    sentence = (
        f"On this data{data}, {_budget_text(budget)} and {seeds} fresh seed{'s' if seeds != 1 else ''}, "
        f"{what}{'; '.join(clauses) or 'no comparison recorded'}."
    )
    if budget.per_weighting is None:
        sentence += (
            " The methods did not get the same budget (the sampler chose each trial's method, "
            "`--num-samples`), so this does not answer the field's question, which tunes every method with "
            "the same budget (`python -m study.run --per-weighting N`)."
        )
    return sentence


def not_retrained(confirmation: Confirmation, weightings: Sequence[str]) -> list[str]:
    """The methods of `weightings` without a confirmed configuration."""
    best = best_of_each_method(confirmation)
    return [weighting for weighting in weightings if weighting not in best]


def has_delta_m(confirmation: Confirmation) -> bool:
    """Whether the confirmation holds Delta_m against its own single-task networks."""
    return bool(single_task_configs(confirmation)) and bool((confirmation.summary["metric"] == DELTA_M).any())


def answer_caption(seeds: int, published: Sequence[ReferenceRow], synthetic: bool) -> str:
    """The answer table's caption: what each row and column is."""
    stl = published[0].label if published else ""
    text = (
        f"Each method's best confirmed configuration retrained from scratch on the same {seeds} fresh seeds "
        "(its roles say why: `best 1 of <method>` with `--per-weighting-best`, else the best of that method "
        "among the retrained ones); each run counts with its mean over the last 10 epochs; mean [95 % "
        "Student-t interval] over the seeds. mIoU and pixel accuracy accumulated over the split, in "
        "percent (higher is better); depth errors averaged as the column says (lower is better). Delta_m "
        "(Maninis et al. 2019, Eq. 4): the mean relative change of the four metrics against the study's "
        "own single-task networks (STL rows) on the same seed, in percent, lower is better, 0 = as good as "
        "STL."
    )
    if published:
        text += (
            f" Published rows: {published[0].source}; their Delta_m computed here from the published "
            f"(rounded) values against '{stl}'."
        )
    if synthetic:
        text += " This study's rows are on synthetic data: the published CityScapes rows stand beside them "
        text += "for the layout only, not for comparison."
    return text
