"""The study's live progress: plain lines when not in a terminal, a rich table in one (fake trials)."""

import dataclasses
import io
import math
from types import SimpleNamespace

from rich.console import Console

from study.observe.progress import StudyHeader, StudyProgress, config_text, failure_line

HEADER = StudyHeader(
    preset="cpu",
    data="synthetic",
    image_size="32x64",
    num_samples=6,
    max_epochs=24,
    grace_period=3,
    metric="score",
    mode="max",
    trials_at_once="2 (1 CPU each)",
    results="results/study-1",
)
DWA = {"trial_number": 3, "weighting": "dwa", "temperature": 2.0, "use_weight_decay": True}
DWA.update(weight_decay=1e-4, step_fraction=0.25, gamma=0.5)
EQUAL = {"trial_number": 4, "weighting": "equal", "temperature": float("nan"), "use_weight_decay": False}
EQUAL.update(step_fraction=0.5, gamma=0.5)


def trial(trial_id, config, error_file=None):
    return SimpleNamespace(trial_id=trial_id, config=config, error_file=error_file)


def play(progress, tmp_path):
    """Two trials: #3 stopped by ASHA after 3 epochs, #4 diverges in epoch 2."""
    error = tmp_path / "error.txt"
    error.write_text(
        "Failure # 1\nTraceback ...\nmtan.train.TrainingDiverged: total loss became nan in epoch 2\n"
    )
    a, b = trial("a1", DWA), trial("b2", EQUAL, str(error))
    progress.setup()
    progress.on_trial_start(0, [], a)
    progress.on_trial_start(0, [], b)
    for epoch, value in ((1, 0.125), (2, 0.25), (3, 0.375)):
        progress.on_trial_result(0, [], a, {"epoch": epoch, "score": value, "time_total_s": 10.0 * epoch})
    progress.on_trial_result(0, [], b, {"epoch": 1, "score": -0.5, "time_total_s": 12.0})
    progress.on_step_end(0, [])
    progress.on_trial_complete(0, [], a)
    progress.on_trial_error(0, [], b)
    progress.on_experiment_end([])


def test_short_config_names_leave_out_internal_keys_and_absent_values():
    assert config_text(DWA) == "dwa T=2 wd=0.0001 step=0.25 gamma=0.5"
    assert config_text(EQUAL) == "equal wd=0 step=0.5 gamma=0.5"  # no temperature, no NaN
    # the same order whether weight decay is on or off
    no_decay = {**DWA, "use_weight_decay": False, "weight_decay": None}
    assert config_text(no_decay) == "dwa T=2 wd=0 step=0.25 gamma=0.5"


def test_without_a_terminal_every_epoch_and_every_end_is_one_short_line(tmp_path):
    out = io.StringIO()
    play(StudyProgress(HEADER, console=Console(file=out, width=200)), tmp_path)
    lines = out.getvalue().splitlines()
    assert lines[:3] == HEADER.text().splitlines()
    assert lines[3:] == [
        "trial 3  started  dwa T=2 wd=0.0001 step=0.25 gamma=0.5",
        "trial 4  started  equal wd=0 step=0.5 gamma=0.5",
        "trial 3  epoch 1/24  score 0.125",
        "trial 3  epoch 2/24  score 0.250",
        "trial 3  epoch 3/24  score 0.375",
        "trial 4  epoch 1/24  score -0.500",
        "trial 3  stopped early by ASHA after 3/24 epochs  score 0.375",
        "trial 4  FAILED after 1/24 epochs: TrainingDiverged: total loss became nan in epoch 2",
    ]
    assert max(len(line) for line in lines[3:]) < 100
    assert "trial_number" not in out.getvalue() and "nan" not in out.getvalue().replace("became nan", "")


def test_the_table_shows_running_trials_with_epoch_objective_and_eta(tmp_path):
    progress = StudyProgress(HEADER, console=Console(file=io.StringIO()), live=False)
    progress.on_trial_start(0, [], trial("a1", DWA))
    progress.on_trial_result(0, [], trial("a1", DWA), {"epoch": 3, "score": 0.375, "time_total_s": 30.0})
    progress.on_trial_start(0, [], trial("b2", EQUAL))
    console = Console(record=True, width=100, file=io.StringIO())
    console.print(progress.table())
    rows = [" ".join(line.replace("│", " ").split()) for line in console.export_text().splitlines()]
    assert rows[0].startswith("2 running, 0 of 6 ended")
    # 21 epochs left at 10 s each: 210 s
    assert "3 dwa T=2 wd=0.0001 step=0.25 gamma=0.5 3/24 0.375 4 min" in rows
    assert "4 equal wd=0 step=0.5 gamma=0.5 0/24 - -" in rows


def test_a_resumed_study_counts_the_trials_its_earlier_runs_ended():
    progress = StudyProgress(HEADER, console=Console(file=io.StringIO()), live=False, ended_before=4)
    progress.on_trial_start(0, [], trial("a1", DWA))
    progress.on_trial_complete(0, [], trial("a1", DWA))
    progress.on_trial_start(0, [], trial("b2", EQUAL))
    console = Console(record=True, width=100, file=io.StringIO())
    console.print(progress.table())
    assert console.export_text().startswith("1 running, 5 of 6 ended")  # 4 before, 1 in this run


def test_in_a_terminal_the_table_is_drawn_live_and_ends_are_still_lines(tmp_path):
    console = Console(record=True, width=120, file=io.StringIO(), force_terminal=True)
    play(StudyProgress(HEADER, console=console), tmp_path)
    text = console.export_text()
    assert "trial 3  epoch" not in text  # no per-epoch lines: the table shows them
    assert "trial 3  stopped early by ASHA after 3/24 epochs  score 0.375" in text
    assert "0 running, 2 of 6 ended" in text  # the final table


