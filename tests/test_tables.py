"""Tables on hand-built DataFrames: exactly the numbers given, Delta_m on a hand-worked case."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import tables
from analysis.published import REFERENCES, ReferenceRow, reference
from mtan.metrics import PAPER_2019
from tests.hand_space import HAND_SPACE, HAND_TRIAL_COLUMNS


def _trials() -> pd.DataFrame:
    """Four trials, one failed; scores and metrics chosen by hand."""
    return pd.DataFrame(
        {
            "trial": [10, 11, 12, 13],
            "trial_id": ["t0", "t1", "t2", "t3"],  # Ray's: for information only
            "epochs": [9, 3, 9, 0],
            "error": [None, None, None, "CUDA out of memory"],
            "weighting": ["equal", "dwa", "dwa", "dwa"],
            "temperature": [np.nan, 2.0, 0.5, 1.0],
            "best_score": [0.45, 0.55, 0.52, np.nan],
            **HAND_TRIAL_COLUMNS,
        }
    )


# ---------------------------------------------------------------- Delta_m


def test_delta_m_column_only_where_conventions_match() -> None:
    table = tables.comparison_table(None, None)
    delta = tables.delta_m_column(table, reference("nash_stl").label)
    # the seed report's DWA row against the single-task row, by hand (same 4 columns; lower is better, so
    # a lower mIoU and a larger error count positive):
    expected = (
        100
        / 4
        * (
            -(68.09 - 74.01) / 74.01
            - (91.14 - 93.16) / 93.16
            + (0.0161 - 0.0125) / 0.0125
            + (38.39 - 27.77) / 27.77
        )
    )
    assert delta["seed report, DWA T=2"] == pytest.approx(expected)
    assert delta["seed report, DWA T=2"] == pytest.approx(19.30, abs=0.005)
    # the Nash-MTL table's own Delta_m, with its sign (lower is better): LS 22.60, DWA 21.45
    assert delta["Nash-MTL table, MTAN LS (equal)"] == pytest.approx(22.60, abs=0.05)
    assert delta["Nash-MTL table, MTAN DWA"] == pytest.approx(21.45, abs=0.05)
    # the paper's rows are in the 2019 convention: not comparable with the accumulated baseline
    assert math.isnan(delta["paper, MTAN equal"])
    assert math.isnan(delta["single-task baseline (STL, Nash-MTL table)"])


# ---------------------------------------------------------------- the comparison table


def test_comparison_table_holds_exactly_the_numbers() -> None:
    best = {"miou": 0.6012, "miou_2019": 0.52, "pixel_acc": 0.9, "abs_err": 0.0151, "score": 0.4}
    reproduce = pd.DataFrame(
        {"mean": [0.61, 0.015], "std": [0.005, 0.0002], "n": [3, 3]}, index=pd.Index(["miou", "abs_err"])
    )
    table = tables.comparison_table(best, reproduce, best_weighting="dwa (T=2)", best_epochs=9)
    study = table.loc["this study: best trial (tuning run)"]
    assert study["miou"] == pytest.approx(60.12)
    assert study["miou_2019"] == pytest.approx(52.0)
    assert study["pixel_acc"] == pytest.approx(90.0)
    assert study["abs_err"] == 0.0151 and study["score"] == 0.4
    assert math.isnan(study["rel_err"]) and study["epochs"] == 9 and study["weighting"] == "dwa (T=2)"
    again = table.loc["this study: best config reproduced (mean ± std of 3 seeds)"]
    assert again["miou"] == pytest.approx(61.0) and again["miou_std"] == pytest.approx(0.5)
    assert again["abs_err"] == 0.015 and again["abs_err_std"] == 0.0002
    paper = table.loc["paper, MTAN equal"]
    assert (paper["miou_2019"], paper["pixel_acc_2019"]) == (53.04, 91.11)
    assert (paper["abs_err_batch_mean"], paper["rel_err_batch_mean"]) == (0.0144, 33.63)
    assert math.isnan(paper["miou"]) and math.isnan(paper["score"])
    assert list(table["kind"]) == ["study", "reproduce"] + ["published"] * len(REFERENCES)


def test_format_comparison_text() -> None:
    best = {"miou": 0.6012, "abs_err": 0.0151, "rel_err": 0.4}
    reproduce = pd.DataFrame({"mean": [0.61], "std": [0.005], "n": [3]}, index=pd.Index(["miou"]))
    seed = reference("seed_dwa")
    table = tables.comparison_table(best, reproduce, [seed], trivial={"miou": 0.08, "abs_err": 0.08})
    text = tables.format_comparison(table).set_index("row")
    assert text.loc["this study: best trial (tuning run)", "mIoU % (accumulated)"] == "60.12"
    assert text.loc["this study: best trial (tuning run)", "mIoU % (paper 2019)"] == "-"
    assert text.loc["this study: best trial (tuning run)", "abs err (per-pixel mean)"] == "0.0151"
    assert text.loc["this study: best trial (tuning run)", "rel err, ratio (per-pixel mean)"] == "0.400"
    assert text.loc["this study: best config reproduced (mean ± std of 3 seeds)", "mIoU % (accumulated)"] == (
        "61.00 ± 0.50"
    )
    assert text.loc["trivial predictors on this study's data", "mIoU % (accumulated)"] == "8.00"
    assert text.loc["seed report, DWA T=2", "mIoU % (accumulated)"] == "68.09 ?"
    assert text.loc["seed report, DWA T=2", "rel err, ratio (per-batch mean)"] == "38.39 ?"
    assert text.loc["seed report, DWA T=2", "epochs"] == "100"


def test_protocol_differences_one_line_per_aspect() -> None:
    config = {"image_height": 128, "image_width": 256, "width": 0.25, "backbone": "segnet"}
    table = tables.protocol_differences({"data": "synthetic", "max_epochs": 30}, config).set_index("aspect")
    assert list(table.columns) == [
        "this study",
        "paper (Liu et al. 2019)",
        "seed report",
        "Nash-MTL (Navon et al. 2022)",
    ]
    assert {"data set", "resolution", "epochs", "backbone", "segmentation metric convention"} <= set(
        table.index
    )
    assert "not CityScapes" in table.loc["data set", "this study"]
    assert table.loc["resolution", "this study"] == "128x256"
    assert table.loc["backbone", "this study"] == "segnet, width x0.25"
    assert table.loc["epochs", "seed report"] == "100"
    assert table.loc["segmentation metric convention", "paper (Liu et al. 2019)"] == PAPER_2019
    unknown = tables.protocol_differences({"data": "/data/cityscapes"}, None).set_index("aspect")
    assert unknown.loc["backbone", "this study"] == "not recorded"
    assert unknown.loc["data set", "this study"] == "/data/cityscapes"


def test_a_row_with_custom_reference() -> None:
    row = ReferenceRow(
        key="x", label="x", group="g", source="s", weighting="equal", dataset="d", resolution="r",
        epochs=1, backbone="b", seg_convention="accumulated", depth_averaging="per-batch mean",
        evaluation="e", values={"miou": 50.0},
    )  # fmt: skip
    table = tables.comparison_table({"miou": 0.55}, None, [row])
    # a better mIoU than the row it is computed against: negative (lower is better)
    assert tables.delta_m_column(table, "x")["this study: best trial (tuning run)"] == pytest.approx(-10.0)


# ---------------------------------------------------------------- ranking and summaries


def test_top_configs_ranked_without_failed_trials() -> None:
    top = tables.top_configs(_trials(), "last_score", "max", HAND_SPACE, n=5)
    assert top["trial"].tolist() == [11, 12, 10]
    assert top["rank"].tolist() == [1, 2, 3]
    assert top["last_score"].tolist() == [0.55, 0.50, 0.40]
    by_error = tables.top_configs(_trials(), "last_abs_err", "min", HAND_SPACE, n=2)
    assert by_error["trial"].tolist() == [11, 10]
    text = tables.format_top_configs(top, "last_score", HAND_SPACE)
    assert text["weight decay"].tolist() == ["1.0e-04", "1.0e-05", "0 (none)"]
    assert text["DWA temperature T"].tolist() == ["2", "0.5", "-"]
    assert text["mIoU % (accumulated)"].tolist() == ["60.00", "70.00", "50.00"]
    assert text["score (0 = trivial, 1 = perfect) [ranked by]"].tolist() == ["0.550", "0.500", "0.400"]


def test_ranking_column_follows_best_config() -> None:
    trials = _trials()
    assert tables.ranking_column(trials, "score", {"trial": 11, "value": 0.55}) == "last_score"
    assert tables.ranking_column(trials, "score", {"trial": 10, "value": 0.45}) == "best_score"
    # the trial is found by its number, never by Ray's id (which a resumed trial changes)
    assert (
        tables.ranking_column(trials, "score", {"trial": 10, "trial_id": "t1", "value": 0.45}) == "best_score"
    )
    assert tables.ranking_column(trials, "score", None) == "last_score"


def test_best_metrics_from_best_config_completed_by_results_csv() -> None:
    best = {"trial": 12, "trial_id": "t0", "metrics": {"miou": 0.7, "score": 0.5}}  # trial 12 is t2
    metrics = tables.best_metrics(_trials(), best)
    assert metrics == {"miou": 0.7, "score": 0.5, "pixel_acc": 0.9, "abs_err": 0.025, "rel_err": 0.35}
    assert tables.best_metrics(_trials(), None) is None


def test_state_counts_epochs_and_summary() -> None:
    trials = _trials()
    assert tables.state_counts(trials).to_dict() == {"completed": 2, "stopped_early": 1, "failed": 1}
    study = {
        "epochs_trained": 21,
        "num_samples": 4,
        "max_epochs": 9,
        "data": "synthetic",
        "wall_seconds": 3725,
    }
    assert tables.epochs_saved(study, trials) == (21.0, 36.0)
    trained, budget = tables.epochs_saved({}, trials)  # no study.json counts: sum of the trials' epochs
    assert trained == 21.0 and math.isnan(budget)
    summary = tables.study_summary(study, trials).set_index("item")["value"]
    assert summary["trials"] == "4 (completed 2, stopped early 1, failed 1)"
    # t1 stopped at 3 of 9 epochs: 6 saved by ASHA; t3 failed at 0: 9 unused, not ASHA's doing
    assert tables.asha_savings(study, trials) == (6.0, 9.0)
    assert summary["epochs trained"] == (
        "21 of a full budget of 36 (58 %); ASHA's early stops saved 6 epochs (17 %); "
        "failed trials left 9 unused"
    )
    assert summary["wall time"] == "1 h 02 min"
    assert summary["data"] == "synthetic (generated; not CityScapes)"
    assert summary["hardware"] == "not recorded"
    failed = tables.failed_trials(trials)
    assert failed.to_dict("records") == [{"trial": "13", "error": "CUDA out of memory"}]


def test_weighting_summary_medians_and_best() -> None:
    table = tables.weighting_summary(_trials(), ["miou", "abs_err"]).set_index("weighting")
    assert table.loc["dwa", "trials"] == 3 and table.loc["dwa", "failed"] == 1
    assert table.loc["dwa", "miou median"] == pytest.approx(65.0)
    assert table.loc["dwa", "miou best"] == pytest.approx(70.0)
    assert table.loc["dwa", "abs_err best"] == pytest.approx(0.018)
    assert table.loc["equal", "miou median"] == pytest.approx(50.0)
    assert table.index.tolist() == ["equal", "dwa"]  # in the order of the trials, as the study ran them


def test_pareto_front_hand_case() -> None:
    frame = pd.DataFrame(
        {
            "miou": [0.5, 0.6, 0.7, 0.55, 0.7, np.nan],
            "err": [0.02, 0.018, 0.025, 0.03, 0.026, 0.001],
        }
    )
    # 0: beaten by 1 (higher mIoU, lower err); 3: beaten by 1; 4: beaten by 2; 5: missing mIoU
    assert tables.pareto_front(frame, "miou", "err").tolist() == [False, True, True, False, False, False]


def test_asha_rungs() -> None:
    assert tables.asha_rungs({"grace_period": 1, "reduction_factor": 3, "max_epochs": 9}) == [1, 3]
    assert tables.asha_rungs({"grace_period": 2, "reduction_factor": 2, "max_epochs": 16}) == [2, 4, 8]
    assert tables.asha_rungs({}) == []


def test_formatting() -> None:
    assert tables.format_hyperparameter("weight_decay", 0.0) == "0 (none)"
    assert tables.format_hyperparameter("lr", 1e-4) == "1.0e-04"
    assert tables.format_hyperparameter("temperature", float("nan")) == "-"
    assert tables.format_metric("miou", 0.5304) == "53.04"
    assert tables.format_metric("rel_err", 33.63, converted=True) == "33.63"
    assert tables.format_duration(200) == "3 min 20 s"


def test_trials_are_named_by_number_and_the_published_configurations_marked() -> None:
    trials = pd.DataFrame({"trial": [0, 1, 12], "trial_id": ["a", "b", "c"]})
    assert tables.trial_names(trials).tolist() == ["0 (paper)", "1 (seed report)", "12"]
