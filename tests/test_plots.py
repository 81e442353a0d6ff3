"""Figures on hand-built DataFrames: drawn, every axis labelled, log axes where searched on a log
scale (with weight decay 0 kept visible), nothing drawn from nothing, a non-empty PNG written."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from analysis import plots
from analysis.space import RecordedSpace
from mtan.weighting import WEIGHTINGS
from study.space import SearchSpace
from tests.hand_space import HAND_SPACE, HAND_TRIAL_COLUMNS


def _trials(dwa: bool = True) -> pd.DataFrame:
    weighting = ["equal", "dwa", "dwa", "equal"] if dwa else ["equal"] * 4
    return pd.DataFrame(
        {
            "trial": [0, 1, 7, 9],  # a, b, c, d
            "trial_id": ["a", "b", "c", "d"],
            "epochs": [3, 1, 3, 0],
            "weighting": weighting,
            "temperature": [np.nan, 2.0, 0.5, np.nan] if dwa else [np.nan] * 4,
            **HAND_TRIAL_COLUMNS,
        }
    )


def _curves() -> pd.DataFrame:
    rows = []
    for number, epochs, weighting in ((0, 3, "equal"), (1, 1, "dwa"), (7, 3, "dwa")):
        for epoch in range(1, epochs + 1):
            dwa = weighting == "dwa" and epoch > 2
            rows.append(
                {
                    "trial": number,
                    "epoch": epoch,
                    "score": 0.1 * epoch,
                    "miou": 0.2 * epoch,
                    "abs_err": 0.05 / epoch,
                    "weight/segmentation": 0.9 if dwa else 1.0,
                    "weight/depth": 1.1 if dwa else 1.0,
                    "loss/segmentation": 2.0 / epoch,
                    "loss/depth": 0.05 / epoch,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _assert_labelled(fig) -> None:
    """Every drawn axes has an x label; the first axes of each row has a y label."""
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert axes
    for ax in axes:
        assert ax.get_xlabel().strip()
    rows: dict[float, list] = {}
    for ax in axes:
        rows.setdefault(round(ax.get_position().y0, 3), []).append(ax)
    for row in rows.values():
        assert min(row, key=lambda a: a.get_position().x0).get_ylabel().strip()


def _saved(fig, tmp_path: Path, name: str) -> Path:
    path = plots.save_figure(fig, tmp_path / name)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    return path


def test_weighting_distributions_at_one_epoch_say_so() -> None:
    fig = plots.plot_weighting_distributions(_trials(), epoch=3)
    assert fig.get_suptitle().startswith("Metrics per weighting method at epoch 3, which every trial reached")


def test_weighting_distributions(tmp_path: Path) -> None:
    fig = plots.plot_weighting_distributions(_trials())
    assert fig is not None and len(fig.axes) == 5
    _assert_labelled(fig)
    assert fig.axes[1].get_ylabel() == "mIoU % (accumulated)"
    # values are plotted in percent: the mIoU axis spans 50..70, not 0.5..0.7
    low, high = fig.axes[1].get_ylim()
    assert low < 50 < 70 < high and high < 100
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["equal", "dwa"]
    _saved(fig, tmp_path, "w.png")


def test_metrics_against_hyperparameters_log_axes_and_zero(tmp_path: Path) -> None:
    fig = plots.plot_metrics_vs_hyperparameters(_trials(), HAND_SPACE)
    assert fig is not None and len(fig.axes) == 5 * 5
    _assert_labelled(fig)
    top = fig.axes[:5]  # first metric row, one axes per hyperparameter
    assert [ax.get_xscale() for ax in top] == ["log", "log", "linear", "linear", "log"]
    assert top[1].get_xlabel() == "weight decay (log scale)"
    labels = [t.get_text() for t in top[1].get_xticklabels()]
    assert labels[0] == "0"  # weight decay 0 drawn at its own tick left of the positive values
    assert "1e-4" in labels or "1e-5" in labels
    _saved(fig, tmp_path, "h.png")


def test_a_share_searched_in_its_logit_is_drawn_on_a_logit_axis(tmp_path: Path) -> None:
    space = RecordedSpace.from_json(SearchSpace().describe())  # as study.json records the space
    assert space.scale("depth_share") == "logit" and space.scale("depth_share_logit") == "linear"
    assert space.scale("weight_decay") == "log" and space.scale("gamma") == "linear"
    trials = _trials().assign(
        weighting=["equal", "scalarization", "scalarization", "equal"],
        depth_share=[np.nan, 0.02, 0.7, np.nan],
        depth_share_logit=[np.nan, np.log(0.02 / 0.98), np.log(0.7 / 0.3), np.nan],
        step_fraction=0.5,
    )
    fig = plots.plot_metrics_vs_hyperparameters(trials, space)
    assert fig is not None
    columns = {ax.get_xlabel(): ax for ax in fig.axes[: len(space.numeric)]}
    share = columns["depth share w (logit scale)"]
    assert share.get_xscale() == "logit"
    assert [t.get_text() for t in share.get_xticklabels()] == [
        "0.01",
        "0.05",
        "0.2",
        "0.5",
        "0.8",
        "0.95",
        "0.99",
    ]
    assert columns["logit of depth share w"].get_xscale() == "linear"
    _saved(fig, tmp_path, "logit.png")


def test_every_weighting_has_its_own_colour_none_a_tasks() -> None:
    colours = [plots.WEIGHTING_COLORS[name] for name in WEIGHTINGS]  # every registered method
    assert len(set(colours)) == len(colours)
    assert not set(colours) & set(plots.TASK_COLORS.values())
    assert plots.WEIGHTING_COLORS["scalarization"] != plots.TASK_COLORS["segmentation"]


def test_metrics_against_hyperparameters_without_dwa_says_so() -> None:
    fig = plots.plot_metrics_vs_hyperparameters(_trials(dwa=False), HAND_SPACE)
    assert fig is not None
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["dwa only; no such trial"]  # the column's weightings, from the recorded space


def test_learning_curves_mark_asha_stops(tmp_path: Path) -> None:
    fig = plots.plot_learning_curves(_curves(), _trials(), rungs=[1, 3])
    assert fig is not None and len(fig.axes) == 3
    _assert_labelled(fig)
    ax = fig.axes[0]
    stops = [line for line in ax.get_lines() if line.get_marker() == "X"]
    assert len(stops) == 1  # trial b, stopped by ASHA after 1 epoch
    assert list(stops[0].get_xdata()) == [1]
    rungs = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert sorted(line.get_xdata()[0] for line in rungs) == [1, 3]
    assert fig.axes[1].get_ylabel() == "mIoU % (accumulated)"
    _saved(fig, tmp_path, "c.png")


def test_importance_bars(tmp_path: Path) -> None:
    values = pd.Series({"lr": 0.6, "gamma": 0.3, "temperature": 0.1})
    fig = plots.plot_importance(values, "PedAnovaImportanceEvaluator", HAND_SPACE)
    assert fig is not None
    _assert_labelled(fig)
    widths = sorted(patch.get_width() for patch in fig.axes[0].patches)
    assert widths == pytest.approx([0.1, 0.3, 0.6])
    assert "PedAnovaImportanceEvaluator" in fig.axes[0].get_title()
    _saved(fig, tmp_path, "i.png")


def test_tradeoff_marks_the_front(tmp_path: Path) -> None:
    fig = plots.plot_tradeoff(_trials())
    assert fig is not None
    _assert_labelled(fig)
    ax = fig.axes[0]
    assert "mIoU % (accumulated)" in ax.get_xlabel() and "abs err (per-pixel mean)" in ax.get_ylabel()
    # b (60 %, 0.018) and c (70 %, 0.025) are on the front, named by number; a (50 %, 0.020) is beaten by b
    names = sorted(t.get_text() for t in ax.texts)
    assert names == ["trial 1 (seed report)", "trial 7"]
    assert any("Pareto front (2 trials)" in t.get_text() for t in ax.get_legend().get_texts())
    _saved(fig, tmp_path, "t.png")


def test_task_weights(tmp_path: Path) -> None:
    curve = _curves().query("trial == 7")
    fig = plots.plot_task_weights(curve, "7", "dwa, DWA temperature T 0.5")
    assert fig is not None and len(fig.axes) == 2
    _assert_labelled(fig)
    weights = {line.get_label(): list(line.get_ydata()) for line in fig.axes[0].get_lines()}
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "segmentation",
        "depth",
        "λ = 1 (equal weighting)",
    ]
    assert weights["segmentation"] == [1.0, 1.0, 0.9] and weights["depth"] == [1.0, 1.0, 1.1]
    assert fig.axes[1].get_yscale() == "log"
    assert fig.get_suptitle() == "Task weights of trial 7 (dwa, DWA temperature T 0.5)"
    _saved(fig, tmp_path, "d.png")


def test_nothing_to_draw_gives_none() -> None:
    failed = _trials().assign(state="failed")
    assert plots.plot_weighting_distributions(failed) is None
    assert plots.plot_metrics_vs_hyperparameters(failed, HAND_SPACE) is None
    assert plots.plot_tradeoff(failed) is None
    assert plots.plot_learning_curves(_curves().iloc[0:0], _trials()) is None
    assert plots.plot_importance(pd.Series(dtype=float), "x", HAND_SPACE) is None
    assert (
        plots.plot_task_weights(_curves().drop(columns=["weight/segmentation", "weight/depth"]), "a") is None
    )


def test_single_trial_single_epoch(tmp_path: Path) -> None:
    trials = _trials().iloc[[1]]
    curves = _curves().query("trial == 1")
    for fig in (
        plots.plot_weighting_distributions(trials),
        plots.plot_metrics_vs_hyperparameters(trials, HAND_SPACE),
        plots.plot_learning_curves(curves, trials),
        plots.plot_tradeoff(trials),
    ):
        assert fig is not None
        _saved(fig, tmp_path, "one.png")


def test_the_searched_front_its_confirmation_and_the_single_task_lines(tmp_path: Path) -> None:
    trials = _trials().assign(tail_miou=lambda t: t["last_miou"], tail_abs_err=lambda t: t["last_abs_err"])
    # results.csv's pareto: of the completed trials, 0 (50 %, 0.020) and 7 (70 %, 0.025) are both on it;
    # trial 1 (60 %, 0.018) would beat 0 but ASHA stopped it: not drawn, not on the front
    front = pd.Series([True, False, True, False], index=trials.index)
    confirmed = [
        plots.ConfirmedPoint(
            "trial_007",
            "dwa",
            {"miou": plots.Interval(0.69, 0.66, 0.72), "abs_err": plots.Interval(0.026, 0.024, 0.028)},
            dominated=True,
        )
    ]
    single = {"miou": ("single-task segmentation", 0.75), "abs_err": ("single-task depth", 0.015)}
    fig = plots.plot_tradeoff(trials, front=front, confirmed=confirmed, single_task=single)
    assert fig is not None
    _assert_labelled(fig)
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["trial 0 (paper)", "trial 7", "trial_007"]
    drawn = np.vstack([c.get_offsets() for c in ax.collections if len(c.get_offsets())])
    assert not any(np.allclose(point, (60.0, 0.018)) for point in drawn)  # the stopped trial
    lines = {tuple(map(tuple, line.get_xydata())) for line in ax.get_lines()}
    # the staircase: from (50, 0.020) up to the corner both reach (50, 0.025), then to (70, 0.025)
    assert ((50.0, 0.020), (50.0, 0.025), (70.0, 0.025)) in lines
    assert ((75.0, 0.0), (75.0, 1.0)) in lines and ((0.0, 0.015), (1.0, 0.015)) in lines  # axes fractions
    diamond = next(line for line in ax.get_lines() if line.get_marker() == "D")
    assert diamond.get_markerfacecolor() == "white"  # dominated: hollow
    assert tuple(diamond.get_xydata()[0]) == pytest.approx((69.0, 0.026))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Pareto front (2 trials)" in labels and "single-task depth" in labels
    assert "mean of each trial's last 10 epochs" in ax.get_title()
    _saved(fig, tmp_path, "front.png")


def test_the_hypervolume_history(tmp_path: Path) -> None:
    history = pd.DataFrame(
        {
            "completed": [1, 2, 3],
            "trial": [0, 4, 5],
            "front_size": [1, 2, 2],
            "hypervolume": [0.01, 0.02, 0.02],
        }
    )
    fig = plots.plot_hypervolume(history, ("miou", "abs_err"))
    assert fig is not None
    assert list(fig.axes[0].get_lines()[0].get_ydata()) == [0.01, 0.02, 0.02]
    assert "miou x abs_err" in fig.axes[0].get_ylabel()
    assert plots.plot_hypervolume(history.iloc[0:0], ("miou", "abs_err")) is None
    _saved(fig, tmp_path, "hv.png")
