"""The study folder's files from its ended trials: states, last and best values, the best trial, NaN as null,
and each file read back by the reader that goes with its writer."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest

from mtan.errors import UserError
from mtan.metrics import METRIC_KEYS
from study.record import (
    EndedTrial,
    StudyFolder,
    best_trial,
    journal_states,
    most_common_error,
    parse_restarts,
    restart_line,
    results_table,
    trial_dirname,
    trial_state,
    write_results,
)
from study.space import SearchSpace

SPACE = SearchSpace()


def row(epoch: int, miou: float, abs_err: float) -> dict:
    values = {key: 0.5 for key in METRIC_KEYS}
    values.update(epoch=epoch, miou=miou, abs_err=abs_err, score=miou - abs_err)
    return values


def ended(number: int, weighting: str, history: tuple, error: str | None = None) -> EndedTrial:
    point = {"weighting": weighting, "use_weight_decay": False, "step_fraction": 0.5, "gamma": 0.5}
    if weighting == "dwa":
        point["temperature"] = 1.5
    columns = SPACE.column_values(point, 3)
    return EndedTrial(number, f"id{number}", columns, {"weighting": weighting}, history, error, point)


TRIALS = [
    # completed: miou rises then falls; abs err falls then rises
    ended(0, "dwa", (row(1, 0.2, 0.3), row(2, 0.6, 0.1), row(3, 0.5, 0.2))),
    # stopped early after 1 epoch with the best single value of all
    ended(1, "equal", (row(1, 0.9, 0.01),)),
    # failed in epoch 2
    ended(2, "equal", (row(1, 0.1, 0.4),), error="TrainingDiverged: depth loss became nan"),
    # completed, better last score than 0
    ended(3, "equal", (row(1, 0.3, 0.3), row(2, 0.4, 0.2), row(3, 0.55, 0.15))),
]


def test_states_from_epochs_and_errors():
    assert [trial_state(r, max_epochs=3) for r in TRIALS] == [
        "completed",
        "stopped_early",
        "failed",
        "completed",
    ]


def test_last_and_best_by_direction():
    table = results_table(TRIALS, 3, SPACE.columns).set_index("trial")
    assert table.loc[0, "last_miou"] == 0.5 and table.loc[0, "best_miou"] == 0.6
    assert table.loc[0, "last_abs_err"] == 0.2 and table.loc[0, "best_abs_err"] == 0.1  # min for errors
    assert math.isclose(table.loc[0, "best_score"], 0.5)  # 0.6 - 0.1
    assert table.loc[2, "error"].startswith("TrainingDiverged") and table.loc[2, "epochs"] == 1
    assert table.loc[0, "temperature"] == 1.5 and pd.isna(table.loc[3, "temperature"])  # empty for equal
    assert table.loc[0, "step_fraction"] == 0.5 and table.loc[0, "step_size"] == 2  # round(0.5 * 3)


def test_tail_columns_average_the_last_epochs():
    table = results_table(TRIALS, 3, SPACE.columns).set_index("trial")
    # fewer than 10 epochs: the mean over all of them
    assert math.isclose(table.loc[0, "tail_miou"], (0.2 + 0.6 + 0.5) / 3)
    assert math.isclose(table.loc[0, "tail_abs_err"], (0.3 + 0.1 + 0.2) / 3)
    assert table.loc[1, "tail_miou"] == 0.9


def test_best_trial_is_the_best_completed_one_by_its_last_value():
    table = results_table(TRIALS, 3, SPACE.columns)
    assert best_trial(table, "score", "max") == 3  # 0.40 beats 0's 0.30; 1 stopped early
    assert best_trial(table, "abs_err", "min") == 3
    only_stopped = results_table(TRIALS[1:3], 3, SPACE.columns)
    assert best_trial(only_stopped, "score", "max") == 1  # no completed trial: the others


def test_written_files_read_back(tmp_path):
    folder = StudyFolder(tmp_path)
    summary = {"num_samples": 4, "max_epochs": 3, "wall_seconds": math.nan}
    nan_row = {**row(4, 0.5, 0.1), "rel_err": math.inf}
    trials = [*TRIALS[:3], dataclasses.replace(TRIALS[3], history=(*TRIALS[3].history, nan_row))]
    for trial in trials:  # each trial writes its own metrics.jsonl while it runs; write_results does not
        folder.write_trial_metrics(trial.number, trial.history)
    write_results(
        folder, trials, metric="score", mode="max", max_epochs=3, columns=SPACE.columns, summary=summary
    )
    table = folder.read_results()
    assert list(table["trial"]) == [0, 1, 2, 3] and list(table["trial_id"]) == ["id0", "id1", "id2", "id3"]
    assert list(table.columns[:15]) == [
        "trial", "trial_id", "state", "epochs", "error", "restarts", "restart_reason",
        "weighting", "temperature", "depth_share_logit", "depth_share", "weight_decay", "step_fraction",
        "step_size", "gamma",
    ]  # fmt: skip
    best = folder.read_best_config()
    assert best["trial"] == 3 and best["trial_id"] == "id3" and best["config"]["weighting"] == "equal"
    assert best["metrics"]["rel_err"] is None  # inf written as null
    study = folder.read_study()
    assert study["states"] == {"completed": 2, "stopped_early": 1, "failed": 1}
    assert study["epochs_trained"] == 9 and study["epochs_budget"] == 12 and study["wall_seconds"] is None
    assert study["best_trial"] == 3
    assert (tmp_path / "trials" / trial_dirname(0)).name == "trial_000"
    assert [r["epoch"] for r in folder.read_trial_metrics(0)] == [1, 2, 3]
    written = folder.trial_metrics(3).read_text()
    assert "NaN" not in written and "Infinity" not in written and '"rel_err": null' in written
    assert folder.read_trial_metrics(7) is None
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("{broken", "line 1 is not valid JSON"),
        ("[1]\n", "line 1 is not an epoch's row"),
        ('{"epoch": 1}\n{"epoch": "2"}\n', "line 2 is not an epoch's row"),
    ],
)
def test_an_unreadable_trial_metrics_file_is_one_line_naming_it(tmp_path, text, message):
    folder = StudyFolder(tmp_path)
    folder.trial_metrics(4).parent.mkdir(parents=True)
    folder.trial_metrics(4).write_text(text)
    with pytest.raises(UserError, match=f"trial_004/metrics.jsonl: {message}"):
        folder.read_trial_metrics(4)


def test_unreadable_json_and_csv_are_one_line_naming_the_file(tmp_path):
    folder = StudyFolder(tmp_path)
    folder.study_json.write_text("{not json")
    with pytest.raises(UserError, match="study.json: not valid JSON"):
        folder.read_study()
    folder.best_config_json.write_text("[1, 2]")
    with pytest.raises(UserError, match="best_config.json: expected a JSON object"):
        folder.read_best_config()
    folder.results_csv.write_text("trial_id,epochs\n1,2\n")
    with pytest.raises(UserError, match=r"results.csv: missing column\(s\) trial, state, error, weighting"):
        folder.read_results()


def written_study(tmp_path) -> StudyFolder:
    """TRIALS as a finished study writes them: each trial's metrics.jsonl, results.csv, study.json."""
    folder = StudyFolder(tmp_path)
    for trial in TRIALS:
        folder.write_trial_metrics(trial.number, trial.history)
    summary = {"num_samples": len(TRIALS), "max_epochs": 3, "metric": "score"}
    write_results(
        folder, TRIALS, metric="score", mode="max", max_epochs=3, columns=SPACE.columns, summary=summary
    )
    return folder


