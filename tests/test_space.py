"""The search space: conditional parameters, ranges, the published points, and their meaning."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from mtan.config import PRESETS, make_config
from mtan.weighting import WEIGHTINGS as MTAN_WEIGHTINGS
from study.space import (
    DIMENSIONS,
    SearchSpace,
    exact_logit,
    logit,
    new_study_weightings,
    sigmoid,
    step_size,
    train_overrides,
)

RANGES = {d.name: (d.low, d.high) for d in DIMENSIONS if not d.categorical}
# The range of each Optuna parameter (the logit of the range on the logit scale).
BOUNDS = {d.name: d.bounds for d in DIMENSIONS if not d.categorical}

optuna.logging.set_verbosity(optuna.logging.WARNING)


def sample(space: SearchSpace, n: int, seed: int = 0) -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    points = []
    for _ in range(n):
        trial = study.ask()
        space(trial)
        points.append(dict(trial.params))
        study.tell(trial, 0.0)
    return points


def test_temperature_only_with_dwa_and_weight_decay_only_when_switched_on():
    points = sample(SearchSpace(), 200)
    assert {p["weighting"] for p in points} == {"equal", "dwa", "scalarization"}
    for p in points:
        assert ("temperature" in p) == (p["weighting"] == "dwa")
        assert ("depth_share_logit" in p) == (p["weighting"] == "scalarization")
        assert ("weight_decay" in p) == p["use_weight_decay"]
        assert "lr" not in p
    assert any(not p["use_weight_decay"] for p in points) and any(p["use_weight_decay"] for p in points)


def test_values_stay_in_their_ranges():
    points = sample(SearchSpace(tune_lr=True), 200, seed=1)
    assert set(RANGES) == {"temperature", "depth_share_logit", "weight_decay", "step_fraction", "gamma", "lr"}
    for key, (low, high) in BOUNDS.items():
        values = [p[key] for p in points if key in p]
        assert values and all(low <= v <= high for v in values), key
    assert BOUNDS["depth_share_logit"] == pytest.approx((-4.59512, 4.59512))  # log(0.01 / 0.99), ...
    assert RANGES["temperature"][0] < 2.0 < RANGES["temperature"][1]  # around the paper's T = 2
    assert RANGES["weight_decay"][0] < 1e-4 < RANGES["weight_decay"][1]  # the seed report's value
    assert RANGES["lr"][0] < 1e-4 < RANGES["lr"][1]  # the paper's value


def test_uncertainty_only_behind_its_flag_and_every_weighting_exists_in_mtan():
    assert "uncertainty" not in {p["weighting"] for p in sample(SearchSpace(), 100)}
    opted_in = SearchSpace(new_study_weightings(["uncertainty"]))
    assert "uncertainty" in {p["weighting"] for p in sample(opted_in, 100)}
    assert opted_in.weightings == tuple(MTAN_WEIGHTINGS)


def test_a_space_of_two_weightings_searches_those_and_their_hyperparameters_only():
    space = SearchSpace(("equal", "dwa"))
    points = sample(space, 60)
    assert {p["weighting"] for p in points} == {"equal", "dwa"}
    assert "depth_share_logit" not in {k for p in points for k in p}
    assert "depth_share" not in space.columns and space.describe()["weightings"] == ["equal", "dwa"]


@pytest.mark.parametrize("tune_lr", [False, True])
def test_published_points_are_valid_points_that_optuna_replays_first(tune_lr):
    space = SearchSpace(tune_lr=tune_lr)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    for point in space.published_points():
        study.enqueue_trial(point)
    for point in space.published_points():
        trial = study.ask()
        space(trial)
        assert trial.params == point  # nothing missing, nothing extra
        study.tell(trial, 0.0)


@pytest.mark.parametrize("preset, weighting", [("paper", "equal"), ("report", "dwa")])
def test_published_points_give_the_published_training_at_their_epoch_budget(preset, weighting):
    """At the preset's own epoch budget, the point reproduces the preset (docs/design.md's numbers)."""
    paper, report = SearchSpace().published_points()
    point = paper if preset == "paper" else report
    reference = PRESETS[preset]
    overrides = train_overrides(point, reference.epochs)
    assert overrides["weighting"] == weighting
    assert overrides["step_size"] == reference.step_size  # 100 of 200, 25 of 100
    assert overrides["gamma"] == reference.gamma == 0.5
    assert overrides["weight_decay"] == reference.weight_decay  # 0 (paper), 1e-4 (report)
    if weighting == "dwa":
        assert overrides["temperature"] == 2.0


def test_step_size_scales_with_the_budget_and_is_at_least_one():
    assert step_size(0.5, 200) == 100
    assert step_size(0.25, 8) == 2
    assert step_size(0.1, 3) == 1
    assert train_overrides({**SearchSpace().published_points()[0], "lr": 3e-4}, 10)["lr"] == 3e-4


def test_results_columns_show_the_searched_names_and_the_config_fields_they_set():
    space = SearchSpace()
    assert space.columns == (
        "weighting",
        "temperature",
        "depth_share_logit",
        "depth_share",
        "weight_decay",
        "step_fraction",
        "step_size",
        "gamma",
    )
    assert SearchSpace(tune_lr=True).columns[-1] == "lr"
    paper, report = space.published_points()
    assert space.column_values(paper, 200) == {
        "weighting": "equal", "temperature": None, "depth_share_logit": None, "depth_share": None,
        "weight_decay": 0.0, "step_fraction": 0.5, "step_size": 100, "gamma": 0.5,
    }  # fmt: skip
    assert space.column_values(report, 8)["temperature"] == 2.0
    scalarized = {**paper, "weighting": "scalarization", "depth_share_logit": math.log(3.0)}
    assert space.column_values(scalarized, 200)["depth_share"] == pytest.approx(0.75)  # 3 = 0.75 / 0.25
    assert set(space.fields) == {
        "weighting",
        "temperature",
        "depth_share",
        "weight_decay",
        "step_size",
        "gamma",
    }


def test_the_recorded_description_names_every_column_with_its_label_and_scale():
    described = SearchSpace(tune_lr=True).describe()
    columns = {c["name"]: c for c in described["columns"]}
    assert list(columns) == list(SearchSpace(tune_lr=True).columns)
    assert columns["temperature"]["weightings"] == ["dwa"] and columns["temperature"]["log"]
    assert columns["lr"]["log"] and not columns["gamma"]["log"] and columns["weighting"]["categorical"]
    assert [columns["lr"]["scale"], columns["gamma"]["scale"]] == ["log", "linear"]
    # the depth share: Optuna's parameter linear between the logits, the config field on the logit scale
    share, share_logit = columns["depth_share"], columns["depth_share_logit"]
    assert (share["scale"], share["searched"], share["log"]) == ("logit", [0.01, 0.99], False)
    assert (share_logit["scale"], share_logit["log"]) == ("linear", False)
    assert share_logit["searched"] == pytest.approx([-4.59512, 4.59512])
    assert share["weightings"] == share_logit["weightings"] == ["scalarization"]
    assert described["labels"]["use_weight_decay"] == "weight decay on"  # Optuna's names have labels too


@pytest.mark.parametrize("epochs", [1, 3, 4, 24, 200])
def test_the_point_of_a_trials_config_trains_that_config(epochs):
    # what a trial folder's config.json says gives back a point that trains the same config
    space = SearchSpace(tuple(MTAN_WEIGHTINGS), tune_lr=True)
    points = [*space.published_points(), *sample(space, 100, seed=2)]
    base = make_config("cpu", epochs=epochs).to_flat()
    for point in points:
        config = {**base, **train_overrides(point, epochs, space)}
        again = space.point_of(config, epochs)
        assert train_overrides(again, epochs, space) == train_overrides(point, epochs, space)
        assert set(again) == set(point) and space.is_complete(again)
        # exactly, all but the values whose config field is another number: the step fraction (its field is
        # a whole number of epochs) and a logit (several logits give one share)
        mapped = {d.name for d in space.dimensions if d.field is not None and d.field != d.name}
        assert {k: v for k, v in again.items() if k not in mapped} == {
            k: v for k, v in point.items() if k not in mapped
        }


def test_a_point_cut_half_way_is_not_complete():
    paper, report = SearchSpace().published_points()
    assert SearchSpace().is_complete(paper) and SearchSpace().is_complete(report)
    assert not SearchSpace().is_complete({k: v for k, v in report.items() if k != "temperature"})
    assert not SearchSpace().is_complete({k: v for k, v in paper.items() if k != "gamma"})
    assert not SearchSpace().is_complete({**paper, "use_weight_decay": True})  # its weight decay is missing
    assert not SearchSpace(tune_lr=True).is_complete(paper)


def test_every_dimension_that_maps_its_value_can_map_it_back():
    # `point_of` inverts `to_field`: a dimension without the inverse could not resume a trial cut half-way
    assert [d.name for d in DIMENSIONS if d.to_field is not None and d.from_field is None] == []


def test_an_exact_logit_gives_back_the_share_to_the_bit():
    shares = [sigmoid(x) for x in np.linspace(-4.6, 4.6, 2001)]
    assert all(sigmoid(exact_logit(w)) == w for w in shares)
    assert sum(sigmoid(logit(w)) != w for w in shares) > 50  # the plain logit: 86 of them one rounding off


def test_the_depth_share_is_searched_uniformly_in_its_logit_and_trains_with_the_share_itself():
    points = [p for p in sample(SearchSpace(), 900, seed=2) if p["weighting"] == "scalarization"]
    shares = [train_overrides(p, 10)["depth_share"] for p in points]
    assert len(shares) > 250
    for point, share in zip(points, shares, strict=True):
        assert share == pytest.approx(1 / (1 + math.exp(-point["depth_share_logit"])), rel=1e-12)
        make_config(weighting="scalarization", depth_share=share)  # a valid share
        assert 0.01 - 1e-12 <= share <= 0.99 + 1e-12
    # Uniform in the logit: w > 0.9 has (logit(0.99) - logit(0.9)) / (2 logit(0.99)) = 26 % of the trials,
    # and w < 0.1 as many; a log scale of w would give w > 0.9 only log(0.99 / 0.9) / log(99) = 2 %.
    expected = (logit(0.99) - logit(0.9)) / (2 * logit(0.99))
    for fraction in (sum(w > 0.9 for w in shares) / len(shares), sum(w < 0.1 for w in shares) / len(shares)):
        assert abs(fraction - expected) < 0.07
