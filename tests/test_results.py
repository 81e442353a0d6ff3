"""The study's result files from trial records: states, last and best values, the best trial."""

from __future__ import annotations

import json
import math

import pandas as pd

from mtan.metrics import METRIC_KEYS
from study.results import TrialRecord, best_trial_id, results_table, trial_state, write_results


def row(epoch: int, miou: float, abs_err: float) -> dict:
    values = {key: 0.5 for key in METRIC_KEYS}
    values.update(epoch=epoch, miou=miou, abs_err=abs_err, score=miou - abs_err)
    return values


def config(weighting: str, temperature: float = 2.0) -> dict:
    return {"weighting": weighting, "temperature": temperature, "weight_decay": 0.0, "step_size": 2}


RECORDS = [
    # completed: miou rises then falls; abs err falls then rises
    TrialRecord("a", config("dwa", 1.5), (row(1, 0.2, 0.3), row(2, 0.6, 0.1), row(3, 0.5, 0.2))),
    # stopped early after 1 epoch with the best single value of all
    TrialRecord("b", config("equal"), (row(1, 0.9, 0.01),)),
    # failed in epoch 2
    TrialRecord("c", config("equal"), (row(1, 0.1, 0.4),), error="TrainingDiverged: depth loss became nan"),
    # completed, better last score than "a"
    TrialRecord("d", config("equal"), (row(1, 0.3, 0.3), row(2, 0.4, 0.2), row(3, 0.55, 0.15))),
]


def test_states_from_epochs_and_errors():
    assert [trial_state(r, max_epochs=3) for r in RECORDS] == [
        "completed",
        "stopped_early",
        "failed",
        "completed",
    ]


def test_last_and_best_by_direction():
    table = results_table(RECORDS, max_epochs=3).set_index("trial_id")
    assert table.loc["a", "last_miou"] == 0.5 and table.loc["a", "best_miou"] == 0.6
    assert table.loc["a", "last_abs_err"] == 0.2 and table.loc["a", "best_abs_err"] == 0.1  # min for errors
    assert math.isclose(table.loc["a", "best_score"], 0.5)  # 0.6 - 0.1
    assert table.loc["c", "error"].startswith("TrainingDiverged") and table.loc["c", "epochs"] == 1


def test_tail_columns_average_the_last_epochs():
    table = results_table(RECORDS, max_epochs=3).set_index("trial_id")
    # fewer than 10 epochs: the mean over all of them
    assert math.isclose(table.loc["a", "tail_miou"], (0.2 + 0.6 + 0.5) / 3)
    assert math.isclose(table.loc["a", "tail_abs_err"], (0.3 + 0.1 + 0.2) / 3)
    assert table.loc["b", "tail_miou"] == 0.9
    assert table.loc["a", "temperature"] == 1.5 and pd.isna(table.loc["d", "temperature"])  # empty for equal


def test_best_trial_is_the_best_completed_one_by_its_last_value():
    table = results_table(RECORDS, max_epochs=3)
    assert best_trial_id(table, "score", "max") == "d"  # 0.40 beats a's 0.30; b stopped early
    assert best_trial_id(table, "abs_err", "min") == "d"
    only_stopped = results_table(RECORDS[1:3], max_epochs=3)
    assert best_trial_id(only_stopped, "score", "max") == "b"  # no completed trial: the others


def test_written_files(tmp_path):
    summary = {"num_samples": 4, "max_epochs": 3, "wall_seconds": 1.5}
    write_results(tmp_path, RECORDS, metric="score", mode="max", max_epochs=3, summary=summary)
    table = pd.read_csv(tmp_path / "results.csv")
    assert list(table["trial_id"]) == ["a", "b", "c", "d"]
    assert list(table.columns[:10]) == [
        "trial_id", "state", "epochs", "error",
        "weighting", "temperature", "weight_decay", "step_size", "gamma", "lr",
    ]  # fmt: skip
    best = json.loads((tmp_path / "best_config.json").read_text())
    assert (
        best["trial_id"] == "d"
        and math.isclose(best["value"], 0.40)
        and best["config"]["weighting"] == "equal"
    )
    study = json.loads((tmp_path / "study.json").read_text())
    assert study["states"] == {"completed": 2, "stopped_early": 1, "failed": 1}
    assert study["epochs_trained"] == 8 and study["epochs_budget"] == 12 and study["wall_seconds"] == 1.5
    lines = (tmp_path / "trials" / "a" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    assert not list(tmp_path.rglob("*.tmp"))
