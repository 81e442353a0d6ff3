"""The searcher: Optuna's ask-and-tell on the journal; how trials end; handing RUNNING trials out again."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
from optuna.trial import TrialState
from ray.tune.schedulers import TrialScheduler

from study.search.asha import StudyASHA
from study.search.design import first_points, weighting_order
from study.search.journal import journal_storage, open_study
from study.search.sampler import StudySampler, run_seed
from study.search.searcher import RAY_TRIAL_ID, StudySearcher
from study.space import TRIAL_NUMBER, SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)
PUBLISHED = SearchSpace().published_points()


def journal_study(tmp_path, num_samples, weightings, per_weighting=None, **options) -> optuna.Study:
    """Study "s" in the journal tmp_path/j, opened as the driver opens it (the published points first,
    seed 0, mode max; `options` as `open_study` takes them)."""
    points = first_points(
        PUBLISHED, num_samples=num_samples, per_weighting=per_weighting, weightings=weightings
    )
    return open_study(
        tmp_path / "j",
        "s",
        mode="max",
        seed=0,
        points=points,
        per_weighting=per_weighting is not None,
        **options,
    )


def searcher(tmp_path, stopped=(), ended=None, trained=None, per_weighting=None):
    study = journal_study(tmp_path, 20, ("equal", "dwa"), per_weighting, trained=trained)
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


def searched_values(trial: optuna.trial.FrozenTrial) -> set[float]:
    """The continuous values of a trial's point (what the sampler drew)."""
    return {v for v in trial.params.values() if isinstance(v, float)}


def cut_journal_line(journal, contains: tuple[str, ...]) -> None:
    """Cut the journal in the middle of the first line holding every string of `contains` (a crash in
    the middle of that write), dropping everything after it."""
    lines = journal.read_bytes().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if all(s.encode() in line for s in contains))
    journal.write_bytes(b"".join(lines[:index]) + lines[index][: len(lines[index]) // 2])


def test_a_resume_after_a_journal_cut_mid_line_draws_a_new_point(tmp_path):
    # the reported case: killed right after the first "stopped early", the journal's last line cut in
    # half, resumed; results.csv's rows 2 and 3 were the same point
    first = searcher(tmp_path, stopped={"a"})
    for trial_id in ("a", "b", "c"):  # trials 0 and 1 (published) and 2 (sampled)
        first.suggest(trial_id)
    report(first, "a", (1, 2))
    first.on_trial_complete("a", {"score": 0.2, "epoch": 2})  # stopped early by ASHA
    before = {t.number: t.params for t in stored(tmp_path)}
    journal = tmp_path / "j"
    journal.write_bytes(journal.read_bytes()[:-20])  # the tell's line cut short: trial 0 is RUNNING again

    second = searcher(tmp_path)
    numbers = [second.suggest(t)[TRIAL_NUMBER] for t in ("w", "x", "y", "z")]
    trials = stored(tmp_path)
    assert numbers == [0, 1, 2, 3]  # the three RUNNING trials again, then a new one
    assert {t.number: t.params for t in trials[:3]} == before  # no recorded point changed
    assert trials[3].params != trials[2].params
    assert not searched_values(trials[3]) & searched_values(trials[2])  # no draw repeated


def test_a_resume_right_after_a_trial_ended_draws_a_new_point(tmp_path):
    # the reported case without touching the journal: killed right after a trial ended, resumed
    first = searcher(tmp_path)
    for trial_id in ("a", "b", "c"):
        first.suggest(trial_id)
    first.on_trial_complete("a", {"score": 0.4, "epoch": 4})
    before = {t.number: t.params for t in stored(tmp_path)}

    second = searcher(tmp_path)
    assert [second.suggest(t)[TRIAL_NUMBER] for t in ("x", "y", "z")] == [1, 2, 3]
    trials = stored(tmp_path)
    assert {t.number: t.params for t in trials[:3]} == before
    assert not searched_values(trials[3]) & searched_values(trials[2])


def test_a_point_cut_half_way_keeps_its_values_and_takes_the_rest_from_what_its_folder_trained(tmp_path):
    first = searcher(tmp_path)
    for trial_id in ("a", "b", "c"):
        first.suggest(trial_id)
    whole = stored(tmp_path)[2].params
    cut_journal_line(tmp_path / "j", ('"trial_id":2', '"param_name":"gamma"'))  # killed while suggesting
    cut = stored(tmp_path)[2].params
    assert cut == {k: v for k, v in whole.items() if k != "gamma"}

    again = searcher(tmp_path)  # no trial folder: the missing value is drawn
    assert [again.suggest(t)[TRIAL_NUMBER] for t in ("x", "y", "z")] == [0, 1, 2]  # all three RUNNING
    completed = stored(tmp_path)[2].params
    assert {k: completed[k] for k in cut} == cut and "gamma" in completed

    cut_journal_line(tmp_path / "j", ('"trial_id":2', '"param_name":"gamma"'))
    trained = {2: {**whole, "gamma": 0.37}}  # what trial 2's config.json says it trained
    resumed = searcher(tmp_path, trained=trained.get)
    assert [resumed.suggest(t) for t in ("x", "y", "z")][2] == {**cut, "gamma": 0.37, TRIAL_NUMBER: 2}


def test_an_uninterrupted_study_draws_the_points_of_a_plain_seeded_tpe(tmp_path):
    # the sampler's first run is TPESampler(seed) with constant liar, as before the resume fix: the
    # points of a study that is never interrupted do not change (14 trials: past TPE's 10 random ones)
    plain = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=0, constant_liar=True)
    )
    for point in PUBLISHED:
        plain.enqueue_trial(point)
    search = searcher(tmp_path)
    for n in range(14):
        trial = plain.ask()
        SearchSpace()(trial)
        assert search.suggest(f"t{n}") == {**trial.params, TRIAL_NUMBER: n}
        value = trial.params["gamma"] - trial.params["step_fraction"]  # any objective, the same for both
        plain.tell(trial, value)
        search.on_trial_complete(f"t{n}", {"score": value, "epoch": 4})


