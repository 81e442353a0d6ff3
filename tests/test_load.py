"""Loading a results directory: what it holds, and one clear error for what is not a study."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pandas as pd
import pytest

from analysis.load import load_optuna_study, load_results, read_reproduce, summarize_seeds
from analysis.optuna_study import param_importances, search_scales
from mtan.errors import UserError
from tests.fake_study import FakeTrial, default_trials, write_fake_study


def test_loads_every_part_of_a_study(tmp_path: Path) -> None:
    trials = default_trials(6, failed=1)
    results = load_results(write_fake_study(tmp_path, "s1", trials=trials))
    assert results.name == "s1"
    assert results.trials["trial_id"].tolist() == ["00000", "00001", "00002", "00003", "00004", "00005"]
    assert results.trials["state"].tolist() == [t.state for t in trials]
    assert results.study["max_epochs"] == 9
    assert results.best is not None and results.best["metric"] == "score"
    assert results.baselines is not None and results.baselines["miou"] == 0.08
    assert results.journal is not None
    # one curve row per epoch trained; the failed trial has none
    assert len(results.curves) == sum(t.epochs for t in trials if t.state != "failed")
    assert set(results.curves["trial_id"]) == {"00000", "00001", "00002", "00003", "00004"}
    assert {"weight/segmentation", "weight/depth", "loss/depth", "miou"} <= set(results.curves.columns)
    # the temperature of an equal trial is empty in results.csv and NaN here
    equal = results.trials.loc[results.trials["weighting"] == "equal", "temperature"]
    assert equal.isna().all()


def test_reproduce_mean_and_sample_std_from_seeds(tmp_path: Path) -> None:
    results = load_results(write_fake_study(tmp_path))
    seeds = list(csv.DictReader((results.path / "reproduce" / "seeds.csv").open()))
    values = [float(row["miou"]) for row in seeds]
    assert results.reproduce is not None
    assert results.reproduce.loc["miou", "mean"] == pytest.approx(statistics.mean(values), rel=1e-12)
    assert results.reproduce.loc["miou", "std"] == pytest.approx(statistics.stdev(values), rel=1e-12)
    assert results.reproduce.loc["miou", "n"] == 3


def test_reproduce_summary_in_long_or_wide_form(tmp_path: Path) -> None:
    long_dir, wide_dir = tmp_path / "long", tmp_path / "wide"
    long_dir.mkdir()
    wide_dir.mkdir()
    (long_dir / "summary.csv").write_text("metric,mean,std,n\nmiou,0.61,0.02,3\nlast_abs_err,0.015,0.001,3\n")
    (wide_dir / "summary.csv").write_text(
        "miou_mean,miou_std,abs_err_mean,abs_err_std\n0.61,0.02,0.015,0.001\n"
    )
    for folder in (long_dir, wide_dir):
        table = read_reproduce(folder)
        assert table is not None
        assert table.loc["miou", "mean"] == 0.61 and table.loc["miou", "std"] == 0.02
        assert table.loc["abs_err", "mean"] == 0.015 and table.loc["abs_err", "std"] == 0.001


def test_reproduce_of_several_configs_summarises_the_best_one(tmp_path: Path) -> None:
    folder = tmp_path / "reproduce"
    folder.mkdir()
    (folder / "configs.csv").write_text("config,trial_id,roles\npaper,t0,paper; top 2\nt3,t3,top 1\n")
    (folder / "seeds.csv").write_text("config,seed,miou\npaper,5,0.1\nt3,5,0.4\npaper,6,0.2\nt3,6,0.6\n")
    table = read_reproduce(folder)
    assert table.loc["miou", "mean"] == pytest.approx(0.5) and table.loc["miou", "n"] == 2


def test_summarize_seeds_ignores_the_seed_column() -> None:
    table = summarize_seeds(pd.DataFrame({"seed": [0, 1, 2], "miou": [0.5, 0.6, 0.7]}))
    assert list(table.index) == ["miou"]
    assert table.loc["miou", "mean"] == pytest.approx(0.6)
    assert table.loc["miou", "std"] == pytest.approx(0.1)


def test_optional_parts_may_be_missing(tmp_path: Path) -> None:
    trials = [FakeTrial("equal", 1e-4, 0.0, 50, 0.5, epochs=0, state="failed", error="boom")]
    results = load_results(write_fake_study(tmp_path, trials=trials, reproduce=False, journal=False))
    assert results.best is None and results.reproduce is None and results.journal is None
    assert results.curves.empty
    assert results.trials["error"].tolist() == ["boom"]


def test_optuna_study_by_name_or_the_only_one(tmp_path: Path) -> None:
    results = load_results(write_fake_study(tmp_path, "named"))
    by_name = load_optuna_study(results.journal, "named")
    only_one = load_optuna_study(results.journal, "renamed-directory")
    assert len(by_name.trials) == len(only_one.trials) == len(results.trials)


def test_bad_journal_is_one_line(tmp_path: Path) -> None:
    journal = tmp_path / "optuna.journal"
    journal.write_text("this is not a journal\n")
    with pytest.raises(UserError, match="optuna.journal"):
        load_optuna_study(journal, "x")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, "no such results directory"),
        (lambda d: d.write_text("x"), "not a directory"),
        (lambda d: d.mkdir(), r"not a study results directory \(no study.json\)"),
    ],
)
def test_missing_or_not_a_study(tmp_path: Path, setup, message: str) -> None:
    target = tmp_path / "results"
    setup(target)
    with pytest.raises(UserError, match=message):
        load_results(target)


def test_broken_files_are_named(tmp_path: Path) -> None:
    study = write_fake_study(tmp_path)
    (study / "study.json").write_text("{not json")
    with pytest.raises(UserError, match=r"study.json: not valid JSON"):
        load_results(study)
    (study / "study.json").write_text(json.dumps({"max_epochs": 9}))
    (study / "results.csv").write_text("trial_id,epochs\n1,2\n")
    with pytest.raises(UserError, match=r"results.csv: missing column\(s\) state, weighting"):
        load_results(study)


def test_broken_metrics_line_is_named(tmp_path: Path) -> None:
    study = write_fake_study(tmp_path)
    metrics = study / "trials" / "00000" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + "{truncated\n")
    with pytest.raises(UserError, match=r"00000/metrics.jsonl: line 10 is not valid JSON"):
        load_results(study)


def test_search_scales_from_the_journal(tmp_path: Path) -> None:
    results = load_results(write_fake_study(tmp_path))
    scales = search_scales(load_optuna_study(results.journal, results.name))
    # the fake journal: lr and temperature log floats, gamma a linear float, step_size a linear int,
    # weight_decay categorical (0 included), so it keeps the study's log default
    assert scales == {
        "temperature": "log",
        "weight_decay": "log",
        "step_size": "linear",
        "gamma": "linear",
        "lr": "log",
    }
    assert search_scales(None)["gamma"] == "linear"


def test_importances_over_completed_trials_only(tmp_path: Path) -> None:
    results = load_results(write_fake_study(tmp_path, trials=default_trials(16, failed=2)))
    importance = param_importances(load_optuna_study(results.journal, results.name))
    states = results.trials["state"].value_counts()
    assert (importance.complete, importance.pruned, importance.failed) == (
        states["completed"],
        states["stopped_early"],
        states["failed"],
    )
    assert importance.values is not None
    assert importance.values.sum() == pytest.approx(1.0)
    assert "temperature" in importance.values.index  # conditional: DWA trials only
    assert "PedAnova" in importance.evaluator and "pruned" in importance.message


def test_too_few_completed_trials_is_a_message(tmp_path: Path) -> None:
    trials = [
        FakeTrial("equal", 1e-4, 0.0, 50, 0.5, epochs=9),
        FakeTrial("dwa", 1e-4, 0.0, 50, 0.5, temperature=2.0, epochs=1, state="stopped_early"),
    ]
    results = load_results(write_fake_study(tmp_path, trials=trials))
    importance = param_importances(load_optuna_study(results.journal, results.name))
    assert importance.values is None
    assert importance.message.startswith("not computed: 1 completed trial(s)")


def test_no_importance_when_completed_trials_miss_a_value(tmp_path: Path) -> None:
    # the case: 3 completed trials, all DWA, once rated the weighting 0.00
    trials = [
        FakeTrial("equal", 1e-4, 0.0, 50, 0.5, epochs=1, state="stopped_early"),
        *(FakeTrial("dwa", 1e-4, d, 50, 0.5, temperature=2.0, epochs=9) for d in (0.0, 0.0, 1e-4, 1e-3)),
    ]
    results = load_results(write_fake_study(tmp_path, trials=trials))
    importance = param_importances(load_optuna_study(results.journal, results.name))
    assert importance.values is None and importance.complete == 4
    assert "do not cover every value of weighting at least 2 times" in importance.message
    assert "weighting: equal 0, dwa 4" in importance.message
