"""Study settings: the JSON form --resume reads back, and the checks of each setting."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mtan.errors import UserError
from mtan.weighting import WEIGHTINGS as REGISTERED
from study.cluster import default_gpus_per_trial
from study.settings import STUDY_FLAGS, StudySettings, new_settings, validate

WEIGHTINGS = [w for w in REGISTERED if w != "uncertainty"]  # the default space's methods


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
        ({"seed": -1}, "--seed"),
        ({"per_weighting": 0, "num_samples": 0}, "--per-weighting must be at least 1"),
        (
            {"per_weighting": 3},
            "--per-weighting 3 with 3 weighting methods .equal, dwa, scalarization. makes 9 trials, not 20",
        ),
    ],
)
def test_each_bad_setting_is_named(change, message):
    with pytest.raises(UserError, match=message):
        validate(StudySettings(**{"name": "s", **change}))
    validate(StudySettings(name="s"))  # the defaults pass


def test_new_settings_fill_every_default_in_one_place():
    cpu = new_settings({"overrides": (("max_train_images", 16),)})
    assert (cpu.num_samples, cpu.max_epochs, cpu.grace_period, cpu.reduction_factor) == (20, 24, 3, 4)
    assert dict(cpu.overrides) == {
        "image_height": 32,
        "image_width": 64,
        "max_train_images": 16,
        "max_val_images": 32,
    }
    paper = new_settings({"preset": "paper", "metric": "abs_err", "name": "p"})
    assert (paper.max_epochs, paper.grace_period, paper.overrides, paper.mode) == (
        200,
        12,
        (),
        "min",
    )  # 200 // 16
    assert new_settings({"max_epochs": 100, "reduction_factor": 2}).grace_period == 25  # 100 // 2^2
    assert default_gpus_per_trial(0.0) == 0.0 and default_gpus_per_trial(2.0) == 1.0


def test_the_base_config_is_built_once_from_the_settings():
    settings = StudySettings(name="s", max_epochs=5, seed=2, cpus_per_trial=2.5, overrides=(("width", 0.5),))
    base = settings.base_config
    assert settings.base_config is base  # cached: built once
    assert (base.epochs, base.seed, base.num_threads, base.device, base.width) == (5, 2, 2, "cpu", 0.5)


def test_every_flag_is_a_setting():
    assert set(STUDY_FLAGS) | {"name", "storage_path", "overrides", "weightings"} == {
        f.name for f in dataclasses.fields(StudySettings)
    }


def test_per_weighting_sets_the_total_and_excludes_num_samples():
    # the space's methods: every registered one, uncertainty only behind its flag
    settings = new_settings({"per_weighting": 3, "name": "s"})
    assert settings.num_samples == 3 * len(WEIGHTINGS)
    assert settings.design == {"per_weighting": 3, "weightings": list(WEIGHTINGS)}
    more = new_settings({"per_weighting": 3, "uncertainty": True, "name": "s"})
    assert more.num_samples == 3 * len(REGISTERED) and more.design["weightings"] == list(REGISTERED)
    validate(settings)
    validate(more)
    assert StudySettings.from_json(json.loads(json.dumps(more.to_json()))) == more
    assert new_settings({"num_samples": 7}).design == {"per_weighting": None, "weightings": list(WEIGHTINGS)}
    with pytest.raises(UserError, match="--num-samples and --per-weighting are exclusive"):
        new_settings({"per_weighting": 3, "num_samples": 6})


def test_a_resumed_study_searches_the_weightings_it_recorded_not_the_registrys():
    recorded = StudySettings(name="s", weightings=("equal", "dwa")).to_json()
    assert StudySettings.from_study_json({"settings": recorded}).space.weightings == ("equal", "dwa")
    # a study.json from before the settings held them: its space's weighting column lists the choices
    older = {k: v for k, v in recorded.items() if k != "weightings"}
    space = {"columns": [{"name": "weighting", "categorical": True, "searched": ["equal", "dwa"]}]}
    settings = StudySettings.from_study_json({"settings": older, "space": space})
    assert settings.weightings == ("equal", "dwa") and settings.design["weightings"] == ["equal", "dwa"]
    for nothing in ({"settings": older, "space": {"columns": []}}, {"settings": {**older, "weightings": []}}):
        with pytest.raises(ValueError, match="no weighting methods"):
            StudySettings.from_study_json(nothing)


def test_a_new_study_records_the_registrys_weightings_and_an_unknown_one_is_refused():
    assert StudySettings(name="s").weightings == tuple(WEIGHTINGS)
    assert StudySettings(name="s", uncertainty=True).weightings == tuple(REGISTERED)
    with pytest.raises(UserError, match="must be registered ones .* got gradnorm"):
        validate(StudySettings(name="s", weightings=("equal", "gradnorm")))
