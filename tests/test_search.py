"""The searcher tells Optuna how each trial ended: complete, pruned (stopped early) or failed."""

from __future__ import annotations

import pickle

import optuna
from optuna.trial import TrialState

from study.search import journal_storage, make_searcher
from study.space import SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)


def searcher(tmp_path, name="s"):
    return make_searcher(
        SearchSpace(),
        metric="score",
        mode="max",
        max_epochs=4,
        study_name=name,
        journal=tmp_path / "j",
        seed=0,
    )


def stored(tmp_path, name="s") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=journal_storage(tmp_path / "j")).trials


def test_completed_stopped_and_failed_trials_reach_the_journal_as_such(tmp_path):
    search = searcher(tmp_path)
    points = [search.suggest(t) for t in ("full", "stopped", "failed")]
    published = [{**p, "trial_number": n} for n, p in enumerate(SearchSpace().published_points())]
    assert points[:2] == published  # the published points come first
    assert points[2]["trial_number"] == 2
    for epoch in (1, 2, 3):
        search.on_trial_result("full", {"score": 0.1 * epoch, "epoch": epoch, "training_iteration": epoch})
    search.on_trial_complete("full", {"score": 0.4, "epoch": 4, "training_iteration": 4})
    search.on_trial_result("stopped", {"score": 0.05, "epoch": 1, "training_iteration": 1})
    # ASHA's stop decision arrives with the result of the stopping epoch
    search.on_trial_complete("stopped", {"score": 0.07, "epoch": 2, "training_iteration": 2})
    search.on_trial_complete("failed", error=True)

    full, stopped, failed = stored(tmp_path)
    assert full.state == TrialState.COMPLETE and full.value == 0.4
    assert stopped.state == TrialState.PRUNED
    assert stopped.intermediate_values == {1: 0.05, 2: 0.07}
    assert failed.state == TrialState.FAIL


def test_the_searcher_survives_pickling_with_its_journal(tmp_path):
    """Tune saves and restores the searcher by pickling it (study resume)."""
    search = searcher(tmp_path)
    search.suggest("a")
    search.suggest("b")
    restored = pickle.loads(pickle.dumps(search))
    restored.on_trial_complete("a", {"score": 0.2, "epoch": 4})
    restored.suggest("c")
    states = [t.state for t in stored(tmp_path)]
    assert states == [TrialState.COMPLETE, TrialState.RUNNING, TrialState.RUNNING]  # no point re-enqueued
