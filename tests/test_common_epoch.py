"""Weightings compared at the epoch every trial reached, not at each trial's own last epoch."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.common_epoch import common_epoch, common_epoch_sentence, weightings_at_epoch


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
