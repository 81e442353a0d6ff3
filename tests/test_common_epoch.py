"""Weightings compared at the epoch every trial reached, not at each trial's own last epoch."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.common_epoch import (
    common_epoch,
    common_epoch_sentence,
    same_number_of_trials,
    trials_at_epoch,
    trials_per_weighting,
    weightings_at_epoch,
)


def study():
    trials = pd.DataFrame(
        {
            "trial": [2, 3, 4, 5, 6],  # e1, d1, d2, e2, x
            "weighting": ["equal", "dwa", "dwa", "equal", "dwa"],
            "state": ["stopped_early", "completed", "stopped_early", "completed", "failed"],
            "epochs": [3, 6, 4, 6, 1],
        }
    )
    rows = []
    # by its last epoch d1 (0.60 at epoch 6) beats e1 (0.40 at epoch 3); at epoch 3 e1 is best
    scores = {2: [0.1, 0.2, 0.40], 3: [0.1, 0.2, 0.30, 0.4, 0.5, 0.60], 4: [0.1, 0.2, 0.35, 0.36],
              5: [0.1, 0.2, 0.20, 0.3, 0.4, 0.5], 6: [0.9]}  # fmt: skip
    for trial, values in scores.items():
        rows += [{"trial": trial, "epoch": e, "score": v, "abs_err": 1 - v} for e, v in enumerate(values, 1)]
    return trials, pd.DataFrame(rows)


def test_the_epoch_every_trial_that_did_not_fail_reached():
    trials, _ = study()
    assert common_epoch(trials) == 3  # the failed trial's single epoch does not count
    assert common_epoch(trials[trials["state"] == "failed"]) is None


def test_best_and_median_per_weighting_at_that_epoch():
    trials, curves = study()
    table = weightings_at_epoch(trials, curves, "score", 3).set_index("weighting")
    assert table.loc["equal", "best"] == 0.40 and table.loc["equal", "best trial"] == 2
    assert table.loc["equal", "median"] == pytest.approx(0.30) and table.loc["equal", "n"] == 2
    assert table.loc["dwa", "best"] == 0.35 and table.loc["dwa", "n"] == 2
    errors = weightings_at_epoch(trials, curves, "abs_err", 3).set_index("weighting")
    assert errors.loc["equal", "best"] == pytest.approx(0.60)  # lower is better
    sentence = common_epoch_sentence(table.reset_index(), "score", 3, 4)
    assert sentence.startswith(
        "At epoch 3, which all 4 trials that did not fail reached (score): equal best 0.400"
    )
    assert "dwa best 0.350 (trial 4), median 0.325, n = 2" in sentence
    named = common_epoch_sentence(table.reset_index(), "score", 3, 4, {2: "2 (x)", 4: "4 (y)"})
    assert "(trial 4 (y))" in named


def test_without_as_many_trials_per_method_only_the_medians():
    trials, curves = study()
    assert trials_per_weighting(trials) == {"equal": 2, "dwa": 3}  # the failed trial was a try too
    assert not same_number_of_trials(trials)
    assert same_number_of_trials(trials[trials["trial"] != 6])
    table = weightings_at_epoch(trials, curves, "score", 3)
    sentence = common_epoch_sentence(table, "score", 3, 4, same=False)
    assert sentence == (
        "At epoch 3, which all 4 trials that did not fail reached (score): equal median 0.300, n = 2; dwa "
        "median 0.325, n = 2 (unequal numbers of trials, so their bests are not compared: the best of more "
        "tries is higher by selection alone)"
    )


def test_trials_at_the_common_epoch():
    trials, curves = study()
    trials = trials.assign(last_score=[0.40, 0.60, 0.36, 0.5, 0.9], last_abs_err=0.0)
    at = trials_at_epoch(trials, curves, 3).set_index("trial")
    # each trial's value at epoch 3, not its last one (d1: 0.60 at epoch 6, 0.30 at epoch 3)
    assert at["last_score"].to_dict() == pytest.approx({2: 0.40, 3: 0.30, 4: 0.35, 5: 0.20, 6: float("nan")},
                                                       nan_ok=True)  # fmt: skip
    assert at.loc[3, "last_abs_err"] == pytest.approx(0.70)
    assert at["epochs"].tolist() == [3, 3, 3, 3, 1]  # the failed trial keeps its own, and no values
    assert at["state"].tolist() == trials["state"].tolist()
