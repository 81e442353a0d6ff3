"""The harvest of a finished study (`study.driver.ended_trials`): each trial's configuration is the
`config.json` in its folder, as written, never one computed again."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

from mtan.errors import UserError
from study.driver import ended_trials
from study.settings import StudySettings
from study.storage import TrialStore

optuna.logging.set_verbosity(optuna.logging.WARNING)
SETTINGS = StudySettings(name="s", max_epochs=2)


def study_of(states: list[TrialState]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for state in states:
        trial = study.ask()
        SETTINGS.space(trial)
        trial.report(0.5, 1)
        study.tell(trial, 0.5 if state == TrialState.COMPLETE else None, state)
    return study


def test_each_trial_has_the_configuration_in_its_folder(tmp_path):
    trials = tmp_path / "trials"
    written = {"preset": "cpu", "batch_size": 3, "seed": 41}  # what no point of the space gives
    (trials / "trial_000").mkdir(parents=True)
    (trials / "trial_000" / "config.json").write_text(json.dumps(written))
    (trials / "trial_000" / "metrics.jsonl").write_text('{"epoch": 1, "score": 0.5}\n')
    study = study_of([TrialState.COMPLETE, TrialState.FAIL])  # trial 1 failed before it wrote a file
    first, failed = ended_trials(study, TrialStore(str(trials)), SETTINGS)
    assert first.config == written and first.history == ({"epoch": 1, "score": 0.5},)
    assert failed.config == {} and failed.history == () and failed.error is not None


def test_a_torn_config_json_is_named(tmp_path):
    trials = tmp_path / "trials"
    (trials / "trial_000").mkdir(parents=True)
    (trials / "trial_000" / "config.json").write_text('{"preset": "cpu"')  # a torn write
    with pytest.raises(UserError, match=r"trials/trial_000/config.json: not valid JSON"):
        ended_trials(study_of([TrialState.COMPLETE]), TrialStore(str(trials)), SETTINGS)
