"""The report's tables as pure functions of DataFrames: summary, top configs, the comparison with the
published rows, Delta_m, protocol differences, the weighting methods compared, the Pareto front.

Numeric tables keep numbers (display units: percent for mIoU and pixel accuracy); the `format_*`
functions turn them into text for the report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis.columns import COMPARISON_METRICS, FIGURE_METRICS, display_value, label, metric_info
from analysis.published import REFERENCES, ReferenceRow
from analysis.space import RecordedSpace
from mtan.metrics import delta_m
from study.front import non_dominated
from study.record import STATES
from study.space import PUBLISHED

NOT_RECORDED = "not recorded"


# ---------------------------------------------------------------- formatting


def format_metric(name: str, value: Any, *, converted: bool = False) -> str:
    """A metric as text, with the decimals of the published tables: percent with 2 decimals for
    mIoU/pixel accuracy, 4 decimals for abs err, 2 for a rel err of 1 or more (3 below), 3 for the
    score; '-' when missing. `converted`: the value is already in display units."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    number = float(value) if converted else display_value(name, float(value))
    if metric_info(name).percent:
        return f"{number:.2f}"
    if name.startswith("abs_err"):
        return f"{number:.4f}"
    if name.startswith("rel_err"):
        return f"{number:.2f}" if abs(number) >= 1 else f"{number:.3f}"
    return f"{number:.3f}"


def format_hyperparameter(name: str, value: Any) -> str:
    """A hyperparameter as text: learning rate and weight decay in scientific notation, 0 weight decay
    as '0 (none)', '-' for a parameter the trial does not have (temperature of an equal trial)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if name == "weighting":
        return str(value)
    number = float(value)
    if name in ("lr", "weight_decay"):
        return "0 (none)" if number == 0 else f"{number:.1e}"
    if name == "step_size":
        return f"{number:.0f}"
    return f"{number:.3g}"


def format_duration(seconds: float) -> str:
    """Seconds as '1 h 02 min', '3 min 20 s' or '12.3 s'."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{seconds:.1f} s"


# ---------------------------------------------------------------- the study itself


def state_counts(trials: pd.DataFrame) -> pd.Series:
    """Number of trials per state, in the order completed, stopped_early, failed (then any other)."""
    counts = trials["state"].value_counts()
    order = list(STATES) + sorted(s for s in counts.index if s not in STATES)
    return counts.reindex(order, fill_value=0).astype(int)


def epochs_saved(study: Mapping[str, Any], trials: pd.DataFrame) -> tuple[float, float]:
    """(epochs trained, epoch budget): from study.json, else the sum of the trials' epochs and
    num_samples x max_epochs (NaN when that cannot be known)."""
    trained = study.get("epochs_trained")
    if trained is None:
        trained = float(pd.to_numeric(trials["epochs"], errors="coerce").fillna(0).sum())
    budget = study.get("epochs_budget")
    if budget is None:
        samples, max_epochs = study.get("num_samples"), study.get("max_epochs")
        budget = samples * max_epochs if samples is not None and max_epochs is not None else math.nan
    return float(trained), float(budget)


def asha_savings(study: Mapping[str, Any], trials: pd.DataFrame) -> tuple[float, float]:
    """(epochs ASHA's early stops saved, epochs failed trials left unused): the epochs short of
    max_epochs of the stopped-early and of the failed trials; NaN without max_epochs."""
    top = study.get("max_epochs")
    if top is None:
        return math.nan, math.nan
    short = (float(top) - pd.to_numeric(trials["epochs"], errors="coerce").fillna(0)).clip(lower=0)
    return float(short[trials["state"] == "stopped_early"].sum()), float(
        short[trials["state"] == "failed"].sum()
    )


def is_synthetic(study: Mapping[str, Any]) -> bool:
    """Whether the study ran on the generated synthetic data set rather than CityScapes."""
    return str(study.get("data", "")).strip().lower() == "synthetic"


