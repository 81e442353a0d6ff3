"""Loading a results directory: what it holds, and one clear error for what is not a study."""

from __future__ import annotations

import csv
import json
import shutil
import statistics
from pathlib import Path

import pytest

from analysis.load import best_config_name, load_optuna_study, load_results, read_reproduce
from analysis.optuna_study import param_importances
from mtan.errors import UserError
from study.record import StudyFolder
from study.space import SearchSpace
from tests.fake_study import FakeTrial, default_trials, scalarization_trials, write_fake_study


def test_loads_every_part_of_a_study(tmp_path: Path) -> None:
    trials = default_trials(6, failed=1)
    results = load_results(write_fake_study(tmp_path, "s1", trials=trials))
    assert results.name == "s1"
    assert results.trials["trial"].tolist() == [0, 1, 2, 3, 4, 5]
    assert results.trials["trial_id"].tolist() == [f"5fa1e_{n:05d}" for n in range(6)]  # Ray's, as written
    assert results.trials["state"].tolist() == [t.state for t in trials]
    assert results.study["max_epochs"] == 9
    assert results.best is not None and results.best["metric"] == "score"
    assert results.trivial is not None and results.trivial["miou"] == 0.08
    assert results.journal is not None
    # one curve row per epoch trained; the failed trial has none
    assert len(results.curves) == sum(t.epochs for t in trials if t.state != "failed")
    assert set(results.curves["trial"]) == {0, 1, 2, 3, 4}
    assert {"weight/segmentation", "weight/depth", "loss/depth", "miou"} <= set(results.curves.columns)
    # the temperature of an equal trial is empty in results.csv and NaN here
    equal = results.trials.loc[results.trials["weighting"] == "equal", "temperature"]
    assert equal.isna().all()


def test_reproduce_summary_is_read_as_written(tmp_path: Path) -> None:
    results = load_results(write_fake_study(tmp_path))
    best = next(r["config"] for r in csv.DictReader((results.path / "reproduce" / "configs.csv").open())
                if "top 1" in r["roles"])  # fmt: skip
    seeds = list(csv.DictReader((results.path / "reproduce" / "seeds.csv").open()))
    values = [float(row["miou"]) for row in seeds if row["config"] == best]
    assert results.reproduce is not None
    assert results.reproduce.loc["miou", "mean"] == pytest.approx(statistics.mean(values), rel=1e-12)
    assert results.reproduce.loc["miou", "std"] == pytest.approx(statistics.stdev(values), rel=1e-12)
    assert results.reproduce.loc["miou", "n"] == 3


@pytest.mark.parametrize(
    "roles",
    [("paper; top 2", "top 1"), ("best 1 of equal; paper", "best 1 of dwa")],
    ids=["top", "per-weighting"],
)
def test_reproduce_of_several_configs_summarises_the_studys_best_trial(
    tmp_path: Path, roles: tuple[str, str]
) -> None:
    folder = StudyFolder(tmp_path)
    folder.reproduce.mkdir()
    folder.write_best_config({"trial": 3, "metric": "score", "mode": "max"})
    (folder.reproduce / "configs.csv").write_text(
        f"config,trial,trial_id,roles\npaper,0,t0,{roles[0]}\nt3,3,t3,{roles[1]}\n"
    )
    (folder.reproduce / "summary.csv").write_text(
        "config,metric,mean,std,ci_low,ci_high,n\n"
        "paper,miou,0.15,0.07,0.0,0.8,2\n"
        "t3,miou,0.5,0.14,0.0,1.8,2\n"
    )
    assert best_config_name(folder) == "t3"  # best_config.json's trial, whichever role it was retrained in
    table = read_reproduce(folder)
    assert table is not None
    assert table.loc["miou", "mean"] == pytest.approx(0.5) and table.loc["miou", "n"] == 2
    folder.write_best_config({"trial": 7, "metric": "score", "mode": "max"})  # not retrained
    assert best_config_name(folder) is None and read_reproduce(folder).empty


def test_optional_parts_may_be_missing(tmp_path: Path) -> None:
    trials = [FakeTrial("equal", 1e-4, 0.0, 0.5, 0.5, epochs=0, state="failed", error="boom")]
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
    (study / "results.csv").write_text("trial,trial_id,epochs\n1,a,2\n")
    (study / "study.json").write_text(json.dumps({"max_epochs": 9, "space": {"columns": []}}))
    with pytest.raises(UserError, match=r"results.csv: missing column\(s\) state, error, weighting"):
        load_results(study)