def test_the_sampler_seed_is_the_studys_until_a_value_is_recorded_then_new_for_every_count():
    assert run_seed(7, 0) == 7
    seeds = [run_seed(7, recorded) for recorded in range(1, 200)]
    assert len(set(seeds)) == len(seeds) and 7 not in seeds
    assert run_seed(7, 5) == run_seed(7, 5) != run_seed(8, 5)


class ScriptedSampler(optuna.samplers.RandomSampler):
    """Returns the values of `script` in turn, and records the weightings of the trials it was shown."""

    def __init__(self, script):
        super().__init__(seed=0)
        self.script = list(script)
        self.shown: list[list[str]] = []

    def sample_independent(self, study, trial, param_name, param_distribution):
        self.shown.append([t.params.get("weighting") for t in study.get_trials(deepcopy=False)])
        if self.script:
            return self.script.pop(0)
        return super().sample_independent(study, trial, param_name, param_distribution)


def test_a_value_that_would_repeat_a_recorded_point_is_drawn_again():
    inner = ScriptedSampler([0.3, 0.3, 0.6])  # the second draw would repeat the first trial's point
    study = optuna.create_study(sampler=StudySampler(inner))
    for _ in range(2):
        trial = study.ask()
        trial.suggest_categorical("weighting", ["equal"])
        trial.suggest_float("gamma", 0.1, 0.9)
    assert [t.params["gamma"] for t in study.trials] == [0.3, 0.6]
    assert inner.script == []  # three draws for two values


def test_per_weighting_each_methods_values_are_drawn_from_its_own_trials_only(tmp_path):
    study = optuna.create_study(sampler=StudySampler(inner := ScriptedSampler([]), stratum="weighting"))
    for weighting in ("equal", "dwa", "equal", "dwa", "dwa", "equal"):
        study.enqueue_trial({"weighting": weighting})
    for _ in range(6):
        trial = study.ask()
        SearchSpace()(trial)
        study.tell(trial, 0.5)
    for seen in inner.shown:  # the trial being drawn is last: only trials of its own method before it
        assert set(seen) == {seen[-1]}
    assert {len(seen) for seen in inner.shown} == {1, 2, 3}


def test_the_weighting_of_each_trial_of_a_per_weighting_study():
    # hand-worked: the published configurations first, then the method with the fewest trials so far
    assert weighting_order(["equal", "dwa"], ["equal", "dwa"], 3) == ["equal", "dwa"] * 3
    three = ["equal", "dwa", "uncertainty"]
    assert weighting_order(["equal", "dwa"], three, 2) == three * 2
    assert weighting_order([], three, 1) == three
    points = first_points(PUBLISHED, num_samples=99, per_weighting=1, weightings=three)
    assert points == [*PUBLISHED, {"weighting": "uncertainty"}]
    assert first_points(PUBLISHED, num_samples=1, per_weighting=None, weightings=three) == PUBLISHED[:1]
    only_dwa = first_points(PUBLISHED, num_samples=99, per_weighting=2, weightings=["dwa"])
    assert only_dwa == [PUBLISHED[1], {"weighting": "dwa"}]  # the paper's point is not in this space


def test_per_weighting_n_trials_each_across_a_resume(tmp_path):
    first = searcher(tmp_path, per_weighting=3)
    for trial_id in ("a", "b", "c", "d"):
        first.suggest(trial_id)
    first.on_trial_complete("a", {"score": 0.4, "epoch": 4})
    before = {t.number: t.params for t in stored(tmp_path) if t.params}

    second = searcher(tmp_path, per_weighting=3)
    numbers = [second.suggest(f"r{n}")[TRIAL_NUMBER] for n in range(5)]
    assert numbers == [1, 2, 3, 4, 5]  # the RUNNING ones again, then the WAITING ones in order
    trials = stored(tmp_path)
    assert [t.params["weighting"] for t in trials] == ["equal", "dwa"] * 3
    assert {t.number: t.params for t in trials if t.number in before} == before
    points = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(points)) == len(points)