def study_summary(study: Mapping[str, Any], trials: pd.DataFrame) -> pd.DataFrame:
    """The study at a glance as (item, value) text rows: data, trials by state, objective, ASHA,
    epochs trained against the budget, wall time, hardware, versions."""
    counts = state_counts(trials)
    by_state = ", ".join(f"{state.replace('_', ' ')} {n}" for state, n in counts.items())
    rows: list[tuple[str, str]] = []
    data = study.get("data", NOT_RECORDED)
    rows.append(("data", "synthetic (generated; not CityScapes)" if is_synthetic(study) else str(data)))
    rows.append(("preset", str(study.get("preset", NOT_RECORDED))))
    rows.append(("trials", f"{len(trials)} ({by_state})"))
    recorded = study.get("states")
    if isinstance(recorded, Mapping) and {k: int(v) for k, v in recorded.items() if v} != {
        k: int(v) for k, v in counts.items() if v
    }:
        rows.append(("trials by state in study.json", ", ".join(f"{k} {v}" for k, v in recorded.items())))
    rows.append(("objective", f"{study.get('metric', NOT_RECORDED)} ({study.get('mode', NOT_RECORDED)})"))
    objectives = study.get("objectives")
    if objectives:  # a study of several: the one metric above is what ASHA stopped trials on
        rows[-1] = ("ASHA's metric", rows[-1][1])
        pairs = zip(objectives, study.get("directions") or [], strict=False)
        sampler = f"; sampler {study['sampler']}" if study.get("sampler") else ""
        rows.insert(-1, ("objectives", ", ".join(f"{k} ({d})" for k, d in pairs) + sampler))
    rows.append(
        (
            "ASHA",
            f"max {study.get('max_epochs', '?')} epochs, grace period {study.get('grace_period', '?')}, "
            f"reduction factor {study.get('reduction_factor', '?')}",
        )
    )
    trained, budget = epochs_saved(study, trials)
    if budget and not math.isnan(budget):
        text = f"{trained:.0f} of a full budget of {budget:.0f} ({100 * trained / budget:.0f} %)"
        stopped, unused = asha_savings(study, trials)
        if not math.isnan(stopped):
            text += f"; ASHA's early stops saved {stopped:.0f} epochs ({100 * stopped / budget:.0f} %)"
            if unused:
                text += f"; failed trials left {unused:.0f} unused"
        rows.append(("epochs trained", text))
    else:
        rows.append(("epochs trained", f"{trained:.0f} (budget {NOT_RECORDED})"))
    wall = study.get("wall_seconds")
    rows.append(("wall time", format_duration(float(wall)) if wall is not None else NOT_RECORDED))
    hardware = study.get("hardware") or {}
    gpus = int(hardware.get("gpus") or 0)
    gpu_text = f"{gpus} GPU ({hardware.get('gpu_name') or 'unnamed'})" if gpus else "no GPU"
    rows.append(("hardware", f"{hardware.get('cpus', '?')} CPUs, {gpu_text}" if hardware else NOT_RECORDED))
    versions = study.get("versions") or {}
    rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items()) or NOT_RECORDED))
    return pd.DataFrame(rows, columns=["item", "value"])