# Ray 2.60's error file of a trial whose worker was SIGKILLed, as Tune wrote it (one failure).
ACTOR_DIED = """Failure # 1 (occurred at 2026-12-04_07-36-25)
The actor died unexpectedly before finishing this task.
\tclass_name: ImplicitFunc
\tactor_id: 6a10c2bba7153c897718359001000000
\tpid: 4755
\tnamespace: be2b587f-02dc-41c9-98df-74011de7cdba
\tip: 127.0.0.1
The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR Worker exit detail: \
Worker unexpectedly exits with a connection error code 2. End of file. Some common causes include: (1) the \
process was killed by the OOM killer due to high memory usage, (2) ray stop --force was called.
"""
# ... and of a trial that diverged, then lost its worker on the retry (two failures appended).
DIVERGED = """Failure # 1 (occurred at 2026-12-04_07-40-19)
\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=7506, ip=192.0.2.2, actor_id=32574028e12b3be9f9b227cc01000000)
  File "/work/study/trainable.py", line 116, in run_trial
    train(
mtan.train.TrainingDiverged: segmentation loss became nan in epoch 1
"""


def test_a_failure_is_one_line_the_latest_one_and_a_lost_worker_is_rays_sentence_why():
    lost = "ActorDiedError: the actor is dead because its worker process has died"
    lost += " (worker exit type SYSTEM_ERROR)"
    assert failure_line(ACTOR_DIED) == lost
    assert failure_line(DIVERGED) == "TrainingDiverged: segmentation loss became nan in epoch 1"
    assert failure_line(DIVERGED + ACTOR_DIED.replace("# 1", "# 2")) == lost  # the latest failure
    assert failure_line(ACTOR_DIED.replace("# 1", "# 2") + DIVERGED) == failure_line(DIVERGED)
    assert failure_line("") == "no error recorded"
    unavailable = (  # Ray 2.60's text when the node of a trial was removed (tests/test_multinode.py)
        "Failure # 1 (occurred at 2026-12-04_08-05-07)\nThe actor 8343193204b6907e6a95911d02000000 is "
        "unavailable: The actor is temporarily unavailable: RpcError: RPC error: Socket closed "
        "rpc_code: 14.\n"
    )
    assert failure_line(unavailable) == (
        "ActorUnavailableError: The actor is temporarily unavailable: RpcError: RPC error: Socket closed "
        "rpc_code: 14."
    )


def test_a_restart_is_one_line_with_its_count_and_reason(tmp_path):
    error = tmp_path / "error.txt"
    error.write_text(ACTOR_DIED)
    lost = "ActorDiedError: the actor is dead because its worker process has died"
    counts = {"b2": (1, "the driver stopped while it ran; driver run 2 continued it")}
    out = io.StringIO()
    progress = StudyProgress(
        HEADER, console=Console(file=out, width=300), restarts=lambda t: counts.get(t.trial_id, (0, ""))
    )
    a = trial("a1", DWA, str(error))
    progress.on_trial_start(0, [], a)
    counts["a1"] = (1, lost)  # what the driver's recorder counted when Tune called it, before the progress
    progress.on_trial_recover(0, [], a)
    progress.on_trial_start(0, [], a)  # the retry starts: its restart was said already
    progress.on_trial_start(0, [], trial("b2", EQUAL))  # a trial an earlier driver run left running
    assert out.getvalue().splitlines()[-4:] == [
        "trial 3  started  dwa T=2 wd=0.0001 step=0.25 gamma=0.5",
        f"trial 3  restart 1: {lost}; again from its last checkpoint (the start if none)",
        "trial 3  started  dwa T=2 wd=0.0001 step=0.25 gamma=0.5",
        "trial 4  started  equal wd=0 step=0.5 gamma=0.5  (restart 1: the driver stopped while it ran; "
        "driver run 2 continued it)",
    ]


def test_without_a_restart_count_a_retry_says_why_it_failed(tmp_path):
    error = tmp_path / "error.txt"
    error.write_text(DIVERGED)
    out = io.StringIO()
    progress = StudyProgress(HEADER, console=Console(file=out, width=300))
    progress.on_trial_recover(0, [], trial("a1", DWA, str(error)))
    assert out.getvalue().splitlines()[-1] == (
        "trial 3  failed: TrainingDiverged: segmentation loss became nan in epoch 1; again from its last "
        "checkpoint (the start if none)"
    )


def test_a_scalarization_trial_shows_its_depth_share_not_its_logit():
    point = {"trial_number": 5, "weighting": "scalarization", "depth_share_logit": math.log(0.3 / 0.7)}
    point.update(use_weight_decay=False, step_fraction=0.5, gamma=0.5)
    assert config_text(point) == "scalarization w=0.3 wd=0 step=0.5 gamma=0.5"


def test_the_tables_title_stays_on_one_line_when_wider_than_the_table():
    out = io.StringIO()
    header = dataclasses.replace(HEADER, num_samples=100_000)
    progress = StudyProgress(header, console=Console(file=out, width=200), live=False)
    progress._start -= 7200  # two hours in: "0 running, 0 of 100000 ended, 2.0 h elapsed"
    table = progress.table()
    min_width, table.min_width = table.min_width, None
    natural = progress.console.measure(table).maximum
    assert natural < len(table.title)  # no trial yet: the columns alone are narrower than the title
    table.min_width = min_width
    progress.console.print(table)
    assert out.getvalue().splitlines()[0].strip() == table.title