def test_a_results_csv_cut_mid_row_or_with_a_short_row_is_refused(tmp_path):
    folder = written_study(tmp_path)
    whole = folder.results_csv.read_text()
    lines = whole.splitlines(keepends=True)
    cut = len("".join(lines[:3])) + len(lines[3]) // 2  # `head -c`: half of the third trial's row
    folder.results_csv.write_text(whole[:cut])
    with pytest.raises(UserError, match=r"results.csv: cut off in its last row \(row 3 has no end of line\)"):
        folder.read_results()
    short = lines[2].rstrip("\n").rsplit(",", 1)[0] + "\n"  # the second trial's row without its last field
    folder.results_csv.write_text("".join([*lines[:2], short, *lines[3:]]))
    header = len(lines[0].split(","))
    with pytest.raises(UserError, match=f"results.csv: row 2 has {header - 1} fields, the header {header}"):
        folder.read_results()
    folder.results_csv.write_text(whole)
    assert list(folder.read_results()["trial"]) == [0, 1, 2, 3]


def test_results_csv_must_hold_the_trials_study_json_records(tmp_path):
    folder = written_study(tmp_path)
    lines = folder.results_csv.read_text().splitlines(keepends=True)
    folder.results_csv.write_text("".join(lines[:-1]))  # cut at a row's end: the last trial gone
    with pytest.raises(
        UserError, match=r"holds 3 trial row\(s\), numbered 0..2, but study.json records 4 trials"
    ):
        folder.read_results()
    completed_row = lines[1]  # trial 0, completed after 3 epochs
    stopped = completed_row.replace(",completed,", ",stopped_early,", 1)
    folder.results_csv.write_text("".join([lines[0], stopped, *lines[2:]]))
    with pytest.raises(UserError) as changed:
        folder.read_results()
    assert str(changed.value) == (
        f"{folder.results_csv}: its trials are 1 completed, 2 stopped early, 1 failed, but study.json "
        "records 2 completed, 1 stopped early, 1 failed; the file is not this study's as it ended"
    )