def failed_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The failed trials (`trial_names`) with the reason recorded for each."""
    failed = trials.loc[trials["state"] == "failed"]
    return pd.DataFrame(
        {
            "trial": trial_names(failed).to_numpy(),
            "error": failed["error"].fillna("no reason recorded").astype(str).to_numpy(),
        }
    )


# ---------------------------------------------------------------- ranking


def ranking_column(trials: pd.DataFrame, metric: str, best: Mapping[str, Any] | None) -> str:
    """The results.csv column the study ranked by: `last_<metric>` (Ray's default scope) unless
    best_config.json's value matches its trial's `best_<metric>` and not its `last_<metric>`."""
    last, peak = f"last_{metric}", f"best_{metric}"
    if best and peak in trials.columns and last in trials.columns and "value" in best:
        row = trials.loc[trials["trial"] == best.get("trial")]
        if len(row) == 1:
            value = float(best["value"])
            if not np.isclose(row[last].iloc[0], value) and np.isclose(row[peak].iloc[0], value):
                return peak
    return last


def ranked_trials(trials: pd.DataFrame, column: str, mode: str) -> pd.DataFrame:
    """Trials that did not fail and have a value in `column`, best first (ties keep file order)."""
    if column not in trials.columns:
        return trials.iloc[0:0]
    usable = trials.loc[(trials["state"] != "failed") & trials[column].notna()]
    return usable.sort_values(column, ascending=(mode == "min"), kind="stable").reset_index(drop=True)


def top_configs(
    trials: pd.DataFrame, column: str, mode: str, space: RecordedSpace, n: int = 5
) -> pd.DataFrame:
    """The `n` best trials by `column`: rank, trial number (and Ray's id), state, epochs, the config
    columns of `space` and the final (last-epoch) metrics, numbers as recorded (fractions)."""
    ranked = ranked_trials(trials, column, mode).head(n)
    metrics = [f"last_{m}" for m in FIGURE_METRICS if f"last_{m}" in ranked.columns]
    columns = [
        "trial",
        "trial_id",
        "state",
        "epochs",
        *space.names,
        *([column] if column not in metrics else []),
    ]
    table = ranked[columns + metrics].copy()
    table.insert(0, "rank", range(1, len(table) + 1))
    return table


def trial_names(trials: pd.DataFrame) -> pd.Series:
    """Each trial's name in the report: its number (results.csv's ``trial``, its folder
    ``trials/trial_NNN``, Optuna's trial number), the study's published configurations (trials 0 and 1,
    `study.space.PUBLISHED`) marked '(paper)' and '(seed report)'."""
    marks = {number: f" ({name.replace('_', ' ')})" for number, name in enumerate(PUBLISHED)}
    names = [f"{int(n)}{marks.get(int(n), '')}" for n in trials["trial"]]
    return pd.Series(names, index=trials.index, dtype=str)


def format_top_configs(table: pd.DataFrame, column: str, space: RecordedSpace) -> pd.DataFrame:
    """`top_configs` as text with labelled columns (percent for mIoU and pixel accuracy); the published
    configurations marked."""
    out = pd.DataFrame({"rank": table["rank"].astype(str), "trial": trial_names(table)})
    out["state"] = table["state"].str.replace("_", " ")
    out["epochs"] = table["epochs"].map(lambda v: "-" if pd.isna(v) else f"{v:.0f}")
    for name in space.names:
        out[space.label(name)] = table[name].map(lambda v, n=name: format_hyperparameter(n, v))
    for source in table.columns:
        if source.startswith(("last_", "best_")):
            metric = source.split("_", 1)[1]
            scope = "final" if source.startswith("last_") else "best epoch"
            title = label(metric) if source.startswith("last_") else f"{label(metric)}, {scope}"
            if source == column:
                title += " [ranked by]"
            out[title] = table[source].map(lambda v, m=metric: format_metric(m, v))
    return out


# ---------------------------------------------------------------- the comparison with published rows


def best_metrics(trials: pd.DataFrame, best: Mapping[str, Any] | None) -> dict[str, float] | None:
    """The best trial's final metrics: best_config.json's `metrics`, completed from its results.csv row."""
    if not best or best.get("trial") is None:
        return None
    metrics = {k: float(v) for k, v in (best.get("metrics") or {}).items() if isinstance(v, int | float)}
    row = trials.loc[trials["trial"] == best["trial"]]
    if len(row) == 1:
        for column in row.columns:
            if column.startswith("last_") and pd.notna(row[column].iloc[0]):
                metrics.setdefault(column.removeprefix("last_"), float(row[column].iloc[0]))
    return metrics


def comparison_table(
    best: Mapping[str, float] | None,
    reproduce: pd.DataFrame | None,
    references: Sequence[ReferenceRow] = REFERENCES,
    *,
    best_label: str = "this study: best trial (tuning run)",
    best_weighting: str = "",
    best_epochs: float = math.nan,
    reproduce_label: str = "this study: best config reproduced",
    trivial: Mapping[str, float] | None = None,
    trivial_label: str = "trivial predictors on this study's data",
) -> pd.DataFrame:
    """One row per result, one column per metric and convention in display units (percent for mIoU and
    pixel accuracy): this study's best trial (final metrics, with its tuning score), the mean and std of
    its retrained seeds (`reproduce`, when there are some), the trivial predictors (`trivial`), then the
    published rows. Columns: kind, weighting, epochs, score, each comparison metric, `<metric>_std`
    (reproduce only), uncertain (metrics whose convention the source does not state), key (a published
    row's)."""
    metrics = ("score", *COMPARISON_METRICS)
    rows: list[dict[str, Any]] = []

    def new_row(row_label: str, kind: str, weighting: str, epochs: float) -> dict[str, Any]:
        base: dict[str, Any] = {"row": row_label, "kind": kind, "weighting": weighting, "epochs": epochs}
        base.update({m: math.nan for m in metrics})
        base.update({f"{m}_std": math.nan for m in metrics})
        base["uncertain"] = ""
        return base

    if best is not None:
        row = new_row(best_label, "study", best_weighting, best_epochs)
        row.update({m: display_value(m, float(best[m])) for m in metrics if m in best})
        rows.append(row)
    if reproduce is not None and len(reproduce):
        n = reproduce["n"].max() if "n" in reproduce else math.nan
        row = new_row(reproduce_label, "reproduce", best_weighting, math.nan)
        if not pd.isna(n):
            row["row"] = f"{reproduce_label} (mean ± std of {int(n)} seeds)"
        for m in metrics:
            if m in reproduce.index:
                row[m] = display_value(m, float(reproduce.loc[m, "mean"]))
                row[f"{m}_std"] = display_value(m, float(reproduce.loc[m, "std"]))
        rows.append(row)
    if trivial is not None:
        row = new_row(trivial_label, "trivial", "-", math.nan)
        row.update({m: display_value(m, float(trivial[m])) for m in metrics if m in trivial})
        rows.append(row)
    for ref in references:
        row = new_row(ref.label, "published", ref.weighting, float(ref.epochs))
        row.update(dict(ref.values))
        row["uncertain"] = ",".join(sorted(ref.uncertain))
        row["key"] = ref.key
        rows.append(row)
    table = pd.DataFrame.from_records(rows)
    if "key" not in table.columns:
        table["key"] = None
    return table.set_index("row")


def format_comparison(table: pd.DataFrame, delta: pd.Series | None = None) -> pd.DataFrame:
    """The comparison table as text: 'mean ± std' for the reproduce row, '?' after a number whose
    convention its source does not state, '-' where the source used the other convention."""
    out = pd.DataFrame(index=table.index)
    out["weighting"] = table["weighting"].fillna("").astype(str)
    out["epochs"] = table["epochs"].map(lambda v: "-" if pd.isna(v) else f"{v:.0f}")
    for m in ("score", *COMPARISON_METRICS):
        cells = []
        for _, row in table.iterrows():
            text = format_metric(m, row[m], converted=True)
            if text != "-" and not pd.isna(row[f"{m}_std"]):
                decimals = len(text.split(".")[1]) if "." in text else 0
                text += f" ± {row[f'{m}_std']:.{decimals}f}"
            if text != "-" and m in str(row["uncertain"]).split(","):
                text += " ?"
            cells.append(text)
        out[label(m)] = cells
    if delta is not None:
        out[delta.name or "Delta_m"] = delta.reindex(table.index).map(
            lambda v: "-" if pd.isna(v) else f"{v:+.2f}"
        )
    return out.rename_axis("row").reset_index()


def delta_m_column(table: pd.DataFrame, against_row: str) -> pd.Series:
    """Delta_m (`mtan.metrics.delta_m`, percent, lower is better) of every row of a comparison table
    against its row `against_row`, over the metrics that row has; NaN for a row that lacks one of them (it
    used another convention: not comparable)."""
    against = table.loc[against_row]
    metrics = [m for m in COMPARISON_METRICS if not pd.isna(against[m])]
    values = {}
    for row_label, row in table.iterrows():
        if row_label == against_row or any(pd.isna(row[m]) for m in metrics):
            values[row_label] = math.nan
        else:
            values[row_label] = delta_m(row.to_dict(), against.to_dict(), metrics)
    return pd.Series(values, name=f"Delta_m vs {against_row} (%)")


def protocol_differences(
    study: Mapping[str, Any],
    config: Mapping[str, Any] | None,
    references: Sequence[ReferenceRow] = REFERENCES,
) -> pd.DataFrame:
    """One row per protocol aspect (data set, resolution, epochs, backbone, metric conventions,
    evaluation) with this study's setting and each published group's (rows of a group share a protocol)."""
    config = dict(config or {})

    def first(*keys: str) -> str:
        for key in keys:
            if config.get(key) not in (None, ""):
                return str(config[key])
        return NOT_RECORDED

    height, width = config.get("image_height"), config.get("image_width")
    resolution = f"{height}x{width}" if height and width else NOT_RECORDED
    backbone = first("backbone")
    if backbone != NOT_RECORDED and config.get("width") not in (None, ""):
        backbone = f"{backbone}, width x{config['width']}"
    data = (
        "synthetic, generated in the MTAN layout (not CityScapes)"
        if is_synthetic(study)
        else f"{study.get('data', NOT_RECORDED)}"
    )
    epochs = f"up to {study.get('max_epochs', '?')} per trial (ASHA stops weak trials earlier)"
    ours = {
        "data set": data,
        "resolution": resolution,
        "epochs": epochs,
        "backbone": backbone,
        "segmentation metric convention": "accumulated, the paper's 2019 rule and the void-masked 2020 rule "
        "(separate columns)",
        "depth error averaging": "both: per-pixel mean and per-batch mean (separate columns)",
        "evaluation": "final epoch of the trial on the validation split",
    }
    columns: dict[str, list[str]] = {"aspect": list(ours), "this study": list(ours.values())}
    for ref in references:
        if ref.group in columns:
            continue
        columns[ref.group] = [
            ref.dataset,
            ref.resolution,
            f"{ref.epochs}",
            ref.backbone,
            ref.seg_convention,
            ref.depth_averaging,
            ref.evaluation,
        ]
    return pd.DataFrame(columns)


# ---------------------------------------------------------------- weighting methods, trade-off


def weighting_summary(trials: pd.DataFrame, metrics: Sequence[str] = FIGURE_METRICS) -> pd.DataFrame:
    """Per weighting method, in the order the methods first appear in `trials`: trials run, failed, and the
    median and best final value of each metric (display units), over the trials that did not fail."""
    rows = []
    for weighting, group in trials.groupby(trials["weighting"].fillna("unknown").astype(str), sort=False):
        ok = group.loc[group["state"] != "failed"]
        row: dict[str, Any] = {"weighting": weighting, "trials": len(group), "failed": len(group) - len(ok)}
        for m in metrics:
            column = f"last_{m}"
            values = ok[column].dropna() if column in ok else pd.Series(dtype=float)
            best = values.max() if metric_info(m).higher_is_better else values.min()
            row[f"{m} median"] = display_value(m, values.median()) if len(values) else math.nan
            row[f"{m} best"] = display_value(m, best) if len(values) else math.nan
        rows.append(row)
    columns = ["weighting", "trials", "failed"] + [f"{m} {s}" for m in metrics for s in ("median", "best")]
    return pd.DataFrame(rows, columns=columns)


def format_weighting_summary(table: pd.DataFrame) -> pd.DataFrame:
    """`weighting_summary` as text with each metric's unit and convention in its column name."""
    out = table[["weighting", "trials", "failed"]].astype(str)
    for column in table.columns[3:]:
        metric, stat = column.rsplit(" ", 1)
        out[f"{label(metric)}, {stat}"] = table[column].map(
            lambda v, m=metric: format_metric(m, v, converted=True)
        )
    return out


def adaptive_trials(curves: pd.DataFrame) -> set[int]:
    """The numbers of the trials whose recorded task weights (`weight/<task>`) were not all 1: adaptive
    weighting."""
    columns = [c for c in curves.columns if str(c).startswith("weight/")]
    if not columns or curves.empty:
        return set()
    changed = (curves[columns] - 1.0).abs().gt(1e-9).any(axis=1)
    return {int(n) for n in curves.loc[changed, "trial"]}


def pareto_front(frame: pd.DataFrame, maximize: str, minimize: str) -> pd.Series:
    """True for the rows no other row beats: at least as good in both columns and better in one
    (`study.front.non_dominated`). Rows with a missing value are never on the front."""
    points = frame[[maximize, minimize]].to_numpy(dtype=float)
    return pd.Series(non_dominated(points, (True, False)), index=frame.index, name="pareto")


def asha_rungs(study: Mapping[str, Any]) -> list[int]:
    """The epochs at which ASHA compares trials: grace_period * reduction_factor^k below max_epochs."""
    grace, factor, top = study.get("grace_period"), study.get("reduction_factor"), study.get("max_epochs")
    if not grace or not factor or not top or float(factor) <= 1:
        return []
    rungs, epoch = [], float(grace)
    while epoch < float(top):
        rungs.append(int(round(epoch)))
        epoch *= float(factor)
    return rungs
