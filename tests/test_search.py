"""The searcher: Optuna's ask-and-tell on the journal; how trials end; handing RUNNING trials out again."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
from optuna.trial import TrialState
from ray.tune.schedulers import TrialScheduler

from study.search.asha import StudyASHA
from study.search.journal import journal_storage, open_study
from study.search.searcher import RAY_TRIAL_ID, StudySearcher
from study.space import TRIAL_NUMBER, SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)
PUBLISHED = SearchSpace().published_points()


def searcher(tmp_path, stopped=(), ended=None):
    study = open_study(tmp_path / "j", "s", mode="max", seed=0, points=PUBLISHED)
    on_end = None if ended is None else lambda number, state: ended.append((number, state))
    return StudySearcher(
        study, SearchSpace(), metric="score", mode="max", max_epochs=4, stopped=set(stopped), on_end=on_end
    )


def stored(tmp_path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="s", storage=journal_storage(tmp_path / "j")).trials


def report(search, trial_id, epochs):
    for epoch in epochs:
        search.on_trial_result(trial_id, {"score": 0.1 * epoch, "epoch": epoch, "training_iteration": epoch})


def test_completed_stopped_and_failed_trials_reach_the_journal_as_such(tmp_path):
    ended = []
    search = searcher(tmp_path, stopped={"stopped"}, ended=ended)
    points = [search.suggest(t) for t in ("full", "stopped", "failed")]
    assert points[:2] == [{**p, TRIAL_NUMBER: n} for n, p in enumerate(PUBLISHED)]  # published first
    assert points[2][TRIAL_NUMBER] == 2 and "weighting" in points[2]
    report(search, "full", (1, 2, 3))
    last = {
        "score": 0.4,
        "epoch": 4,
        "miou": 0.5,
        "loss/depth": 0.1,
        "time_total_s": 9.0,
        "config/gamma": 0.5,
    }
    search.on_trial_complete("full", last)
    report(search, "stopped", (1,))
    # ASHA's stop decision arrives with the result of the stopping epoch
    search.on_trial_complete("stopped", {"score": 0.07, "epoch": 2, "training_iteration": 2})
    search.on_trial_complete("failed", error=True)

    full, stopped, failed = stored(tmp_path)
    assert full.state == TrialState.COMPLETE and full.value == 0.4
    assert full.intermediate_values == {1: 0.1, 2: 0.2, 3: 0.1 * 3, 4: 0.4}  # the last epoch too
    assert full.user_attrs == {RAY_TRIAL_ID: "full", "score": 0.4, "epoch": 4, "miou": 0.5, "loss/depth": 0.1}
    assert stopped.state == TrialState.PRUNED and stopped.intermediate_values == {1: 0.1, 2: 0.07}
    assert failed.state == TrialState.FAIL
    assert ended == [(0, TrialState.COMPLETE), (1, TrialState.PRUNED), (2, TrialState.FAIL)]


def test_a_trial_ended_by_an_interrupt_stays_running_and_is_handed_out_again(tmp_path):
    first = searcher(tmp_path)
    a, b, c = (first.suggest(t) for t in ("a", "b", "c"))
    report(first, "b", (1, 2))
    first.on_trial_complete("a", {"score": 0.4, "epoch": 4})
    first.on_trial_complete("b", {"score": 0.2, "epoch": 2})  # not stopped by ASHA: an interrupt
    assert [t.state for t in stored(tmp_path)] == [
        TrialState.COMPLETE,
        TrialState.RUNNING,
        TrialState.RUNNING,
    ]

    second = searcher(tmp_path)  # the next run of the driver, on the same journal
    again = [second.suggest(t) for t in ("x", "y", "z")]
    assert again[:2] == [b, c]  # the same numbers and points
    assert again[2][TRIAL_NUMBER] == 3
    report(second, "x", (1, 2, 3))  # epochs 1 and 2 were reported before: kept, not reported twice
    second.on_trial_complete("x", {"score": 0.5, "epoch": 4})
    trial_b = stored(tmp_path)[1]
    assert trial_b.state == TrialState.COMPLETE and trial_b.user_attrs[RAY_TRIAL_ID] == "x"
    assert trial_b.intermediate_values == {1: 0.1, 2: 0.2, 3: 0.1 * 3, 4: 0.5}
    assert len(stored(tmp_path)) == 4


def test_the_published_points_are_enqueued_once_even_after_a_crash_between_them(tmp_path):
    study = optuna.create_study(study_name="s", storage=journal_storage(tmp_path / "j"))
    study.enqueue_trial(PUBLISHED[0])  # a crash came before the second point and the mark
    for _ in range(2):
        open_study(tmp_path / "j", "s", mode="max", seed=0, points=PUBLISHED)
    trials = stored(tmp_path)
    assert [t.state for t in trials] == [TrialState.WAITING] * 2
    assert [t.system_attrs["fixed_params"] for t in trials] == PUBLISHED


def test_a_torn_last_journal_line_is_cut_before_the_next_append(tmp_path):
    search = searcher(tmp_path)
    search.suggest("a")
    with open(tmp_path / "j", "ab") as journal:
        journal.write(b'{"op_code": 5, "worker_id": "x", "tri')  # a crash in the middle of a write
    search = searcher(tmp_path)  # opening the journal repairs it
    assert search.suggest("b")[TRIAL_NUMBER] == 0  # handed out again
    assert search.suggest("c")[TRIAL_NUMBER] == 1
    assert [t.number for t in stored(tmp_path)] == [0, 1]


def asha(mode: str, ended: dict[int, dict[int, float]] | None = None) -> StudyASHA:
    """The study's ASHA as Tune sets it up: rungs at epochs 1, 2, 4 (and 8, the budget)."""
    scheduler = StudyASHA(ended=ended, time_attr="epoch", max_t=8, grace_period=1, reduction_factor=2)
    assert scheduler.set_search_properties("score", mode)
    return scheduler


