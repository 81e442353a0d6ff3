"""A trial's restarts: counted in its own folder as they happen, by Tune's retry after a lost worker and
by a later driver run taking it over, so that a killed driver loses none; results.csv reads them back."""

from __future__ import annotations

from types import SimpleNamespace

from study.driver import RestartRecorder, restarts_of
from study.record import RESTARTS_FILE
from study.storage import TrialStore
from tests.test_progress import ACTOR_DIED

LOST = "ActorDiedError: the actor is dead because its worker process has died (worker exit type SYSTEM_ERROR)"


def tune_trial(number: int, error_file: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(trial_id=f"id{number}", config={"trial_number": number}, error_file=error_file)


def test_restarts_are_counted_in_the_trial_folder_across_driver_runs(tmp_path):
    store = TrialStore(str(tmp_path / "trials"))
    error = tmp_path / "error.txt"
    error.write_text(ACTOR_DIED)
    (tmp_path / "trials" / "trial_001").mkdir(parents=True)
    (tmp_path / "trials" / "trial_001" / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')

    first = RestartRecorder(store, run=1, continued=set())
    first.on_trial_start(0, [], tune_trial(1))  # its first start: no restart
    assert first.count(tune_trial(1)) == (0, "")
    first.on_trial_recover(0, [], tune_trial(1, str(error)))  # its worker was SIGKILLed
    assert first.count(tune_trial(1)) == (1, LOST)
    # the driver is killed here; the next driver run reads the count from the folder and takes the
    # trial over (the journal had it running)
    second = RestartRecorder(store, run=2, continued={1})
    assert second.count(tune_trial(1)) == (1, LOST)
    second.on_trial_start(0, [], tune_trial(1))
    second.on_trial_start(0, [], tune_trial(1))  # a start after a retry in the same run: not a second one
    taken_over = "the driver stopped while it ran; driver run 2 continued it"
    assert second.count(tune_trial(1)) == restarts_of(store, 1) == (2, taken_over)
    assert store.read_text(1, RESTARTS_FILE) == (
        f'{{"reason": "{LOST}", "run": 1, "epoch": 2}}\n{{"reason": "{taken_over}", "run": 2, "epoch": 2}}\n'
    )
    assert restarts_of(store, 0) == (0, "")  # a trial that never restarted has no file