def test_broken_metrics_line_is_named(tmp_path: Path) -> None:
    study = write_fake_study(tmp_path)
    metrics = study / "trials" / "trial_000" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + "{truncated\n")
    with pytest.raises(UserError, match=r"trial_000/metrics.jsonl: line 10 is not valid JSON"):
        load_results(study)


def test_labels_and_scales_come_from_the_recorded_space(tmp_path: Path) -> None:
    results = load_results(write_fake_study(tmp_path))
    space = results.space
    assert space.names == SearchSpace(tune_lr=True).columns  # as the study recorded it
    assert {p: space.scale(p) for p in space.numeric} == {
        "temperature": "log",
        "depth_share_logit": "linear",
        "depth_share": "logit",  # the share; Optuna searched its logit, linearly
        "weight_decay": "log",
        "step_fraction": "linear",
        "step_size": "linear",
        "gamma": "linear",
        "lr": "log",
    }
    assert space.label("temperature") == "DWA temperature T" and space.weightings_of("temperature") == (
        "dwa",
    )
    assert space.label("use_weight_decay") == "weight decay on"  # an Optuna parameter without a column
    # the journal holds the names the study searched over
    names = {n for t in load_optuna_study(results.journal, results.name).trials for n in t.params}
    assert names == {
        "weighting",
        "temperature",
        "use_weight_decay",
        "weight_decay",
        "step_fraction",
        "gamma",
        "lr",
    }


def test_a_study_json_without_its_space_is_named(tmp_path: Path) -> None:
    study = write_fake_study(tmp_path)
    recorded = json.loads((study / "study.json").read_text())
    del recorded["space"]
    (study / "study.json").write_text(json.dumps(recorded))
    with pytest.raises(UserError, match=r"study.json: no search space recorded"):
        load_results(study)


def test_importances_over_completed_trials_only(tmp_path: Path) -> None:
    trials = [*default_trials(16, failed=2), *scalarization_trials()]
    results = load_results(write_fake_study(tmp_path, trials=trials))
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
    assert "depth_share_logit" in importance.values.index  # conditional: scalarization trials only
    assert "PedAnova" in importance.evaluator and "pruned" in importance.message


def test_too_few_completed_trials_is_a_message(tmp_path: Path) -> None:
    trials = [
        FakeTrial("equal", 1e-4, 0.0, 0.5, 0.5, epochs=9),
        FakeTrial("dwa", 1e-4, 0.0, 0.5, 0.5, temperature=2.0, epochs=1, state="stopped_early"),
    ]
    results = load_results(write_fake_study(tmp_path, trials=trials))
    importance = param_importances(load_optuna_study(results.journal, results.name))
    assert importance.values is None
    assert importance.message.startswith("not computed: 1 completed trial(s)")


def test_no_importance_when_completed_trials_miss_a_value(tmp_path: Path) -> None:
    # the case: 3 completed trials, all DWA, once rated the weighting 0.00
    trials = [
        FakeTrial("equal", 1e-4, 0.0, 0.5, 0.5, epochs=1, state="stopped_early"),
        *(FakeTrial("dwa", 1e-4, d, 0.5, 0.5, temperature=2.0, epochs=9) for d in (0.0, 0.0, 1e-4, 1e-3)),
    ]
    results = load_results(write_fake_study(tmp_path, trials=trials))
    importance = param_importances(load_optuna_study(results.journal, results.name))
    assert importance.values is None and importance.complete == 4
    assert "do not cover every value of weighting at least 2 times" in importance.message
    assert "weighting: equal 0, dwa 4" in importance.message


def test_a_results_csv_cut_like_head_c_is_refused_naming_it(tmp_path: Path) -> None:
    study = write_fake_study(tmp_path)
    (study / "results.csv").write_bytes((study / "results.csv").read_bytes()[:1500])  # `head -c 1500`
    with pytest.raises(
        UserError, match=r"results.csv: cut off in its last row \(row \d+ has no end of line\)"
    ):
        load_results(study)


def test_a_journal_of_another_study_is_refused(tmp_path: Path) -> None:
    study = write_fake_study(tmp_path, "a")
    other = write_fake_study(tmp_path, "b", trials=default_trials(8, failed=3))  # same numbers, other fates
    shutil.copy(other / "optuna.journal", study / "optuna.journal")
    with pytest.raises(
        UserError, match=r"results.csv: trial 5 is stopped_early there but failed in optuna.journal"
    ):
        load_results(study)