def test_results_csv_must_agree_with_the_journal(tmp_path):
    folder = written_study(tmp_path)
    states = {0: "completed", 1: "stopped_early", 2: "failed", 3: "completed"}  # TRIALS, by hand
    assert list(folder.read_results(states)["trial"]) == [0, 1, 2, 3]
    with pytest.raises(UserError, match="trial 1 is stopped_early there but completed in optuna.journal"):
        folder.read_results({**states, 1: "completed"})
    with pytest.raises(UserError, match=r"holds trials 0..3, but optuna.journal holds \[0, 1, 2, 3, 5\]"):
        folder.read_results({**states, 5: "running"})


def test_the_journal_states_are_named_as_results_csv_names_them():
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    space = {"x": FloatDistribution(0, 1)}
    for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING):
        value = 0.5 if state == TrialState.COMPLETE else None
        study.add_trial(create_trial(state=state, value=value, params={"x": 0.1}, distributions=space))
    assert journal_states(study) == {0: "completed", 1: "stopped_early", 2: "failed", 3: "running"}


def test_a_trial_history_shorter_than_its_row_is_refused(tmp_path):
    folder = written_study(tmp_path)
    assert [row["epoch"] for row in folder.read_trial_metrics(0, epochs=3)] == [1, 2, 3]
    assert folder.read_trial_metrics(2, epochs=1) is not None  # the failed trial's one epoch
    path = folder.trial_metrics(0)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:2]))
    with pytest.raises(
        UserError, match="trial_000/metrics.jsonl: holds 2 epoch row\\(s\\), results.csv says trial 0"
    ):
        folder.read_trial_metrics(0, epochs=3)


def test_restarts_are_written_one_line_each_and_counted_in_results_csv(tmp_path):
    text = restart_line("ActorDiedError: the actor is dead\n because its worker died", run=1, epoch=4)
    text += restart_line("the driver stopped while it ran; driver run 2 continued it", run=2, epoch=5)
    assert text.count("\n") == 2
    restarts = parse_restarts(text, "restarts.jsonl")
    assert [r["reason"] for r in restarts] == [
        "ActorDiedError: the actor is dead because its worker died",  # one line
        "the driver stopped while it ran; driver run 2 continued it",
    ]
    assert [(r["run"], r["epoch"]) for r in restarts] == [(1, 4), (2, 5)]
    with pytest.raises(UserError, match="restarts.jsonl: line 3 is not an object with a 'reason'"):
        parse_restarts(text + "[1]\n", "restarts.jsonl")
    record = dataclasses.replace(TRIALS[0], restarts=2, restart_reason=restarts[-1]["reason"])
    row = results_table([record, TRIALS[1]], 3, SPACE.columns)[["restarts", "restart_reason"]]
    assert row.values.tolist() == [[2, restarts[-1]["reason"]], [0, ""]]


def test_the_most_common_reason_of_the_failed_trials():
    table = pd.DataFrame(
        {
            "state": ["failed", "failed", "completed", "failed", "failed"],
            "error": ["A: x", "B: y", "", "B: y", None],
        }
    )
    assert most_common_error(table) == ("B: y", 2)
    assert most_common_error(table.iloc[[2]]) is None
