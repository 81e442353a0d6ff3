"""The report's figures. Each function takes DataFrames and returns a matplotlib Figure, or None when
there is nothing to draw; `save_figure` writes one and closes it. Agg backend, no display needed.

Metric axes are in display units (percent for mIoU and pixel accuracy) and name their convention.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib import MatplotlibDeprecationWarning  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FixedLocator,
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    NullLocator,
)

from analysis.columns import FIGURE_METRICS, TASKS, display_value, label  # noqa: E402
from analysis.space import RecordedSpace  # noqa: E402
from analysis.tables import trial_names  # noqa: E402
from mtan.metrics import METRICS  # noqa: E402
from mtan.weighting import WEIGHTINGS  # noqa: E402
from study.front import maximised, non_dominated  # noqa: E402

DPI = 90
# matplotlib's tab10 colours, those far apart first; the tasks take two, the weighting methods the others.
TAB10 = ("#1f77b4", "#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22")
TASK_COLORS = {"segmentation": "#2ca02c", "depth": "#9467bd"}
PALETTE = tuple(color for color in TAB10 if color not in TASK_COLORS.values())
# One colour per registered weighting method, in the registry's order (equal, dwa, uncertainty, ...).
WEIGHTING_COLORS = dict(zip(WEIGHTINGS, PALETTE, strict=False))
# The ticks of a logit axis: symmetric about 1/2, closer together towards 0 and 1.
LOGIT_TICKS = (0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99)
STATE_MARKERS = {"completed": "o", "stopped_early": "X", "failed": "s"}
STATE_LABELS = {"completed": "completed (full budget)", "stopped_early": "stopped early by ASHA"}
# The single-task networks' reference lines on the trade-off figure, grey (the colours are the methods').
SINGLE_TASK_STYLES = {"segmentation": "--", "depth": "-."}


def _color(weighting: str) -> str:
    return WEIGHTING_COLORS.get(weighting, "#7f7f7f")


def _finished(trials: pd.DataFrame) -> pd.DataFrame:
    return trials.loc[trials["state"] != "failed"]


def _with_values(frame: pd.DataFrame, names: Sequence[str], prefix: str = "") -> list[str]:
    """The `names` whose column `prefix + name` is in `frame` and holds at least one value."""
    return [n for n in names if prefix + n in frame.columns and frame[prefix + n].notna().any()]


def _states_present(trials: pd.DataFrame) -> list[str]:
    """The trial states of `STATE_MARKERS` that occur in `trials`, in its order."""
    return [s for s in STATE_MARKERS if s in set(trials["state"])]


def _weighting_order(trials: pd.DataFrame) -> list[str]:
    present = trials["weighting"].dropna().astype(str).unique().tolist()
    return [w for w in WEIGHTING_COLORS if w in present] + sorted(
        w for w in present if w not in WEIGHTING_COLORS
    )


class _FinalMetrics(NamedTuple):
    """What a figure of the trials' final metrics draws: the finished trials, the metrics with a value,
    the weightings present (in `_weighting_order`) and the trial states present."""

    data: pd.DataFrame
    metrics: list[str]
    weightings: list[str]
    states: list[str]


def _final_metrics(trials: pd.DataFrame, metrics: Sequence[str]) -> _FinalMetrics | None:
    """The finished trials and those of `metrics` whose final (`last_`) column holds a value; None when
    there is nothing to draw."""
    data = _finished(trials)
    present = _with_values(data, metrics, "last_")
    if data.empty or not present:
        return None
    return _FinalMetrics(data, present, _weighting_order(data), _states_present(data))


def _legend_handles(weightings: Sequence[str], states: Sequence[str]) -> list[Line2D]:
    handles = [
        Line2D([], [], color=_color(w), marker="o", linestyle="", label=f"weighting: {w}") for w in weightings
    ]
    handles += [
        Line2D(
            [],
            [],
            color="#444444",
            marker=STATE_MARKERS.get(s, "o"),
            linestyle="",
            label=STATE_LABELS.get(s, s),
        )
        for s in states
    ]
    return handles


SYNTHETIC_MARK = "synthetic data, not CityScapes"


def draw_warning(fig: Figure, text: str = SYNTHETIC_MARK) -> Figure:
    """Draw `text` across `fig` as a watermark, so that the figure carries it wherever it is shown."""
    fig.text(
        0.5, 0.5, text, fontsize=26, color="#c00000", alpha=0.22, rotation=20,
        ha="center", va="center", zorder=100, fontweight="bold",
    )  # fmt: skip
    return fig


def save_figure(fig: Figure, path: Path, dpi: int = DPI) -> Path:
    """Write `fig` as a PNG at `path` and close it."""
    fig.savefig(path, dpi=dpi, format="png")
    plt.close(fig)
    return path


# ---------------------------------------------------------------- the weighting methods


def plot_weighting_distributions(
    trials: pd.DataFrame, metrics: Sequence[str] = FIGURE_METRICS, epoch: int | None = None
) -> Figure | None:
    """Box plot and one dot per trial of each final metric (``last_<metric>``), per weighting method;
    `epoch`: those columns hold every trial's value at that epoch (`analysis.common_epoch.trials_at_epoch`),
    and the title says so."""
    final = _final_metrics(trials, metrics)
    if final is None:
        return None
    data, metrics, order, states = final
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(3.2 * len(metrics), 3.9), layout="constrained", squeeze=False
    )
    for ax, metric in zip(axes[0], metrics, strict=True):
        frame = pd.DataFrame(
            {
                "weighting": data["weighting"].astype(str),
                "state": data["state"],
                "value": data[f"last_{metric}"].map(lambda v, m=metric: display_value(m, v)),
            }
        ).dropna()
        with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib 3.11's deprecated `vert`
            warnings.simplefilter("ignore", MatplotlibDeprecationWarning)
            sns.boxplot(
                data=frame, x="weighting", y="value", order=order, hue="weighting", hue_order=order,
                palette={w: _color(w) for w in order}, showfliers=False, width=0.5, ax=ax, legend=False,
                boxprops={"alpha": 0.35},
            )  # fmt: skip
        for state in states:
            subset = frame.loc[frame["state"] == state]
            sns.stripplot(
                data=subset, x="weighting", y="value", order=order, color="#222222", size=5, jitter=0.12,
                marker=STATE_MARKERS.get(state, "o"), ax=ax, legend=False,
            )  # fmt: skip
        ax.set_xlabel("weighting method")
        ax.set_ylabel(label(metric))
        ax.set_title(label(metric).split(" (")[0].split(",")[0], fontsize=10)
    fig.legend(
        handles=_legend_handles([], states), loc="outside lower center", ncol=len(states), frameon=False
    )
    fig.suptitle(
        "Final metrics per weighting method (each mark is one trial, last epoch it trained)"
        if epoch is None
        else f"Metrics per weighting method at epoch {epoch}, which every trial reached (a mark per trial)"
    )
    return fig


# ---------------------------------------------------------------- metrics against hyperparameters


def _zero_position(values: np.ndarray) -> float:
    positive = values[values > 0]
    return 10 ** (math.floor(math.log10(positive.min())) - 1)


def _tick_text(value: float, _position: object = None) -> str:
    return f"{value:.0e}".replace("e-0", "e-") if 0 < value < 0.01 else f"{value:g}"


def _log_x_axis(ax: plt.Axes, values: np.ndarray) -> None:
    """A log x axis with few, plainly written ticks (1, 2, 5 per decade when the values span about one)."""
    ax.set_xscale("log")
    positive = values[values > 0]
    span = math.log10(positive.max() / positive.min()) if len(positive) else 0.0
    ax.xaxis.set_major_locator(
        LogLocator(base=10, subs=(1.0, 2.0, 5.0) if span < 1.3 else (1.0,), numticks=6)
    )
    ax.xaxis.set_major_formatter(FuncFormatter(_tick_text))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _mark_zero_on_log_axis(ax: plt.Axes, position: float, positive: np.ndarray) -> None:
    """Label the decades of the positive values and `position` as '0', with a dotted break between."""
    low = math.ceil(math.log10(positive.min())) if len(positive) else math.log10(position) + 1
    high = math.floor(math.log10(positive.max())) if len(positive) else low
    decades = [10.0**k for k in range(low, high + 1)]
    step = max(1, math.ceil(len(decades) / 3))
    ticks = decades[::step]
    ax.set_xticks([position, *ticks], ["0", *[_tick_text(t) for t in ticks]])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.axvline(position * 10**0.5, color="#bbbbbb", linestyle=":", linewidth=1)


def _logit_x_axis(ax: plt.Axes) -> None:
    """A logit x axis (a share in (0, 1), searched uniformly in its logit), its ticks written plainly."""
    ax.set_xscale("logit")
    ax.xaxis.set_major_locator(FixedLocator(LOGIT_TICKS))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:g}"))
    ax.xaxis.set_minor_locator(NullLocator())


def plot_metrics_vs_hyperparameters(
    trials: pd.DataFrame,
    space: RecordedSpace,
    metrics: Sequence[str] = FIGURE_METRICS,
) -> Figure | None:
    """A grid: each final metric (rows) against each numeric config column of the study's `space`
    (columns), one mark per trial coloured by weighting. Log axes where the search was log-scale (a value
    0 on such an axis, weight decay 'none', is drawn one decade left of the smallest non-zero value and
    labelled 0), a logit axis for a share searched uniformly in its logit (scalarization's depth share)."""
    params = space.numeric
    final = _final_metrics(trials, metrics)
    if final is None:
        return None
    data, metrics, weightings, states = final
    width, height = 2.9 * len(params), 2.35 * len(metrics) + 0.8
    fig, axes = plt.subplots(len(metrics), len(params), figsize=(width, height), sharey="row", squeeze=False)
    # margins in inches, not a layout engine: saving this figure of 5 x 8 axes took 4.7 s with a
    # constrained layout, 2.6 s without, and it was the largest part of writing a report
    fig.subplots_adjust(
        left=0.75 / width, right=1 - 0.15 / width, top=1 - 0.6 / height, bottom=0.75 / height,
        wspace=0.12, hspace=0.42,
    )  # fmt: skip
    for col, param in enumerate(params):
        values = (
            pd.to_numeric(data[param], errors="coerce") if param in data else pd.Series(np.nan, data.index)
        )
        present = values.notna().to_numpy()
        x = values.to_numpy(dtype=float)
        log = space.scale(param) == "log" and (x[present] > 0).any()
        logit = space.scale(param) == "logit" and ((x[present] > 0) & (x[present] < 1)).any()
        zero = present & (x == 0)
        position = _zero_position(x[present]) if log and zero.any() else None
        if position is not None:
            x = np.where(zero, position, x)
        for row, metric in enumerate(metrics):
            ax = axes[row][col]
            y = data[f"last_{metric}"].map(lambda v, m=metric: display_value(m, v)).to_numpy(dtype=float)
            if not present.any():
                only = space.weightings_of(param)
                why = f"{'/'.join(only)} only; no such trial" if only else "not recorded"
                ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color="#666666")
            for state in states:
                for weighting in weightings:
                    mask = (
                        present
                        & (data["state"] == state).to_numpy()
                        & (data["weighting"] == weighting).to_numpy()
                    )
                    if mask.any():
                        ax.scatter(
                            x[mask], y[mask], s=26, color=_color(weighting), alpha=0.8,
                            marker=STATE_MARKERS.get(state, "o"), linewidths=0.4, edgecolors="white",
                        )  # fmt: skip
            if log:
                _log_x_axis(ax, x[present])
                if position is not None:
                    _mark_zero_on_log_axis(ax, position, x[present & ~zero])
            elif logit:
                _logit_x_axis(ax)
            else:
                ax.xaxis.set_major_locator(MaxNLocator(4))
            name = space.label(param)
            scale = "log" if log else "logit" if logit else ""
            ax.set_xlabel(f"{name} ({scale} scale)" if scale else name, fontsize=9)
            if col == 0:
                ax.set_ylabel(label(metric), fontsize=9)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
    fig.legend(
        handles=_legend_handles(weightings, states), loc="lower center",
        ncol=len(weightings) + len(states), frameon=False,
    )  # fmt: skip
    conditional = [f"{space.label(p)}: {'/'.join(space.weightings_of(p) or ())} trials only"
                   for p in params if space.weightings_of(p)]  # fmt: skip
    fig.suptitle(
        "Final metrics against each hyperparameter" + (f" ({'; '.join(conditional)})" if conditional else "")
    )
    return fig


