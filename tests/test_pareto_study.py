"""A real tiny study of two objectives end to end: the front, a trial ASHA stopped never on it, the
hypervolume, `study.reproduce --pareto` and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from analysis.report import FIGURE_FILES, FRONT_FIGURE_FILES, write_report
from mtan.errors import UserError
from mtan.metrics import METRICS
from study.driver import run_study
from study.front import hypervolume, maximised, non_dominated, reference_point
from study.reproduce.cli import main as reproduce
from study.search.journal import journal_storage
from study.settings import StudySettings, validate
from study.space import SearchSpace
from tests.conftest import TINY_SET
from tests.test_front import brute_force_front

OBJECTIVES = ("miou", "abs_err")
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def pareto_study(ray_cluster, tiny_root, tmp_path_factory) -> Path:
    """A finished 4-trial study of mIoU and abs err on the tiny set, one trial at a time (so ASHA's
    decisions do not depend on which trial reports first): trial 0 trains with a working learning rate
    and is the first at every rung, so it completes; trial 1 barely learns (lr 1e-5, the lowest of the
    space) and ASHA stops it at the first rung, below trial 0; trials 2 and 3 are TPE's."""
    storage = tmp_path_factory.mktemp("pareto")
    overrides = tuple(sorted((k, json.loads(v)) for k, v in (item.split("=") for item in TINY_SET)))
    settings = StudySettings(
        name="front",
        storage_path=str(storage),
        num_samples=4,
        data_root=str(tiny_root),
        max_epochs=4,
        grace_period=1,
        reduction_factor=2,
        max_concurrent=1,
        tune_lr=True,
        objectives=",".join(OBJECTIVES),
        overrides=overrides,
    )
    validate(settings)
    paper, report = SearchSpace(tune_lr=True).published_points()
    outcome = run_study(settings, points=[{**paper, "lr": 3e-3}, {**report, "lr": 1e-5}])
    assert outcome.finished
    return storage / "front"


def journal(folder: Path) -> optuna.Study:
    return optuna.load_study(study_name=folder.name, storage=journal_storage(folder / "optuna.journal"))


def test_the_front_holds_completed_trials_only_and_a_stopped_one_never(pareto_study):
    table = pd.read_csv(pareto_study / "results.csv")
    study = journal(pareto_study)
    assert table.loc[0, "state"] == "completed" and table.loc[1, "state"] == "stopped_early"
    # the journal: one direction per objective, from METRICS, and the objectives' names
    expected = ["MAXIMIZE" if METRICS[k].higher_is_better else "MINIMIZE" for k in OBJECTIVES]
    assert [d.name for d in study.directions] == expected
    assert study.metric_names == list(OBJECTIVES)
    recorded = json.loads((pareto_study / "study.json").read_text())
    assert (recorded["objectives"], recorded["directions"], recorded["sampler"]) == (
        list(OBJECTIVES),
        ["max", "min"],
        "tpe",
    )
    for trial in study.trials:
        row = table.loc[table["trial"] == trial.number].iloc[0]
        assert not trial.intermediate_values
        if trial.state == TrialState.COMPLETE:  # told its last-10-epoch means, results.csv's tail_
            assert trial.values == pytest.approx([row[f"tail_{k}"] for k in OBJECTIVES], rel=1e-12)
        else:
            assert trial.values is None and not row["pareto"]
    # the front: the completed trials no other completed trial dominates, checked pair by pair
    completed = table.loc[table["state"] == "completed"]
    points = completed[[f"tail_{k}" for k in OBJECTIVES]].to_numpy().tolist()
    front = set(completed.loc[brute_force_front(points, maximised(OBJECTIVES)), "trial"])
    assert set(table.loc[table["pareto"], "trial"]) == front == {t.number for t in study.best_trials}
    assert recorded["pareto_trials"] == sorted(front)
    assert 1 not in front  # ASHA stopped it: it is no front point, whatever its values after 1 epoch


def test_the_hypervolume_after_each_completed_trial(pareto_study):
    table = pd.read_csv(pareto_study / "results.csv")
    history = pd.read_csv(pareto_study / "hypervolume.csv")
    completed = table.loc[table["state"] == "completed"]  # one trial at a time: they completed in order
    assert history["completed"].tolist() == list(range(1, len(completed) + 1))
    assert history["trial"].tolist() == completed["trial"].tolist()
    reference = reference_point(json.loads((pareto_study / "baselines.json").read_text()), OBJECTIVES)
    points = completed[[f"tail_{k}" for k in OBJECTIVES]].to_numpy()
    for count, row in enumerate(history.itertuples(), start=1):
        so_far = points[:count]
        on = non_dominated(so_far, maximised(OBJECTIVES))
        assert row.front_size == on.sum()
        assert row.hypervolume == pytest.approx(hypervolume(so_far[on], reference, maximised(OBJECTIVES)))
    assert np.all(np.diff(history["hypervolume"]) >= 0)  # a front only ever gains


def test_reproduce_pareto_retrains_the_front_and_the_report_draws_it(pareto_study, capsys, tmp_path):
    table = pd.read_csv(pareto_study / "results.csv")
    front = table.loc[table["pareto"], "trial"].tolist()
    with pytest.raises(UserError, match="--pareto and --top: give one"):
        reproduce([str(pareto_study), "--pareto", "--top", "1"])
    assert reproduce([str(pareto_study), "--pareto", "--seeds", "2"]) == 0
    printed = capsys.readouterr().out
    configs = pd.read_csv(pareto_study / "reproduce" / "configs.csv")
    assert configs["roles"].tolist() == ["pareto front"] * len(front) + ["stl segmentation", "stl depth"]
    assert configs["trial"].head(len(front)).astype(int).tolist() == sorted(front)  # every front point
    seeds = pd.read_csv(pareto_study / "reproduce" / "seeds.csv")
    assert seeds.groupby("config")["seed"].apply(list).map(tuple).nunique() == 1  # the same paired seeds
    assert f"of {len(front)} configurations stay non-dominated" in printed

    files = write_report(pareto_study, tmp_path / "report")
    md = files.markdown.read_text()
    written = {path.name for path in files.figures}
    assert {FIGURE_FILES["tradeoff"], FRONT_FIGURE_FILES["hypervolume"]} <= written
    assert "## The Pareto front of miou, abs_err" in md
    assert "Weighting methods on the Pareto front of miou, abs_err: " in md
    assert "front configurations stay non-dominated once their 95 % intervals count" in md


def test_reproduce_pareto_refuses_a_study_of_one_objective(finished_study):
    with pytest.raises(UserError, match="--pareto: .*results.csv has no Pareto front: the study has one"):
        reproduce([str(finished_study), "--pareto"])
