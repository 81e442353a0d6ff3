"""`study.compat`, the private parts of Ray and Optuna the study uses: each seen through its function
against the library fed live, so an upgrade that changes one fails here."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import optuna
from ray.tune.schedulers import ASHAScheduler

from study import compat

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_a_version_other_than_the_one_written_for_is_one_line(monkeypatch, caplog):
    found = compat.check_version("ray")
    assert found == compat.WRITTEN_FOR["ray"]  # the pinned Ray (pyproject.toml)
    compat.check_version.cache_clear()
    monkeypatch.setitem(compat.WRITTEN_FOR, "ray", "0.0.1")
    with caplog.at_level(logging.WARNING, logger="study.compat"):
        compat.check_version("ray")
        compat.check_version("ray")  # once
    compat.check_version.cache_clear()
    (line,) = caplog.messages
    assert line.startswith(f"study.compat: ray {found} found, written for 0.0.1;") and "\n" not in line


def test_asha_rungs_as_ray_keeps_them_for_a_live_asha():
    scheduler = ASHAScheduler(time_attr="epoch", max_t=8, grace_period=1, reduction_factor=2)
    assert compat.asha_sign(scheduler) is None  # no mode yet
    assert scheduler.set_search_properties("loss", "min")
    assert compat.asha_sign(scheduler) == -1.0
    for name, values in {"a": {1: 0.3, 2: 0.2}, "b": {1: 0.5}}.items():
        trial = SimpleNamespace(trial_id=name)
        scheduler.on_trial_add(None, trial)
        for epoch, value in values.items():
            scheduler.on_trial_result(None, trial, {"epoch": epoch, "loss": value})
    # one bracket (ASHAScheduler's default), rungs at grace_period * reduction_factor^k up to max_t,
    # the highest first, each holding the signed value of every trial that reached it
    rungs = compat.asha_rungs(scheduler)
    assert [milestone for milestone, _ in rungs] == [8, 4, 2, 1]
    assert [dict(recorded) for _, recorded in rungs] == [{}, {}, {"a": -0.2}, {"a": -0.3, "b": -0.5}]
    rungs[-1][1]["c"] = -0.1  # the dict ASHA decides by: a value put there counts in its next cutoff
    trial = SimpleNamespace(trial_id="d")
    scheduler.on_trial_add(None, trial)
    assert scheduler.on_trial_result(None, trial, {"epoch": 1, "loss": 0.4}) == "STOP"  # beyond the median
    # of 0.3, 0.5, 0.1 only because c counted


def test_a_running_trial_reopened_by_its_frozen_copy_is_the_same_trial():
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(storage=storage, study_name="other").ask()  # trial ids run across studies
    study = optuna.create_study(storage=storage, study_name="s")
    study.ask()
    study.ask().suggest_float("x", 0.0, 1.0)
    frozen = study.get_trials(deepcopy=False)[1]
    trial = compat.reopen_trial(study, frozen)
    assert trial.number == 1 and trial.params == frozen.params
    trial.report(0.5, 1)
    study.tell(trial.number, 0.5)
    stored = study.get_trials(deepcopy=False)
    assert stored[1].state == optuna.trial.TrialState.COMPLETE and stored[1].intermediate_values == {1: 0.5}
    assert stored[0].state == optuna.trial.TrialState.RUNNING


def test_the_raylet_of_a_node_is_a_running_raylet(ray_cluster):
    pid = compat.raylet_pid(ray_cluster.head_node)
    assert "raylet" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")


def test_the_authentication_names_are_rays():
    assert compat.auth_mode_env_var() == "RAY_AUTH_MODE"
    assert compat.default_auth_token_path().is_relative_to(Path.home())
