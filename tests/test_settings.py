"""Study settings: the JSON form --resume reads back, and the checks of each setting."""

from __future__ import annotations

import json

import pytest

from mtan.errors import UserError
from study.settings import StudySettings, validate


def test_settings_survive_study_json():
    settings = StudySettings(name="s", num_samples=7, metric="abs_err", overrides=(("image_height", 32),))
    again = StudySettings.from_json(json.loads(json.dumps(settings.to_json())))
    assert again == settings and again.mode == "min"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_samples": 0}, "--num-samples"),
        ({"grace_period": 9, "max_epochs": 8}, "--grace-period"),
        ({"reduction_factor": 1}, "--reduction-factor"),
        ({"gpus_per_trial": -0.5}, "--gpus-per-trial"),
        ({"name": "a/b"}, "--name"),
        ({"overrides": (("seed", 3),)}, "--set cannot change seed"),
        ({"overrides": (("lr", 0.1),), "tune_lr": True}, "either fixed or searched"),
        ({"overrides": (("lr", -1.0),)}, "lr must be > 0"),
    ],
)
def test_each_bad_setting_is_named(change, message):
    with pytest.raises(UserError, match=message):
        validate(StudySettings(**{"name": "s", **change}))
    validate(StudySettings(name="s"))  # the defaults pass
