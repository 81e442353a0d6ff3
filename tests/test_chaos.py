"""The kill test: a tiny study's driver killed by SIGKILL, SIGTERM and SIGINT, resumed, and its record
checked after every kill and at the end (`devtools.chaos`; the long run is in docs/study.md)."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from devtools import chaos
from mtan.run_folder import CONFIG_FILE
from study.record import JOURNAL, STUDY_JSON
from study.search.journal import journal_storage
from study.settings import StudySettings
from study.space import TRIAL_NUMBER, SearchSpace
from study.trainable import trial_config
from tests.conftest import TINY_SET
from tests.fake_study import default_trials, write_fake_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_a_study_killed_three_ways_finishes_with_a_consistent_record(
    ray_cluster, tiny_root, tmp_path, capsys
):
    sets = [item for setting in TINY_SET for item in ("--set", setting)]
    argv = ["--kills", "3", "--seed", "2", "--max-delay", "15", "--storage-path", str(tmp_path)]
    argv += ["--address", ray_cluster.address, "--data-root", str(tiny_root), *sets]
    code = chaos.main(argv)
    output = capsys.readouterr().out
    assert code == 0, output
    for signal_name in ("SIGKILL", "SIGTERM", "SIGINT"):  # three kills use each once
        assert f": {signal_name} after" in output, output
    assert "all invariants held" in output


def test_a_multi_objective_study_killed_three_ways_finishes_with_a_consistent_record(
    ray_cluster, tiny_root, tmp_path, capsys
):
    # one kill (the test above has each signal; the objectives' checks are the same after any stop)
    sets = [item for setting in TINY_SET for item in ("--set", setting)]
    argv = ["--kills", "1", "--seed", "5", "--max-delay", "15", "--storage-path", str(tmp_path)]
    argv += ["--objectives", "miou,abs_err", "--address", ray_cluster.address, "--data-root", str(tiny_root)]
    code = chaos.main([*argv, *sets])
    output = capsys.readouterr().out
    assert code == 0, output
    assert "  kill 1: SIG" in output and "runs: invariants hold" in output, output
    assert "all invariants held" in output
    finished = sorted(tmp_path.glob("chaos-5-*/hypervolume.csv"))
    assert finished, "no study of two objectives finished"


def fake_study(tmp_path, points, per_weighting=None):
    """A study folder as the chaos checks read it: study.json's settings, a journal with `points` as
    pruned trials 0, 1, ..."""
    name = "fake"
    settings = StudySettings(name=name, max_epochs=4, num_samples=len(points))
    folder = tmp_path / name
    folder.mkdir(parents=True)
    (folder / STUDY_JSON).write_text(json.dumps({"settings": settings.to_json()}))
    journal = optuna.create_study(study_name=name, storage=journal_storage(folder / JOURNAL))
    for point in points:
        distributions = {
            k: CategoricalDistribution([v]) if isinstance(v, (str, bool)) else FloatDistribution(0.0, 10.0)
            for k, v in point.items()
        }
        journal.add_trial(
            optuna.trial.create_trial(params=point, distributions=distributions, state=TrialState.PRUNED)
        )
    run = chaos.Chaos(tmp_path, 0, 1.0, None, None, (), 1.0, per_weighting)
    return run, chaos.Study(folder), settings


def check(run, study, settings):
    chaos.check_points(run, study, chaos.journal_trials(study), settings)


def test_the_point_checks_catch_a_changed_a_shared_and_a_mistrained_point(tmp_path):
    paper, report = SearchSpace().published_points()
    sampled = {**report, "gamma": 0.7}
    run, study, settings = fake_study(tmp_path, [paper, report, sampled])
    check(run, study, settings)  # consistent
    folder = study.folder / "trials" / "trial_002"
    folder.mkdir(parents=True)
    trained = trial_config({**sampled, TRIAL_NUMBER: 2}, settings.base_config)
    (folder / CONFIG_FILE).write_text(json.dumps(trained.to_flat()))
    check(run, study, settings)  # trial 2 trained its point
    (folder / CONFIG_FILE).write_text(json.dumps({**trained.to_flat(), "gamma": 0.5}))
    with pytest.raises(chaos.Violation, match="trial 2 trained another point"):
        check(run, study, settings)
    (folder / CONFIG_FILE).unlink()
    study.points[2]["gamma"] = 0.6  # what an earlier check saw
    with pytest.raises(chaos.Violation, match="trial 2: its point changed"):
        check(run, study, settings)

    run, study, settings = fake_study(tmp_path / "shared", [paper, report, dict(report)])
    with pytest.raises(chaos.Violation, match="trials 1 and 2 share a point"):
        check(run, study, settings)
    run, study, settings = fake_study(tmp_path / "per", [paper, report, sampled], per_weighting=1)
    with pytest.raises(chaos.Violation, match="trials per weighting"):
        check(run, study, settings)


@pytest.mark.parametrize(
    "written, why",
    [(b'{"settings": {', "not valid JSON"), (b"[]", "expected a JSON object"), (b"\xff{}", "not UTF-8")],
)
def test_a_torn_or_foreign_study_json_or_config_json_is_a_violation_naming_it(tmp_path, written, why):
    paper, report = SearchSpace().published_points()
    run, study, settings = fake_study(tmp_path, [paper, report])
    (study.folder / STUDY_JSON).write_bytes(written)
    with pytest.raises(chaos.Violation, match=f"^{study.folder / STUDY_JSON}: .*{why}"):
        chaos.check_any_moment(run, study)
    folder = study.folder / "trials" / "trial_001"
    folder.mkdir(parents=True)
    (folder / CONFIG_FILE).write_bytes(written)
    with pytest.raises(chaos.Violation, match=f"^{folder / CONFIG_FILE}: .*{why}"):
        check(run, study, settings)


def test_the_objective_checks_catch_a_stopped_front_point_a_changed_history_and_hypervolume(tmp_path):
    objectives = ("miou", "abs_err")
    folder = write_fake_study(tmp_path, trials=default_trials(8), objectives=objectives, reproduce=False)
    run = chaos.Chaos(tmp_path, 0, 1.0, None, None, (), 1.0, None, objectives)
    study = chaos.Study(folder)
    trials = chaos.journal_trials(study)
    chaos.check_objectives(run, study, trials, finished=True)  # as written: consistent

    results = folder / "results.csv"
    table = pd.read_csv(results)
    original = results.read_bytes()
    stopped = int(table.loc[table["state"] == "stopped_early", "trial"].iloc[0])
    table.loc[table["trial"] == stopped, "pareto"] = True
    table.to_csv(results, index=False)
    with pytest.raises(chaos.Violation, match="results.csv's front"):
        chaos.check_objectives(run, study, trials, finished=True)
    results.write_bytes(original)

    history = folder / "hypervolume.csv"
    rows = history.read_text().splitlines(keepends=True)
    history.write_text("".join(rows[:-1]))  # a kill before the last completed trial's row: fine meanwhile
    chaos.check_objectives(run, study, trials, finished=False)
    with pytest.raises(chaos.Violation, match="hypervolume.csv is not the start"):
        chaos.check_objectives(run, study, trials, finished=True)
    history.write_text("".join([*rows[:-1], rows[-1].replace(",0.", ",1.")]))  # a row changed
    with pytest.raises(chaos.Violation, match="hypervolume.csv is not the start"):
        chaos.check_objectives(run, study, trials, finished=False)
    history.write_text("".join(rows))

    completed = next(t.number for t in trials if t.state == TrialState.COMPLETE)
    metrics = folder / "trials" / f"trial_{completed:03d}" / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    last = json.loads(lines[-1])
    metrics.write_text("\n".join([*lines[:-1], json.dumps({**last, "miou": last["miou"] / 2})]) + "\n")
    with pytest.raises(chaos.Violation, match=f"trial_{completed:03d}: told"):
        chaos.check_objectives(run, study, trials, finished=True)
