"""The searcher of a study of several objectives: the journal's directions, what a trial is told when it
ends, the samplers past their random start, and ASHA's rungs on resume from the trial folders."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.samplers import NSGAIISampler, TPESampler
from optuna.trial import TrialState

from mtan.metrics import METRICS
from mtan.run_folder import write_metrics
from study.driver import ended_values
from study.search.journal import journal_storage
from study.search.searcher import StudySearcher
from study.settings import StudySettings
from study.space import TRIAL_NUMBER, WEIGHTING, SearchSpace
from study.storage import TrialStore
from tests.test_search import journal_study

optuna.logging.set_verbosity(optuna.logging.WARNING)
OBJECTIVES = ("miou", "abs_err")
PUBLISHED = SearchSpace().published_points()
WEIGHTINGS = SearchSpace().weightings


def rows(epochs: int, nan_at: int | None = None) -> list[dict[str, float]]:
    """A trial's history: mIoU = epoch / 100, abs err = 0.1 - epoch / 1000, score rising too."""
    return [
        {
            "epoch": e,
            "miou": math.nan if e == nan_at else e / 100,
            "abs_err": 0.1 - e / 1000,
            "score": e / 50,
        }
        for e in range(1, epochs + 1)
    ]


def multi_searcher(tmp_path, histories, *, stopped=(), sampler="tpe", per_weighting=None, max_epochs=12):
    study = journal_study(tmp_path, 30, WEIGHTINGS, per_weighting, objectives=OBJECTIVES, sampler=sampler)
    search = StudySearcher(
        study,
        SearchSpace(),
        metric="score",
        mode="max",
        max_epochs=max_epochs,
        stopped=set(stopped),
        objectives=OBJECTIVES,
        history=lambda number: histories[number],
    )
    return study, search


def stored(tmp_path) -> optuna.Study:
    return optuna.load_study(study_name="s", storage=journal_storage(tmp_path / "j"))


def test_the_journal_has_the_objectives_directions_from_the_metric_table(tmp_path):
    multi_searcher(tmp_path, {})
    journal = stored(tmp_path)
    expected = [
        optuna.study.StudyDirection.MAXIMIZE
        if METRICS[k].higher_is_better
        else optuna.study.StudyDirection.MINIMIZE
        for k in OBJECTIVES
    ]
    assert journal.directions == expected
    assert journal.metric_names == list(OBJECTIVES)  # optuna-dashboard's axes


def test_a_completed_trial_is_told_its_last_10_epoch_means_a_stopped_one_nothing(tmp_path):
    histories = {0: rows(12), 1: rows(3), 2: rows(12, nan_at=12)}
    _, search = multi_searcher(tmp_path, histories, stopped={"stopped"})
    for trial_id in ("full", "stopped", "nan"):
        search.suggest(trial_id)
    for epoch in range(1, 13):
        search.on_trial_result("full", {**histories[0][epoch - 1], "training_iteration": epoch})
    search.on_trial_complete("full", histories[0][-1])
    search.on_trial_complete("stopped", histories[1][-1])  # ASHA stopped it after 3 of 12 epochs
    search.on_trial_complete("nan", histories[2][-1])

    full, stopped, nan = stored(tmp_path).trials
    # epochs 3..12: mIoU (3 + ... + 12) / 10 / 100 = 0.075, abs err 0.1 - 0.0075 = 0.0925
    assert full.state == TrialState.COMPLETE and full.values == pytest.approx([0.075, 0.0925])
    assert stopped.state == TrialState.PRUNED and stopped.values is None  # never a front point
    assert nan.state == TrialState.FAIL and nan.values is None
    assert all(t.intermediate_values == {} for t in (full, stopped, nan))  # Optuna keeps none here
    assert full.user_attrs["miou"] == pytest.approx(0.12)  # the last epoch's metrics, as in any study
    assert [t.number for t in stored(tmp_path).best_trials] == [0]


@pytest.mark.parametrize(
    ("sampler", "per_weighting", "inner"),
    [("tpe", None, TPESampler), ("tpe", 5, TPESampler), ("nsga2", None, NSGAIISampler)],
)
def test_each_sampler_runs_past_its_random_start(tmp_path, sampler, per_weighting, inner):
    histories: dict[int, list[dict[str, float]]] = {}
    study, search = multi_searcher(tmp_path, histories, sampler=sampler, per_weighting=per_weighting)
    assert isinstance(study.sampler._inner, inner)
    total = 15  # past TPE's 10 random trials
    for n in range(total):
        point = search.suggest(f"t{n}")
        number = point[TRIAL_NUMBER]
        shift = (number % 4) / 100  # a spread of trade-offs
        histories[number] = [
            {**row, "miou": row["miou"] + shift, "abs_err": row["abs_err"] + shift} for row in rows(12)
        ]
        search.on_trial_complete(f"t{n}", histories[number][-1])
    trials = stored(tmp_path).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * total
    assert all(SearchSpace().is_complete(t.params) for t in trials)
    if per_weighting is not None:  # the design's turns: every method within its budget
        counts = {w: sum(t.params[WEIGHTING] == w for t in trials) for w in WEIGHTINGS}
        assert max(counts.values()) - min(counts.values()) <= 1


def test_a_resumed_asha_starts_from_the_trial_folders_of_a_multi_objective_study(tmp_path):
    histories = {0: rows(12), 1: rows(3)}
    _, search = multi_searcher(tmp_path, histories, stopped={"stopped"})
    search.suggest("full")
    search.suggest("stopped")
    search.suggest("running")  # a driver stopped while it ran: not ended, not in the rungs
    search.on_trial_complete("full", histories[0][-1])
    search.on_trial_complete("stopped", histories[1][-1])
    store = TrialStore(str(tmp_path / "trials"))
    for number, history in histories.items():
        write_metrics(tmp_path / "trials" / f"trial_{number:03d}", history)
    settings = StudySettings(objectives="miou,abs_err")
    values = ended_values(stored(tmp_path), store, settings)
    assert values == {0: {e: e / 50 for e in range(1, 13)}, 1: {1: 0.02, 2: 0.04, 3: 0.06}}  # the score