def decide(scheduler: StudyASHA, trial_id: str, values: dict[int, float]) -> list[str]:
    """A trial's epochs through `scheduler`, up to its first STOP; the decisions."""
    trial = SimpleNamespace(trial_id=trial_id)
    scheduler.on_trial_add(None, trial)
    decisions = []
    for epoch, value in values.items():
        decisions.append(scheduler.on_trial_result(None, trial, {"epoch": epoch, "score": value}))
        if decisions[-1] == TrialScheduler.STOP:
            break
    return decisions


def test_a_resumed_asha_stops_trials_as_one_that_saw_the_earlier_trials_live():
    earlier = {  # values per epoch of trials that ended in an earlier driver run (the journal's)
        0: {1: 0.30, 2: 0.40, 3: 0.45, 4: 0.50},
        1: {1: 0.10},  # stopped at the first rung
        2: {1: 0.35, 2: 0.20},  # stopped at the second
        3: {1: 0.25, 2: float("nan")},  # failed (diverged)
    }
    later = {"c": {1: 0.2}, "a": {1: 0.28, 2: 0.32, 3: 0.3, 4: 0.6}, "b": {1: 0.40, 2: 0.45, 3: 0.1, 4: 0.3}}
    go, stop = TrialScheduler.CONTINUE, TrialScheduler.STOP
    # hand-worked, in this order: rung 1 holds 0.30, 0.10, 0.35, 0.25 (median 0.275): "c" (0.2) stops;
    # then "a" goes on at rung 1 (0.28 > 0.25, the median with "c" in), rung 2 (0.32 > 0.30, the median
    # of 0.40, 0.20 and a NaN) and rung 4 (0.6 > 0.50); "b" goes on at rungs 1 and 2 and stops at
    # rung 4 (0.3 < 0.55, the median of 0.50 and 0.6)
    expected = {"c": [stop], "a": [go, go, go, go], "b": [go, go, go, stop]}
    for mode, sign in (("max", 1.0), ("min", -1.0)):

        def signed(values: dict[int, float], sign: float = sign) -> dict[int, float]:
            return {epoch: sign * value for epoch, value in values.items()}

        live = asha(mode)  # one uninterrupted driver run
        for number, values in earlier.items():
            decide(live, f"earlier-{number}", signed(values))
        resumed = asha(mode, {number: signed(values) for number, values in earlier.items()})
        for trial_id, values in later.items():
            assert decide(resumed, trial_id, signed(values)) == expected[trial_id], (mode, trial_id)
            assert decide(live, trial_id, signed(values)) == expected[trial_id], (mode, trial_id)
        # before: a resumed study's ASHA started with empty rungs and let "c" go on
        assert decide(asha(mode), "c", signed(later["c"])) == [go]