# ---------------------------------------------------------------- learning curves


def plot_learning_curves(
    curves: pd.DataFrame,
    trials: pd.DataFrame,
    metrics: Sequence[str] = ("score", "miou", "abs_err"),
    rungs: Sequence[int] = (),
) -> Figure | None:
    """Each metric over the epochs for every trial, coloured by weighting; an X where ASHA stopped a
    trial, a dot where a trial finished its budget, dotted lines at the ASHA rungs."""
    metrics = _with_values(curves, metrics)
    if curves.empty or not metrics:
        return None
    info = trials.set_index(trials["trial"].astype(int))
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(5.0 * len(metrics), 4.2), layout="constrained", squeeze=False
    )
    weightings = _weighting_order(trials.loc[trials["trial"].isin(curves["trial"])])
    for ax, metric in zip(axes[0], metrics, strict=True):
        for number, curve in curves.groupby("trial", sort=True):
            weighting = str(info.at[number, "weighting"]) if number in info.index else "?"
            state = str(info.at[number, "state"]) if number in info.index else "?"
            y = curve[metric].map(lambda v, m=metric: display_value(m, v))
            ax.plot(
                curve["epoch"],
                y,
                color=_color(weighting),
                alpha=0.55,
                linewidth=1.2,
                marker=".",
                markersize=3,
            )
            end_marker = "X" if state == "stopped_early" else "o"
            ax.plot(curve["epoch"].iloc[-1], y.iloc[-1], marker=end_marker, color=_color(weighting),
                    markersize=7, markeredgecolor="black", markeredgewidth=0.6, linestyle="")  # fmt: skip
        for rung in rungs:
            ax.axvline(rung, color="#888888", linestyle=":", linewidth=1)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label(metric))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=_color(w), label=f"weighting: {w}") for w in weightings]
    handles += [
        Line2D(
            [],
            [],
            marker="X",
            color="#555555",
            markeredgecolor="black",
            linestyle="",
            label="stopped by ASHA",
        ),
        Line2D(
            [],
            [],
            marker="o",
            color="#555555",
            markeredgecolor="black",
            linestyle="",
            label="finished budget",
        ),
    ]
    if rungs:
        handles.append(Line2D([], [], color="#888888", linestyle=":", label="ASHA rung (comparison epoch)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    fig.suptitle(f"Learning curves of all {curves['trial'].nunique()} trials with metrics (validation split)")
    return fig


# ---------------------------------------------------------------- importance


def plot_importance(importances: pd.Series, evaluator: str, space: RecordedSpace) -> Figure | None:
    """Horizontal bars of the hyperparameter importances, largest on top."""
    if importances is None or importances.empty:
        return None
    ordered = importances.sort_values(ascending=True)
    fig, ax = plt.subplots(figsize=(7.0, 0.45 * len(ordered) + 1.6), layout="constrained")
    ax.barh(
        [space.label(str(p)) for p in ordered.index],
        ordered.to_numpy(),
        color="#4c72b0",
    )
    for y, value in enumerate(ordered.to_numpy()):
        ax.text(value, y, f" {value:.2f}", va="center", fontsize=9)
    ax.set_xlabel("importance (normalised, sums to 1)")
    ax.set_ylabel("hyperparameter")
    ax.set_xlim(0, max(1e-9, float(ordered.max())) * 1.18)
    ax.set_title(
        f"Hyperparameter importance for the objective\n{evaluator}, completed trials only", fontsize=10
    )
    ax.grid(axis="x", alpha=0.3)
    return fig


# ---------------------------------------------------------------- the trade-off between the tasks


class Interval(NamedTuple):
    """A confirmed configuration's mean over its fresh seeds and its 95 % interval."""

    mean: float
    low: float
    high: float


class ConfirmedPoint(NamedTuple):
    """A configuration retrained on fresh seeds (reproduce/summary.csv): its name, weighting, each
    metric's interval, and whether another's intervals dominate it (`study.front.interval_dominated`)."""

    name: str
    weighting: str
    values: Mapping[str, Interval]
    dominated: bool = False


def _front_line(x: np.ndarray, y: np.ndarray, maximise: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    """The staircase through front points (x, y): from each point to the next along x, by the corner
    both of them reach (the worse x and the worse y of the two), so that everything on or behind the line
    is dominated by a front point."""
    order = np.argsort(x)
    x, y = x[order], y[order]
    xs, ys = [x[0]], [y[0]]
    for i in range(1, len(x)):
        pick_x, pick_y = (max, min)[maximise[0]], (max, min)[maximise[1]]  # the worse of the two
        xs += [pick_x(x[i - 1], x[i]), x[i]]
        ys += [pick_y(y[i - 1], y[i]), y[i]]
    return np.array(xs), np.array(ys)


def _draw_confirmed(ax: plt.Axes, confirmed: Sequence[ConfirmedPoint], x_metric: str, y_metric: str) -> int:
    """Each confirmed configuration as a cross: its 95 % interval in each metric around its mean (hollow
    when another's intervals dominate it), named; returns how many were drawn."""
    drawn = 0
    for point in confirmed:
        if x_metric not in point.values or y_metric not in point.values:
            continue
        (xm, xl, xh), (ym, yl, yh) = (
            [display_value(m, v) for v in point.values[m]] for m in (x_metric, y_metric)
        )
        xerr = None if math.isnan(xl) else [[xm - xl], [xh - xm]]
        yerr = None if math.isnan(yl) else [[ym - yl], [yh - ym]]
        color = _color(point.weighting)
        ax.errorbar(
            xm, ym, xerr=xerr, yerr=yerr, fmt="D", color=color, markersize=7, capsize=3, linewidth=1.2,
            markerfacecolor="white" if point.dominated else color, markeredgecolor="black", zorder=5,
        )  # fmt: skip
        ax.annotate(point.name, (xm, ym), textcoords="offset points", xytext=(6, -11), fontsize=7,
                    fontstyle="italic")  # fmt: skip
        drawn += 1
    return drawn


def plot_tradeoff(
    trials: pd.DataFrame,
    x_metric: str = "miou",
    y_metric: str = "abs_err",
    *,
    front: pd.Series | None = None,
    confirmed: Sequence[ConfirmedPoint] = (),
    single_task: Mapping[str, tuple[str, float]] | None = None,
) -> Figure | None:
    """One metric against another per trial, coloured by weighting, with the Pareto front marked and
    its trials named by number (`analysis.tables.trial_names`).

    Without `front` (a study of one objective): the final epoch of every trial that did not fail, and
    the front of the points the search happened to visit (`study.front.non_dominated`). With `front` (a
    study of several objectives: results.csv's ``pareto``, over all its objectives): the completed
    trials only, at their means over the last 10 epochs (``tail_``), those of `front` on it. Either way:
    each `confirmed` configuration as a cross of its 95 % intervals, and `single_task` (metric -> (name,
    value)) as a dashed line across the axis of that metric."""
    searched = front is not None
    prefix = "tail_" if searched else "last_"
    data = trials.loc[trials["state"] == "completed"] if searched else _finished(trials)
    x_col, y_col = f"{prefix}{x_metric}", f"{prefix}{y_metric}"
    if x_col not in data or y_col not in data:
        return None
    data = data.loc[data[x_col].notna() & data[y_col].notna()]
    if data.empty:
        return None
    maximise = maximised((x_metric, y_metric))
    x = data[x_col].map(lambda v: display_value(x_metric, v)).to_numpy(dtype=float)
    y = data[y_col].map(lambda v: display_value(y_metric, v)).to_numpy(dtype=float)
    if front is None:
        on = non_dominated(np.column_stack([x, y]), maximise)
    else:
        on = front.loc[data.index].to_numpy(dtype=bool)
    weightings = _weighting_order(data)
    states = _states_present(data)
    fig, ax = plt.subplots(figsize=(7.5, 5.4), layout="constrained")
    for state in states:
        for weighting in weightings:
            mask = ((data["state"] == state) & (data["weighting"] == weighting)).to_numpy()
            if mask.any():
                marker = STATE_MARKERS.get(state, "o")
                ax.scatter(x[mask], y[mask], color=_color(weighting), marker=marker, s=40,
                           alpha=0.85, edgecolors="white", linewidths=0.5)  # fmt: skip
    fx, fy = x[on], y[on]
    if len(fx) and non_dominated(np.column_stack([fx, fy]), maximise).all():  # a staircase in 2-D
        ax.plot(*_front_line(fx, fy, maximise), color="black", linewidth=1.2, alpha=0.7)
    ax.scatter(fx, fy, s=140, facecolors="none", edgecolors="black", linewidths=1.2)
    for tx, ty, name in zip(fx, fy, trial_names(data.loc[on]).to_numpy(), strict=True):
        ax.annotate(f"trial {name}", (tx, ty), textcoords="offset points", xytext=(6, 6), fontsize=8)
    crosses = _draw_confirmed(ax, confirmed, x_metric, y_metric)
    references = []
    for metric, (name, value) in (single_task or {}).items():
        draw = {x_metric: ax.axvline, y_metric: ax.axhline}.get(metric)
        if draw is not None and not math.isnan(value):
            style = SINGLE_TASK_STYLES.get(METRICS[metric].task, "--")
            draw(display_value(metric, value), color="#555555", linestyle=style, linewidth=1.2)
            references.append((name, style))
    ax.set_xlabel(label(x_metric) + ("  (higher is better →)" if maximise[0] else "  (lower is better →)"))
    ax.set_ylabel(label(y_metric) + ("  (higher is better ↑)" if maximise[1] else "  (lower is better ↓)"))
    ax.grid(alpha=0.3)
    handles = _legend_handles(weightings, states) + [
        Line2D([], [], marker="o", markerfacecolor="none", markeredgecolor="black", color="black",
               label=f"Pareto front ({int(on.sum())} trial{'s' if on.sum() != 1 else ''})"),
    ]  # fmt: skip
    if crosses:
        handles.append(
            Line2D([], [], marker="D", color="#555555", markeredgecolor="black",
                   label="confirmed on fresh seeds: mean, 95 % CI (hollow: dominated)"),
        )  # fmt: skip
    handles += [Line2D([], [], color="#555555", linestyle=style, label=name) for name, style in references]
    ax.legend(handles=handles, loc="best", fontsize=8)
    ax.set_title(
        "Pareto front of the completed trials (mean of each trial's last 10 epochs)"
        if searched
        else "Trade-off between the tasks (final epoch of each trial)"
    )
    return fig


def plot_hypervolume(history: pd.DataFrame, objectives: Sequence[str]) -> Figure | None:
    """The hypervolume of the front of the completed trials so far (hypervolume.csv) against the number
    of trials completed, with the front's size on a second axis."""
    if history is None or history.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.0, 4.2), layout="constrained")
    ax.plot(history["completed"], history["hypervolume"], marker="o", color="#1f77b4", linewidth=1.6)
    ax.set_xlabel("trials completed (full budget), in the order they completed")
    ax.set_ylabel(f"hypervolume ({' x '.join(objectives)} units)")
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    size = ax.twinx()
    size.plot(history["completed"], history["front_size"], marker="s", markersize=4, color="#888888",
              linestyle=":")  # fmt: skip
    size.set_ylabel("trials on the front", color="#666666")
    size.set_ylim(0, int(history["front_size"].max()) + 1)
    size.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Hypervolume of the front against the trivial predictors")
    return fig


# ---------------------------------------------------------------- task weights


def plot_task_weights(curve: pd.DataFrame, trial: str, method: str = "") -> Figure | None:
    """One trial's task weights over the epochs (`method`: its weighting, as text), beside the per-task
    training losses."""
    tasks = _with_values(curve, TASKS, "weight/")
    if curve.empty or not tasks:
        return None
    losses = _with_values(curve, TASKS, "loss/")
    panels = 2 if losses else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.6 * panels, 4.0), layout="constrained", squeeze=False)
    ax = axes[0][0]
    for task in tasks:
        ax.plot(curve["epoch"], curve[f"weight/{task}"], marker="o", markersize=4, label=task,
                color=TASK_COLORS.get(task))  # fmt: skip
    ax.axhline(1.0, color="#888888", linestyle=":", linewidth=1, label="λ = 1 (equal weighting)")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"task weight λ (weights sum to {len(tasks)})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if losses:
        ax = axes[0][1]
        for task in losses:
            ax.plot(curve["epoch"], curve[f"loss/{task}"], marker="o", markersize=4, label=task,
                    color=TASK_COLORS.get(task))  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("task training loss (log scale)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    # one legend below both panels (same colour per task in each), clear of the curves
    fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), frameon=False)
    fig.suptitle(f"Task weights of trial {trial}" + (f" ({method})" if method else ""))
    return fig
